// SigV4 (AWS4-HMAC-SHA256) request signing, header variant.
#include <algorithm>
#include <array>
#include <cstring>

#include "dynamodb_cache/aws.h"
#include "dynamodb_cache/errors.h"
#include "http/headers.h"
#include "util/crypto.h"
#include "util/time.h"

namespace dynamodb_cache::aws {

namespace {

bool unreserved(unsigned char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
         c == '_' || c == '.' || c == '~';
}

void uri_encode(std::string& out, std::string_view s, bool keep_slash) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  for (unsigned char c : s) {
    if (unreserved(c) || (keep_slash && c == '/')) {
      out.push_back(static_cast<char>(c));
    } else {
      out.push_back('%');
      out.push_back(kHex[c >> 4]);
      out.push_back(kHex[c & 15]);
    }
  }
}

std::string percent_decode(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  auto val = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '%' && i + 2 < s.size() && val(s[i + 1]) >= 0 && val(s[i + 2]) >= 0) {
      out.push_back(static_cast<char>(val(s[i + 1]) * 16 + val(s[i + 2])));
      i += 2;
    } else {
      out.push_back(s[i]);
    }
  }
  return out;
}

// RFC 3986 dot-segment removal plus collapsing of empty segments.
std::string normalize(std::string_view path) {
  std::vector<std::string_view> segs;
  size_t i = 0;
  while (i <= path.size()) {
    size_t j = path.find('/', i);
    if (j == std::string_view::npos) j = path.size();
    auto seg = path.substr(i, j - i);
    if (seg == "..") {
      if (!segs.empty()) segs.pop_back();
    } else if (!seg.empty() && seg != ".") {
      segs.push_back(seg);
    }
    i = j + 1;
  }
  std::string out = "/";
  for (size_t k = 0; k < segs.size(); ++k) {
    if (k) out.push_back('/');
    out.append(segs[k]);
  }
  bool trailing = path.size() > 1 && path.back() == '/';
  if (trailing && out.size() > 1) out.push_back('/');
  return out;
}

std::string canonical_query(std::string_view query) {
  if (query.empty()) return {};
  std::vector<std::pair<std::string, std::string>> params;
  size_t i = 0;
  while (i <= query.size()) {
    size_t j = query.find('&', i);
    if (j == std::string_view::npos) j = query.size();
    auto kv = query.substr(i, j - i);
    if (!kv.empty()) {
      auto eq = kv.find('=');
      std::string k, v;
      uri_encode(k, percent_decode(kv.substr(0, eq)), false);
      if (eq != std::string_view::npos) uri_encode(v, percent_decode(kv.substr(eq + 1)), false);
      params.emplace_back(std::move(k), std::move(v));
    }
    i = j + 1;
  }
  std::sort(params.begin(), params.end());
  std::string out;
  for (size_t k = 0; k < params.size(); ++k) {
    if (k) out.push_back('&');
    out.append(params[k].first).push_back('=');
    out.append(params[k].second);
  }
  return out;
}

// Trims, and turns every run of whitespace (folded lines included) into one space.
void canonical_value(std::string& out, std::string_view v) {
  // Most values have nothing to trim or fold: copied whole, not a character at a time. One
  // pass to tell (find_first_of calls memchr once per character of v: measured ~1% of a get).
  bool plain = v.empty() || (v.front() != ' ' && v.back() != ' ');
  for (size_t i = 0; plain && i < v.size(); ++i) {
    const char c = v[i];
    plain = c != '\t' && c != '\n' && c != '\r' && !(c == ' ' && v[i + 1] == ' ');  // in range: v.back() is no space
  }
  if (plain) {
    out.assign(v);
    return;
  }
  out.clear();
  bool space = false;
  for (char c : v) {
    if (c == ' ' || c == '\t' || c == '\n' || c == '\r') {
      space = !out.empty();
    } else {
      if (space) out.push_back(' ');
      space = false;
      out.push_back(c);
    }
  }
}

// Headers a proxy or the transport may change in flight are never signed.
bool skipped_header(std::string_view lower) {
  return lower == "authorization" || lower == "user-agent" || lower == "expect" ||
         lower == "x-amzn-trace-id" || lower == "connection";
}

struct KeyCacheEntry {
  std::string secret, date, region, service;
  util::HmacSha256Key key;  // the derived signing key, its pad blocks hashed once
};

// Derived keys change once a day per scope: memoise a few per thread, no locks.
const util::HmacSha256Key& signing_key(std::string_view secret, std::string_view date,
                                std::string_view region, std::string_view service) {
  thread_local std::array<KeyCacheEntry, 4> cache;
  thread_local size_t next = 0;
  for (auto& e : cache)
    if (e.date == date && e.region == region && e.service == service && e.secret == secret)
      return e.key;
  auto& e = cache[next];
  next = (next + 1) % cache.size();
  std::string k = "AWS4";
  k.append(secret);
  auto kdate = util::hmac_sha256(k, date);
  auto kregion = util::hmac_sha256(util::view(kdate), region);
  auto kservice = util::hmac_sha256(util::view(kregion), service);
  e.key = util::HmacSha256Key(util::view(util::hmac_sha256(util::view(kservice), "aws4_request")));
  e.secret.assign(secret);
  e.date.assign(date);
  e.region.assign(region);
  e.service.assign(service);
  std::fill(k.begin(), k.end(), '\0');
  return e.key;
}

}  // namespace

SigningResult sign_v4(const SigningParams& p) {
  SigningResult r;
  sign_v4(p, r);
  return r;
}

