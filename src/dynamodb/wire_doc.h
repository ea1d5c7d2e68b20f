// The JSON parsing the wire codec's decoders share (private; wire.cc): one simdjson parser
// per thread and the document it parsed. For decoders kept outside wire.cc (get_batch.cc).
#pragma once

#include <simdjson.h>

#include <string>

namespace dynamodb_cache::dynamodb::wire::detail {

// Throws ProtocolError (not retryable) "malformed DynamoDB response: <what>".
[[noreturn]] void malformed(const std::string& what);

// One simdjson parser per thread. It keeps the capacity of the largest document it parsed, so
// after a large answer (up to HttpOptions::max_response_bytes) a fresh one replaces it once
// that document is decoded: a thread does not keep ~10x a past answer's size for good.
simdjson::dom::parser& thread_parser();
void shrink_thread_parser();

// A parsed document; valid until it goes out of scope (and while this thread parses nothing
// else), then gives back an oversized parser.
struct Doc : simdjson::dom::element {
  ~Doc() { shrink_thread_parser(); }
};

// The document of `body`, an object; the caller gives back an oversized parser when done
// with it (shrink_thread_parser), except when this throws. Throws malformed's ProtocolError.
simdjson::dom::element parse_object(const std::string& body);
Doc parse(const std::string& body);

}  // namespace dynamodb_cache::dynamodb::wire::detail
