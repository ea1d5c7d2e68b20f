// A lean HTTP/1.1 client for http:// and https:// endpoints: keep-alive connections in a
// pool, one write per request, blocking reads with a socket timeout; TLS through OpenSSL
// directly (verification always on unless HttpOptions::verify_tls is false, SNI, host name
// checks, TLS 1.2 minimum, sessions resumed across reconnects). It exists because libcurl's
// per-request cost (connection-cache checks, three poll() calls, header bookkeeping: ~20 us
// of CPU per request measured here, ~75 us over TLS) dominated a cache get; see
// bench/README.md. Proxied requests go through libcurl.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <strings.h>

#include <cerrno>
#include <charconv>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <mutex>
#include <string_view>
#include <vector>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include <atomic>

#include "dynamodb_cache/errors.h"
#include "http/response_parser.h"
#include "http/tls.h"
#include "http/transports.h"

namespace dynamodb_cache::http {

namespace {

bool iequals(std::string_view a, std::string_view b) {
  return a.size() == b.size() && strncasecmp(a.data(), b.data(), a.size()) == 0;
}

// The byte stream under the HTTP/1.1 exchange. A TCP socket here; a TLS session over the same
// socket (an OpenSSL SSL*) can implement the same two calls without touching the HTTP code.
// Reads and writes block, each bounded by the socket's SO_RCVTIMEO / SO_SNDTIMEO.
class Stream {
 public:
  explicit Stream(int fd) : fd_(fd) {}
  virtual ~Stream() { ::close(fd_); }
  Stream(const Stream&) = delete;
  Stream& operator=(const Stream&) = delete;
  // Like recv(): > 0 bytes read, 0 at the end of the stream, < 0 with errno set (EAGAIN:
  // the read timed out).
  virtual ssize_t read(char* buf, size_t n) { return ::recv(fd_, buf, n, 0); }
  // Like sendmsg(): bytes written from iov, < 0 with errno set.
  virtual ssize_t write(iovec* iov, size_t iovcnt) {
    msghdr msg{};
    msg.msg_iov = iov;
    msg.msg_iovlen = iovcnt;
    return ::sendmsg(fd_, &msg, MSG_NOSIGNAL);
  }
  int fd() const { return fd_; }
  // Bytes received but not returned by read() yet (a TLS layer reading ahead).
  virtual bool has_buffered() const { return false; }

 private:
  int fd_;
};

// ---------------- TLS ----------------

// TLS over a connected socket. Reads and writes keep the socket's timeouts: a timed-out
// read returns -1 with errno EAGAIN, as recv() does.
class TlsStream final : public Stream {
 public:
  TlsStream(int fd, TlsContext* ctx, std::string key) : Stream(fd), sock_{fd, 0, ctx, std::move(key)} {}
  ~TlsStream() override { TlsContext::free_session(ssl_); }
  ssize_t read(char* buf, size_t n) override {
    clear_tls_errors();
    size_t got = 0;
    if (SSL_read_ex(ssl_, buf, n, &got) == 1) return static_cast<ssize_t>(got);
    return failed(0);
  }
  // Writes the first buffer only (a partial write, which the caller continues): the
  // transport puts a request's head and body in one buffer, so a request is one SSL_write,
  // one record sequence, one send().
  ssize_t write(iovec* iov, size_t) override {
    clear_tls_errors();
    size_t written = 0;
    if (SSL_write_ex(ssl_, iov[0].iov_base, iov[0].iov_len, &written) == 1) return static_cast<ssize_t>(written);
    return failed(-1);
  }

  bool has_buffered() const override { return SSL_has_pending(ssl_) == 1; }

  SSL* ssl_ = nullptr;
  TlsSocket sock_;

