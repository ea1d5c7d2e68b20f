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

}  // namespace dynamodb_cache::http
