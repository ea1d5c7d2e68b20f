#include "aws/parsers.h"

#include <simdjson.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <ctime>

#include "dynamodb_cache/errors.h"
#include "http/headers.h"
#include "util/json_writer.h"
#include "util/text.h"
#include "util/time.h"

namespace dynamodb_cache::aws::detail {

namespace {

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t' || s.front() == '\r' || s.front() == '\n'))
    s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r' || s.back() == '\n'))
    s.remove_suffix(1);
  return s;
}

std::string lower(std::string_view s) {
  std::string out(s);
  for (auto& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

// Splits "key = value" (or "key: value", as Python's configparser allows) at the first
// delimiter. nullopt when the line has none or the key is empty.
std::optional<std::pair<std::string, std::string_view>> split_property(std::string_view line) {
  auto at = line.find_first_of("=:");
  if (at == std::string_view::npos) return std::nullopt;
  auto key = trim(line.substr(0, at));
  if (key.empty()) return std::nullopt;
  return std::pair{lower(key), trim(line.substr(at + 1))};
}

}  // namespace

IniFile parse_ini(std::string_view text) {
  IniFile out;
  IniSection* section = nullptr;
  std::string last_key;     // the property indented lines belong to
  bool nested = false;      // last_key had an empty value: indented lines are sub-properties
  while (!text.empty()) {
    auto eol = text.find('\n');
    std::string_view line = text.substr(0, eol);
    text.remove_prefix(eol == std::string_view::npos ? text.size() : eol + 1);
    std::string_view t = trim(line);
    if (t.empty() || t.front() == '#' || t.front() == ';') continue;
    bool indented = line.front() == ' ' || line.front() == '\t';
    if (indented && section != nullptr && !last_key.empty()) {
      if (nested) {
        if (auto kv = split_property(t)) (*section)[last_key + "." + kv->first] = std::string(kv->second);
      } else {
        (*section)[last_key].append("\n").append(t);
      }
      continue;
    }
    last_key.clear();
    if (t.front() == '[') {
      auto close = t.find(']');
      if (close == std::string_view::npos) {
        section = nullptr;  // a broken header: its properties belong to no section
        continue;
      }
      section = &out[std::string(trim(t.substr(1, close - 1)))];
      continue;
    }
    if (section == nullptr) continue;
    auto kv = split_property(t);
    if (!kv) continue;
    last_key = kv->first;
    nested = kv->second.empty();
    (*section)[last_key] = std::string(kv->second);
  }
  return out;
}

void require_header_value(std::string_view value, const std::string& source, std::string_view what) {
  if (!http::valid_header_value(value))
    throw CredentialsError(
        std::string(source).append(": ").append(what).append(" contains a line break or control character"),
        false);
}

void require_header_values(const Credentials& c, std::string_view id_name, std::string_view token_name) {
  require_header_value(c.access_key_id, c.provider, id_name);
  require_header_value(c.session_token, c.provider, token_name);
}

namespace {

// A JSON object's string members, read with simdjson. Missing or non-string: empty.
class JsonObject {
 public:
  // Throws CredentialsError(what) when `text` is not a JSON object.
  JsonObject(std::string_view text, const std::string& what) {
    if (text.size() > kMaxCredentialsAnswerBytes ||
        parser_.parse(text.data(), text.size()).get(doc_) != simdjson::SUCCESS || !doc_.is_object())
      throw CredentialsError(what, true);
  }
  explicit JsonObject(simdjson::dom::element e) : doc_(e) {}
  std::string str(const char* key) const {
    std::string_view v;
    if (doc_[key].get(v) != simdjson::SUCCESS) return {};
    return std::string(v);
  }
  simdjson::dom::element element() const { return doc_; }

 private:
  simdjson::dom::parser parser_;
  simdjson::dom::element doc_;
};

// Parses an ISO 8601 expiration; `field` names it in the message (the value is no secret).
SystemClock::time_point expiration_of(const std::string& text, const std::string& provider, const char* field) {
  auto t = util::parse_iso8601(text);
  if (!t) throw CredentialsError(provider + ": bad " + field + " '" + text.substr(0, 64) + "'", true);
  return *t;
}

void require_keys(const Credentials& c, const std::string& provider, const char* names) {
  if (c.access_key_id.empty() || c.secret_access_key.empty())
    throw CredentialsError(provider + ": answer lacks " + names, true);
}

}  // namespace

Credentials parse_metadata_credentials(std::string_view body, const std::string& provider) {
  JsonObject doc(body, provider + ": credentials response is not a JSON object");
  std::string code = doc.str("Code");
  if (!code.empty() && code != "Success")
    throw CredentialsError(provider + ": credentials response Code is " + code.substr(0, 64), true);
  Credentials c{doc.str("AccessKeyId"), doc.str("SecretAccessKey"), doc.str("Token"), std::nullopt, provider};
  require_keys(c, provider, "AccessKeyId/SecretAccessKey");
  require_header_values(c, "AccessKeyId", "Token");
  std::string exp = doc.str("Expiration");
  if (!exp.empty()) c.expiration = expiration_of(exp, provider, "Expiration");
  return c;
}

Credentials parse_process_credentials(std::string_view output, const std::string& provider) {
  JsonObject doc(output, provider + ": output is not a JSON object");
  int64_t version = 0;
  if (doc.element()["Version"].get(version) != simdjson::SUCCESS || version != 1)
    throw CredentialsError(provider + ": output must have \"Version\": 1", false);
  Credentials c{doc.str("AccessKeyId"), doc.str("SecretAccessKey"), doc.str("SessionToken"), std::nullopt,
                provider};
  if (c.access_key_id.empty() || c.secret_access_key.empty())
    throw CredentialsError(provider + ": output lacks AccessKeyId/SecretAccessKey", false);
  require_header_values(c, "AccessKeyId", "SessionToken");
  std::string exp = doc.str("Expiration");
  if (!exp.empty()) c.expiration = expiration_of(exp, provider, "Expiration");
  return c;
}

namespace {

// The text of the first <tag>...</tag> inside `xml`, entities decoded; nullopt if absent.
// STS answers are flat, unattributed elements below a namespaced root: no general XML
// parser is needed, and CDATA or comments do not occur.
std::optional<std::string_view> element(std::string_view xml, std::string_view tag) {
  std::string open = "<" + std::string(tag) + ">", close = "</" + std::string(tag) + ">";
  auto b = xml.find(open);
  if (b == std::string_view::npos) return std::nullopt;
  b += open.size();
  auto e = xml.find(close, b);
  if (e == std::string_view::npos) return std::nullopt;
  return xml.substr(b, e - b);
}

std::string xml_text(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] != '&') {
      out += s[i];
      continue;
    }
    auto semi = s.find(';', i);
    if (semi == std::string_view::npos || semi - i > 10) {
      out += s[i];
      continue;
    }
    std::string_view ent = s.substr(i + 1, semi - i - 1);
    char c = 0;
    if (ent == "amp") c = '&';
    else if (ent == "lt") c = '<';
    else if (ent == "gt") c = '>';
    else if (ent == "quot") c = '"';
    else if (ent == "apos") c = '\'';
    else if (ent.size() > 1 && ent[0] == '#') {
      unsigned v = 0;
      bool hex = ent[1] == 'x' || ent[1] == 'X';
      auto digits = ent.substr(hex ? 2 : 1);
      auto [p, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), v, hex ? 16 : 10);
      // Only ASCII is expected in keys, tokens and codes; other characters stay as written.
      if (ec == std::errc() && p == digits.data() + digits.size() && v > 0 && v < 0x80) c = static_cast<char>(v);
    }
    if (c == 0) {
      out += s[i];
      continue;
    }
    out += c;
    i = semi;
  }
  return out;
}

