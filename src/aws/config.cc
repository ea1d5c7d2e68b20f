#include "aws/config.h"

#include <cstdlib>
#include <fstream>

#include "dynamodb_cache/errors.h"

namespace dynamodb_cache::aws {
namespace detail {

std::optional<std::string> env(const char* name) {
  const char* v = std::getenv(name);
  if (v == nullptr || *v == '\0') return std::nullopt;
  return std::string(v);
}

namespace {
std::string trim(const std::string& s) {
  auto b = s.find_first_not_of(" \t\r\n");
  if (b == std::string::npos) return {};
  auto e = s.find_last_not_of(" \t\r\n");
  return s.substr(b, e - b + 1);
}
std::string home_file(const char* rel) {
  auto home = env("HOME");
  return home ? *home + "/" + rel : std::string();
}
}  // namespace

IniFile read_ini(const std::string& path) {
  IniFile out;
  if (path.empty()) return out;
  std::ifstream in(path);
  if (!in) return out;
  std::string line, section;
  bool have_section = false;
  while (std::getline(in, line)) {
    if (!line.empty() && (line[0] == ' ' || line[0] == '\t')) continue;  // sub-property
    std::string t = trim(line);
    if (t.empty() || t[0] == '#' || t[0] == ';') continue;
    if (t.front() == '[') {
      auto close = t.find(']');
      if (close == std::string::npos) { have_section = false; continue; }
      section = trim(t.substr(1, close - 1));
      have_section = true;
      out[section];
      continue;
    }
    if (!have_section) continue;
    auto eq = t.find('=');
    if (eq == std::string::npos) continue;
    std::string k = trim(t.substr(0, eq));
    for (auto& c : k) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    std::string v = trim(t.substr(eq + 1));
    out[section][k] = v;
  }
  return out;
}

ResolvedProfile resolve_profile(const ProfileOptions& o) {
  ResolvedProfile p;
  p.name = !o.profile.empty() ? o.profile : env("AWS_PROFILE").value_or("default");
  p.credentials_file = !o.credentials_file.empty()
                           ? o.credentials_file
                           : env("AWS_SHARED_CREDENTIALS_FILE").value_or(home_file(".aws/credentials"));
  p.config_file =
      !o.config_file.empty() ? o.config_file : env("AWS_CONFIG_FILE").value_or(home_file(".aws/config"));
  return p;
}

std::optional<IniSection> credentials_section(const ResolvedProfile& p) {
  auto ini = read_ini(p.credentials_file);
  auto it = ini.find(p.name);
  if (it == ini.end()) return std::nullopt;
  return it->second;
}

std::optional<IniSection> config_section(const ResolvedProfile& p) {
  auto ini = read_ini(p.config_file);
  auto it = ini.find("profile " + p.name);
  if (it == ini.end() && p.name == "default") it = ini.find("default");
  if (it == ini.end()) return std::nullopt;
  return it->second;
}

}  // namespace detail

std::string resolve_region(const std::string& explicit_region, const ProfileOptions& profile) {
  if (!explicit_region.empty()) return explicit_region;
  if (auto r = detail::env("AWS_REGION")) return *r;
  if (auto r = detail::env("AWS_DEFAULT_REGION")) return *r;
  auto p = detail::resolve_profile(profile);
  if (auto sec = detail::config_section(p)) {
    auto it = sec->find("region");
    if (it != sec->end() && !it->second.empty()) return it->second;
  }
  throw ConfigError(
      "no AWS region: pass one, or set AWS_REGION, AWS_DEFAULT_REGION or `region` in profile '" +
      p.name + "' of " + (p.config_file.empty() ? "the config file" : p.config_file));
}

std::string resolve_dynamodb_endpoint(const std::string& region, const std::string& explicit_endpoint) {
  std::string e = explicit_endpoint;
  if (e.empty()) e = detail::env("AWS_ENDPOINT_URL_DYNAMODB").value_or("");
  if (e.empty()) e = detail::env("AWS_ENDPOINT_URL").value_or("");
  if (e.empty()) {
    if (region.empty()) throw ConfigError("no AWS region to build the DynamoDB endpoint from");
    for (char c : region)
      if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '-'))
        throw ConfigError("invalid AWS region '" + region + "'");
    e = "https://dynamodb." + region + (region.rfind("cn-", 0) == 0 ? ".amazonaws.com.cn" : ".amazonaws.com");
  }
  if (e.rfind("http://", 0) != 0 && e.rfind("https://", 0) != 0)
    throw ConfigError("endpoint '" + e + "' must start with http:// or https://");
  while (e.size() > 8 && e.back() == '/') e.pop_back();
  return e;
}

}  // namespace dynamodb_cache::aws
