#include "http/tls.h"

#include <openssl/err.h>
#include <openssl/x509v3.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "dynamodb_cache/errors.h"

namespace dynamodb_cache::http {

namespace {

// OpenSSL's socket BIO writes with write(): a peer that hung up would raise SIGPIPE in the
// caller's process. This one sends with MSG_NOSIGNAL and records errno in the TlsSocket.
BIO_METHOD* socket_bio_method() {
  static BIO_METHOD* method = [] {
    BIO_METHOD* m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "dynamodb-cache socket");
    BIO_meth_set_write(m, [](BIO* b, const char* data, int n) -> int {
      auto* s = static_cast<TlsSocket*>(BIO_get_data(b));
      BIO_clear_retry_flags(b);
      if (s->out) {
        s->out->append(data, static_cast<size_t>(n));
        return n;
      }
      for (;;) {
        ssize_t r = ::send(s->fd, data, static_cast<size_t>(n), MSG_NOSIGNAL);
        if (r < 0 && errno == EINTR) continue;
        s->last_errno = r < 0 ? errno : 0;
        if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) BIO_set_retry_write(b);
        return static_cast<int>(r);
      }
    });
    BIO_meth_set_read(m, [](BIO* b, char* data, int n) -> int {
      auto* s = static_cast<TlsSocket*>(BIO_get_data(b));
      BIO_clear_retry_flags(b);
      if (s->in_batched) {
        if (s->in_len > 0) {
          const size_t k = std::min(s->in_len, static_cast<size_t>(n));
          std::memcpy(data, s->in, k);
          s->in += k;
          s->in_len -= k;
          s->last_errno = 0;
          return static_cast<int>(k);
        }
        if (s->in_result <= 0 || static_cast<size_t>(s->in_result) < s->in_capacity) {
          const int err = s->in_result > 0 ? EAGAIN : static_cast<int>(-s->in_result);
          s->last_errno = err;
          if (err == EAGAIN || err == EWOULDBLOCK) BIO_set_retry_read(b);
          return err == 0 ? 0 : -1;
        }
        // A full receive: more may be waiting in the socket.
      }
      for (;;) {
        ssize_t r = ::recv(s->fd, data, static_cast<size_t>(n), 0);
        if (r < 0 && errno == EINTR) continue;
        s->last_errno = r < 0 ? errno : 0;
        if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) BIO_set_retry_read(b);
        return static_cast<int>(r);
      }
    });
    BIO_meth_set_ctrl(m, [](BIO*, int cmd, long, void*) -> long { return cmd == BIO_CTRL_FLUSH ? 1 : 0; });
    BIO_meth_set_create(m, [](BIO* b) -> int {
      BIO_set_init(b, 1);
      return 1;
    });
    return m;
  }();
  return method;
}

int socket_index() {
  static int index = SSL_get_ex_new_index(0, nullptr, nullptr, nullptr, nullptr);
  return index;
}

}  // namespace

