// Shared config/credentials file reading and environment helpers (private).
#pragma once

#include <map>
#include <optional>
#include <string>

#include "aws/parsers.h"
#include "dynamodb_cache/aws.h"

namespace dynamodb_cache::aws::detail {

// getenv that treats an empty variable as unset.
std::optional<std::string> env(const char* name);

// `name`'s value in an IniSection, or nullopt when absent or empty.
std::optional<std::string> get(const IniSection& s, const std::string& name);

// Reads and parses an AWS-style INI file (parse_ini); a missing file is an empty result.
// Throws ConfigError for a file larger than kMaxConfigFileBytes.
IniFile read_ini(const std::string& path);

// Reads a whole small file (a token, a cache entry). nullopt when it cannot be opened;
// throws CredentialsError naming `what` when it is larger than `max_bytes`.
std::optional<std::string> read_small_file(const std::string& path, std::size_t max_bytes, const std::string& what);

struct ResolvedProfile {
  std::string name;
  std::string credentials_file;
  std::string config_file;
};
ResolvedProfile resolve_profile(const ProfileOptions& options);

// The profile's section of the config file ([profile name], or [default]).
std::optional<IniSection> config_section(const ResolvedProfile& p);

// Both files read once: what the credential providers resolve a profile (and its
// source_profile chain) from.
struct SharedConfig {
  IniFile credentials;
  IniFile config;
  static SharedConfig load(const ResolvedProfile& p);
  // The profile's properties: its config-file section overlaid by its credentials-file
  // section (the credentials file wins key by key, as in the AWS CLI). nullopt when
  // neither file has the profile.
  std::optional<IniSection> profile(const std::string& name) const;
  // [sso-session NAME] / [services NAME] of the config file.
  std::optional<IniSection> config_only(const std::string& kind, const std::string& name) const;
};

// The endpoint URL configured for `service_id` (an AWS SDK service id: "DynamoDB", "STS",
// "SSO"), as the AWS CLI resolves configured endpoints: AWS_ENDPOINT_URL_<ID> (upper case,
// spaces as "_"), the profile's `services` section (`<id> =` then `endpoint_url = ...`),
// AWS_ENDPOINT_URL, the profile's `endpoint_url`. None of them when
// AWS_IGNORE_CONFIGURED_ENDPOINT_URLS or the profile's ignore_configured_endpoint_urls is
// true. nullopt: none configured.
std::optional<std::string> configured_endpoint(const std::string& service_id, const ProfileOptions& profile);

// The region configured (AWS_REGION, AWS_DEFAULT_REGION, the profile's `region`), checked
// with check_region; nullopt when none is.
std::optional<std::string> configured_region(const ProfileOptions& profile);

// Throws ConfigError "<source>: ... is not a valid AWS region name" unless `region` is one as
// botocore checks it (a host label: 1-63 letters, digits and '-', not starting or ending
// with '-', not all digits). It becomes a host name, the signature's scope and part of the
// Authorization header, so nothing else may pass; the value is never quoted.
void check_region(std::string_view region, const std::string& source);

// "true"/"1" in any case.
bool truthy(const std::string& v);

}  // namespace dynamodb_cache::aws::detail
