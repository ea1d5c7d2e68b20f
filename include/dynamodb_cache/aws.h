// AWS plumbing: credentials and their providers, the SigV4 signer, region and endpoint
// resolution. Nothing here talks to DynamoDB; see dynamodb.h.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "dynamodb_cache/http.h"

namespace dynamodb_cache::aws {

using SystemClock = std::chrono::system_clock;

// Secrets: never printed. operator<< is deliberately not provided.
struct Credentials {
  std::string access_key_id;
  std::string secret_access_key;
  std::string session_token;                        // empty for long-term keys
  std::optional<SystemClock::time_point> expiration;  // nullopt: does not expire
  std::string provider;                             // which provider produced them (for messages)
};

// Thread-safety: every provider allows concurrent get() calls.
class CredentialsProvider {
 public:
  virtual ~CredentialsProvider() = default;
  // Returns credentials or throws CredentialsError. A provider that "has nothing" (no env
  // variables, no profile) throws CredentialsError with retryable() == false; the chain then
  // moves on to the next provider.
  virtual Credentials get() = 0;
  // get() into `out`, whose strings keep their buffers: what the DynamoDB client calls once
  // per request. The caching provider (every chain) answers without allocating once `out`
  // has held credentials; the default is `out = get()`.
  virtual void get_into(Credentials& out) { out = get(); }
  // What try_get_into found.
  enum class Cached {
    kNone,        // none usable without a fetch: call get_into where blocking is allowed
    kReady,       // `out` holds credentials to sign with
    kRefreshDue,  // `out` holds usable credentials, and a refresh is due: have get_into
                  // called where blocking is allowed (it refreshes; the next calls find it done)
  };
  // get_into without ever waiting for a fetch (at most for a short lock): for callers that
  // must not block, as the DynamoDB client's event loops. Thread-safe. Default: kNone, so a
  // provider of your own is always called from a thread that may block; override it when
  // yours can answer at once. The caching provider (every chain) answers from its cache.
  virtual Cached try_get_into(Credentials& out) {
    (void)out;
    return Cached::kNone;
  }
  // The service rejected what get() returned as expired: forget cached credentials so the
  // next get() fetches new ones. Default: nothing is cached, nothing to do. The caching
  // provider honours one invalidation per backoff interval (1, 2, 4, 8, then 10 s while they
  // keep coming), however many requests saw the rejection.
  virtual void invalidate() {}
};

// Fixed credentials given by the caller. Throws CredentialsError when the access key id or
// session token holds a line break or other control character (they become header values).
std::shared_ptr<CredentialsProvider> make_static_provider(Credentials credentials);

// AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN (read at each get()).
std::shared_ptr<CredentialsProvider> make_environment_provider();

struct ProfileOptions {
  std::string profile;           // empty: AWS_PROFILE, else "default"
  std::string credentials_file;  // empty: AWS_SHARED_CREDENTIALS_FILE, else ~/.aws/credentials
  std::string config_file;       // empty: AWS_CONFIG_FILE, else ~/.aws/config
};
struct HttpProviderOptions {
  // Transport for the metadata calls; default: curl with 1 s connect, 2 s total timeouts.
  std::shared_ptr<http::Transport> transport;
  // Environment lookup; default: getenv. Tests inject their own.
  std::function<std::optional<std::string>(const char*)> getenv;
};

// The credentials a profile names, resolved as the AWS SDKs do. A profile's properties are
// its [profile NAME] (or [default]) section of the config file overlaid key by key by its
// [NAME] section of the credentials file. In order:
//  - role_arn with source_profile (the source resolved the same way, chains followed, loops
//    rejected; a profile that is its own source uses its static keys) or credential_source
//    (Environment, Ec2InstanceMetadata, EcsContainer): STS AssumeRole with external_id,
//    role_session_name, duration_seconds. mfa_serial is refused (it needs a typed code).
//  - role_arn with web_identity_token_file: STS AssumeRoleWithWebIdentity.
//  - sso_session (with its [sso-session NAME]) or sso_start_url: the token cached by
//    `aws sso login`, then SSO GetRoleCredentials for sso_account_id / sso_role_name. An
//    sso-session token is refreshed (SSO OIDC CreateToken, written back to the cache) in
//    its last 15 minutes, as the AWS CLI does.
//  - credential_process: the command's JSON output (Version 1).
//  - aws_access_key_id / aws_secret_access_key / aws_session_token.
// STS is called at https://sts.REGION.amazonaws.com (REGION as resolve_region finds it;
// without one, https://sts.amazonaws.com in us-east-1), SSO at
// https://portal.sso.SSO_REGION.amazonaws.com, unless an endpoint is configured for "STS" or
// "SSO" (AWS_ENDPOINT_URL_STS, ...; see resolve_service_endpoint). Temporary credentials of
// each step are cached (make_caching_provider). Files are read at the first get(); a
// profile without any of these is "not configured" for the chain. A source_profile chain of
// more than 150 links is refused (the AWS CLI cannot follow one of 145). Every provider
// refuses an access key id, session token or bearer token with a line break or other control
// character (CredentialsError naming the source, never quoting the value): each becomes a
// header value.
std::shared_ptr<CredentialsProvider> make_profile_provider(ProfileOptions options = {});

// credential_process: runs `command` through /bin/sh -c (as the Go and Rust SDKs do on
// Unix) with the caller's environment, and parses its standard output (JSON, "Version": 1;
// at most 1 MiB). Its standard error is ours when that is a terminal, else dropped (it may
// hold secrets and would land in a log). It runs in a process group of its own, as
// coreutils' `timeout` runs its command: after `timeout`, or at the calling operation's
// deadline (ClientOptions::operation_timeout) when that comes first, it is killed with every
// process it started; like a background job, it cannot read from the terminal. `name` names
// it in messages (the command line and its output are never quoted: they may hold secrets).
std::shared_ptr<CredentialsProvider> make_process_provider(
    std::string command, std::string name = "credential_process",
    std::chrono::milliseconds timeout = std::chrono::seconds(60));

struct AssumeRoleOptions {
  std::string role_arn;
  std::string role_session_name;  // empty: "dynamodb-cache-<epoch seconds>"
  std::string external_id;        // optional
  std::chrono::seconds duration{0};  // 0: STS's default (1 h); else 900..43200
  std::shared_ptr<CredentialsProvider> source;  // signs the AssumeRole call
  std::string region;                           // empty: resolve_region, else us-east-1
  std::string endpoint;                         // empty: resolve_service_endpoint("STS", ...)
  ProfileOptions profile;                       // for region, endpoint, CA bundle
  std::shared_ptr<http::Transport> transport;   // default: make_default_transport
};
// STS AssumeRole, signed with SigV4 (service "sts") by `source`'s credentials. Not cached:
// wrap in make_caching_provider.
std::shared_ptr<CredentialsProvider> make_assume_role_provider(AssumeRoleOptions options);

// Web identity from the environment (how EKS pods get credentials):
// AWS_WEB_IDENTITY_TOKEN_FILE, AWS_ROLE_ARN and optional AWS_ROLE_SESSION_NAME, through STS
// AssumeRoleWithWebIdentity (unsigned). The token file is read at each get() (it rotates).
// Not configured when either variable is unset. Not cached: wrap in make_caching_provider.
std::shared_ptr<CredentialsProvider> make_web_identity_provider(HttpProviderOptions options = {});

// ECS/EKS container credentials: AWS_CONTAINER_CREDENTIALS_RELATIVE_URI (on 169.254.170.2) or
// AWS_CONTAINER_CREDENTIALS_FULL_URI (loopback, the ECS/EKS addresses, or https), with
// AWS_CONTAINER_AUTHORIZATION_TOKEN or AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE.
std::shared_ptr<CredentialsProvider> make_container_provider(HttpProviderOptions options = {});

// EC2 instance metadata, IMDSv2 only: PUT /latest/api/token, then the role and its
// credentials. AWS_EC2_METADATA_SERVICE_ENDPOINT overrides http://169.254.169.254;
// AWS_EC2_METADATA_DISABLED=true turns the provider off. The session token is cached for its
// TTL and fetched again on a 401.
std::shared_ptr<CredentialsProvider> make_imds_provider(HttpProviderOptions options = {});

// Tries each provider in order; the first that yields credentials wins and is remembered (as
// the AWS SDKs do). Throws CredentialsError naming every provider tried if none has any.
std::shared_ptr<CredentialsProvider> make_chain_provider(
    std::vector<std::shared_ptr<CredentialsProvider>> providers);

// Caches what `inner` returns. Credentials with an expiration are refreshed `refresh_before`
// ahead of it by exactly one thread; other threads keep using the still-valid cached ones
// and wait only once they have expired. A failed refresh while the old ones are still valid
// keeps the old ones.
// `inner` is asked at most once per backoff interval while it fails or returns expired
// credentials: 10 s while usable credentials are held, else 1, 2, 4, 8, then 10 s; calls in
// between fail fast with the last error. For static stability, as the AWS SDKs do, credentials
// that come back already expired, or that expire while a refresh fails, are used for 5-10
// more minutes (said once per provider to the process-wide log hook, log.h), then dropped.
std::shared_ptr<CredentialsProvider> make_caching_provider(
    std::shared_ptr<CredentialsProvider> inner,
    std::chrono::seconds refresh_before = std::chrono::minutes(5),
    std::function<SystemClock::time_point()> now = nullptr);

// The AWS SDK order: environment (skipped when `profile.profile` is given, as the AWS CLI's
// --profile does), the profile (make_profile_provider), web identity from the environment,
// container, IMDSv2; wrapped in a cache.
std::shared_ptr<CredentialsProvider> make_default_chain(const ProfileOptions& profile = {});

// ---- SigV4 ----

struct SigningParams {
  std::string_view method;  // "POST"
  std::string_view path;    // not yet URI-encoded, e.g. "/" or "/example space/"
  std::string_view query;   // raw query string without '?', may be empty
  const std::vector<http::Header>* headers = nullptr;  // headers to sign, as sent
  std::string_view body;
  const Credentials* credentials = nullptr;
  std::string_view region;
  std::string_view service;
  SystemClock::time_point time;
  bool normalize_path = true;      // remove "." / ".." segments, collapse "//"
  bool sign_body = false;          // add and sign x-amz-content-sha256
  bool omit_session_token = false; // add X-Amz-Security-Token after signing (STS style)
};

struct SigningResult {
  std::string canonical_request;
  std::string string_to_sign;
  std::string signature;      // lower-case hex
  std::string authorization;  // the Authorization header value
  // Headers the caller must add to the request: X-Amz-Date, optionally
  // X-Amz-Security-Token and x-amz-content-sha256.
  std::vector<http::Header> added_headers;
};

// Pure function of its inputs (the derived key is memoised per thread, keyed by secret,
// date, region and service). Thread-safe.
SigningResult sign_v4(const SigningParams& params);
// The same into `out`, whose strings and header entries are overwritten with their capacity
// kept: a caller signing request after request with one SigningResult allocates nothing here.
void sign_v4(const SigningParams& params, SigningResult& out);

// ---- configuration ----

// Region: explicit, AWS_REGION, AWS_DEFAULT_REGION, the profile's `region` in the config
// file. Throws ConfigError when none is set, or when the first one set is not a valid region
// name as the AWS CLI checks it (a host label: 1-63 letters, digits and '-').
std::string resolve_region(const std::string& explicit_region = {},
                           const ProfileOptions& profile = {});

// Endpoint of the service whose AWS SDK service id is `service_id` ("DynamoDB", "STS",
// "SSO"): explicit, else the configured endpoint as the AWS CLI finds it:
// AWS_ENDPOINT_URL_<ID> (upper case, spaces as '_'), the profile's `services` section
// (`<id> =` then an indented `endpoint_url = ...`), AWS_ENDPOINT_URL, the profile's
// `endpoint_url` (all skipped when AWS_IGNORE_CONFIGURED_ENDPOINT_URLS or the profile's
// ignore_configured_endpoint_urls is true); else https://PREFIX.REGION.amazonaws.com
// (amazonaws.com.cn for cn- regions). Throws ConfigError for a URL that is not http(s) or
// that http::parse_url refuses (control characters, userinfo...).
std::string resolve_service_endpoint(const std::string& service_id, const std::string& hostname_prefix,
                                     const std::string& region, const std::string& explicit_endpoint = {},
                                     const ProfileOptions& profile = {});

// resolve_service_endpoint("DynamoDB", "dynamodb", ...).
std::string resolve_dynamodb_endpoint(const std::string& region,
                                      const std::string& explicit_endpoint = {},
                                      const ProfileOptions& profile = {});

// HTTP options as the AWS CLI configures them, over `base`: ca_file (when base has none)
// from AWS_CA_BUNDLE, else the profile's ca_bundle (ConfigError if unreadable); the
// User-Agent gets " app/ID" from AWS_SDK_UA_APP_ID, else the profile's sdk_ua_app_id.
http::HttpOptions resolve_http_options(const ProfileOptions& profile = {}, http::HttpOptions base = {});

}  // namespace dynamodb_cache::aws
