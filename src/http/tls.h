// TLS through OpenSSL for the built-in HTTP/1.1 clients (private): the blocking transport
// (plain_transport.cc) and the event-loop engine (io/http_engine.cc) share it, so the two
// verify, resume sessions and report failures alike.
#pragma once

#include <map>
#include <mutex>
#include <string>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include "dynamodb_cache/http.h"

namespace dynamodb_cache::http {

class TlsContext;

// What an SSL* of these clients reads and writes through: a connected socket (blocking or
// not), the errno of the socket's last failed I/O (OpenSSL's error queue does not keep it),
// and where a session ticket it receives is filed. Must outlive the SSL* made for it.
struct TlsSocket {
  int fd = -1;
  int last_errno = 0;
  TlsContext* ctx = nullptr;
  std::string key;  // the session cache's key (origin)
  // The event loop's batched system calls (io/http_engine.cc); the blocking transport leaves
  // these alone. While `in_batched`, reads are served from a receive the engine already made:
  // `in_result` is what it returned (bytes, 0 at end of stream, -errno), `in`/`in_len` the
  // bytes not yet read; once they are used up, a receive shorter than `in_capacity` (the
  // socket was emptied) makes the next read say "retry" without a system call, and a full
  // one lets it read the socket. While `out` is set, writes are appended to it (sent later).
  bool in_batched = false;
  long in_result = 0;
  const char* in = nullptr;
  size_t in_len = 0;
  size_t in_capacity = 0;
  std::string* out = nullptr;
};

// Empties this thread's OpenSSL error queue before an SSL_read/SSL_write whose failure is
// read with SSL_get_error (which reports SSL_ERROR_SSL for any error left queued). Cheap when
// it is already empty, as it is on every request but one after a failure. ERR_clear_error
// itself resets all 16 slots of the queue (32 frees of null pointers) whatever they hold:
// ~840 instructions a call, two calls per get over the event loop (callgrind: 1.7k of the
// 19k instructions TLS added to a get; perf: ~0.3 us of its ~3.5 us).
inline void clear_tls_errors() {
  if (ERR_peek_error() != 0) ERR_clear_error();
}

// One SSL_CTX (trust store, protocol floor: TLS 1.2) and the newest session per origin.
// Thread-safe.
class TlsContext {
 public:
  // Throws ConfigError for an unreadable CA bundle, TransportError if OpenSSL fails.
  explicit TlsContext(const HttpOptions& o);
  ~TlsContext();
  TlsContext(const TlsContext&) = delete;
  TlsContext& operator=(const TlsContext&) = delete;

  // A client session over `s` (peer and host name verification unless verify_tls is false,
  // SNI for names, the origin's last session offered for resumption), ready for SSL_connect.
  // Its I/O goes through send()/recv() with MSG_NOSIGNAL (no SIGPIPE) and keeps the socket's
  // blocking mode. Free it with free_session(). Throws TransportError.
  SSL* new_session(TlsSocket* s, const Url& url, const std::string& where);
  // Frees a session made by new_session (nullptr: nothing), keeping it resumable although
  // no close_notify is sent.
  static void free_session(SSL* ssl);
  // Throws the error for a failed SSL_connect (not a WANT_READ/WANT_WRITE): CertificateError
  // when the peer could not be verified (nothing was sent), TimeoutError when a blocking
  // socket's timeout ended it, TransportError otherwise.
  [[noreturn]] void handshake_failed(SSL* ssl, const TlsSocket& s, const std::string& where) const;

  void keep(const std::string& key, SSL_SESSION* session);

 private:
  SSL_CTX* ctx_;
  const bool verify_;
  std::mutex mu_;
  std::map<std::string, SSL_SESSION*> sessions_;  // guarded by mu_; one (the newest) per origin
};

}  // namespace dynamodb_cache::http
