// HTTP transport: the one seam between the DynamoDB client and the network.
//
// A Transport sends one request and returns the response, whatever its status: mapping
// statuses to errors belongs to the DynamoDB layer. A Transport throws only for failures
// below HTTP: TransportError (connect, reset, truncated body), TimeoutError, CertificateError
// (the TLS peer could not be verified: never retried), or ProtocolError (not retryable: a
// malformed or badly framed answer, or one larger than HttpOptions::max_response_bytes; the
// connection is closed, never reused).
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "dynamodb_cache/version.h"

namespace dynamodb_cache::http {

struct Header {
  std::string name;
  std::string value;
};

struct Request {
  std::string method = "POST";
  std::string url;              // absolute: scheme://host[:port]/path[?query]
  std::vector<Header> headers;  // sent as given; Content-Length is added by the transport
  std::string body;
  // A pooled connection found closed makes the transport send the request again on a new
  // one. true: also when it died after the whole request went out and before any byte of the
  // answer (most often a server that closed it while idle, but the request may have been
  // processed). false, for a write that must not apply twice: only when nothing was sent;
  // otherwise a TransportError (the client reports an unknown outcome). libcurl resends on
  // its own, so the curl transport sends such a request on a fresh connection.
  bool resend_if_stale = true;
  // Shortens the transport's HttpOptions::request_timeout (and connect_timeout) for this
  // request; zero: the transport's own. For a caller with a deadline of its own (a credentials
  // fetch within an operation's deadline). The built-in transports honour it.
  std::chrono::milliseconds timeout{0};
};

struct Response {
  int status = 0;
  std::vector<Header> headers;  // names lower-cased by the transport
  std::string body;

  // The first header named `lower_name` (lower case), or nullptr.
  const std::string* header(std::string_view lower_name) const noexcept;
};

// Thread-safety: implementations must allow concurrent send() from any number of threads.
// Counters of a transport's connections, for benchmarks and tests. The built-in HTTP/1.1
// client counts; other transports report zeros.
struct TransportStats {
  std::uint64_t connections = 0;      // TCP connections opened
  std::uint64_t tls_handshakes = 0;   // TLS handshakes completed (full or resumed)
  std::uint64_t tls_resumptions = 0;  // of which resumed a previous session
  // The event loops only (ClientOptions::io_threads): socket sends and receives made several
  // to a system call through io_uring, and the system calls that made them (0 and 0 where
  // io_uring is unavailable or DYNAMODB_CACHE_IO_URING=0).
  std::uint64_t batched_socket_calls = 0;
  std::uint64_t batches = 0;
};

class Transport {
 public:
  virtual ~Transport() = default;
  // Sends `request` and returns the response. Throws TransportError / TimeoutError.
  virtual Response send(const Request& request) = 0;
  // The same, with the response put in `out`, whose buffers (headers, body) are reused: a
  // caller keeping one Response per thread lets the built-in client answer a keep-alive
  // request without allocating. After a throw `out` holds no usable response. The default
  // assigns send(request).
  virtual void send_into(const Request& request, Response& out) { out = send(request); }
  // Thread-safe; a snapshot.
  virtual TransportStats stats() const { return {}; }
};

// DynamoDB's largest answer is a 16 MB BatchGetItem (item sizes); base64 of binary values
// and the JSON around them add up to a third: 32 MiB leaves room for that and no more.
inline constexpr std::size_t kDefaultMaxResponseBytes = std::size_t{32} << 20;

// Options of both transports below.
struct HttpOptions {
  // Time allowed to establish a TCP (+TLS) connection. Default 2 s.
  std::chrono::milliseconds connect_timeout{2000};
  // Time allowed for one whole request, connect included. Default 10 s. (The plain-http
  // client bounds each read by it and checks the total between reads, so a server that
  // trickles bytes is cut off within twice this at worst.)
  std::chrono::milliseconds request_timeout{10000};
  // Idle connections kept for reuse (one per pooled handle). Default 64.
  std::size_t max_idle_connections = 64;
  // Verify the TLS peer and host name. Default true; turn off only for tests.
  bool verify_tls = true;
  // CA bundle file (PEM) trusted instead of the system's store; empty = the system's.
  std::string ca_file;
  // The largest response body accepted, in bytes (after de-chunking); a larger one is a
  // ProtocolError, not retryable, and its connection is closed. Whatever the framing (length,
  // chunks, or to the end of the connection), memory stays bounded by about this. Header
  // sections are bounded separately (64 KiB, 128 fields). Default kDefaultMaxResponseBytes,
  // for DynamoDB; credential endpoints answer a few KB and should use a small cap.
  std::size_t max_response_bytes = kDefaultMaxResponseBytes;
  // Proxies: libcurl honours http_proxy, https_proxy, all_proxy and no_proxy from the
  // environment; nothing needs setting here.
  std::string user_agent = "dynamodb-cache-cpp/" DYNAMODB_CACHE_VERSION;  // this library's version
};

// An absolute http(s) URL taken apart. Userinfo ("user:pw@") is rejected, so it never reaches
// a message; so are ports outside 1-65535, empty hosts, fragments and other schemes.
struct Url {
  bool https = false;
  std::string host;  // without brackets for IPv6 literals
  int port = 0;      // explicit, or the scheme's default (80, 443)
  std::string path;  // request target: path plus query, "/" when the URL has none
  // "scheme://host[:port]" (IPv6 bracketed, port only when explicit): for messages.
  std::string origin;
};
// Throws ConfigError (message naming `what`, e.g. "endpoint", and never the userinfo).
Url parse_url(const std::string& url, const char* what = "URL");

// The transport the DynamoDB client uses unless given one: a lean built-in HTTP/1.1 client
// (keep-alive pool, TLS through OpenSSL for https://: peer and host name always verified
// unless verify_tls is false, SNI, TLS 1.2 minimum, sessions resumed across reconnects),
// which costs a fraction of libcurl's CPU per request; requests for which a proxy is
// configured (http_proxy / https_proxy / all_proxy) go through libcurl (below). Thread-safe.
std::shared_ptr<Transport> make_default_transport(const HttpOptions& options = {});

// A libcurl transport keeping a pool of easy handles; each handle keeps its connection alive,
// so connections are reused across calls and threads. Thread-safe.
std::shared_ptr<Transport> make_curl_transport(const HttpOptions& options = {});

}  // namespace dynamodb_cache::http
