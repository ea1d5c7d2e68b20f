#include "aws/config.h"

#include <cctype>
#include <cstdlib>
#include <fstream>

#include "dynamodb_cache/errors.h"
#include "http/headers.h"

namespace dynamodb_cache::aws {
namespace detail {

std::optional<std::string> env(const char* name) {
  const char* v = std::getenv(name);
  if (v == nullptr || *v == '\0') return std::nullopt;
  return std::string(v);
}

std::optional<std::string> get(const IniSection& s, const std::string& name) {
  auto it = s.find(name);
  if (it == s.end() || it->second.empty()) return std::nullopt;
  return it->second;
}

void check_region(std::string_view r, const std::string& source) {
  bool ok = !r.empty() && r.size() <= 63 && r.front() != '-' && r.back() != '-' &&
            r.find_first_not_of("0123456789") != std::string_view::npos;
  for (unsigned char c : r) ok = ok && (std::isalnum(c) || c == '-');
  if (!ok)
    throw ConfigError(source +
                      " is not a valid AWS region name (1-63 letters, digits and '-', as in us-east-1)");
}

std::optional<std::string> configured_region(const ProfileOptions& profile) {
  for (const char* name : {"AWS_REGION", "AWS_DEFAULT_REGION"})
    if (auto r = env(name)) {
      check_region(*r, std::string("environment: ") + name);
      return r;
    }
  auto p = resolve_profile(profile);
  if (auto sec = config_section(p))
    if (auto r = get(*sec, "region")) {
      check_region(*r, "the region of profile '" + p.name + "' in " + p.config_file);
      return r;
    }
  return std::nullopt;
}

bool truthy(const std::string& v) {
  std::string l = v;
  for (auto& c : l) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return l == "true" || l == "1";
}

namespace {
std::string home_file(const char* rel) {
  auto home = env("HOME");
  return home ? *home + "/" + rel : std::string();
}

// Reads at most `max_bytes` + 1 bytes; nullopt when the file cannot be opened.
std::optional<std::string> read_bounded(const std::string& path, std::size_t max_bytes, bool& too_large) {
  too_large = false;
  if (path.empty()) return std::nullopt;
  std::ifstream in(path, std::ios::binary);
  if (!in) return std::nullopt;
  std::string out;
  char buf[16384];
  while (in.read(buf, sizeof buf) || in.gcount() > 0) {
    out.append(buf, static_cast<size_t>(in.gcount()));
    if (out.size() > max_bytes) {
      too_large = true;
      return std::nullopt;
    }
  }
  return out;
}
}  // namespace

IniFile read_ini(const std::string& path) {
  bool too_large = false;
  auto text = read_bounded(path, kMaxConfigFileBytes, too_large);
  if (too_large)
    throw ConfigError(path + " is larger than " + std::to_string(kMaxConfigFileBytes >> 20) + " MiB");
  return text ? parse_ini(*text) : IniFile{};
}

std::optional<std::string> read_small_file(const std::string& path, std::size_t max_bytes, const std::string& what) {
  bool too_large = false;
  auto text = read_bounded(path, max_bytes, too_large);
  if (too_large) throw CredentialsError(what + " " + path + " is larger than " + std::to_string(max_bytes) + " bytes");
  return text;
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

SharedConfig SharedConfig::load(const ResolvedProfile& p) {
  return SharedConfig{read_ini(p.credentials_file), read_ini(p.config_file)};
}

std::optional<IniSection> SharedConfig::profile(const std::string& name) const {
  std::optional<IniSection> out;
  auto it = config.find("profile " + name);
  if (it == config.end() && name == "default") it = config.find("default");
  if (it != config.end()) out = it->second;
  if (auto c = credentials.find(name); c != credentials.end()) {
    if (!out) out.emplace();
    for (auto& [k, v] : c->second) (*out)[k] = v;
  }
  return out;
}

std::optional<IniSection> SharedConfig::config_only(const std::string& kind, const std::string& name) const {
  auto it = config.find(kind + " " + name);
  if (it == config.end()) return std::nullopt;
  return it->second;
}

std::optional<IniSection> config_section(const ResolvedProfile& p) {
  return SharedConfig{{}, read_ini(p.config_file)}.profile(p.name);
}

std::optional<std::string> configured_endpoint(const std::string& service_id, const ProfileOptions& options) {
  auto p = resolve_profile(options);
  const SharedConfig cfg{{}, read_ini(p.config_file)};
  auto sec = cfg.profile(p.name).value_or(IniSection{});
  auto ignore = env("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS");  // the variable outranks the profile
  if (truthy(ignore ? *ignore : get(sec, "ignore_configured_endpoint_urls").value_or(""))) return std::nullopt;
  std::string env_name = "AWS_ENDPOINT_URL_", key;
  for (char c : service_id) {
    env_name += c == ' ' ? '_' : static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    key += c == ' ' ? '_' : static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  }
  if (auto e = env(env_name.c_str())) return e;
  if (auto services = get(sec, "services"))
    if (auto s = cfg.config_only("services", *services))
      if (auto e = get(*s, key + ".endpoint_url")) return e;
  if (auto e = env("AWS_ENDPOINT_URL")) return e;
  return get(sec, "endpoint_url");
}

}  // namespace detail

std::string resolve_region(const std::string& explicit_region, const ProfileOptions& profile) {
  if (!explicit_region.empty()) {
    detail::check_region(explicit_region, "the region given");
    return explicit_region;
  }
  if (auto r = detail::configured_region(profile)) return *r;
  auto p = detail::resolve_profile(profile);
  throw ConfigError(
      "no AWS region: pass one, or set AWS_REGION, AWS_DEFAULT_REGION or `region` in profile '" +
      p.name + "' of " + (p.config_file.empty() ? "the config file" : p.config_file));
}

std::string resolve_service_endpoint(const std::string& service_id, const std::string& hostname_prefix,
                                     const std::string& region, const std::string& explicit_endpoint,
                                     const ProfileOptions& profile) {
  std::string e = explicit_endpoint;
  if (e.empty()) e = detail::configured_endpoint(service_id, profile).value_or("");
  if (e.empty()) {
    if (region.empty()) throw ConfigError("no AWS region to build the " + service_id + " endpoint from");
    detail::check_region(region, "the region of the " + service_id + " endpoint");
    e = "https://" + hostname_prefix + "." + region +
        (region.rfind("cn-", 0) == 0 ? ".amazonaws.com.cn" : ".amazonaws.com");
  }
  // Host and path become the Host header and the request line: no control character (nor
  // one quoted in a message below), and nothing parse_url refuses.
  if (!http::valid_header_value(e))
    throw ConfigError("the " + service_id + " endpoint contains a line break or control character");
  if (e.rfind("http://", 0) != 0 && e.rfind("https://", 0) != 0)
    throw ConfigError("endpoint '" + e + "' must start with http:// or https://");
  http::parse_url(e, (service_id + " endpoint").c_str());
  while (e.size() > 8 && e.back() == '/') e.pop_back();
  return e;
}

std::string resolve_dynamodb_endpoint(const std::string& region, const std::string& explicit_endpoint,
                                      const ProfileOptions& profile) {
  return resolve_service_endpoint("DynamoDB", "dynamodb", region, explicit_endpoint, profile);
}

http::HttpOptions resolve_http_options(const ProfileOptions& profile, http::HttpOptions base) {
  auto p = detail::resolve_profile(profile);
  auto sec = detail::config_section(p).value_or(detail::IniSection{});
  if (base.ca_file.empty()) {
    std::string from = "AWS_CA_BUNDLE";
    auto ca = detail::env("AWS_CA_BUNDLE");
    if (!ca) {
      ca = detail::get(sec, "ca_bundle");
      from = "ca_bundle of profile '" + p.name + "'";
    }
    if (ca) {
      if (!std::ifstream(*ca)) throw ConfigError(from + ": cannot read the CA bundle " + *ca);
      base.ca_file = *ca;
    }
  }
  auto app = detail::env("AWS_SDK_UA_APP_ID");
  if (!app) app = detail::get(sec, "sdk_ua_app_id");
  if (app) {
    // The SDKs' rule: at most 50 characters, each outside the User-Agent token alphabet
    // replaced by '-'.
    std::string id = app->substr(0, 50);
    for (auto& c : id)
      if (!std::isalnum(static_cast<unsigned char>(c)) && std::string_view("!#$%&'*+-.^_`|~").find(c) == std::string_view::npos)
        c = '-';
    base.user_agent += " app/" + id;
  }
  return base;
}

}  // namespace dynamodb_cache::aws