TlsContext::TlsContext(const HttpOptions& o) : ctx_(SSL_CTX_new(TLS_client_method())), verify_(o.verify_tls) {
  if (!ctx_) throw TransportError("TLS: cannot create an OpenSSL context");
  SSL_CTX_set_min_proto_version(ctx_, TLS1_2_VERSION);
  SSL_CTX_set_options(ctx_, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION | SSL_OP_IGNORE_UNEXPECTED_EOF);
  // Non-blocking writes are retried with the same buffer, possibly moved (io/http_engine.cc).
  // Record buffers (~17 KB read, ~17 KB write per connection) are freed while a connection
  // has nothing buffered (nginx sets this too): OpenSSL keeps no free list, so each record
  // mallocs them again, and malloc hands a loop with 256 connections the same few warm blocks
  // instead of 256 pairs (bench/README.md: 0.5 us less CPU per https get at 256 in flight,
  // 3.8 MB less peak memory; no change at 16 or with blocking threads, 2 more allocations).
  SSL_CTX_set_mode(ctx_, SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER | SSL_MODE_RELEASE_BUFFERS);
  SSL_CTX_set_verify(ctx_, verify_ ? SSL_VERIFY_PEER : SSL_VERIFY_NONE, nullptr);
  if (!o.ca_file.empty()) {
    if (SSL_CTX_load_verify_locations(ctx_, o.ca_file.c_str(), nullptr) != 1) {
      SSL_CTX_free(ctx_);
      throw ConfigError("cannot read the CA bundle '" + o.ca_file +
                        "' (AWS_CA_BUNDLE, the profile's ca_bundle or --ca-bundle)");
    }
  } else {
    SSL_CTX_set_default_verify_paths(ctx_);
  }
  // The store's certificates are shared by every handshake of this context, on any thread.
  // OpenSSL fills a certificate's extension cache (key identifiers, purposes) on its first use
  // in a chain, under the certificate's lock, while a thread that finds it filled reads it
  // without the lock: two first handshakes at once race (ThreadSanitizer saw ASN1_STRING_cmp
  // read a key identifier another handshake was writing). Filling them here, before the
  // context is shared, leaves only reads. (Certificates a hashed directory loads later on
  // demand are not covered; a CA bundle file is loaded whole, above.)
  STACK_OF(X509_OBJECT)* objects = X509_STORE_get0_objects(SSL_CTX_get_cert_store(ctx_));
  for (int i = 0; i < sk_X509_OBJECT_num(objects); ++i)
    if (X509* cert = X509_OBJECT_get0_X509(sk_X509_OBJECT_value(objects, i))) X509_check_purpose(cert, -1, 0);
  // Sessions are kept here, per origin, not in OpenSSL's internal cache: TLS 1.3 tickets
  // arrive after the handshake and reach new_session().
  SSL_CTX_set_session_cache_mode(ctx_, SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
  SSL_CTX_sess_set_new_cb(ctx_, [](SSL* ssl, SSL_SESSION* session) -> int {
    auto* s = static_cast<TlsSocket*>(SSL_get_ex_data(ssl, socket_index()));
    if (!s) return 0;
    s->ctx->keep(s->key, session);
    return 1;  // ownership taken
  });
}

TlsContext::~TlsContext() {
  for (auto& [k, s] : sessions_) SSL_SESSION_free(s);
  SSL_CTX_free(ctx_);
}

SSL* TlsContext::new_session(TlsSocket* s, const Url& url, const std::string& where) {
  SSL* ssl = SSL_new(ctx_);
  if (!ssl) throw TransportError(where + ": TLS: cannot create a session");
  BIO* bio = BIO_new(socket_bio_method());
  BIO_set_data(bio, s);
  SSL_set_bio(ssl, bio, bio);
  SSL_set_ex_data(ssl, socket_index(), s);
  if (verify_) {
    X509_VERIFY_PARAM* param = SSL_get0_param(ssl);
    X509_VERIFY_PARAM_set_hostflags(param, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
    // An IP address is checked against the certificate's IP addresses; a name against
    // its DNS names.
    if (X509_VERIFY_PARAM_set1_ip_asc(param, url.host.c_str()) != 1 &&
        X509_VERIFY_PARAM_set1_host(param, url.host.c_str(), 0) != 1) {
      SSL_free(ssl);
      throw TransportError(where + ": TLS: cannot set the expected host name");
    }
  }
  bool is_ip = url.host.find_first_not_of("0123456789.") == std::string::npos ||
               url.host.find(':') != std::string::npos;
  if (!is_ip) SSL_set_tlsext_host_name(ssl, url.host.c_str());  // SNI: names only (RFC 6066)
  std::lock_guard lock(mu_);
  if (auto it = sessions_.find(url.origin); it != sessions_.end()) SSL_set_session(ssl, it->second);
  return ssl;
}

void TlsContext::free_session(SSL* ssl) {
  if (!ssl) return;
  // No close_notify is sent (the peer sees the TCP close, as with libcurl), but OpenSSL is
  // told the connection ended cleanly: otherwise SSL_free marks the session not resumable.
  SSL_set_shutdown(ssl, SSL_SENT_SHUTDOWN | SSL_RECEIVED_SHUTDOWN);
  SSL_free(ssl);
}

void TlsContext::handshake_failed(SSL* ssl, const TlsSocket& s, const std::string& where) const {
  const long verify = SSL_get_verify_result(ssl);
  if (verify_ && verify != X509_V_OK)
    throw CertificateError(where + ": TLS certificate verification failed (" +
                           X509_verify_cert_error_string(verify) +
                           "); to trust a private CA, name its PEM bundle in AWS_CA_BUNDLE, the profile's "
                           "ca_bundle or --ca-bundle (HttpOptions::ca_file)");
  const int e = SSL_get_error(ssl, 0);
  if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE ||
      (e == SSL_ERROR_SYSCALL && (s.last_errno == EAGAIN || s.last_errno == EWOULDBLOCK)))
    throw TimeoutError(where + ": TLS handshake timed out", false);
  unsigned long code = ERR_peek_last_error();
  std::string why = code           ? ERR_reason_error_string(code) ? ERR_reason_error_string(code) : "error"
                    : s.last_errno ? std::strerror(s.last_errno)
                                   : "connection closed";
  throw ConnectError(where + ": TLS handshake failed: " + why);
}

void TlsContext::keep(const std::string& key, SSL_SESSION* session) {
  std::lock_guard lock(mu_);
  auto [it, added] = sessions_.emplace(key, session);
  if (!added) {
    SSL_SESSION_free(it->second);
    it->second = session;
  }
}

}  // namespace dynamodb_cache::http
