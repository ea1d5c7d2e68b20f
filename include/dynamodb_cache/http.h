// HTTP transport: the one seam between the DynamoDB client and the network.
//
// A Transport sends one request and returns the response, whatever its status: mapping
// statuses to errors belongs to the DynamoDB layer. A Transport throws only for failures
// below HTTP: TransportError (connect, reset, truncated body) or TimeoutError.
#pragma once

#include <chrono>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

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
};

struct Response {
  int status = 0;
  std::vector<Header> headers;  // names lower-cased by the transport
  std::string body;

  // The first header named `lower_name` (lower case), or nullptr.
  const std::string* header(std::string_view lower_name) const noexcept;
};

// Thread-safety: implementations must allow concurrent send() from any number of threads.
class Transport {
 public:
  virtual ~Transport() = default;
  // Sends `request` and returns the response. Throws TransportError / TimeoutError.
  virtual Response send(const Request& request) = 0;
};

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
  // CA bundle file; empty = libcurl's default.
  std::string ca_file;
  // Proxies: libcurl honours http_proxy, https_proxy, all_proxy and no_proxy from the
  // environment; nothing needs setting here.
  std::string user_agent = "dynamodb-cache-cpp/0.1";
};

// The transport the DynamoDB client uses unless given one: https:// and proxied requests go
// through libcurl (below); plain http:// requests without a proxy (a local DynamoDB, a
// sidecar) through a lean built-in HTTP/1.1 client with the same pooling and timeouts,
// which costs a fraction of libcurl's CPU per request. Thread-safe.
std::shared_ptr<Transport> make_default_transport(const HttpOptions& options = {});

// A libcurl transport keeping a pool of easy handles; each handle keeps its connection alive,
// so connections are reused across calls and threads. Thread-safe.
std::shared_ptr<Transport> make_curl_transport(const HttpOptions& options = {});

}  // namespace dynamodb_cache::http
