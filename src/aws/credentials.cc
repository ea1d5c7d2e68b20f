#include <simdjson.h>

#include <atomic>
#include <condition_variable>
#include <fstream>
#include <sstream>

#include "aws/config.h"
#include "dynamodb_cache/aws.h"
#include "dynamodb_cache/errors.h"
#include "util/time.h"

namespace dynamodb_cache::aws {

namespace {

using detail::env;

// "Nothing configured here": the chain moves on silently.
struct NotConfigured : CredentialsError {
  explicit NotConfigured(const std::string& m) : CredentialsError(m, false) {}
};

class StaticProvider final : public CredentialsProvider {
 public:
  explicit StaticProvider(Credentials c) : c_(std::move(c)) {
    if (c_.provider.empty()) c_.provider = "static";
  }
  Credentials get() override {
    if (c_.access_key_id.empty() || c_.secret_access_key.empty())
      throw NotConfigured("static credentials are empty");
    return c_;
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
    return Credentials{*id, *secret, env("AWS_SESSION_TOKEN").value_or(""), std::nullopt,
                       "environment"};
  }
};

class ProfileProvider final : public CredentialsProvider {
 public:
  explicit ProfileProvider(ProfileOptions o) : o_(std::move(o)) {}
  Credentials get() override {
    auto p = detail::resolve_profile(o_);
    // The credentials file wins over the config file, as in the AWS CLI.
    const std::pair<std::optional<detail::IniSection>, const std::string*> sources[] = {
        {detail::credentials_section(p), &p.credentials_file}, {detail::config_section(p), &p.config_file}};
    for (const auto& [sec, file] : sources) {
      if (!sec) continue;
      auto id = sec->find("aws_access_key_id");
      auto secret = sec->find("aws_secret_access_key");
      if (id == sec->end() && secret == sec->end()) continue;
      if (id == sec->end() || secret == sec->end() || id->second.empty() || secret->second.empty())
        throw CredentialsError("profile '" + p.name + "' in " + *file +
                               " has only one of aws_access_key_id / aws_secret_access_key");
      auto tok = sec->find("aws_session_token");
      return Credentials{id->second, secret->second, tok == sec->end() ? "" : tok->second,
                         std::nullopt, "profile " + p.name};
    }
    throw NotConfigured("profile '" + p.name + "': no keys in " + p.credentials_file + " or " +
                        p.config_file);
  }

 private:
  ProfileOptions o_;
};

std::shared_ptr<http::Transport> metadata_transport(const HttpProviderOptions& o) {
  if (o.transport) return o.transport;
  http::HttpOptions c;
  c.connect_timeout = std::chrono::milliseconds(1000);
  c.request_timeout = std::chrono::milliseconds(2000);
  c.max_idle_connections = 2;
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

// Parses the JSON both the container endpoint and IMDS return.
Credentials parse_credentials_json(const std::string& body, const std::string& provider) {
  simdjson::dom::parser parser;
  simdjson::dom::element doc;
  if (parser.parse(body).get(doc) != simdjson::SUCCESS || !doc.is_object())
    throw CredentialsError(provider + ": credentials response is not a JSON object", true);
  auto str = [&](const char* k) -> std::string {
    std::string_view v;
    if (doc[k].get(v) != simdjson::SUCCESS) return {};
    return std::string(v);
  };
  std::string code = str("Code");
  if (!code.empty() && code != "Success")
    throw CredentialsError(provider + ": credentials response Code is " + code, true);
  Credentials c{str("AccessKeyId"), str("SecretAccessKey"), str("Token"), std::nullopt, provider};
  if (c.access_key_id.empty() || c.secret_access_key.empty())
    throw CredentialsError(provider + ": credentials response lacks AccessKeyId/SecretAccessKey", true);
  std::string exp = str("Expiration");
  if (!exp.empty()) {
    auto t = util::parse_iso8601(exp);
    if (!t) throw CredentialsError(provider + ": bad Expiration '" + exp + "'", true);
    c.expiration = *t;
  }
  return c;
}

http::Response fetch(http::Transport& t, const http::Request& req, const std::string& provider) {
  try {
    return t.send(req);
  } catch (const Error& e) {
    throw CredentialsError(provider + ": " + e.what(), true);
  }
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
      url = "http://169.254.170.2" + (rel->front() == '/' ? *rel : "/" + *rel);
    } else if (auto full = getenv_("AWS_CONTAINER_CREDENTIALS_FULL_URI")) {
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
      std::ifstream in(*file);
      if (!in) throw CredentialsError("container: cannot read AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE " + *file);
      std::stringstream ss;
      ss << in.rdbuf();
      token = ss.str();
      while (!token->empty() && (token->back() == '\n' || token->back() == '\r')) token->pop_back();
    } else {
      token = getenv_("AWS_CONTAINER_AUTHORIZATION_TOKEN");
    }
    if (token) {
      if (token->find_first_of("\r\n") != std::string::npos)
        throw CredentialsError("container: authorization token contains a line break");
      req.headers.push_back({"Authorization", *token});
    }
    req.headers.push_back({"Accept", "application/json"});
    auto resp = fetch(transport_.get(), req, "container");
    if (resp.status != 200)
      throw CredentialsError("container: credentials endpoint answered HTTP " + std::to_string(resp.status),
                             resp.status >= 500 || resp.status == 429);
    return parse_credentials_json(resp.body, "container");
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
    while (!endpoint.empty() && endpoint.back() == '/') endpoint.pop_back();
    auto role_resp = authed_get(endpoint, "/latest/meta-data/iam/security-credentials/");
    if (role_resp.status == 404)
      throw NotConfigured("imds: no IAM role is attached to this instance");
    if (role_resp.status != 200)
      throw CredentialsError("imds: role lookup answered HTTP " + std::to_string(role_resp.status),
                             role_resp.status >= 500);
    std::string role = role_resp.body.substr(0, role_resp.body.find_first_of("\r\n"));
    if (role.empty()) throw CredentialsError("imds: empty role name");
    auto creds = authed_get(endpoint, "/latest/meta-data/iam/security-credentials/" + role);
    if (creds.status != 200)
      throw CredentialsError("imds: credentials for role '" + role + "' answered HTTP " +
                                 std::to_string(creds.status),
                             creds.status >= 500 || creds.status == 404);
    return parse_credentials_json(creds.body, "imds");
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

 private:
  std::vector<std::shared_ptr<CredentialsProvider>> ps_;
  std::atomic<int> last_{-1};
};

class CachingProvider final : public CredentialsProvider {
 public:
  CachingProvider(std::shared_ptr<CredentialsProvider> inner, std::chrono::seconds before,
                  std::function<SystemClock::time_point()> now)
      : inner_(std::move(inner)), before_(before), now_(std::move(now)) {
    if (!now_) now_ = [] { return SystemClock::now(); };
  }

