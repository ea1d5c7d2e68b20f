#include "dynamodb/wire_scan.h"

#include <simdjson.h>

#include <charconv>
#include <cstdint>
#include <cstring>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

namespace dynamodb_cache::dynamodb::wire::detail {

namespace {

// A byte a string holds as itself: printable ASCII other than the quote and the backslash.
bool plain(unsigned char c) { return c >= 0x20 && c < 0x80 && c != '"' && c != '\\'; }

#if defined(__x86_64__)
// Past the plain bytes from `p`, 32 (AVX2) or 16 (SSE2) at a time while whole blocks are
// left: the first block holding another byte stops it, at that byte. The strings read here
// are mostly base64 values (1.3-1.8 k characters for a 1000-byte value): about 0.35
// instructions a byte with AVX2.
__attribute__((target("avx2"))) const char* skip_plain_avx2(const char* p, const char* end) {
  const __m256i quote = _mm256_set1_epi8('"'), backslash = _mm256_set1_epi8('\\'), space = _mm256_set1_epi8(0x20);
  while (end - p >= 32) {
    const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
    // Signed: below 0x20 is a control character or a byte of 0x80 and above.
    const __m256i stop = _mm256_or_si256(_mm256_or_si256(_mm256_cmpeq_epi8(v, quote), _mm256_cmpeq_epi8(v, backslash)),
                                         _mm256_cmpgt_epi8(space, v));
    const auto mask = static_cast<unsigned>(_mm256_movemask_epi8(stop));
    if (mask != 0) return p + __builtin_ctz(mask);
    p += 32;
  }
  return p;
}

const char* skip_plain_sse2(const char* p, const char* end) {
  const __m128i quote = _mm_set1_epi8('"'), backslash = _mm_set1_epi8('\\'), space = _mm_set1_epi8(0x20);
  while (end - p >= 16) {
    const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
    const __m128i stop =
        _mm_or_si128(_mm_or_si128(_mm_cmpeq_epi8(v, quote), _mm_cmpeq_epi8(v, backslash)), _mm_cmpgt_epi8(space, v));
    const auto mask = static_cast<unsigned>(_mm_movemask_epi8(stop));
    if (mask != 0) return p + __builtin_ctz(mask);
    p += 16;
  }
  return p;
}

bool have_avx2() {
  static const bool yes = __builtin_cpu_supports("avx2");
  return yes;
}
#endif

const char* skip_plain(const char* p, const char* end) {
#if defined(__x86_64__)
  p = have_avx2() ? skip_plain_avx2(p, end) : skip_plain_sse2(p, end);
#endif
  while (p < end && plain(static_cast<unsigned char>(*p))) ++p;
  return p;
}

// The closing quote of the string whose text starts at `p`, or null to decline: a backslash
// (an escape), a control character, no closing quote, or bytes that are not UTF-8.
const char* string_end(const char* p, const char* end) {
  const char* const from = p;
  bool non_ascii = false;
  for (p = skip_plain(p, end); p < end; p = skip_plain(p, end)) {
    const auto c = static_cast<unsigned char>(*p);
    if (c == '"') {
      if (non_ascii && !simdjson::validate_utf8(from, static_cast<size_t>(p - from))) return nullptr;
      return p;
    }
    if (c < 0x80) return nullptr;  // a backslash or a control character
    non_ascii = true;
    ++p;
  }
  return nullptr;
}

bool digit(char c) { return c >= '0' && c <= '9'; }

}  // namespace

bool Scanner::long_string(std::string_view& out) {
  const char* close = string_end(p_, end_);
  if (close == nullptr) return false;
  out = std::string_view(p_, static_cast<size_t>(close - p_));
  p_ = close + 1;
  return true;
}

bool Scanner::unchecked_string(std::string_view& out) {
  if (!take('"')) return false;
  const auto* close = static_cast<const char*>(std::memchr(p_, '"', static_cast<size_t>(end_ - p_)));
  if (close == nullptr) return false;
  out = std::string_view(p_, static_cast<size_t>(close - p_));
  p_ = close + 1;
  return true;
}

bool Scanner::number(double& out) {
  ws();
  const char* const from = p_;
  // JSON: int [frac] [exp]; int is 0 or [1-9][0-9]*. No minus sign: capacity is never
  // negative, and "-0" is an integer 0 to simdjson but -0.0 to from_chars.
  const char* q = p_;
  if (q == end_ || !digit(*q)) return false;
  if (*q == '0') {
    ++q;
  } else {
    while (q < end_ && digit(*q)) ++q;
  }
  const bool integer_only = q == end_ || (*q != '.' && *q != 'e' && *q != 'E');
  if (integer_only && q - from > 18) return false;  // simdjson reads those as integers, or refuses them
  if (q < end_ && *q == '.') {
    ++q;
    if (q == end_ || !digit(*q)) return false;
    while (q < end_ && digit(*q)) ++q;
  }
  if (q < end_ && (*q == 'e' || *q == 'E')) {
    ++q;
    if (q < end_ && (*q == '+' || *q == '-')) ++q;
    if (q == end_ || !digit(*q)) return false;
    while (q < end_ && digit(*q)) ++q;
  }
  if (!ends_scalar(q)) return false;
  auto [ptr, ec] = std::from_chars(from, q, out);
  if (ec != std::errc() || ptr != q) return false;  // out of range: left to simdjson
  p_ = q;
  return true;
}

bool Scanner::literal(std::string_view word) {
  ws();
  if (static_cast<size_t>(end_ - p_) < word.size() || std::memcmp(p_, word.data(), word.size()) != 0) return false;
  const char* q = p_ + word.size();
  if (!ends_scalar(q)) return false;
  p_ = q;
  return true;
}

bool Scanner::value(int depth) {
  ws();
  if (p_ == end_) return false;
  switch (*p_) {
    case '"': {
      std::string_view s;
      return string(s);
    }
    case '{':
      if (depth >= kMaxDepth) return false;
      return object([&](std::string_view) { return value(depth + 1); });
    case '[':
      if (depth >= kMaxDepth) return false;
      return array([&] { return value(depth + 1); });
    case 't':
      return literal("true");
    case 'f':
      return literal("false");
    case 'n':
      return literal("null");
    default: {
      double d;
      return number(d);
    }
  }
}

}  // namespace dynamodb_cache::dynamodb::wire::detail