 private:
  // Maps an OpenSSL failure to the recv()/send() convention.
  ssize_t failed(ssize_t eof) {
    const int e = SSL_get_error(ssl_, 0);
    if (e == SSL_ERROR_ZERO_RETURN) return eof;
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {  // the socket's timeout
      errno = EAGAIN;
      return -1;
    }
    if (e == SSL_ERROR_SYSCALL) {
      if (sock_.last_errno == 0) return eof;  // the peer closed without close_notify
      errno = sock_.last_errno;
      return -1;
    }
    errno = EPROTO;
    return -1;
  }
};

// Handshakes over `fd` (connected, blocking, with timeouts); the returned stream owns fd.
// Throws CertificateError (nothing was sent), TimeoutError or TransportError.
std::unique_ptr<Stream> tls_handshake(TlsContext& tls, int fd, const Url& url, const std::string& where,
                                      TransportStats& stats, std::mutex& stats_mu) {
  auto stream = std::make_unique<TlsStream>(fd, &tls, url.origin);
  stream->ssl_ = tls.new_session(&stream->sock_, url, where);
  // OpenSSL reads whatever has arrived (up to its 16 KB record buffer) instead of a record
  // header, then its body: one recv() per answer instead of two (strace: 2.0 -> 1.0 per get).
  // Bytes read ahead past an answer are caught by has_buffered().
  SSL_set_read_ahead(stream->ssl_, 1);
  ERR_clear_error();
  if (SSL_connect(stream->ssl_) != 1) tls.handshake_failed(stream->ssl_, stream->sock_, where);
  std::lock_guard lock(stats_mu);
  ++stats.tls_handshakes;
  if (SSL_session_reused(stream->ssl_)) ++stats.tls_resumptions;
  return stream;
}

struct Conn {
  std::unique_ptr<Stream> stream;
  std::string key;  // host:port it is connected to
};

// Per thread, fixed size: the parser copies what it needs out of it, so it never grows, and
// nothing is kept per thread after a large answer.
constexpr size_t kReceiveBuffer = 64 * 1024;

// "HTTP POST https://host:port", for messages: built only when one is needed (a string per
// request would be an allocation per request).
struct Where {
  const std::string& method;
  const std::string& origin;
  std::string str() const { return "HTTP " + method + " " + origin; }
};

// `url` parsed, remembered per thread: a client sends every request to the same URL, and
// parse_url allocates. The reference stays valid until this thread's next call.
const Url& parsed_url(const std::string& url) {
  thread_local std::string last;
  thread_local Url parsed;
  if (last.empty() || url != last) {
    parsed = parse_url(url);  // ConfigError for a malformed URL
    last = url;
  }
  return parsed;
}

// The per-thread buffer a request's head (and, over TLS, its body) is built in, for one
// request at a time; a buffer grown past 1 MiB by a large body is released afterwards, so
// a thread keeps no large buffer.
class HeadBuffer {
 public:
  HeadBuffer() : s_(buffer()) { s_.clear(); }
  ~HeadBuffer() {
    if (s_.capacity() > (1u << 20)) std::string().swap(s_);
  }
  HeadBuffer(const HeadBuffer&) = delete;
  HeadBuffer& operator=(const HeadBuffer&) = delete;
  std::string& operator*() { return s_; }
  std::string* operator->() { return &s_; }

 private:
  static std::string& buffer() {
    thread_local std::string s;
    return s;
  }
  std::string& s_;
};

class PlainTransport final : public Transport {
 public:
  explicit PlainTransport(HttpOptions o) : options_(std::move(o)) {
    limits_.max_body_bytes = options_.max_response_bytes;
  }

  TransportStats stats() const override {
    std::lock_guard lock(stats_mu_);
    return stats_;
  }

  Response send(const Request& request) override {
    Response r;
    r.headers.reserve(8);
    send_into(request, r);
    return r;
  }

