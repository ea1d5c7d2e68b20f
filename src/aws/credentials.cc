#include <algorithm>
#include <atomic>
#include <charconv>
#include <condition_variable>
#include <cstdio>
#include <mutex>
#include <random>

#include "aws/config.h"
#include "aws/fetch_deadline.h"
#include "aws/parsers.h"
#include "aws/providers.h"
#include "dynamodb_cache/aws.h"
#include "dynamodb_cache/errors.h"
#include "http/headers.h"
#include "util/time.h"

namespace dynamodb_cache::aws {

namespace {

using detail::env;
using detail::fetch;
using detail::NotConfigured;

class StaticProvider final : public CredentialsProvider {
 public:
  explicit StaticProvider(Credentials c) : c_(std::move(c)) {
    if (c_.provider.empty()) c_.provider = "static";
    detail::require_header_values(c_, "access key id", "session token");
  }
  Credentials get() override {
    if (c_.access_key_id.empty() || c_.secret_access_key.empty())
      throw NotConfigured("static credentials are empty");
    return c_;
  }
  Cached try_get_into(Credentials& out) override {
    if (c_.access_key_id.empty() || c_.secret_access_key.empty()) return Cached::kNone;  // get() says why
    out = c_;
    return Cached::kReady;
  }

 private:
  Credentials c_;
};

class EnvironmentProvider final : public CredentialsProvider {
 public:
  Credentials get() override {
    auto id = env("AWS_ACCESS_KEY_ID");
    auto secret = env("AWS_SECRET_ACCESS_KEY");
    if (!id && !secret) throw NotConfigured("environment: AWS_ACCESS_KEY_ID is not set");
    if (!id || !secret)
      throw CredentialsError(std::string("environment: ") +
                             (id ? "AWS_SECRET_ACCESS_KEY" : "AWS_ACCESS_KEY_ID") +
                             " is not set but the other key is");
    Credentials c{*id, *secret, env("AWS_SESSION_TOKEN").value_or(""), std::nullopt, "environment"};
    detail::require_header_values(c, "AWS_ACCESS_KEY_ID", "AWS_SESSION_TOKEN");
    return c;
  }
  Cached try_get_into(Credentials& out) override {  // reading the environment does not block
    try {
      out = get();
      return Cached::kReady;
    } catch (const CredentialsError&) {
      return Cached::kNone;  // get() says why
    }
  }
};

// Builds the provider a profile names (see make_profile_provider in aws.h). Everything is
// read from one snapshot of the two files, and every AssumeRole of a source_profile chain
// shares one STS target and transport, so a chain reads the files once, not once per link.
class ProfileResolver {
 public:
  // The most source_profile links followed. botocore (the AWS CLI) sets none, but its
  // recursion ends at Python's limit of 1000 frames: measured with awscli 2.9.19 and
  // botocore 1.29.27, it fetches credentials through 140 links and fails at 145. Past this,
  // a chain is refused with a clear error before anything is called; within it, the
  // recursion here (a few frames a link) stays far from the stack's end.
  static constexpr size_t kMaxSourceProfileLinks = 150;

  ProfileResolver(ProfileOptions o, detail::ResolvedProfile p)
      : o_(std::move(o)), p_(std::move(p)), cfg_(detail::SharedConfig::load(p_)) {}

  std::shared_ptr<CredentialsProvider> resolve() {
    auto sec = cfg_.profile(p_.name);
    if (!sec)
      throw NotConfigured("profile '" + p_.name + "': not in " + p_.credentials_file + " or " + p_.config_file);
    std::vector<std::string> visited;
    return build(p_.name, *sec, visited, false);
  }

 private:
  using Section = detail::IniSection;

  std::string where(const std::string& name) const { return "profile '" + name + "'"; }

