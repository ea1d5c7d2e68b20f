#include "util/json_writer.h"

#include <bit>
#include <cstdint>
#include <cstring>

#include "util/crypto.h"

namespace dynamodb_cache::util {

namespace {

constexpr uint64_t kOnes = 0x0101010101010101ull;
constexpr uint64_t kHighs = 0x8080808080808080ull;

// The high bit of each byte of `w` that JSON needs escaped (below 0x20, '"', '\\'). Exact for
// the lowest such byte; a byte above it may be flagged falsely (a borrow), which the callers
// never look past. A byte from 0x80 up is never flagged (its ~w high bit is clear); below it,
// w - 0x20 has the high bit set exactly when w < 0x20, and (w ^ q) - 1 exactly when w == q.
constexpr uint64_t needs_escape(uint64_t w) {
  return ((w - kOnes * 0x20) | ((w ^ (kOnes * '"')) - kOnes) | ((w ^ (kOnes * '\\')) - kOnes)) & ~w & kHighs;
}

uint64_t load8(const char* p) {
  uint64_t w;
  std::memcpy(&w, p, 8);
  return w;
}

uint64_t load4(const char* p) {
  uint32_t w;
  std::memcpy(&w, p, 4);
  return w;
}

// Index of the first byte of `s` that needs escaping, or s.size(): eight bytes a step, the
// last (partial) word read overlapping what was already checked so that no byte past `s` is
// read.
size_t first_to_escape(std::string_view s) {
  static_assert(std::endian::native == std::endian::little, "the byte index is the flag's from the low end");
  const char* p = s.data();
  const size_t n = s.size();
  if (n >= 8) {
    size_t i = 0;
    for (; i + 8 <= n; i += 8)
      if (const uint64_t m = needs_escape(load8(p + i))) return i + static_cast<size_t>(std::countr_zero(m)) / 8;
    if (i == n) return n;
    // Bytes n-8..i-1 were clean, so the lowest flag, if any, is at or past i.
    const uint64_t m = needs_escape(load8(p + n - 8));
    return m ? n - 8 + static_cast<size_t>(std::countr_zero(m)) / 8 : n;
  }
  if (n >= 4) {  // bytes 0-3, then n-4..n-1 in the high half
    const uint64_t m = needs_escape(load4(p) | load4(p + n - 4) << 32);
    if (!m) return n;
    const auto at = static_cast<size_t>(std::countr_zero(m)) / 8;
    return at < 4 ? at : n - 8 + at;
  }
  if (n == 0) return 0;
  // 1-3 bytes: bytes 0, n/2 and n-1 cover them, in order, in the word's low three bytes (the
  // zero bytes above count as needing escape: not looked at).
  const auto byte = [p](size_t i) { return static_cast<uint64_t>(static_cast<unsigned char>(p[i])); };
  const uint64_t m = needs_escape(byte(0) | byte(n / 2) << 8 | byte(n - 1) << 16) & 0x808080;
  if (!m) return n;
  const int at = std::countr_zero(m) / 8;
  return at == 0 ? 0 : at == 1 ? n / 2 : n - 1;
}

}  // namespace

void JsonWriter::append_quoted(std::string_view s) {
  static constexpr char kHex[] = "0123456789abcdef";
  size_t clean = first_to_escape(s);
  if (clean == s.size()) {
    // The common case in one resize and one copy: 30 instructions fewer than two push_backs
    // around an append (callgrind).
    const size_t at = out_.size();
    out_.resize(at + s.size() + 2);
    char* o = out_.data() + at;
    o[0] = '"';
    if (!s.empty()) std::memcpy(o + 1, s.data(), s.size());  // an empty view's data() may be null
    o[s.size() + 1] = '"';
    return;
  }
  out_.push_back('"');
  for (; clean != s.size(); clean = first_to_escape(s)) {  // each run that needs no escaping in one append
    out_.append(s.data(), clean);
    const auto c = static_cast<unsigned char>(s[clean]);
    s.remove_prefix(clean + 1);
    switch (c) {
      case '"': out_.append("\\\""); break;
      case '\\': out_.append("\\\\"); break;
      case '\n': out_.append("\\n"); break;
      case '\r': out_.append("\\r"); break;
      case '\t': out_.append("\\t"); break;
      case '\b': out_.append("\\b"); break;
      case '\f': out_.append("\\f"); break;
      default:
        out_.append("\\u00");
        out_.push_back(kHex[c >> 4]);
        out_.push_back(kHex[c & 15]);
    }
  }
  out_.append(s);
  out_.push_back('"');
}

void JsonWriter::base64(std::string_view bytes) {
  prefix();
  out_.push_back('"');
  base64_append(out_, bytes);
  out_.push_back('"');
  comma_ = true;
}

}  // namespace dynamodb_cache::util
