#include "http/response_parser.h"

#include <algorithm>
#include <array>
#include <cstring>

#include "dynamodb_cache/errors.h"
#include "util/text.h"

namespace dynamodb_cache::http {

namespace {

// RFC 9110 §5.6.2 token characters, by byte: a table, because every header name's characters
// are checked (strchr per '-' was measurable in a get's profile).
constexpr std::array<bool, 256> kTchar = [] {
  std::array<bool, 256> t{};
  for (int c = '0'; c <= '9'; ++c) t[static_cast<size_t>(c)] = true;
  for (int c = 'a'; c <= 'z'; ++c) t[static_cast<size_t>(c)] = true;
  for (int c = 'A'; c <= 'Z'; ++c) t[static_cast<size_t>(c)] = true;
  for (char c : std::string_view("!#$%&'*+-.^_`|~")) t[static_cast<unsigned char>(c)] = true;
  return t;
}();

bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    char x = a[i], y = b[i];
    if (x >= 'A' && x <= 'Z') x = static_cast<char>(x + 32);
    if (y >= 'A' && y <= 'Z') y = static_cast<char>(y + 32);
    if (x != y) return false;
  }
  return true;
}

std::string_view trim(std::string_view v) {
  while (!v.empty() && (v.front() == ' ' || v.front() == '\t')) v.remove_prefix(1);
  while (!v.empty() && (v.back() == ' ' || v.back() == '\t')) v.remove_suffix(1);
  return v;
}

// Calls f(element) for each comma-separated, trimmed, non-empty element of a header value.
template <class F>
void for_each_element(std::string_view v, F f) {
  while (!v.empty()) {
    size_t comma = v.find(',');
    std::string_view e = trim(v.substr(0, comma));
    if (!e.empty()) f(e);
    if (comma == std::string_view::npos) break;
    v.remove_prefix(comma + 1);
  }
}

// A printable, bounded excerpt of peer bytes for error messages.
std::string excerpt(std::string_view s) { return util::printable(s, 40); }

}  // namespace

int parse_status_line(std::string_view line) noexcept {
  // HTTP-version SP 3DIGIT [SP reason-phrase]; the reason may be empty, and some servers
  // omit the space before an empty reason.
  if (line.size() < 12 || line.substr(0, 7) != "HTTP/1." || line[7] < '0' || line[7] > '9' || line[8] != ' ' ||
      (line.size() > 12 && line[12] != ' '))
    return -1;
  int status = 0;
  for (size_t i = 9; i < 12; ++i) {
    if (line[i] < '0' || line[i] > '9') return -1;
    status = status * 10 + (line[i] - '0');
  }
  return status < 100 ? -1 : status;
}

std::optional<uint64_t> parse_content_length(std::string_view value) noexcept {
  std::optional<uint64_t> out;
  bool ok = true;
  for_each_element(value, [&](std::string_view e) {
    uint64_t v = 0;
    for (char c : e) {
      if (c < '0' || c > '9' || v > (UINT64_MAX - 9) / 10) {
        ok = false;
        return;
      }
      v = v * 10 + static_cast<uint64_t>(c - '0');
    }
    if (out && *out != v) ok = false;
    out = v;
  });
  return ok ? out : std::nullopt;
}

bool is_chunked_only(std::string_view value) noexcept { return iequals(trim(value), "chunked"); }

void ResponseParser::fail(const std::string& what) const { throw ProtocolError(what, false); }

void ResponseParser::reset(Response* out) {
  out_ = out;
  out_->status = 0;
  kept_ = 0;  // out_->headers' entries are overwritten, then trimmed at the end of the header section
  out_->body.clear();
  state_ = State::kStatus;
  line_.clear();
  started_ = false;
  keep_alive_ = false;
  http10_ = false;
  interim_ = false;
  chunked_ = false;
  has_length_ = false;
  length_ = remaining_ = 0;
  head_bytes_ = header_count_ = 0;
}

void ResponseParser::count_head_bytes(size_t n) {
  head_bytes_ += n;
  if (head_bytes_ > limits_.max_header_bytes)
    fail("response headers too large (more than " + std::to_string(limits_.max_header_bytes) + " bytes)");
}