  // Over a pooled keep-alive connection this allocates nothing (BM_TransportKeepAlive in
  // bench/micro_bench.cc counts): the URL is parsed once per thread, the request head is
  // built in a per-thread buffer, the receive buffer is per thread and `out` is reused.
  void send_into(const Request& request, Response& out) override {
    const Url& url = parsed_url(request.url);
    const Where where{request.method, url.origin};
    // Over TLS the body follows the head in the same buffer: one SSL_write, one record
    // sequence, one send(); plain http sends both with one writev, without a copy.
    HeadBuffer head;
    build_request_head(*head, request, url, options_.user_agent);
    if (url.https) head->append(request.body);
    const std::string_view body = url.https ? std::string_view() : std::string_view(request.body);
    // A request with a shorter timeout of its own gets it on its connection's socket too,
    // and that connection is not pooled (the next request would inherit it).
    const auto budget = request.timeout.count() > 0 ? std::min(request.timeout, options_.request_timeout)
                                                    : options_.request_timeout;
    const bool shortened = budget < options_.request_timeout;
    auto deadline = std::chrono::steady_clock::now() + budget;
    // A pooled connection may have been closed by the server while idle; if it fails before
    // any byte of an answer arrived, the request never reached the server: try a new one.
    for (int attempt = 0;; ++attempt) {
      bool reused = false;
      Conn c = acquire(url, where, deadline, !request.resend_if_stale, reused, budget);
      if (shortened && reused) set_io_timeout(c.stream->fd(), budget);
      try {
        bool keep = true;
        exchange(*c.stream, *head, body, request.resend_if_stale, where, deadline, budget, keep, out);
        release(std::move(c), keep && !shortened);
        return;
      } catch (const StaleConnection&) {
        if (!reused || attempt > 0) throw TransportError(where.str() + ": connection closed by the server");
      } catch (const ProtocolError& e) {
        throw ProtocolError(where.str() + ": " + e.what(), e.retryable());
      }
      // Any other exception: `c` goes out of scope and its connection is closed.
    }
  }

 private:
  struct StaleConnection {};

  // `probe`: for a request that must not be sent twice (it cannot be resent on a stale
  // connection), a pooled connection is taken only if the server has not closed it meanwhile
  // (one poll(); an idle connection with anything to read is closed, never reused), so that
  // a connection closed while idle, the usual case, does not make its outcome unknown.
  Conn acquire(const Url& url, const Where& w, std::chrono::steady_clock::time_point deadline, bool probe,
               bool& reused, std::chrono::milliseconds io_timeout) {
    for (;;) {
      Conn c;
      {
        std::lock_guard lock(mu_);
        for (size_t i = idle_.size(); i-- > 0;) {
          if (idle_[i].key == url.origin) {
            c = std::move(idle_[i]);
            idle_.erase(idle_.begin() + static_cast<std::ptrdiff_t>(i));
            break;
          }
        }
      }
      if (!c.stream) break;
      if (probe) {
        pollfd p{c.stream->fd(), POLLIN, 0};
        if (::poll(&p, 1, 0) != 0) continue;  // closed (or unexpected bytes): `c` closes it
      }
      reused = true;
      return c;
    }
    // A bad CA bundle is a ConfigError before any connection.
    if (url.https) std::call_once(tls_once_, [&] { tls_ = std::make_unique<TlsContext>(options_); });
    const std::string where = w.str();
    int fd = connect_to(url, where, deadline, io_timeout);
    {
      std::lock_guard lock(stats_mu_);
      ++stats_.connections;
    }
    if (!url.https) return Conn{std::make_unique<Stream>(fd), url.origin};
    return Conn{tls_handshake(*tls_, fd, url, where, stats_, stats_mu_), url.origin};
  }

  void release(Conn c, bool keep) {
    if (keep) {
      std::lock_guard lock(mu_);
      if (idle_.size() < options_.max_idle_connections) idle_.push_back(std::move(c));
    }
  }

  // Each send and receive on the socket is bounded by `io_timeout`.
  static void set_io_timeout(int fd, std::chrono::milliseconds io_timeout) {
    auto us = std::chrono::duration_cast<std::chrono::microseconds>(io_timeout).count();
    if (us <= 0) us = 1;  // zero would mean no timeout at all
    timeval tv{static_cast<time_t>(us / 1000000), static_cast<suseconds_t>(us % 1000000)};
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  }

