#include "util/text.h"

#include <cctype>

namespace dynamodb_cache::util {

std::string printable(std::string_view text, size_t max_bytes) {
  static constexpr char kHex[] = "0123456789abcdef";
  const std::string_view kept = text.substr(0, max_bytes);
  std::string out;
  out.reserve(kept.size() + 3);
  for (char ch : kept) {
    const auto c = static_cast<unsigned char>(ch);
    if (c >= 0x20 && c < 0x7f) {
      out.push_back(ch);
    } else {
      out += "\\x";
      out.push_back(kHex[c >> 4]);
      out.push_back(kHex[c & 0xf]);
    }
  }
  if (kept.size() < text.size()) out += "...";
  return out;
}

namespace {

// `s` with every byte but A-Z a-z 0-9 - _ . ~ written as %HH (`hex`: the digits' case).
std::string percent_encoded(std::string_view s, const char* hex) {
  std::string out;
  for (unsigned char c : s) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
      out.push_back(static_cast<char>(c));
    } else {
      out.push_back('%');
      out.push_back(hex[c >> 4]);
      out.push_back(hex[c & 0xf]);
    }
  }
  return out;
}

constexpr std::string_view kMark = "[redacted]";

// Replaces every run of at least kMinRedactedPartBytes bytes of `text` that is also a run of
// `secret` by kMark, each as long as it matches. Only stretches of `text` made of bytes the
// secret holds are searched, so ordinary text (spaces, punctuation) costs one pass: this runs
// for every error a server answers, conditional-check failures included.
void redact_runs(std::string& text, std::string_view secret) {
  constexpr size_t n = kMinRedactedPartBytes;
  if (secret.size() < n || text.size() < n) return;
  bool in_secret[256] = {};
  for (unsigned char c : secret) in_secret[c] = true;
  for (size_t at = 0; at + n <= text.size();) {
    size_t end = at;
    while (end < text.size() && in_secret[static_cast<unsigned char>(text[end])]) ++end;
    for (size_t i = at; i + n <= end;) {
      if (secret.find(std::string_view(text).substr(i, n)) == std::string_view::npos) {
        ++i;
        continue;
      }
      size_t len = n;
      while (i + len < end &&
             secret.find(std::string_view(text).substr(i, len + 1)) != std::string_view::npos)
        ++len;
      text.replace(i, len, kMark);
      end = end - len + kMark.size();
      i += kMark.size();
    }
    at = end + 1;
  }
}

}  // namespace

std::string redact(std::string text, const std::vector<std::string_view>& secrets) {
  for (std::string_view s : secrets) {
    if (s.size() < kMinRedactedBytes) continue;
    // The percent-encoded forms only where they could be: text holding a '%'.
    const bool encoded = text.find('%') != std::string::npos;
    const std::string upper = encoded ? percent_encoded(s, "0123456789ABCDEF") : std::string();
    const std::string lower = encoded ? percent_encoded(s, "0123456789abcdef") : std::string();
    const std::string_view forms[] = {s, upper, lower};
    // Whole echoes first, each one mark; then what is left of any.
    for (std::string_view form : forms)
      for (size_t at = form.empty() ? std::string::npos : text.find(form); at != std::string::npos;
           at = text.find(form, at + kMark.size()))
        text.replace(at, form.size(), kMark);
    for (std::string_view form : forms) redact_runs(text, form);  // nothing for an empty one
  }
  return text;
}

}  // namespace dynamodb_cache::util
