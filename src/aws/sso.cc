// SSO (IAM Identity Center): the token `aws sso login` caches, then GetRoleCredentials.
#include <fcntl.h>
#include <openssl/evp.h>
#include <unistd.h>

#include <mutex>

#include "aws/parsers.h"
#include "aws/providers.h"
#include "util/crypto.h"
#include "util/json_writer.h"

namespace dynamodb_cache::aws::detail {
namespace {

// Lower-case hex SHA-1 of `s`: the cache file name the AWS CLI and SDKs use.
std::string sha1_hex(const std::string& s) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  if (EVP_Digest(s.data(), s.size(), md, &len, EVP_sha1(), nullptr) != 1)
    throw CredentialsError("sso: SHA-1 is unavailable");
  return util::hex(std::string_view(reinterpret_cast<const char*>(md), len));
}

class SsoProvider final : public CredentialsProvider {
 public:
  SsoProvider(SsoConfig c, std::shared_ptr<http::Transport> t) : c_(std::move(c)), transport_(std::move(t)) {
    name_ = "sso (profile '" + c_.profile_name + "')";
  }

  Credentials get() override {
    auto home = env("HOME");
    if (!home) throw CredentialsError(name_ + ": HOME is not set, so the SSO token cache cannot be found");
    // The sso-session format keys the cache by the session name, the legacy one by the URL.
    std::string key = c_.session_name.empty() ? c_.start_url : c_.session_name;
    std::string path = *home + "/.aws/sso/cache/" + sha1_hex(key) + ".json";
    const std::string login = "; run `aws sso login --profile " + c_.profile_name + "`";
    auto text = read_small_file(path, kMaxCredentialsAnswerBytes, name_ + ": the token cache");
    if (!text) throw CredentialsError(name_ + ": no cached SSO token in " + path + login);
    SsoToken token = parse_sso_token(*text);
    std::call_once(once_, [&] {
      if (!transport_) transport_ = service_transport(c_.profile);
      endpoint_ = resolve_service_endpoint("SSO", "portal.sso", c_.region, {}, c_.profile);
    });
    std::string refresh_failure;
    if (!c_.session_name.empty() && token.expires_at - SystemClock::now() < kRefreshWindow)
      refresh_failure = refresh(token, path);
    if (token.expires_at <= SystemClock::now())
      throw CredentialsError(name_ + ": the cached SSO token in " + path + " has expired" + refresh_failure + login);
    http::Request req;
    req.method = "GET";
    req.url = endpoint_ + "/federation/credentials?account_id=" + form_encode(c_.account_id) +
              "&role_name=" + form_encode(c_.role_name);
    req.headers.push_back({"x-amz-sso_bearer_token", token.access_token});
    req.headers.push_back({"Accept", "application/json"});
    auto resp = fetch(*transport_, req, name_);
    if (resp.status == 200) return parse_sso_role_credentials(resp.body, name_);
    std::string hint = resp.status == 401 || resp.status == 403 ? login : std::string();
    throw CredentialsError(name_ + ": GetRoleCredentials answered HTTP " + std::to_string(resp.status) + hint,
                           resp.status >= 500 || resp.status == 429);
  }

 private:
  // The AWS CLI and SDKs refresh an sso-session token 15 minutes before it expires.
  static constexpr std::chrono::minutes kRefreshWindow{15};

  // Refreshes `token` with SSO OIDC CreateToken and writes it back to `path`, as the AWS CLI
  // does. Returns "" on success (token updated), else why not, for the message when the old
  // token has expired too (a still-valid old token is simply used).
  std::string refresh(SsoToken& token, const std::string& path) {
    auto now = SystemClock::now();
    if (token.refresh_token.empty() || token.client_id.empty() || token.client_secret.empty())
      return " (it holds no refresh token)";
    if (token.registration_expires_at && *token.registration_expires_at <= now)
      return " (its client registration has expired)";
    try {
      std::string endpoint = resolve_service_endpoint("SSO OIDC", "oidc", c_.region, {}, c_.profile);
      http::Request req;
      req.method = "POST";
      req.url = endpoint + "/token";
      req.headers.push_back({"Content-Type", "application/json"});
      util::JsonWriter w(req.body);
      w.begin_object();
      w.field("grantType", "refresh_token");
      w.field("clientId", token.client_id);
      w.field("clientSecret", token.client_secret);
      w.field("refreshToken", token.refresh_token);
      w.end_object();
      auto resp = fetch(*transport_, req, name_ + ": token refresh");
      if (resp.status != 200) return " (the token refresh answered HTTP " + std::to_string(resp.status) + ")";
      auto fresh = parse_sso_oidc_token(resp.body);
      token.access_token = std::move(fresh.access_token);
      token.expires_at = now + fresh.expires_in;
      if (!fresh.refresh_token.empty()) token.refresh_token = std::move(fresh.refresh_token);
    } catch (const Error& e) {
      return std::string(" (the token refresh failed: ") + e.what() + ")";
    }
    write_cache(path, sso_token_json(token));
    return {};
  }

  // Replaces the cache file atomically, readable by its owner only. A failure to write is
  // not an error: the refreshed token is used all the same (and refreshed again next time).
  static void write_cache(const std::string& path, const std::string& json) {
    std::string tmp = path + ".tmp" + std::to_string(::getpid());
    int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) return;
    bool ok = ::write(fd, json.data(), json.size()) == static_cast<ssize_t>(json.size());
    ok = ::close(fd) == 0 && ok;
    if (!ok || ::rename(tmp.c_str(), path.c_str()) != 0) ::unlink(tmp.c_str());
  }

  SsoConfig c_;
  std::string name_;
  std::once_flag once_;
  std::shared_ptr<http::Transport> transport_;  // set once under once_
  std::string endpoint_;                        // set once under once_
};

}  // namespace

std::shared_ptr<CredentialsProvider> make_sso_provider(SsoConfig config, std::shared_ptr<http::Transport> transport) {
  for (const auto* v : {&config.start_url, &config.region, &config.account_id, &config.role_name})
    if (v->empty())
      throw CredentialsError("sso (profile '" + config.profile_name +
                             "'): needs sso_start_url, sso_region, sso_account_id and sso_role_name");
  return std::make_shared<SsoProvider>(std::move(config), std::move(transport));
}

}  // namespace dynamodb_cache::aws::detail