  int connect_to(const Url& url, const std::string& where, std::chrono::steady_clock::time_point deadline,
                 std::chrono::milliseconds io_timeout) {
    const AddrInfo res = resolve_host(url, where);
    std::string last = "no address";
    bool refused = false;
    for (addrinfo* a = res.get(); a; a = a->ai_next) {
      int fd = ::socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, a->ai_protocol);
      if (fd < 0) continue;
      int rc = ::connect(fd, a->ai_addr, a->ai_addrlen);
      if (rc != 0 && errno == EINPROGRESS) {
        auto budget = std::min(options_.connect_timeout, std::chrono::duration_cast<std::chrono::milliseconds>(
                                                             deadline - std::chrono::steady_clock::now()));
        pollfd p{fd, POLLOUT, 0};
        rc = ::poll(&p, 1, static_cast<int>(std::max<int64_t>(0, budget.count())));
        if (rc == 0) {
          ::close(fd);
          throw TimeoutError(
              where + ": connect timed out after " + std::to_string(options_.connect_timeout.count()) + " ms", false);
        }
        int err = 0;
        socklen_t len = sizeof err;
        getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
        if (err != 0) errno = err;
        rc = err == 0 ? 0 : -1;
      }
      if (rc != 0) {
        last = std::strerror(errno);
        refused = errno == ECONNREFUSED;
        ::close(fd);
        continue;
      }
      // Back to blocking. Each send and receive is bounded by request_timeout (set once per
      // connection: a syscall per request would cost more than it is worth); exchange()
      // checks the whole-request deadline after every read, so a trickling server is cut off
      // within two request_timeouts at worst.
      ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) & ~O_NONBLOCK);
      set_io_timeout(fd, io_timeout);
      int one = 1;
      ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
      ::setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof one);
      return fd;
    }
    throw ConnectError(where + ": cannot connect: " + last, refused);
  }

  // One request and its final answer. `keep` comes back false when the connection must not
  // be reused: the answer said so, ran to the end of the connection, or bytes followed it.
  // The answer goes into `out` (its buffers reused).
  void exchange(Stream& s, std::string_view head, std::string_view body, bool resend_if_stale,
                const Where& where, std::chrono::steady_clock::time_point deadline,
                std::chrono::milliseconds budget, bool& keep, Response& out) {
    auto timed_out = [&] {
      return TimeoutError(where.str() + ": request timed out after " + std::to_string(budget.count()) +
                          " ms");
    };
    // Send: header and body (if any) in one write, continuing after partial writes.
    iovec iov[2] = {{const_cast<char*>(head.data()), head.size()}, {const_cast<char*>(body.data()), body.size()}};
    const size_t count = body.empty() ? 1 : 2;
    size_t total = head.size() + body.size(), sent = 0;
    size_t first = 0;
    while (sent < total) {
      ssize_t n = s.write(iov + first, count - first);
      if (n < 0) {
        if (errno == EINTR) continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK)
          throw TimeoutError(where.str() + ": request timed out while sending");
        if (sent == 0 && (errno == EPIPE || errno == ECONNRESET)) throw StaleConnection{};
        throw TransportError(where.str() + ": send failed: " + std::strerror(errno));
      }
      sent += static_cast<size_t>(n);
      size_t left = static_cast<size_t>(n);
      while (first < count && left >= iov[first].iov_len) left -= iov[first++].iov_len;
      if (first < count) {
        iov[first].iov_base = static_cast<char*>(iov[first].iov_base) + left;
        iov[first].iov_len -= left;
      }
    }

    // Receive until the parser has the final answer (interim 1xx answers are skipped).
    thread_local std::unique_ptr<char[]> buf;
    if (!buf) buf.reset(new char[kReceiveBuffer]);  // not zero-filled: only pages a read reaches are touched
    ResponseParser parser(limits_);
    parser.reset(&out);
    for (;;) {
      ssize_t n = s.read(buf.get(), kReceiveBuffer);
      if (n > 0) {
        size_t used = parser.feed(buf.get(), static_cast<size_t>(n));
        if (parser.done()) {
          // Bytes after the answer are unexpected: the connection is not reused.
          keep = parser.keep_alive() && used == static_cast<size_t>(n) && !s.has_buffered();
          return;
        }
        if (std::chrono::steady_clock::now() > deadline) throw timed_out();
        continue;
      }
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) throw timed_out();
      if (n == 0 && parser.on_eof()) {
        keep = false;
        return;
      }
      if (resend_if_stale && !parser.started() && (n == 0 || errno == ECONNRESET)) throw StaleConnection{};
      throw TransportError(where.str() + (n == 0 ? ": connection closed before the whole response arrived"
                                                 : std::string(": receive failed: ") + std::strerror(errno)));
    }
  }

  const HttpOptions options_;
  ResponseLimits limits_;
  std::once_flag tls_once_;
  std::unique_ptr<TlsContext> tls_;  // made on the first https request; outlives idle_
  std::mutex mu_;
  std::vector<Conn> idle_;  // guarded by mu_; LIFO
  mutable std::mutex stats_mu_;
  TransportStats stats_;  // guarded by stats_mu_
};

