// libFuzzer target: the HTTP/1.1 response parser (src/http/response_parser.h). Arbitrary bytes,
// fed whole and then split at a point the input chooses, must give the same outcome (a
// response or a ProtocolError), stay within the limits, and never crash.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "dynamodb_cache/errors.h"
#include "http/response_parser.h"

namespace {

using dynamodb_cache::http::Response;
using dynamodb_cache::http::ResponseLimits;
using dynamodb_cache::http::ResponseParser;

struct Outcome {
  bool error = false, done = false;
  int status = 0;
  std::string body;
  size_t headers = 0;
};

Outcome run(const char* data, size_t size, size_t split, const ResponseLimits& limits) {
  Outcome o;
  Response resp;
  ResponseParser p(limits);
  p.reset(&resp);
  try {
    size_t used = p.feed(data, split);
    if (!p.done() && used == split) p.feed(data + split, size - split);
    o.done = p.done() || p.on_eof();
  } catch (const dynamodb_cache::ProtocolError&) {
    o.error = true;
    return o;
  }
  if (o.done) {
    o.status = resp.status;
    o.body = resp.body;
    o.headers = resp.headers.size();
    if (resp.body.size() > limits.max_body_bytes) std::abort();
    if (resp.headers.size() > limits.max_header_count) std::abort();
    if (resp.status < 200 || resp.status > 999) std::abort();  // 1xx are skipped, never final
  }
  return o;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  ResponseLimits limits;
  limits.max_header_bytes = 4096;
  limits.max_header_count = 32;
  limits.max_body_bytes = 1 << 16;
  limits.max_chunk_line = 64;
  const char* d = reinterpret_cast<const char*>(data);
  Outcome whole = run(d, size, size, limits);
  size_t split = size == 0 ? 0 : (data[0] * 257u + size) % (size + 1);
  Outcome parts = run(d, size, split, limits);
  // Where the bytes are split between reads must not change the outcome.
  if (whole.error != parts.error || whole.done != parts.done || whole.status != parts.status ||
      whole.body != parts.body || whole.headers != parts.headers)
    std::abort();
  return 0;
}
