// Pure parsers of what credential sources hand us: the shared config/credentials files, the
// credentials JSON of the container endpoint and IMDS, credential_process output, STS XML
// answers, the SSO token cache and SSO's GetRoleCredentials answer (private).
//
// Each is a function of its input only: no I/O, no environment, safe from any thread, and
// fuzzed (fuzz/credentials_fuzz.cc). Inputs are bounded by the callers; errors are
// CredentialsError (or ConfigError for the config files) whose messages never quote a
// secret, token or the raw input. Credentials and tokens that would become header values
// are refused when they hold a line break or control character (require_header_value).
#pragma once

#include <cstddef>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "dynamodb_cache/aws.h"

namespace dynamodb_cache::aws::detail {

using IniSection = std::map<std::string, std::string>;
using IniFile = std::map<std::string, IniSection>;

// Largest config or credentials file read, and largest answer or output parsed, in bytes.
// Real ones are a few KB; these bound memory against a runaway file, process or peer.
inline constexpr std::size_t kMaxConfigFileBytes = 4 << 20;
inline constexpr std::size_t kMaxCredentialsAnswerBytes = 1 << 20;

// Parses AWS-style INI text as the AWS CLI (Python's configparser) does: "[section]" headers
// (the name trimmed; text after "]" ignored), "key = value" or "key: value" lines (key
// lower-cased, both trimmed), "#" and ";" start comment lines (there are no inline
// comments: a value keeps any "#"). A key with an empty value followed
// by indented "sub = value" lines has sub-properties, stored as "key.sub" (e.g. the
// `dynamodb = \n  endpoint_url = ...` of a [services NAME] section gives
// "dynamodb.endpoint_url"). Other indented lines continue the previous value. Lines outside
// any section and malformed lines are skipped. A later duplicate key wins.
IniFile parse_ini(std::string_view text);

// Throws CredentialsError "<source>: <what> contains a line break or control character"
// (not retryable) unless `value` may be a header value (http::valid_header_value). The one
// check of every value that becomes a header, made where it enters; the value is never
// quoted.
void require_header_value(std::string_view value, const std::string& source, std::string_view what);
// The same for the header-bound parts of `c` (its access key id, in Authorization, and its
// session token), named `id_name` and `token_name`; `c.provider` is the source.
void require_header_values(const Credentials& c, std::string_view id_name, std::string_view token_name);

// The JSON both the container endpoint and IMDS return: Code (if present, "Success"),
// AccessKeyId, SecretAccessKey, Token, Expiration (ISO 8601). `provider` names the source in
// messages and in the result. Throws CredentialsError (retryable: a fresh fetch may differ).
Credentials parse_metadata_credentials(std::string_view body, const std::string& provider);

// credential_process standard output: JSON with "Version": 1, AccessKeyId, SecretAccessKey,
// optional SessionToken and Expiration (ISO 8601; absent: the credentials do not expire).
Credentials parse_process_credentials(std::string_view output, const std::string& provider);

// An STS Query-protocol answer (AssumeRole, AssumeRoleWithWebIdentity): the
// <Credentials> element of a 200 answer. For an <ErrorResponse>, throws CredentialsError
// with its Code and Message, retryable for throttling and server-side codes. `provider`
// names the source in messages. `secrets` are what the request carried (its session token,
// signature, web identity token): a server may echo them, so they are redacted from Code
// and Message before these are cut to length.
Credentials parse_sts_credentials(std::string_view xml, const std::string& provider,
                                  const std::vector<std::string_view>& secrets = {});

// Code and Message of an STS <ErrorResponse>, or empty strings: one printable line each,
// `secrets` redacted (util::redact), bounded.
struct StsError {
  std::string code;
  std::string message;
};
StsError parse_sts_error(std::string_view xml, const std::vector<std::string_view>& secrets = {});

// The token `aws sso login` caches in ~/.aws/sso/cache/<sha1>.json. The sso-session format
// adds what refreshing it takes (SSO OIDC CreateToken): empty / nullopt when absent.
struct SsoToken {
  std::string access_token;  // secret
  SystemClock::time_point expires_at;
  std::string start_url;
  std::string region;
  std::string client_id;
  std::string client_secret;  // secret
  std::string refresh_token;  // secret
  std::optional<SystemClock::time_point> registration_expires_at;
};
// Throws CredentialsError when accessToken or expiresAt is missing or malformed.
SsoToken parse_sso_token(std::string_view json);
// The cache file's JSON for `t` (what the AWS CLI writes back after a refresh).
std::string sso_token_json(const SsoToken& t);

// The answer of SSO OIDC CreateToken (grant type refresh_token).
struct SsoRefreshed {
  std::string access_token;   // secret
  std::chrono::seconds expires_in{0};
  std::string refresh_token;  // secret; empty: keep the old one
};
SsoRefreshed parse_sso_oidc_token(std::string_view json);

// The answer of SSO GetRoleCredentials: {"roleCredentials": {accessKeyId, secretAccessKey,
// sessionToken, expiration (epoch milliseconds)}}.
Credentials parse_sso_role_credentials(std::string_view json, const std::string& provider);

}  // namespace dynamodb_cache::aws::detail