// Without a proxy: the lean client, http and https; with one: libcurl.
class DefaultTransport final : public Transport {
 public:
  // The proxy environment is read once, here.
  explicit DefaultTransport(const HttpOptions& o)
      : lean_(make_plain_transport(o)),
        http_direct_(!proxy_configured(false)),
        https_direct_(!proxy_configured(true)),
        options_(o) {}
  Response send(const Request& r) override { return route(r).send(r); }
  void send_into(const Request& r, Response& out) override { route(r).send_into(r, out); }
  TransportStats stats() const override { return lean_->stats(); }

 private:
  Transport& route(const Request& r) {
    if ((http_direct_ && r.url.rfind("http://", 0) == 0) || (https_direct_ && r.url.rfind("https://", 0) == 0))
      return *lean_;
    std::call_once(curl_once_, [&] { curl_ = make_curl_transport(options_); });
    return *curl_;
  }

  std::shared_ptr<Transport> lean_;
  const bool http_direct_, https_direct_;
  HttpOptions options_;
  std::once_flag curl_once_;
  std::shared_ptr<Transport> curl_;
};

}  // namespace

bool proxy_configured(bool https) {
  for (const char* v : {https ? "https_proxy" : "http_proxy", https ? "HTTPS_PROXY" : "HTTP_PROXY", "all_proxy",
                        "ALL_PROXY"}) {
    const char* p = std::getenv(v);
    if (p && *p) return true;
  }
  return false;
}

AddrInfo resolve_host(const Url& url, const std::string& where) {
  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_NUMERICSERV;
  addrinfo* res = nullptr;
  const std::string port = std::to_string(url.port);
  if (int rc = getaddrinfo(url.host.c_str(), port.c_str(), &hints, &res); rc != 0)
    throw ConnectError(where + ": cannot resolve host: " + gai_strerror(rc));
  return AddrInfo(res, &freeaddrinfo);
}

std::string build_request_head(const Request& r, const Url& url, const std::string& user_agent) {
  std::string h;
  h.reserve(256 + r.headers.size() * 64);
  build_request_head(h, r, url, user_agent);
  return h;
}

void build_request_head(std::string& h, const Request& r, const Url& url, const std::string& user_agent) {
  h.append(r.method).append(" ").append(url.path).append(" HTTP/1.1\r\n");
  bool has_host = false;
  for (const auto& hd : r.headers) {
    if (iequals(hd.name, "host")) has_host = true;
    h.append(hd.name).append(": ").append(hd.value).append("\r\n");
  }
  if (!has_host) h.append("Host: ").append(url.origin, url.origin.find("://") + 3).append("\r\n");
  h.append("User-Agent: ").append(user_agent).append("\r\n");
  if (r.method != "GET" || !r.body.empty()) {
    char digits[24];
    auto [end, ec] = std::to_chars(digits, digits + sizeof digits, r.body.size());
    h.append("Content-Length: ").append(digits, end).append("\r\n");
  }
  h.append("\r\n");
}

std::shared_ptr<Transport> make_plain_transport(const HttpOptions& options) {
  return std::make_shared<PlainTransport>(options);
}

std::shared_ptr<Transport> make_default_transport(const HttpOptions& options) {
  return std::make_shared<DefaultTransport>(options);
}

}  // namespace dynamodb_cache::http