  // Static keys of a section; nullopt when it has neither key.
  std::optional<Credentials> static_keys(const std::string& name, const Section& sec) const {
    auto id = detail::get(sec, "aws_access_key_id");
    auto secret = detail::get(sec, "aws_secret_access_key");
    if (!id && !secret) return std::nullopt;
    if (!id || !secret)
      throw CredentialsError(where(name) + " in " + p_.credentials_file + " / " + p_.config_file +
                             " has only one of aws_access_key_id / aws_secret_access_key");
    Credentials c{*id, *secret, detail::get(sec, "aws_session_token").value_or(""), std::nullopt,
                  where(name)};
    // An INI continuation line puts a line break into a value.
    detail::require_header_values(c, "aws_access_key_id", "aws_session_token");
    return c;
  }

  ProfileOptions options_for(const std::string& name) const {
    ProfileOptions o = o_;
    o.profile = name;
    o.credentials_file = p_.credentials_file;
    o.config_file = p_.config_file;
    return o;
  }

  // `visited`: the profiles whose source_profile led here, to report loops.
  std::shared_ptr<CredentialsProvider> build(const std::string& name, const Section& sec,
                                             std::vector<std::string>& visited, bool as_source) {
    // A source profile with static keys is used for them, whatever else it says (as the
    // AWS CLI and SDKs do).
    if (as_source)
      if (auto keys = static_keys(name, sec)) return make_static_provider(*keys);
    auto role_arn = detail::get(sec, "role_arn");
    auto source_profile = detail::get(sec, "source_profile");
    auto credential_source = detail::get(sec, "credential_source");
    if (role_arn && (source_profile || credential_source)) {
      if (source_profile && credential_source)
        throw CredentialsError(where(name) + " has both source_profile and credential_source");
      if (detail::get(sec, "mfa_serial"))
        throw CredentialsError(where(name) +
                               " has mfa_serial: roles that need an MFA code are not supported (no one can "
                               "type it); use credentials from `aws sts assume-role` or a credential_process");
      AssumeRoleOptions ar;
      ar.role_arn = *role_arn;
      ar.role_session_name = detail::get(sec, "role_session_name").value_or("");
      ar.external_id = detail::get(sec, "external_id").value_or("");
      if (auto d = detail::get(sec, "duration_seconds")) {
        long long v = 0;
        auto [ptr, ec] = std::from_chars(d->data(), d->data() + d->size(), v);
        if (ec != std::errc() || ptr != d->data() + d->size() || v < 900 || v > 43200)
          throw CredentialsError(where(name) + ": duration_seconds must be a number of seconds, 900..43200");
        ar.duration = std::chrono::seconds(v);
      }
      ar.profile = options_for(p_.name);  // STS region, endpoint and CA bundle: the profile in use
      const auto& sts = sts_of_profile();
      ar.region = sts.target.region;
      ar.endpoint = sts.target.endpoint;
      ar.transport = sts.transport;
      ar.source = source_profile ? source_of(name, sec, *source_profile, visited)
                                 : named_source(name, *credential_source);
      return make_caching_provider(make_assume_role_provider(std::move(ar)));
    }
    if (role_arn) {
      if (auto token_file = detail::get(sec, "web_identity_token_file"))
        return make_caching_provider(detail::make_web_identity_file_provider(
            {*token_file, *role_arn, detail::get(sec, "role_session_name").value_or(""),
             "web identity (" + where(name) + ")", options_for(p_.name)},
            nullptr));
    }
    auto sso_session = detail::get(sec, "sso_session");
    if (sso_session || detail::get(sec, "sso_start_url")) {
      detail::SsoConfig sso;
      sso.profile_name = name;
      sso.profile = options_for(p_.name);
      sso.account_id = detail::get(sec, "sso_account_id").value_or("");
      sso.role_name = detail::get(sec, "sso_role_name").value_or("");
      if (sso_session) {
        auto s = cfg_.config_only("sso-session", *sso_session);
        if (!s)
          throw CredentialsError(where(name) + ": sso_session '" + *sso_session + "' has no [sso-session " +
                                 *sso_session + "] section in " + p_.config_file);
        sso.session_name = *sso_session;
        sso.start_url = detail::get(*s, "sso_start_url").value_or("");
        sso.region = detail::get(*s, "sso_region").value_or("");
      } else {
        sso.start_url = detail::get(sec, "sso_start_url").value_or("");
        sso.region = detail::get(sec, "sso_region").value_or("");
      }
      return make_caching_provider(detail::make_sso_provider(std::move(sso), nullptr));
    }
    if (auto process = detail::get(sec, "credential_process"))
      return make_caching_provider(make_process_provider(*process, "credential_process of " + where(name)));
    if (auto keys = static_keys(name, sec)) return make_static_provider(*keys);
    if (role_arn)
      throw CredentialsError(where(name) +
                             " has role_arn but no source_profile, credential_source or web_identity_token_file");
    std::string what = where(name) + ": no credentials (keys, role, SSO or credential_process) in " +
                       p_.credentials_file + " or " + p_.config_file;
    if (as_source) throw CredentialsError(what);
    throw NotConfigured(what);
  }

