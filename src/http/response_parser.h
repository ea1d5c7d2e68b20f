// An HTTP/1.1 response parser (private): bytes in, one final response out, or a typed error.
//
// Pure: no I/O, no clock. The plain-http transport feeds it what it receives; the fuzz target
// (fuzz/http_response_fuzz.cc) feeds it arbitrary bytes. Everything it keeps is bounded by
// ResponseLimits, whatever the peer sends.
//
// Strict framing (RFC 9112): a status line "HTTP/1.<d> <3 digits>[ <reason>]"; header names are
// tokens with no space before the colon; no obsolete line folding; every line ends in CRLF;
// Content-Length is digits only, and several Content-Length values must agree; the only
// Transfer-Encoding understood is chunked (and it must be the last coding); chunk sizes are
// hex digits and every chunk's data ends in CRLF. Interim 1xx answers (100 Continue, 103 Early
// Hints) are skipped (RFC 9110 §15.2); their bytes count toward the header bound, so an
// endless stream of them ends in an error too. Anything else is a ProtocolError, not
// retryable (the same peer would say the same again): the caller must close the connection.
//
// Thread-safety: none; one parser per connection at a time. Reusable: reset() keeps buffers.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "dynamodb_cache/http.h"

namespace dynamodb_cache::http {

struct ResponseLimits {
  // Status lines plus header sections (interim 1xx answers and chunked trailers included),
  // in bytes. Real DynamoDB answers carry well under 1 KB of headers.
  std::size_t max_header_bytes = 64 * 1024;
  // Header fields (interim answers and trailers included).
  std::size_t max_header_count = 128;
  // Body bytes after de-chunking (HttpOptions::max_response_bytes).
  std::size_t max_body_bytes = kDefaultMaxResponseBytes;
  // One chunk-size line with its extensions.
  std::size_t max_chunk_line = 1024;
};

// The framing rules, also applied by the libcurl transport's header callback:
// The status code of an HTTP/1.x status line, or -1 if it is malformed.
int parse_status_line(std::string_view line) noexcept;
// A Content-Length value (1*DIGIT, or a list of equal ones), or nullopt if malformed.
std::optional<std::uint64_t> parse_content_length(std::string_view value) noexcept;
// True when a Transfer-Encoding value is exactly "chunked" (the only coding understood).
bool is_chunked_only(std::string_view value) noexcept;

// Appends to a response body unless that would take it past `max` bytes (then returns false
// and leaves it unchanged). Growth is geometric but capped, so the body's capacity never
// exceeds max + 64 (the 64 spare bytes let simdjson parse it without a copy).
bool append_bounded(std::string& body, const char* data, std::size_t n, std::size_t max);

class ResponseParser {
 public:
  explicit ResponseParser(const ResponseLimits& limits = {}) : limits_(limits) {}

  // Starts a new response; `out` receives it, its buffers reused: the status and body are
  // cleared here, its header entries are overwritten as fields arrive and the rest dropped
  // at the end of the final header section (until then, and after a throw, `out->headers`
  // may hold a previous response's fields).
  void reset(Response* out);

  // Consumes bytes of the response; returns how many were used. Fewer than `n` only once the
  // response is complete (done()): the rest belongs to whatever follows, which on a
  // keep-alive connection is unexpected. Throws ProtocolError (not retryable) on malformed
  // or oversized input; after a throw the parser is unusable until reset().
  std::size_t feed(const char* data, std::size_t n);

  // The peer closed the connection. Completes a body delimited by the end of the connection;
  // otherwise the response is truncated: returns false (and done() stays false).
  bool on_eof();

  bool done() const noexcept { return state_ == State::kDone; }
  // No byte of a response was consumed yet (a closed pooled connection, not a truncation).
  bool started() const noexcept { return started_; }
  // REQUIRES done(). False when the connection must not carry another request: the peer
  // said close, HTTP/1.0 without keep-alive, or the body ran to the end of the connection.
  bool keep_alive() const noexcept { return keep_alive_; }
  // Bytes of body the current Content-Length or chunk still expects (0 otherwise): lets a
  // caller size its reads.
  std::uint64_t body_expected() const noexcept { return remaining_; }

 private:
  enum class State { kStatus, kHeader, kBodyLength, kChunkSize, kChunkData, kChunkDataEnd, kTrailer, kBodyEof, kDone };

  // Gathers one CRLF-terminated line; returns it (CRLF stripped) once complete, else sets
  // `complete` false having consumed all input. Bounded by `max`.
  std::string_view take_line(const char*& p, const char* end, std::size_t max, bool& complete);
  void on_status_line(std::string_view line);
  void on_header_line(std::string_view line);
  void on_headers_end();
  void on_chunk_size_line(std::string_view line);
  void append_body(const char* p, std::size_t n);
  void count_head_bytes(std::size_t n);
  [[noreturn]] void fail(const std::string& what) const;

  ResponseLimits limits_;
  Response* out_ = nullptr;
  State state_ = State::kDone;
  std::string line_;  // a partial line carried between feeds
  bool started_ = false;
  bool keep_alive_ = false;
  bool http10_ = false;
  bool interim_ = false;       // the header section being read belongs to a 1xx answer
  bool chunked_ = false;
  bool has_length_ = false;
  std::uint64_t length_ = 0;    // declared Content-Length
  std::uint64_t remaining_ = 0; // body bytes still expected (length or current chunk)
  std::size_t head_bytes_ = 0;
  std::size_t header_count_ = 0;
  std::size_t kept_ = 0;  // header fields of the final answer stored in out_->headers so far
};

}  // namespace dynamodb_cache::http