std::string_view ResponseParser::take_line(const char*& p, const char* end, size_t max, bool& complete) {
  const char* nl = static_cast<const char*>(std::memchr(p, '\n', static_cast<size_t>(end - p)));
  size_t n = nl ? static_cast<size_t>(nl - p) + 1 : static_cast<size_t>(end - p);
  if (line_.size() + n > max + 2) fail("response line too long (more than " + std::to_string(max) + " bytes)");
  std::string_view line;
  if (nl && line_.empty()) {
    line = std::string_view(p, n);  // the common case: the whole line is in this read
  } else {
    line_.append(p, n);
    line = line_;
  }
  p += n;
  complete = nl != nullptr;
  if (!complete) return {};
  if (line.size() < 2 || line[line.size() - 2] != '\r') fail("line not terminated by CRLF");
  line.remove_suffix(2);
  if (line.find('\r') != std::string_view::npos) fail("bare CR in a line");
  return line;
}

size_t ResponseParser::feed(const char* data, size_t n) {
  const char* p = data;
  const char* const end = data + n;
  if (n > 0 && state_ != State::kDone) started_ = true;
  while (p < end && state_ != State::kDone) {
    switch (state_) {
      case State::kStatus:
      case State::kHeader:
      case State::kTrailer: {
        const char* before = p;
        bool complete = false;
        std::string_view line = take_line(p, end, limits_.max_header_bytes, complete);
        count_head_bytes(static_cast<size_t>(p - before));
        if (!complete) break;
        if (state_ == State::kStatus) {
          on_status_line(line);
          state_ = State::kHeader;
        } else if (line.empty()) {
          if (state_ == State::kTrailer) state_ = State::kDone;
          else on_headers_end();
        } else {
          on_header_line(line);
        }
        line_.clear();
        break;
      }
      case State::kChunkSize: {
        bool complete = false;
        std::string_view line = take_line(p, end, limits_.max_chunk_line, complete);
        if (!complete) break;
        on_chunk_size_line(line);
        line_.clear();
        break;
      }
      case State::kBodyLength:
      case State::kChunkData: {
        size_t take = static_cast<size_t>(std::min<uint64_t>(remaining_, static_cast<uint64_t>(end - p)));
        append_body(p, take);
        p += take;
        remaining_ -= take;
        if (remaining_ == 0) state_ = state_ == State::kBodyLength ? State::kDone : State::kChunkDataEnd;
        break;
      }
      case State::kChunkDataEnd: {
        // Exactly CRLF after a chunk's data: a peer that lies about a chunk size is caught
        // here, at once, instead of hanging on bytes that will never come.
        line_.push_back(*p++);
        if (line_.size() == 2) {
          if (line_ != "\r\n") fail("chunk data not followed by CRLF (wrong chunk size)");
          line_.clear();
          state_ = State::kChunkSize;
        } else if (line_[0] != '\r') {
          fail("chunk data not followed by CRLF (wrong chunk size)");
        }
        break;
      }
      case State::kBodyEof: {
        append_body(p, static_cast<size_t>(end - p));
        p = end;
        break;
      }
      case State::kDone: break;
    }
  }
  return static_cast<size_t>(p - data);
}

bool ResponseParser::on_eof() {
  if (state_ == State::kBodyEof) {
    state_ = State::kDone;
    keep_alive_ = false;
    return true;
  }
  return state_ == State::kDone;
}

void ResponseParser::on_status_line(std::string_view line) {
  const int status = parse_status_line(line);
  if (status < 0) fail("malformed status line '" + excerpt(line) + "'");
  if (status == 101) fail("unexpected 101 Switching Protocols (no upgrade was asked for)");
  out_->status = status;
  http10_ = line[7] == '0';
  keep_alive_ = !http10_;
  interim_ = status < 200;
}

