// A strict JSON reader for the answers read on every get (private; wire.cc, get_batch.cc):
// GetItem's and BatchGetItem's, in the compact shape DynamoDB writes them, read without
// building a simdjson document (parsing each answer with simdjson was the largest cost of a
// batched get: two parses per key, ~10 k instructions of ~34 k).
//
// It accepts a subset of JSON and declines everything else: a string with an escape, nesting
// deeper than kMaxDepth, and anything malformed. A decoder built on it returns false where it
// declines, and its caller then reads the body with simdjson, as before: so a body is either
// read here exactly as the simdjson reading reads it, or by that reading itself (errors
// included). Every byte accepted is validated as simdjson validates it (JSON grammar, UTF-8,
// no control characters in strings), since the simdjson reading would reject the body
// otherwise. Not thread-safe per object; no allocation.
#pragma once

#include <cstddef>
#include <string_view>

#if defined(__x86_64__)
#include <emmintrin.h>
#endif

namespace dynamodb_cache::dynamodb::wire::detail {

// JSON's whitespace (simdjson's too): space, tab, line feed, carriage return.
inline bool json_space(char c) { return c == ' ' || c == '\n' || c == '\r' || c == '\t'; }

class Scanner {
 public:
  // Nesting deeper than this is declined (simdjson allows 1024): DynamoDB's items nest at
  // most 32 levels, and a bound keeps the recursion of value() short.
  static constexpr int kMaxDepth = 40;

  explicit Scanner(std::string_view text) : p_(text.data()), end_(text.data() + text.size()) {}

  // After JSON whitespace: true, and past it, when the next byte is `c`.
  bool take(char c) {
    ws();
    if (p_ < end_ && *p_ == c) {
      ++p_;
      return true;
    }
    return false;
  }
  // After JSON whitespace: the next byte is `c` (not taken).
  bool next_is(char c) {
    ws();
    return p_ < end_ && *p_ == c;
  }
  // After JSON whitespace: a number starts here (a digit or a minus sign).
  bool next_is_number() {
    ws();
    return p_ < end_ && ((*p_ >= '0' && *p_ <= '9') || *p_ == '-');
  }
  // Only JSON whitespace is left.
  bool at_end() {
    ws();
    return p_ == end_;
  }
  // Where the next token starts (after whitespace), and where the last one read ended: for a
  // caller that keeps a value's text.
  const char* here() {
    ws();
    return p_;
  }
  const char* pos() const { return p_; }

  // A string without escapes: its text between the quotes (which is its value).
  bool string(std::string_view& out) {
    if (!take('"')) return false;
#if defined(__x86_64__)
    // Most strings here are names, types and numbers of a few bytes: when the first 16
    // bytes hold the closing quote and only plain bytes before it, that is the string.
    if (end_ - p_ >= 16) {
      const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p_));
      const auto stops = static_cast<unsigned>(_mm_movemask_epi8(_mm_or_si128(
          _mm_or_si128(_mm_cmpeq_epi8(v, _mm_set1_epi8('"')), _mm_cmpeq_epi8(v, _mm_set1_epi8('\\'))),
          _mm_cmpgt_epi8(_mm_set1_epi8(0x20), v))));  // signed: a control character or a byte >= 0x80
      if (stops != 0 && p_[__builtin_ctz(stops)] == '"') {
        out = std::string_view(p_, static_cast<size_t>(__builtin_ctz(stops)));
        p_ += out.size() + 1;
        return true;
      }
    }
#endif
    return long_string(out);
  }
  // A string whose text the caller then refuses unless every byte of it is plain (printable
  // ASCII other than the quote and the backslash; base64, say), which this leaves unchecked:
  // the text up to the next quote. A text so refused may not be this string's (an escaped
  // quote ends it early); one accepted is, and is what string() would give.
  bool unchecked_string(std::string_view& out);
  // A number (JSON's grammar), as simdjson gives it as a double; declines numbers simdjson
  // would read otherwise than from_chars does (a minus sign, more than 18 integer digits).
  bool number(double& out);
  // Any value, validated and skipped.
  bool value(int depth = 0);

  // An object: `on_member(name)` for each member, with the scanner at its value, which it
  // must read; false as soon as it does.
  template <class OnMember>
  bool object(OnMember&& on_member) {
    if (!take('{')) return false;
    if (take('}')) return true;
    do {
      std::string_view name;
      if (!string(name) || !take(':') || !on_member(name)) return false;
    } while (take(','));
    return take('}');
  }
  // An array: `on_element()` for each element, with the scanner at it.
  template <class OnElement>
  bool array(OnElement&& on_element) {
    if (!take('[')) return false;
    if (take(']')) return true;
    do {
      if (!on_element()) return false;
    } while (take(','));
    return take(']');
  }

  // A literal (true, false, null) spelt `word`.
  bool literal(std::string_view word);

 private:
  bool long_string(std::string_view& out);  // string() past its opening quote
  // A number or literal ends at `q`: the text's end, a separator or whitespace (simdjson
  // refuses "1x", "01", "truex").
  bool ends_scalar(const char* q) const { return q == end_ || *q == ',' || *q == '}' || *q == ']' || json_space(*q); }
  void ws() {
    while (p_ < end_ && json_space(*p_)) ++p_;
  }

  const char* p_;
  const char* end_;
};

}  // namespace dynamodb_cache::dynamodb::wire::detail
