// STS: AssumeRole (SigV4-signed) and AssumeRoleWithWebIdentity (unsigned), over the Query
// protocol with XML answers.
#include <charconv>
#include <mutex>
#include <string_view>
#include <vector>

#include "aws/fetch_deadline.h"
#include "aws/parsers.h"
#include "aws/providers.h"

namespace dynamodb_cache::aws {
namespace detail {

http::Response fetch(http::Transport& t, const http::Request& req, const std::string& provider) {
  // Within this thread's fetch deadline (the caller's operation deadline), when it has one.
  const auto& deadline = current_fetch_deadline();
  const http::Request* to_send = &req;
  http::Request bounded;
  if (deadline) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline->at -
                                                                      std::chrono::steady_clock::now());
    if (left.count() <= 0) throw CredentialsError(provider + ": not fetched: " + deadline_text(), true);
    bounded = req;
    bounded.timeout = req.timeout.count() > 0 ? std::min(req.timeout, left) : left;
    to_send = &bounded;
  }
  http::Response resp;
  try {
    resp = t.send(*to_send);
  } catch (const Error& e) {
    const bool late = deadline && std::chrono::steady_clock::now() >= deadline->at;
    throw CredentialsError(provider + ": " + e.what() + (late ? "; " + deadline_text() : std::string()),
                           true);
  }
  if (resp.body.size() > kMaxCredentialsAnswerBytes)
    throw CredentialsError(provider + ": answer of " + std::to_string(resp.body.size()) + " bytes is too large", true);
  return resp;
}

std::shared_ptr<http::Transport> service_transport(const ProfileOptions& profile) {
  http::HttpOptions o;
  o.connect_timeout = std::chrono::milliseconds(2000);
  o.request_timeout = std::chrono::milliseconds(10000);
  o.max_idle_connections = 2;
  o.max_response_bytes = kMaxCredentialsAnswerBytes;  // the transport stops reading past it
  return http::make_default_transport(resolve_http_options(profile, o));
}

UrlParts split_url(const std::string& url) {
  auto start = url.find("://");
  start = start == std::string::npos ? 0 : start + 3;
  auto end = url.find_first_of("/?", start);
  UrlParts u;
  u.host = url.substr(start, end == std::string::npos ? std::string::npos : end - start);
  std::string_view def = url.rfind("https://", 0) == 0 ? ":443" : ":80";
  if (u.host.size() > def.size() && u.host.compare(u.host.size() - def.size(), def.size(), def) == 0)
    u.host.resize(u.host.size() - def.size());
  u.path = end == std::string::npos || url[end] != '/' ? "/" : url.substr(end, url.find('?', end) - end);
  return u;
}

std::string form_encode(std::string_view s) {
  static const char* hex = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : s) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += hex[c >> 4];
      out += hex[c & 15];
    }
  }
  return out;
}

StsTarget sts_target(const std::string& region, const std::string& endpoint, const ProfileOptions& profile) {
  StsTarget t;
  t.region = region;
  if (!t.region.empty())
    check_region(t.region, "assume role: the region given");
  else
    t.region = configured_region(profile).value_or("");  // a region configured but invalid is an error
  std::string configured = endpoint.empty() ? configured_endpoint("STS", profile).value_or("") : endpoint;
  if (t.region.empty()) {
    // The SDKs' fallback without any region: the global endpoint, which signs as us-east-1.
    t.region = "us-east-1";
    if (configured.empty()) configured = "https://sts.amazonaws.com";
  }
  t.endpoint = resolve_service_endpoint("STS", "sts", t.region, configured, profile);
  return t;
}

Credentials call_sts(http::Transport& t, const StsTarget& target, const std::string& form,
                     const Credentials* signer, const std::string& provider, std::string_view form_secret) {
  auto url = split_url(target.endpoint);
  http::Request req;
  req.method = "POST";
  req.url = target.endpoint.substr(0, target.endpoint.find('/', target.endpoint.find("://") + 3)) + url.path;
  req.headers.push_back({"Host", url.host});
  req.headers.push_back({"Content-Type", "application/x-www-form-urlencoded; charset=utf-8"});
  req.body = form;
  if (signer != nullptr) {
    SigningParams p;
    p.method = "POST";
    p.path = url.path;
    p.headers = &req.headers;
    p.body = req.body;
    p.credentials = signer;
    p.region = target.region;
    p.service = "sts";
    p.time = SystemClock::now();
    auto s = sign_v4(p);
    for (auto& h : s.added_headers) req.headers.push_back(std::move(h));
    req.headers.push_back({"Authorization", std::move(s.authorization)});
  }
  // An STS that echoes its request must not get a secret of it printed.
  std::vector<std::string_view> secrets{form_secret};
  for (const auto& h : req.headers) {
    if (h.name == "X-Amz-Security-Token") secrets.push_back(h.value);
    if (auto at = h.name == "Authorization" ? h.value.find("Signature=") : std::string::npos;
        at != std::string::npos)
      secrets.push_back(std::string_view(h.value).substr(at + 10));
  }
  auto resp = fetch(t, req, provider);
  if (resp.status == 200) return parse_sts_credentials(resp.body, provider, secrets);
  auto err = parse_sts_error(resp.body, secrets);
  bool transient = resp.status >= 500 || resp.status == 429 || err.code == "Throttling" ||
                   err.code == "IDPCommunicationError";
  throw CredentialsError(provider + ": STS answered HTTP " + std::to_string(resp.status) +
                             (err.code.empty() ? std::string() : " " + err.code + ": " + err.message),
                         transient);
}

std::string default_session_name() {
  auto secs = std::chrono::duration_cast<std::chrono::seconds>(SystemClock::now().time_since_epoch()).count();
  return "dynamodb-cache-" + std::to_string(secs);
}

