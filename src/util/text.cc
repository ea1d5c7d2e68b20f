#include "util/text.h"

#include <cctype>
#include <unordered_set>

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
// `secret` (the whole of it included) by kMark, each run as long as it matches.
void redact_runs(std::string& text, std::string_view secret) {
  constexpr size_t n = kMinRedactedPartBytes;
  if (secret.size() < n) return;
  std::unordered_set<std::string_view> grams;
  for (size_t i = 0; i + n <= secret.size(); ++i) grams.insert(secret.substr(i, n));
  for (size_t at = 0; at + n <= text.size();) {
    if (!grams.count(std::string_view(text).substr(at, n))) {
      ++at;
      continue;
    }
    size_t len = n;
    while (at + len < text.size() &&
           secret.find(std::string_view(text).substr(at, len + 1)) != std::string_view::npos)
      ++len;
    text.replace(at, len, kMark);
    at += kMark.size();
  }
}

}  // namespace

std::string redact(std::string text, const std::vector<std::string_view>& secrets) {
  for (std::string_view s : secrets) {
    if (s.size() < kMinRedactedBytes) continue;
    const std::string upper = percent_encoded(s, "0123456789ABCDEF"),
                      lower = percent_encoded(s, "0123456789abcdef");
    const std::string_view forms[] = {s, upper, lower};
    // Whole echoes first, each one mark; then what is left of any.
    for (std::string_view form : forms)
      for (size_t at = text.find(form); at != std::string::npos; at = text.find(form, at + kMark.size()))
        text.replace(at, form.size(), kMark);
    for (std::string_view form : forms) redact_runs(text, form);
  }
  return text;
}

}  // namespace dynamodb_cache::util