  std::shared_ptr<CredentialsProvider> source_of(const std::string& name, const Section& sec,
                                                 const std::string& source, std::vector<std::string>& visited) {
    if (source == name) {
      // A profile that is its own source: its static keys assume its role.
      if (auto keys = static_keys(name, sec)) return make_static_provider(*keys);
      throw CredentialsError(where(name) + " is its own source_profile but has no static keys");
    }
    visited.push_back(name);
    if (std::find(visited.begin(), visited.end(), source) != visited.end()) {
      std::string loop;
      for (auto& v : visited) loop += v + " -> ";
      throw CredentialsError("source_profile loop: " + loop + source);
    }
    if (visited.size() > kMaxSourceProfileLinks)
      throw CredentialsError(where(p_.name) + ": its source_profile chain is longer than " +
                             std::to_string(kMaxSourceProfileLinks) +
                             " links (the AWS CLI cannot follow it either)");
    auto ssec = cfg_.profile(source);
    if (!ssec) throw CredentialsError(where(name) + ": source_profile '" + source + "' does not exist");
    return build(source, *ssec, visited, true);
  }

  std::shared_ptr<CredentialsProvider> named_source(const std::string& name, const std::string& source) {
    if (source == "Environment") return make_environment_provider();
    if (source == "Ec2InstanceMetadata") return make_caching_provider(make_imds_provider());
    if (source == "EcsContainer") return make_caching_provider(make_container_provider());
    throw CredentialsError(where(name) + ": credential_source must be Environment, Ec2InstanceMetadata or "
                           "EcsContainer, not '" + source + "'");
  }

  // Where the AssumeRole calls of the profile in use go, and the transport they share; made
  // at the first role met.
  struct Sts {
    detail::StsTarget target;
    std::shared_ptr<http::Transport> transport;
  };
  const Sts& sts_of_profile() {
    if (!sts_) {
      auto o = options_for(p_.name);
      sts_ = Sts{detail::sts_target({}, {}, o), detail::service_transport(o)};
    }
    return *sts_;
  }

  ProfileOptions o_;
  detail::ResolvedProfile p_;
  detail::SharedConfig cfg_;
  std::optional<Sts> sts_;
};

class ProfileProvider final : public CredentialsProvider {
 public:
  explicit ProfileProvider(ProfileOptions o) : o_(std::move(o)) {}
  void invalidate() override {
    std::lock_guard lock(mu_);
    if (resolved_) resolved_->invalidate();
  }
  Credentials get() override {
    std::shared_ptr<CredentialsProvider> p;
    {
      std::lock_guard lock(mu_);
      // Resolved once: the providers it builds keep their caches. A profile with nothing
      // configured is looked up again next time (the files may have been written since).
      if (!resolved_) resolved_ = ProfileResolver(o_, detail::resolve_profile(o_)).resolve();
      p = resolved_;
    }
    return p->get();
  }
  Cached try_get_into(Credentials& out) override {
    std::shared_ptr<CredentialsProvider> p;
    {
      std::lock_guard lock(mu_);
      p = resolved_;
    }
    return p ? p->try_get_into(out) : Cached::kNone;  // resolving reads files: get()'s job
  }