namespace {

class WebIdentityFileProvider final : public CredentialsProvider {
 public:
  WebIdentityFileProvider(WebIdentityConfig c, std::shared_ptr<http::Transport> t)
      : c_(std::move(c)), transport_(std::move(t)) {}
  Credentials get() override {
    // Kubernetes projects tokens of a few KB; 64 KB leaves room and bounds a wrong path.
    auto token = read_small_file(c_.token_file, 64 * 1024, c_.provider + ": the web identity token file");
    if (!token) throw CredentialsError(c_.provider + ": cannot read the web identity token file " + c_.token_file);
    while (!token->empty() && (token->back() == '\n' || token->back() == '\r' || token->back() == ' '))
      token->pop_back();
    if (token->empty()) throw CredentialsError(c_.provider + ": the web identity token file " + c_.token_file + " is empty");
    std::string form = "Action=AssumeRoleWithWebIdentity&Version=2011-06-15&RoleArn=" + form_encode(c_.role_arn) +
                       "&RoleSessionName=" +
                       form_encode(c_.session_name.empty() ? default_session_name() : c_.session_name) +
                       "&WebIdentityToken=" + form_encode(*token);
    std::call_once(once_, [&] {
      if (!transport_) transport_ = service_transport(c_.profile);
      target_ = sts_target({}, {}, c_.profile);
    });
    return call_sts(*transport_, target_, form, nullptr, c_.provider, *token);
  }

 private:
  WebIdentityConfig c_;
  std::once_flag once_;
  std::shared_ptr<http::Transport> transport_;  // set once under once_
  StsTarget target_;                            // set once under once_
};

class WebIdentityEnvProvider final : public CredentialsProvider {
 public:
  explicit WebIdentityEnvProvider(HttpProviderOptions o) : o_(std::move(o)) {
    if (!o_.getenv) o_.getenv = [](const char* n) { return env(n); };
  }
  Credentials get() override {
    auto file = o_.getenv("AWS_WEB_IDENTITY_TOKEN_FILE");
    auto role = o_.getenv("AWS_ROLE_ARN");
    if (!file && !role) throw NotConfigured("web identity: AWS_WEB_IDENTITY_TOKEN_FILE is not set");
    if (!file || !role)
      throw NotConfigured(std::string("web identity: ") + (file ? "AWS_ROLE_ARN" : "AWS_WEB_IDENTITY_TOKEN_FILE") +
                          " is not set but the other is");
    std::lock_guard lock(mu_);
    if (!inner_ || *file != config_.token_file || *role != config_.role_arn) {
      config_ = WebIdentityConfig{*file, *role, o_.getenv("AWS_ROLE_SESSION_NAME").value_or(""), "web identity",
                                  ProfileOptions{}};
      inner_ = std::make_shared<WebIdentityFileProvider>(config_, o_.transport);
    }
    return inner_->get();
  }

 private:
  HttpProviderOptions o_;
  std::mutex mu_;
  WebIdentityConfig config_;                      // guarded by mu_
  std::shared_ptr<CredentialsProvider> inner_;    // guarded by mu_
};

class AssumeRoleProvider final : public CredentialsProvider {
 public:
  explicit AssumeRoleProvider(AssumeRoleOptions o) : o_(std::move(o)) {
    if (o_.role_arn.empty()) throw ConfigError("assume role: role_arn is empty");
    if (!o_.source) throw ConfigError("assume role: no source credentials");
    if (o_.duration.count() != 0 && (o_.duration.count() < 900 || o_.duration.count() > 43200))
      throw ConfigError("assume role: duration_seconds must be 900..43200");
    if (o_.role_session_name.empty()) o_.role_session_name = default_session_name();
    name_ = "assume role " + o_.role_arn;
  }
  void invalidate() override { o_.source->invalidate(); }
  Credentials get() override {
    std::call_once(once_, [&] {
      if (!o_.transport) o_.transport = service_transport(o_.profile);
      target_ = sts_target(o_.region, o_.endpoint, o_.profile);
    });
    Credentials source;
    try {
      source = o_.source->get();
    } catch (const NotConfigured& e) {
      // The profile asked for this source: its absence is an error, not "nothing here".
      throw CredentialsError(name_ + ": no source credentials: " + e.what());
    }
    std::string form = "Action=AssumeRole&Version=2011-06-15&RoleArn=" + form_encode(o_.role_arn) +
                       "&RoleSessionName=" + form_encode(o_.role_session_name);
    if (!o_.external_id.empty()) form += "&ExternalId=" + form_encode(o_.external_id);
    if (o_.duration.count() != 0) form += "&DurationSeconds=" + std::to_string(o_.duration.count());
    return call_sts(*o_.transport, target_, form, &source, name_);
  }

 private:
  AssumeRoleOptions o_;  // transport set once under once_
  std::string name_;
  std::once_flag once_;
  StsTarget target_;     // set once under once_
};

}  // namespace

std::shared_ptr<CredentialsProvider> make_web_identity_file_provider(WebIdentityConfig config,
                                                                     std::shared_ptr<http::Transport> transport) {
  return std::make_shared<WebIdentityFileProvider>(std::move(config), std::move(transport));
}

}  // namespace detail

std::shared_ptr<CredentialsProvider> make_assume_role_provider(AssumeRoleOptions options) {
  return std::make_shared<detail::AssumeRoleProvider>(std::move(options));
}

std::shared_ptr<CredentialsProvider> make_web_identity_provider(HttpProviderOptions options) {
  return std::make_shared<detail::WebIdentityEnvProvider>(std::move(options));
}

}  // namespace dynamodb_cache::aws