void ResponseParser::on_header_line(std::string_view line) {
  if (++header_count_ > limits_.max_header_count)
    fail("too many response headers (more than " + std::to_string(limits_.max_header_count) + ")");
  if (line[0] == ' ' || line[0] == '\t') fail("obsolete header line folding");
  size_t colon = line.find(':');
  if (colon == std::string_view::npos || colon == 0) fail("malformed header line '" + excerpt(line) + "'");
  std::string_view name = line.substr(0, colon);
  for (char c : name)
    if (!kTchar[static_cast<unsigned char>(c)]) fail("malformed header name '" + excerpt(name) + "'");
  std::string_view value = trim(line.substr(colon + 1));
  if (value.find('\0') != std::string_view::npos) fail("NUL in a header value");
  if (interim_ || state_ == State::kTrailer) return;  // interim and trailer fields are not kept

  if (iequals(name, "content-length")) {
    // 1*DIGIT, possibly repeated as a list or in several fields: all must agree (RFC 9112 §6.3).
    auto v = parse_content_length(value);
    if (!v) fail("malformed Content-Length '" + excerpt(value) + "'");
    if (has_length_ && *v != length_) fail("conflicting Content-Length values");
    has_length_ = true;
    length_ = *v;
  } else if (iequals(name, "transfer-encoding")) {
    // Only chunked is understood; a coding applied after chunked, or any other, cannot be
    // framed or decoded here.
    if (chunked_ || !is_chunked_only(value)) fail("unsupported Transfer-Encoding '" + excerpt(value) + "'");
    chunked_ = true;
  } else if (iequals(name, "connection")) {
    for_each_element(value, [&](std::string_view e) {
      if (iequals(e, "close")) keep_alive_ = false;
      else if (iequals(e, "keep-alive") && http10_) keep_alive_ = true;
    });
  }
  // Into the entry a previous response on this Response left (its strings' buffers reused), or
  // a new one.
  if (kept_ == out_->headers.size()) out_->headers.emplace_back();
  Header& h = out_->headers[kept_++];
  h.name.assign(name);
  for (auto& ch : h.name)
    if (ch >= 'A' && ch <= 'Z') ch = static_cast<char>(ch + ('a' - 'A'));
  h.value.assign(value);
}

void ResponseParser::on_headers_end() {
  if (interim_) {  // 1xx: skip it, the final answer follows on the same connection
    interim_ = false;
    out_->status = 0;
    state_ = State::kStatus;
    return;
  }
  out_->headers.resize(kept_);  // drop what a previous response left
  const int s = out_->status;
  if (s == 204 || s == 304) {
    // No body by definition (a HEAD request's answer too, but this client sends none).
    if (chunked_ || (has_length_ && length_ != 0 && s == 204)) keep_alive_ = false;
    state_ = State::kDone;
    return;
  }
  if (chunked_) {
    // Both framings: Transfer-Encoding wins, and the connection is not trusted afterwards.
    if (has_length_) keep_alive_ = false;
    state_ = State::kChunkSize;
    return;
  }
  if (has_length_) {
    if (length_ > limits_.max_body_bytes)
      fail("response too large (Content-Length " + std::to_string(length_) + " > limit " +
           std::to_string(limits_.max_body_bytes) + " bytes)");
    // Spare capacity after the body lets the JSON parser skip a copy (simdjson's padding).
    out_->body.reserve(static_cast<size_t>(length_) + 64);
    remaining_ = length_;
    state_ = length_ == 0 ? State::kDone : State::kBodyLength;
    return;
  }
  keep_alive_ = false;  // the body runs to the end of the connection
  state_ = State::kBodyEof;
}

void ResponseParser::on_chunk_size_line(std::string_view line) {
  // chunk-size [ chunk-ext ]; extensions are ignored.
  size_t semi = line.find(';');
  std::string_view hex = line.substr(0, semi);
  while (!hex.empty() && (hex.back() == ' ' || hex.back() == '\t')) hex.remove_suffix(1);
  if (hex.empty()) fail("malformed chunk size '" + excerpt(line) + "'");
  uint64_t size = 0;
  for (char c : hex) {
    int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
    if (d < 0) fail("malformed chunk size '" + excerpt(line) + "'");
    if (size > (UINT64_MAX >> 4)) fail("chunk size out of range");
    size = size * 16 + static_cast<uint64_t>(d);
  }
  if (size == 0) {
    state_ = State::kTrailer;
    return;
  }
  if (size > limits_.max_body_bytes - out_->body.size())
    fail("response too large (chunked body over the limit of " + std::to_string(limits_.max_body_bytes) +
         " bytes)");
  remaining_ = size;
  state_ = State::kChunkData;
}

bool append_bounded(std::string& body, const char* data, size_t n, size_t max) {
  if (body.size() > max || n > max - body.size()) return false;
  if (body.capacity() < body.size() + n + 64)  // keep simdjson's padding spare
    body.reserve(std::max(body.size() + n + 64, std::min(body.capacity() * 2, max + 64)));
  body.append(data, n);
  return true;
}

void ResponseParser::append_body(const char* p, size_t n) {
  if (!append_bounded(out_->body, p, n, limits_.max_body_bytes))
    fail("response too large (body over the limit of " + std::to_string(limits_.max_body_bytes) + " bytes)");
}

}  // namespace dynamodb_cache::http
