// parse_url (http.h): endpoint and request URLs are checked here once, so a typo fails as a
// configuration error before any request, and a password in a URL never reaches a message.
#include <cctype>
#include <string>

#include "dynamodb_cache/errors.h"
#include "dynamodb_cache/http.h"

namespace dynamodb_cache::http {

namespace {

bool starts_with_icase(const std::string& s, std::string_view prefix) {
  if (s.size() < prefix.size()) return false;
  for (size_t i = 0; i < prefix.size(); ++i)
    if (static_cast<char>(std::tolower(static_cast<unsigned char>(s[i]))) != prefix[i]) return false;
  return true;
}

bool host_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '.' ||
         c == '_';
}

}  // namespace

Url parse_url(const std::string& url, const char* what) {
  Url u;
  size_t start;
  if (starts_with_icase(url, "http://")) {
    start = 7;
  } else if (starts_with_icase(url, "https://")) {
    u.https = true;
    start = 8;
  } else {
    // Only the scheme is quoted: the rest may hold a password.
    auto colon = url.find("://");
    throw ConfigError(std::string(what) + " must start with http:// or https://" +
                      (colon != std::string::npos && colon < 16 ? " (not " + url.substr(0, colon + 3) + ")" : ""));
  }
  const size_t end = url.find_first_of("/?#", start);
  const std::string authority = url.substr(start, end == std::string::npos ? std::string::npos : end - start);
  const std::string scheme = u.https ? "https://" : "http://";
  if (authority.find('@') != std::string::npos)
    throw ConfigError(std::string(what) + " must not contain user information (user:password@); " + scheme +
                      authority.substr(authority.rfind('@') + 1) + " without it");
  auto bad = [&](const std::string& why) {
    return ConfigError("invalid " + std::string(what) + " '" + scheme + authority + "': " + why);
  };
  std::string port;
  if (!authority.empty() && authority[0] == '[') {
    auto close = authority.find(']');
    if (close == std::string::npos) throw bad("unterminated IPv6 address");
    u.host = authority.substr(1, close - 1);
    for (char c : u.host)
      if (!std::isxdigit(static_cast<unsigned char>(c)) && c != ':' && c != '.') throw bad("invalid IPv6 address");
    if (close + 1 < authority.size()) {
      if (authority[close + 1] != ':') throw bad("unexpected characters after the IPv6 address");
      port = authority.substr(close + 2);
      if (port.empty()) throw bad("empty port");
    }
  } else {
    auto colon = authority.find(':');
    u.host = authority.substr(0, colon);
    if (colon != std::string::npos) {
      port = authority.substr(colon + 1);
      if (port.empty()) throw bad("empty port");
    }
    for (char c : u.host)
      if (!host_char(c)) throw bad("invalid character in the host name");
  }
  if (u.host.empty()) throw bad("no host");
  if (!port.empty()) {
    int p = 0;
    for (char c : port) {
      if (c < '0' || c > '9' || p > 65535) throw bad("port must be a number from 1 to 65535");
      p = p * 10 + (c - '0');
    }
    if (p < 1 || p > 65535) throw bad("port must be a number from 1 to 65535");
    u.port = p;
  } else {
    u.port = u.https ? 443 : 80;
  }
  u.origin = scheme + authority;
  if (end == std::string::npos) {
    u.path.push_back('/');
  } else {
    if (url[end] == '?') u.path.push_back('/');  // appended, not inserted: GCC 12 -O3 -Wrestrict (PR 105651)
    u.path.append(url, end, std::string::npos);
    if (u.path.find('#') != std::string::npos) throw bad("a fragment (#) has no meaning here");
    for (char c : u.path)
      if (static_cast<unsigned char>(c) <= 0x20 || c == 0x7f) throw bad("space or control character in the path");
  }
  return u;
}

}  // namespace dynamodb_cache::http