std::string xml_field(std::string_view xml, std::string_view tag) {
  auto e = element(xml, tag);
  return e ? xml_text(trim(*e)) : std::string();
}

// STS codes and messages quoted in errors: the request's secrets redacted before the cut, so
// no part of an echoed one survives.
std::string safe_text(const std::string& s, const std::vector<std::string_view>& secrets) {
  return util::printable(util::redact(s, secrets), 200);
}

}  // namespace

StsError parse_sts_error(std::string_view xml, const std::vector<std::string_view>& secrets) {
  if (xml.size() > kMaxCredentialsAnswerBytes) return {};
  auto err = element(xml, "Error");
  if (!err) return {};
  return {safe_text(xml_field(*err, "Code"), secrets), safe_text(xml_field(*err, "Message"), secrets)};
}

Credentials parse_sts_credentials(std::string_view xml, const std::string& provider,
                                  const std::vector<std::string_view>& secrets) {
  if (xml.size() > kMaxCredentialsAnswerBytes)
    throw CredentialsError(provider + ": STS answer too large", true);
  if (auto err = parse_sts_error(xml, secrets); !err.code.empty()) {
    bool transient = err.code == "Throttling" || err.code == "ThrottlingException" ||
                     err.code == "ServiceUnavailable" || err.code == "InternalFailure" ||
                     err.code == "IDPCommunicationError";
    throw CredentialsError(provider + ": STS error " + err.code + ": " + err.message, transient);
  }
  auto creds = element(xml, "Credentials");
  if (!creds) throw CredentialsError(provider + ": STS answer has no <Credentials>", true);
  Credentials c{xml_field(*creds, "AccessKeyId"), xml_field(*creds, "SecretAccessKey"),
                xml_field(*creds, "SessionToken"), std::nullopt, provider};
  require_keys(c, provider, "AccessKeyId/SecretAccessKey");
  if (c.session_token.empty()) throw CredentialsError(provider + ": STS answer lacks SessionToken", true);
  require_header_values(c, "AccessKeyId", "SessionToken");  // after entities like &#13;&#10; are decoded
  std::string exp = xml_field(*creds, "Expiration");
  if (exp.empty()) throw CredentialsError(provider + ": STS answer lacks Expiration", true);
  c.expiration = expiration_of(exp, provider, "Expiration");
  return c;
}

