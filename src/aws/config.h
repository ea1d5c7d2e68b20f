// Shared config/credentials file reading and environment helpers (private).
#pragma once

#include <map>
#include <optional>
#include <string>

#include "dynamodb_cache/aws.h"

namespace dynamodb_cache::aws::detail {

// getenv that treats an empty variable as unset.
std::optional<std::string> env(const char* name);

using IniSection = std::map<std::string, std::string>;
using IniFile = std::map<std::string, IniSection>;

// Parses an AWS-style INI file; a missing file is an empty result. Keys are lower-cased;
// "#" and ";" start comments; nested (indented) sub-properties are skipped.
IniFile read_ini(const std::string& path);

struct ResolvedProfile {
  std::string name;
  std::string credentials_file;
  std::string config_file;
};
ResolvedProfile resolve_profile(const ProfileOptions& options);

// The section for `profile` in the credentials file ([name]) or config file
// ([profile name], or [default]).
std::optional<IniSection> credentials_section(const ResolvedProfile& p);
std::optional<IniSection> config_section(const ResolvedProfile& p);

}  // namespace dynamodb_cache::aws::detail
