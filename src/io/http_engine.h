// HTTP/1.1 over non-blocking sockets on one EventLoop (private): plain http and TLS
// (OpenSSL on the non-blocking socket), a keep-alive pool per loop, the same bounds and
// strict framing as the blocking transport (http::ResponseParser), and a connection in an
// unexpected state (bytes after an answer, a close, an error, a timeout) closed, never reused.
//
// Thread-safety: one engine per loop; every member function on that loop's thread only.
#pragma once

#include <exception>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "dynamodb_cache/http.h"
#include "http/tls.h"
#include "io/event_loop.h"
#include "io/syscall_batch.h"

namespace dynamodb_cache::io {

class HttpEngine {
 public:
  // Called once per send(), on the loop thread: the response (status whatever it is), or
  // error set (TransportError, TimeoutError, CertificateError, ProtocolError, or
  // CancelledError from shutdown()) and response null.
  using Done = std::function<void(http::Response* response, std::exception_ptr error)>;

  // `tls` is shared by the engines of one client (one session cache); made lazily when null.
  HttpEngine(EventLoop& loop, const http::HttpOptions& options, std::shared_ptr<http::TlsContext> tls);
  // Closes every connection; call shutdown() first to complete pending sends. On the loop
  // thread, or once the loop's thread has ended.
  ~HttpEngine();
  HttpEngine(const HttpEngine&) = delete;
  HttpEngine& operator=(const HttpEngine&) = delete;

  // Sends `request` (bounded by HttpOptions::connect_timeout and request_timeout); `done`
  // is always called, never from within send() itself.
  void send(const http::Request& request, Done done);
  // Completes every send under way with an error made by `make_error` (one each) and closes
  // every connection.
  void shutdown(const std::function<std::exception_ptr()>& make_error);

  http::TransportStats stats() const;

  // Called on the loop thread whenever the engine is about to take the sends queued for one
  // batched system call (see batching()): work that queues sends, such as requests a caller
  // defers to the end of the iteration and merges (the DynamoDB client's batched gets), runs
  // there, so what answers' callbacks started goes out in the same system call. Set once,
  // before the first send.
  void set_before_send(std::function<void()> f) { before_send_ = std::move(f); }

  class Conn;

 private:
  friend class Conn;
  void start(Conn* c);
  void finished(Conn* c, bool keep);
  void close(Conn* c);
  int connect_to(const http::Url& url, const std::string& where);
  // Adds a connection being opened to `url` (already connected or in progress on `fd`).
  Conn* add_conn(int fd, std::shared_ptr<const http::Url> url);
  // Sends and receives (http and TLS: then OpenSSL's records, through http::TlsSocket) are
  // deferred to the end of the loop's iteration and made in one system call per iteration
  // (SyscallBatch), where io_uring is available: flush() is the loop's before-wait hook.
  // Connecting and TLS handshakes make their own calls.
  bool batching();
  std::function<void()> before_send_;  // set_before_send
  void queue_send(Conn* c);
  void queue_recv(Conn* c);
  bool flush();

  EventLoop& loop_;
  const http::HttpOptions options_;
  std::shared_ptr<http::TlsContext> tls_;
  std::vector<std::unique_ptr<Conn>> conns_;            // every open connection
  std::map<std::string, std::vector<Conn*>> idle_;      // origin -> idle connections (LIFO)
  size_t idle_count_ = 0;
  std::vector<std::unique_ptr<Conn>> graveyard_;        // closed; freed after the event batch
  std::unique_ptr<char[]> buf_;                         // receive buffer
  std::string out_scratch_;  // where send() builds a request (its buffer traded with a connection's)
  std::vector<http::Header> spare_headers_;  // a delivered answer's, reused by the next (Conn::write)
  // The last URL sent to, parsed: a client sends every request to one endpoint, so each
  // request's URL is parsed (and its origin copied) once, not per request.
  std::string url_text_;
  std::shared_ptr<const http::Url> url_;
  http::TransportStats stats_;
  // Deferred plain-http system calls (batching()): connections waiting for their send or
  // receive, in order; a closed connection's entry is nulled (close()).
  bool batch_tried_ = false;
  std::unique_ptr<SyscallBatch> batch_;
  uint64_t hook_ = 0;
  std::vector<Conn*> send_queue_, recv_queue_, sending_, batch_conns_;
  std::vector<SyscallBatch::Op> ops_;
  std::unique_ptr<char[]> slots_;  // one receive slot per batched receive
};

// A blocking http::Transport over one event loop and its engine: send() hands the request to
// the loop thread and waits. It puts the engine behind the Transport interface, so every
// transport test (framing, bounds, timeouts, certificates, resumption) runs against it too.
// Thread-safe.
std::shared_ptr<http::Transport> make_event_loop_transport(const http::HttpOptions& options);

}  // namespace dynamodb_cache::io