  void invalidate() override {
    std::lock_guard lock(mu_);
    cached_.reset();
    last_attempt_ = {};
    inner_->invalidate();
  }

  Credentials get() override {
    std::unique_lock lock(mu_);
    for (;;) {
      auto now = now_();
      if (cached_) {
        bool valid = !cached_->expiration || now < *cached_->expiration;
        bool fresh = !cached_->expiration || now < *cached_->expiration - before_;
        // Inside the refresh window, retry a failed refresh at most every 10 s.
        bool recently_tried = now - last_attempt_ < std::chrono::seconds(10);
        if (fresh || (valid && (refreshing_ || recently_tried))) return *cached_;
      }
      if (!refreshing_) break;
      cv_.wait(lock);  // expired (or never fetched) and another thread is fetching
    }
    refreshing_ = true;
    last_attempt_ = now_();
    lock.unlock();
    try {
      Credentials c = inner_->get();
      lock.lock();
      cached_ = c;
      refreshing_ = false;
      cv_.notify_all();
      return c;
    } catch (...) {
      lock.lock();
      refreshing_ = false;
      cv_.notify_all();
      if (cached_ && (!cached_->expiration || now_() < *cached_->expiration)) return *cached_;
      throw;
    }
  }

 private:
  std::shared_ptr<CredentialsProvider> inner_;
  std::chrono::seconds before_;
  std::function<SystemClock::time_point()> now_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::optional<Credentials> cached_;  // guarded by mu_
  bool refreshing_ = false;            // guarded by mu_
  SystemClock::time_point last_attempt_{};
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
std::shared_ptr<CredentialsProvider> make_caching_provider(std::shared_ptr<CredentialsProvider> inner,
                                                           std::chrono::seconds refresh_before,
                                                           std::function<SystemClock::time_point()> now) {
  return std::make_shared<CachingProvider>(std::move(inner), refresh_before, std::move(now));
}
std::shared_ptr<CredentialsProvider> make_default_chain(const ProfileOptions& profile) {
  std::vector<std::shared_ptr<CredentialsProvider>> chain;
  // An explicit profile outranks the environment's keys, as in the AWS CLI's --profile.
  if (profile.profile.empty()) chain.push_back(make_environment_provider());
  chain.push_back(make_profile_provider(profile));
  chain.push_back(make_container_provider());
  chain.push_back(make_imds_provider());
  return make_caching_provider(make_chain_provider(std::move(chain)));
}

}  // namespace dynamodb_cache::aws