 private:
  ProfileOptions o_;
  std::mutex mu_;
  std::shared_ptr<CredentialsProvider> resolved_;  // guarded by mu_
};

std::shared_ptr<http::Transport> metadata_transport(const HttpProviderOptions& o) {
  if (o.transport) return o.transport;
  http::HttpOptions c;
  c.connect_timeout = std::chrono::milliseconds(1000);
  c.request_timeout = std::chrono::milliseconds(2000);
  c.max_idle_connections = 2;
  c.max_response_bytes = detail::kMaxCredentialsAnswerBytes;  // the transport stops reading past it
  return http::make_curl_transport(c);
}

// The metadata transport, made on first use: most processes never need one. Thread-safe.
class LazyTransport {
 public:
  explicit LazyTransport(HttpProviderOptions o) : o_(std::move(o)) {}
  http::Transport& get() {
    std::call_once(once_, [&] { t_ = metadata_transport(o_); });
    return *t_;
  }

 private:
  HttpProviderOptions o_;
  std::once_flag once_;
  std::shared_ptr<http::Transport> t_;
};

std::function<std::optional<std::string>(const char*)> getenv_of(const HttpProviderOptions& o) {
  if (o.getenv) return o.getenv;
  return [](const char* n) { return env(n); };
}

bool valid_role_name(std::string_view r) {
  if (r.empty() || r.size() > 64 || r == "." || r == "..") return false;
  for (unsigned char c : r)
    if (!std::isalnum(c) && std::string_view("+=,.@_-").find(static_cast<char>(c)) == std::string_view::npos)
      return false;
  return true;
}

bool loopback_or_container_host(const std::string& url) {
  auto start = url.find("://");
  if (start == std::string::npos) return false;
  std::string rest = url.substr(start + 3);
  std::string host;
  if (!rest.empty() && rest[0] == '[') {
    host = rest.substr(0, rest.find(']') + 1);
  } else {
    host = rest.substr(0, rest.find_first_of(":/?"));
  }
  return host == "localhost" || host.rfind("127.", 0) == 0 || host == "[::1]" ||
         host == "169.254.170.2" || host == "169.254.170.23" || host == "[fd00:ec2::23]";
}

class ContainerProvider final : public CredentialsProvider {
 public:
  explicit ContainerProvider(HttpProviderOptions o) : getenv_(getenv_of(o)), transport_(std::move(o)) {}
  Credentials get() override {
    std::string url;
    if (auto rel = getenv_("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI")) {
      detail::require_header_value(*rel, "container", "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI");
      url = "http://169.254.170.2" + (rel->front() == '/' ? *rel : "/" + *rel);
    } else if (auto full = getenv_("AWS_CONTAINER_CREDENTIALS_FULL_URI")) {
      detail::require_header_value(*full, "container", "AWS_CONTAINER_CREDENTIALS_FULL_URI");
      url = *full;
      if (url.rfind("https://", 0) != 0 && !loopback_or_container_host(url))
        throw CredentialsError(
            "container: AWS_CONTAINER_CREDENTIALS_FULL_URI must be https or a loopback/ECS/EKS "
            "address");
    } else {
      throw NotConfigured("container: AWS_CONTAINER_CREDENTIALS_RELATIVE_URI/FULL_URI not set");
    }
    http::Request req;
    req.method = "GET";
    req.url = url;
    std::optional<std::string> token;
    if (auto file = getenv_("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE")) {
      token = detail::read_small_file(*file, 16 * 1024, "container: AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE");
      if (!token) throw CredentialsError("container: cannot read AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE " + *file);
      while (!token->empty() && (token->back() == '\n' || token->back() == '\r')) token->pop_back();
    } else {
      token = getenv_("AWS_CONTAINER_AUTHORIZATION_TOKEN");
    }
    if (token) {
      detail::require_header_value(*token, "container", "authorization token");
      req.headers.push_back({"Authorization", *token});
    }
    req.headers.push_back({"Accept", "application/json"});
    auto resp = fetch(transport_.get(), req, "container");
    if (resp.status != 200)
      throw CredentialsError("container: credentials endpoint answered HTTP " + std::to_string(resp.status),
                             resp.status >= 500 || resp.status == 429);
    return detail::parse_metadata_credentials(resp.body, "container");
  }

