// Header lists built in place (private). Not thread-safe (one list per caller).
#pragma once

#include <string_view>
#include <vector>

#include "dynamodb_cache/http.h"

namespace dynamodb_cache::http {

// Sets headers[n] to `name: value` and advances n, reusing the entry (and its strings'
// buffers) an earlier request left there: a request kept across calls allocates no header
// once warm. The caller trims `headers` to n when done.
inline void put_header(std::vector<Header>& headers, size_t& n, std::string_view name, std::string_view value) {
  if (n == headers.size()) headers.emplace_back();
  headers[n].name.assign(name);
  headers[n].value.assign(value);
  ++n;
}

// Whether `v` may be sent as a header value (RFC 9110 field-value): no CR, LF, NUL or other
// control character but tab. Every value that becomes a header passes this one check where
// it enters (aws::detail::require_header_value) and again where it is signed, so none can
// add a header line or start a second request. Branch-free, so it vectorises: a session
// token is checked on every request.
inline bool valid_header_value(std::string_view v) {
  unsigned bad = 0;
  for (unsigned char c : v) bad |= static_cast<unsigned>((c < 0x20 && c != '\t') || c == 0x7f);
  return bad == 0;
}

}  // namespace dynamodb_cache::http
