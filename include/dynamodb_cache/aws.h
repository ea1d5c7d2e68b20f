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
  // The service rejected what get() returned as expired: forget cached credentials so the
  // next get() fetches new ones. Default: nothing is cached, nothing to do.
  virtual void invalidate() {}
};

// Fixed credentials given by the caller.
std::shared_ptr<CredentialsProvider> make_static_provider(Credentials credentials);

// AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN (read at each get()).
std::shared_ptr<CredentialsProvider> make_environment_provider();

struct ProfileOptions {
  std::string profile;           // empty: AWS_PROFILE, else "default"
  std::string credentials_file;  // empty: AWS_SHARED_CREDENTIALS_FILE, else ~/.aws/credentials
  std::string config_file;       // empty: AWS_CONFIG_FILE, else ~/.aws/config
};
// aws_access_key_id / aws_secret_access_key / aws_session_token from [NAME] in the
// credentials file, else [profile NAME] (or [default]) in the config file.
std::shared_ptr<CredentialsProvider> make_profile_provider(ProfileOptions options = {});

struct HttpProviderOptions {
  // Transport for the metadata calls; default: curl with 1 s connect, 2 s total timeouts.
  std::shared_ptr<http::Transport> transport;
  // Environment lookup; default: getenv. Tests inject their own.
  std::function<std::optional<std::string>(const char*)> getenv;
};

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
std::shared_ptr<CredentialsProvider> make_caching_provider(
    std::shared_ptr<CredentialsProvider> inner,
    std::chrono::seconds refresh_before = std::chrono::minutes(5),
    std::function<SystemClock::time_point()> now = nullptr);

// The AWS SDK order: environment, profile files, container, IMDSv2; wrapped in a cache.
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

// ---- configuration ----

// Region: explicit, AWS_REGION, AWS_DEFAULT_REGION, the profile's `region` in the config
// file. Throws ConfigError when none is set.
std::string resolve_region(const std::string& explicit_region = {},
                           const ProfileOptions& profile = {});

// Endpoint: explicit, AWS_ENDPOINT_URL_DYNAMODB, AWS_ENDPOINT_URL, else
// https://dynamodb.REGION.amazonaws.com (amazonaws.com.cn for cn- regions).
std::string resolve_dynamodb_endpoint(const std::string& region,
                                      const std::string& explicit_endpoint = {});

}  // namespace dynamodb_cache::aws