 private:
  std::function<std::optional<std::string>(const char*)> getenv_;
  LazyTransport transport_;
};

class ImdsProvider final : public CredentialsProvider {
 public:
  static constexpr int kTokenTtlSeconds = 21600;

  explicit ImdsProvider(HttpProviderOptions o) : getenv_(getenv_of(o)), transport_(std::move(o)) {}

  Credentials get() override {
    auto disabled = getenv_("AWS_EC2_METADATA_DISABLED");
    if (disabled) {
      std::string d = *disabled;
      for (auto& c : d) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      if (d == "true" || d == "1") throw NotConfigured("imds: AWS_EC2_METADATA_DISABLED is set");
    }
    std::string endpoint = getenv_("AWS_EC2_METADATA_SERVICE_ENDPOINT").value_or("http://169.254.169.254");
    detail::require_header_value(endpoint, "imds", "AWS_EC2_METADATA_SERVICE_ENDPOINT");  // the Host header
    while (!endpoint.empty() && endpoint.back() == '/') endpoint.pop_back();
    auto role_resp = authed_get(endpoint, "/latest/meta-data/iam/security-credentials/");
    if (role_resp.status == 404)
      throw NotConfigured("imds: no IAM role is attached to this instance");
    if (role_resp.status != 200)
      throw CredentialsError("imds: role lookup answered HTTP " + std::to_string(role_resp.status),
                             role_resp.status >= 500);
    std::string role = role_resp.body.substr(0, role_resp.body.find_first_of("\r\n"));
    if (role.empty()) throw CredentialsError("imds: empty role name");
    // It becomes a path segment: only what IAM allows in a role name, never "." or "..".
    if (!valid_role_name(role))
      throw CredentialsError("imds: the role name IMDS gave is not a valid IAM role name (1-64 of A-Z a-z 0-9 +=,.@_-)");
    auto creds = authed_get(endpoint, "/latest/meta-data/iam/security-credentials/" + role);
    if (creds.status != 200)
      throw CredentialsError("imds: credentials for role '" + role + "' answered HTTP " +
                                 std::to_string(creds.status),
                             creds.status >= 500 || creds.status == 404);
    return detail::parse_metadata_credentials(creds.body, "imds");
  }

 private:
  std::string token(const std::string& endpoint, bool force) {
    std::lock_guard lock(mu_);
    auto now = std::chrono::steady_clock::now();
    if (!force && !token_.empty() && now < token_expiry_) return token_;
    http::Request req;
    req.method = "PUT";
    req.url = endpoint + "/latest/api/token";
    req.headers.push_back({"x-aws-ec2-metadata-token-ttl-seconds", std::to_string(kTokenTtlSeconds)});
    auto resp = fetch(transport_.get(), req, "imds");
    if (resp.status != 200 || resp.body.empty())
      throw CredentialsError("imds: token request answered HTTP " + std::to_string(resp.status),
                             resp.status >= 500);
    // The token is sent back as a header value: one with CR/LF or another control character
    // would inject headers. Real tokens are about 60 characters.
    if (resp.body.size() > 4096 || !http::valid_header_value(resp.body))
      throw CredentialsError("imds: the session token IMDS gave is not a valid header value", false);
    token_ = resp.body;
    // Renew a minute early so a token never expires between our check and IMDS's.
    token_expiry_ = now + std::chrono::seconds(kTokenTtlSeconds - 60);
    return token_;
  }