SsoToken parse_sso_token(std::string_view json) {
  const std::string what = "sso: the cached token (aws sso login) ";
  JsonObject doc(json, what + "is not a JSON object");
  SsoToken t;
  t.access_token = doc.str("accessToken");
  if (t.access_token.empty()) throw CredentialsError(what + "has no accessToken");
  require_header_value(t.access_token, "sso: the cached token (aws sso login)", "accessToken");
  std::string exp = doc.str("expiresAt");
  auto at = util::parse_iso8601(exp);
  if (!at) throw CredentialsError(what + "has no valid expiresAt");
  t.expires_at = *at;
  t.start_url = doc.str("startUrl");
  t.region = doc.str("region");
  t.client_id = doc.str("clientId");
  t.client_secret = doc.str("clientSecret");
  t.refresh_token = doc.str("refreshToken");
  if (auto reg = util::parse_iso8601(doc.str("registrationExpiresAt"))) t.registration_expires_at = *reg;
  return t;
}

std::string sso_token_json(const SsoToken& t) {
  std::string out;
  util::JsonWriter w(out);
  w.begin_object();
  auto time = [](SystemClock::time_point at) {
    std::time_t secs = SystemClock::to_time_t(at);
    std::tm tm{};
    gmtime_r(&secs, &tm);
    char buf[32];
    std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
    return std::string(buf);
  };
  if (!t.start_url.empty()) w.field("startUrl", t.start_url);
  if (!t.region.empty()) w.field("region", t.region);
  w.field("accessToken", t.access_token);
  w.field("expiresAt", time(t.expires_at));
  if (!t.client_id.empty()) w.field("clientId", t.client_id);
  if (!t.client_secret.empty()) w.field("clientSecret", t.client_secret);
  if (t.registration_expires_at) w.field("registrationExpiresAt", time(*t.registration_expires_at));
  if (!t.refresh_token.empty()) w.field("refreshToken", t.refresh_token);
  w.end_object();
  return out;
}

SsoRefreshed parse_sso_oidc_token(std::string_view json) {
  JsonObject doc(json, "sso: the CreateToken answer is not a JSON object");
  SsoRefreshed r;
  r.access_token = doc.str("accessToken");
  int64_t secs = 0;
  if (r.access_token.empty() || doc.element()["expiresIn"].get(secs) != simdjson::SUCCESS || secs <= 0 ||
      secs > 366 * 86400)
    throw CredentialsError("sso: the CreateToken answer lacks accessToken or a valid expiresIn", true);
  require_header_value(r.access_token, "sso: the CreateToken answer", "accessToken");
  r.expires_in = std::chrono::seconds(secs);
  r.refresh_token = doc.str("refreshToken");
  return r;
}

Credentials parse_sso_role_credentials(std::string_view json, const std::string& provider) {
  JsonObject doc(json, provider + ": GetRoleCredentials answer is not a JSON object");
  simdjson::dom::element rc;
  if (doc.element()["roleCredentials"].get(rc) != simdjson::SUCCESS || !rc.is_object())
    throw CredentialsError(provider + ": GetRoleCredentials answer lacks roleCredentials", true);
  JsonObject role(rc);
  Credentials c{role.str("accessKeyId"), role.str("secretAccessKey"), role.str("sessionToken"), std::nullopt,
                provider};
  require_keys(c, provider, "accessKeyId/secretAccessKey");
  require_header_values(c, "accessKeyId", "sessionToken");
  int64_t ms = 0;
  if (rc["expiration"].get(ms) != simdjson::SUCCESS || ms <= 0)
    throw CredentialsError(provider + ": GetRoleCredentials answer lacks a valid expiration", true);
  // system_clock counts nanoseconds in 64 bits (up to 2262): later times are clamped to 2255.
  ms = std::min<int64_t>(ms, 9'000'000'000'000);
  c.expiration = SystemClock::time_point(std::chrono::duration_cast<SystemClock::duration>(std::chrono::milliseconds(ms)));
  return c;
}

}  // namespace dynamodb_cache::aws::detail
