#include "util/text.h"

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

std::string redact(std::string text, const std::vector<std::string_view>& secrets) {
  static constexpr std::string_view kMark = "[redacted]";
  for (std::string_view s : secrets) {
    if (s.size() < kMinRedactedBytes) continue;
    for (size_t at = text.find(s); at != std::string::npos; at = text.find(s, at + kMark.size()))
      text.replace(at, s.size(), kMark);
  }
  return text;
}

}  // namespace dynamodb_cache::util