  http::Response authed_get(const std::string& endpoint, const std::string& path) {
    for (int attempt = 0;; ++attempt) {
      http::Request req;
      req.method = "GET";
      req.url = endpoint + path;
      req.headers.push_back({"x-aws-ec2-metadata-token", token(endpoint, attempt > 0)});
      auto resp = fetch(transport_.get(), req, "imds");
      if (resp.status == 401 && attempt == 0) continue;  // token expired or revoked: renew once
      return resp;
    }
  }

  std::function<std::optional<std::string>(const char*)> getenv_;
  LazyTransport transport_;
  std::mutex mu_;
  std::string token_;  // guarded by mu_
  std::chrono::steady_clock::time_point token_expiry_{};
};

class ChainProvider final : public CredentialsProvider {
 public:
  explicit ChainProvider(std::vector<std::shared_ptr<CredentialsProvider>> ps) : ps_(std::move(ps)) {}
  void invalidate() override {
    for (auto& p : ps_) p->invalidate();
  }
  Credentials get() override {
    int last = last_.load(std::memory_order_relaxed);
    if (last >= 0) {
      try {
        return ps_[static_cast<size_t>(last)]->get();
      } catch (const NotConfigured&) {
        // its source went away: walk the whole chain again
      }
    }
    std::string tried;
    for (size_t i = 0; i < ps_.size(); ++i) {
      try {
        auto c = ps_[i]->get();
        last_.store(static_cast<int>(i), std::memory_order_relaxed);
        return c;
      } catch (const NotConfigured& e) {
        if (!tried.empty()) tried += "; ";
        tried += e.what();
      }
    }
    throw CredentialsError("no AWS credentials found (" + tried + ")");
  }
  Cached try_get_into(Credentials& out) override {
    int last = last_.load(std::memory_order_relaxed);
    return last < 0 ? Cached::kNone : ps_[static_cast<size_t>(last)]->try_get_into(out);
  }

 private:
  std::vector<std::shared_ptr<CredentialsProvider>> ps_;
  std::atomic<int> last_{-1};
};

}  // namespace

std::shared_ptr<CredentialsProvider> make_static_provider(Credentials c) {
  return std::make_shared<StaticProvider>(std::move(c));
}
std::shared_ptr<CredentialsProvider> make_environment_provider() {
  return std::make_shared<EnvironmentProvider>();
}
std::shared_ptr<CredentialsProvider> make_profile_provider(ProfileOptions o) {
  return std::make_shared<ProfileProvider>(std::move(o));
}
std::shared_ptr<CredentialsProvider> make_container_provider(HttpProviderOptions o) {
  return std::make_shared<ContainerProvider>(std::move(o));
}
std::shared_ptr<CredentialsProvider> make_imds_provider(HttpProviderOptions o) {
  return std::make_shared<ImdsProvider>(std::move(o));
}
std::shared_ptr<CredentialsProvider> make_chain_provider(std::vector<std::shared_ptr<CredentialsProvider>> ps) {
  return std::make_shared<ChainProvider>(std::move(ps));
}
std::shared_ptr<CredentialsProvider> make_default_chain(const ProfileOptions& profile) {
  std::vector<std::shared_ptr<CredentialsProvider>> chain;
  // An explicit profile outranks the environment's keys, as in the AWS CLI's --profile.
  if (profile.profile.empty()) chain.push_back(make_environment_provider());
  chain.push_back(make_profile_provider(profile));
  chain.push_back(make_web_identity_provider());
  chain.push_back(make_container_provider());
  chain.push_back(make_imds_provider());
  return make_caching_provider(make_chain_provider(std::move(chain)));
}

}  // namespace dynamodb_cache::aws
