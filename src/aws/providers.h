// Pieces the credential providers share (private): the "not configured" signal of the chain,
// bounded HTTP fetches, the STS and SSO calls.
#pragma once

#include <memory>
#include <string>

#include "aws/config.h"
#include "dynamodb_cache/aws.h"
#include "dynamodb_cache/errors.h"
#include "dynamodb_cache/http.h"

namespace dynamodb_cache::aws::detail {

// "Nothing configured here": the chain moves on to the next provider. Any other
// CredentialsError from a provider stops the chain (its source is configured but broken).
struct NotConfigured : CredentialsError {
  explicit NotConfigured(const std::string& m) : CredentialsError(m, false) {}
};

// Sends `req`; transport failures become retryable CredentialsError naming `provider`, and
// an answer above kMaxCredentialsAnswerBytes is refused.
http::Response fetch(http::Transport& t, const http::Request& req, const std::string& provider);

// The transport for calls to STS and SSO: make_default_transport with resolve_http_options
// (CA bundle, User-Agent) of `profile`, 2 s to connect, 10 s per request.
std::shared_ptr<http::Transport> service_transport(const ProfileOptions& profile);

// "host[:port]" (default port dropped) and path ("/" when none) of an http(s) URL.
struct UrlParts {
  std::string host;
  std::string path;
};
UrlParts split_url(const std::string& url);

// application/x-www-form-urlencoded value (RFC 3986 unreserved characters kept).
std::string form_encode(std::string_view s);

// Where STS calls go: explicit or configured endpoint, else the regional endpoint of
// `region`, else (no region anywhere) the global endpoint in us-east-1.
struct StsTarget {
  std::string region;
  std::string endpoint;
};
StsTarget sts_target(const std::string& region, const std::string& endpoint, const ProfileOptions& profile);

// POSTs the Query-protocol `form` (Action=...&Version=2011-06-15&...) to STS, SigV4-signed
// with `signer` (service "sts") when not null, and parses the credentials of the answer.
// What STS says in an error is quoted without the request's secrets: the signer's session
// token, the signature and `form_secret` (a web identity token), should it echo them.
Credentials call_sts(http::Transport& t, const StsTarget& target, const std::string& form,
                     const Credentials* signer, const std::string& provider,
                     std::string_view form_secret = {});

// The default session name of AssumeRole calls: "dynamodb-cache-<epoch seconds>".
std::string default_session_name();

struct WebIdentityConfig {
  std::string token_file;
  std::string role_arn;
  std::string session_name;  // empty: default_session_name()
  std::string provider;      // names the source in messages
  ProfileOptions profile;    // region, endpoint, CA bundle
};
std::shared_ptr<CredentialsProvider> make_web_identity_file_provider(WebIdentityConfig config,
                                                                     std::shared_ptr<http::Transport> transport);

struct SsoConfig {
  std::string session_name;  // [sso-session NAME]; empty for the legacy profile format
  std::string start_url;
  std::string region;        // sso_region
  std::string account_id;
  std::string role_name;
  std::string profile_name;  // for messages ("run aws sso login --profile NAME")
  ProfileOptions profile;    // endpoint override, CA bundle
};
std::shared_ptr<CredentialsProvider> make_sso_provider(SsoConfig config, std::shared_ptr<http::Transport> transport);

}  // namespace dynamodb_cache::aws::detail