void sign_v4(const SigningParams& p, SigningResult& r) {
  if (p.credentials == nullptr || p.credentials->access_key_id.empty() ||
      p.credentials->secret_access_key.empty())
    throw CredentialsError("cannot sign: credentials are empty");
  // The last line of defence against header injection, whatever the credentials' source: the
  // access key id and region go into Authorization, the token into X-Amz-Security-Token.
  // (The caller's own headers are signed as given: the signer does not send them.)
  if (!http::valid_header_value(p.credentials->access_key_id) ||
      !http::valid_header_value(p.credentials->session_token))
    throw CredentialsError(std::string("cannot sign: the credentials from ")
                               .append(p.credentials->provider)
                               .append(" contain a line break or control character"));
  if (!http::valid_header_value(p.region) || !http::valid_header_value(p.service))
    throw ConfigError("cannot sign: the region or service name contains a line break or control character");
  r.canonical_request.clear();
  r.string_to_sign.clear();
  r.signature.clear();
  r.authorization.clear();
  // r.added_headers' first `added` entries are this request's (their strings reused).
  size_t added = 0;
  const util::AmzDate amz_chars = util::amz_date(p.time);
  const std::string_view amz = amz_chars.view(), date = amz.substr(0, 8);

  // Scratch space reused by every signature on this thread (its strings keep their capacity):
  // no allocation per request for the canonical headers, the signed-header list or the scope.
  struct Scratch {
    std::vector<std::pair<std::string, std::string>> headers;
    std::string payload_hash, signed_headers, scope;
  };
  thread_local Scratch scratch;
  std::string& payload_hash = scratch.payload_hash;
  payload_hash.clear();
  util::hex_append(payload_hash, util::view(util::sha256(p.body)));
  http::put_header(r.added_headers, added, "X-Amz-Date", amz);
  const bool token = !p.credentials->session_token.empty();
  if (token && !p.omit_session_token)
    http::put_header(r.added_headers, added, "X-Amz-Security-Token", p.credentials->session_token);
  if (p.sign_body) http::put_header(r.added_headers, added, "x-amz-content-sha256", payload_hash);
  r.added_headers.resize(added);

  // Lower-cased names with canonical values; repeated names joined with ','. The first `n`
  // entries of scratch.headers are this request's.
  auto& hs = scratch.headers;
  size_t n = 0;
  auto add = [&](std::string_view name, std::string_view value) {
    if (n == hs.size()) hs.emplace_back();
    std::string& lower = hs[n].first;
    lower.assign(name);
    for (auto& c : lower)
      if (c >= 'A' && c <= 'Z') c = static_cast<char>(c + ('a' - 'A'));
    if (skipped_header(lower)) return;
    canonical_value(hs[n].second, value);
    ++n;
  };
  if (p.headers)
    for (const auto& h : *p.headers) add(h.name, h.value);
  for (const auto& h : r.added_headers) add(h.name, h.value);
  // Insertion sort: stable (repeated names keep their order) and allocation-free for the
  // handful of headers a request signs.
  for (size_t i = 1; i < n; ++i)
    for (size_t j = i; j > 0 && hs[j].first < hs[j - 1].first; --j) std::swap(hs[j], hs[j - 1]);

  std::string& c = r.canonical_request;
  c.reserve(256 + p.path.size() + p.query.size());
  c.append(p.method).push_back('\n');
  if (p.normalize_path)
    uri_encode(c, normalize(p.path.empty() ? "/" : p.path), true);
  else
    uri_encode(c, p.path.empty() ? "/" : p.path, true);
  c.push_back('\n');
  c.append(canonical_query(p.query)).push_back('\n');
  std::string& signed_headers = scratch.signed_headers;
  signed_headers.clear();
  for (size_t i = 0; i < n; ++i) {
    if (i > 0 && hs[i].first == hs[i - 1].first) {
      c.pop_back();  // '\n'
      c.push_back(',');
      c.append(hs[i].second).push_back('\n');
      continue;
    }
    c.append(hs[i].first).push_back(':');
    c.append(hs[i].second).push_back('\n');
    if (!signed_headers.empty()) signed_headers.push_back(';');
    signed_headers.append(hs[i].first);
  }
  c.push_back('\n');
  c.append(signed_headers).push_back('\n');
  c.append(payload_hash);

  std::string& scope = scratch.scope;
  scope.clear();
  scope.append(date).append("/").append(p.region).append("/").append(p.service).append(
      "/aws4_request");
  r.string_to_sign.reserve(96 + scope.size());
  r.string_to_sign.append("AWS4-HMAC-SHA256\n").append(amz).append("\n").append(scope).append(
      "\n");
  util::hex_append(r.string_to_sign, util::view(util::sha256(c)));

  const auto& key = signing_key(p.credentials->secret_access_key, date, p.region, p.service);
  r.signature.reserve(64);
  util::hex_append(r.signature, util::view(key.mac(r.string_to_sign)));
  r.authorization.reserve(128 + p.credentials->access_key_id.size() + scope.size() + signed_headers.size());
  r.authorization.append("AWS4-HMAC-SHA256 Credential=")
      .append(p.credentials->access_key_id)
      .append("/")
      .append(scope)
      .append(", SignedHeaders=")
      .append(signed_headers)
      .append(", Signature=")
      .append(r.signature);
  if (token && p.omit_session_token)
    http::put_header(r.added_headers, added, "X-Amz-Security-Token", p.credentials->session_token);
}

}  // namespace dynamodb_cache::aws
