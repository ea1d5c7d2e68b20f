#include "io/http_engine.h"

#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <future>

#include <openssl/err.h>

#include "dynamodb_cache/errors.h"
#include "http/response_parser.h"
#include "http/transports.h"

namespace dynamodb_cache::io {

namespace {
constexpr size_t kReceiveBuffer = 64 * 1024;
// Batched receives (HttpEngine::flush): up to kSlots per system call, each into a slot of
// its own. A slot holds a typical GetItem answer (a 1000-byte value in the Python layout is
// about 2.2 KB with its head); a larger answer goes on with recv() once its slot is full.
// 2 MiB of address space, of which only the pages written are ever resident.
constexpr size_t kSlot = 8 * 1024;
constexpr size_t kSlots = 256;
std::string ms_text(std::chrono::milliseconds d) { return std::to_string(d.count()) + " ms"; }
// "HTTP POST https://host:port": names the exchange in errors (built only when one is made).
std::string where_text(const std::string& method, const http::Url& url) { return "HTTP " + method + " " + url.origin; }
}  // namespace

// One connection and, while a request is under way, that exchange. States move forward
// connecting -> handshake (https) -> writing -> reading -> idle -> writing ...; any failure
// or surprise closes it.
class HttpEngine::Conn final : public IoHandler {
 public:
  enum class State { kConnecting, kHandshake, kWriting, kReading, kIdle, kClosed };

  Conn(HttpEngine& e, int fd, std::shared_ptr<const http::Url> url, const http::ResponseLimits& limits)
      : e_(e), fd_(fd), key_(url->origin), url_(std::move(url)), parser_(limits) {
    sock_.fd = fd;
  }
  ~Conn() {
    http::TlsContext::free_session(ssl_);
    if (fd_ >= 0) ::close(fd_);
  }

  void on_io(uint32_t events) override;

  HttpEngine& e_;
  int fd_;
  std::string key_;
  State state_ = State::kConnecting;
  SSL* ssl_ = nullptr;
  http::TlsSocket sock_;
  bool reused_ = false;
  bool resend_if_stale_ = true;  // http::Request::resend_if_stale
  bool queued_send_ = false, queued_recv_ = false;  // in the engine's send_queue_ / recv_queue_
  uint32_t interest_ = 0;
  uint64_t exchanges_ = 0;  // answers completed: read() stops at the end of its own
  // The exchange under way.
  std::shared_ptr<const http::Url> url_;  // the engine's parsed URL, shared
  std::string method_;
  std::string out_;  // request head and body
  size_t out_off_ = 0;
  // TLS with batching: the request encrypted whole (the BIO collects it), sent from here.
  std::string tls_out_;
  size_t tls_off_ = 0;
  http::Response resp_;
  http::ResponseParser parser_;
  Done done_;
  // The timer is lazy: it is not moved for each request on a kept-alive connection. When it
  // fires before `expire_` (a later request's deadline) it is set again for `expire_`; with no
  // request under way (expire_ = max) it just ends. So a busy connection costs one timer per
  // request_timeout, not an add and a cancel per request.
  uint64_t timer_ = 0;
  Clock::time_point timer_at_;                      // when timer_ fires
  Clock::time_point expire_ = Clock::time_point::max();  // the phase under way times out then
  bool connecting_ = false;                         // that phase is the connect (its message)
  Clock::time_point deadline_;  // of the whole request

  std::string where() const { return where_text(method_, *url_); }

  void want(uint32_t events) {
    if (events != interest_) {
      e_.loop_.modify(fd_, events, this);
      interest_ = events;
    }
  }
  void arm(Clock::time_point when, bool connecting);
  void disarm() { expire_ = Clock::time_point::max(); }
  void on_timer();
  void fail(std::exception_ptr error);
  // A reused connection the server had closed while idle: the request never reached it.
  void stale();
  // Runs `f`, and fails the exchange with what it throws (a ProtocolError named).
  template <class F>
  void guarded(F f);
  void connected();
  void handshake();
  // Sends the request: deferred to the engine's batch for plain http when batching, else now.
  void write();
  void write_now();
  // TLS with batching: the whole request encrypted into tls_out_.
  void encrypt();
  // What is left to send: the request, or with TLS batching its ciphertext.
  std::string_view unsent() const {
    return ssl_ ? std::string_view(tls_out_).substr(tls_off_) : std::string_view(out_).substr(out_off_);
  }
  // One plain send's outcome (bytes, or -1 and `err`): true to go on sending.
  bool on_sent(ssize_t n, int err);
  void wrote_all();
  void read();
  // One batched receive's outcome (bytes or -errno) into `data`.
  void received(long res, const char* data);
  void got(const char* data, size_t n);
  void eof_or_error(ssize_t n, int err);
};

HttpEngine::HttpEngine(EventLoop& loop, const http::HttpOptions& options, std::shared_ptr<http::TlsContext> tls)
    : loop_(loop), options_(options), tls_(std::move(tls)), buf_(new char[kReceiveBuffer]) {}

HttpEngine::~HttpEngine() {
  if (hook_) loop_.remove_before_wait(hook_);
}

HttpEngine::Conn* HttpEngine::add_conn(int fd, std::shared_ptr<const http::Url> url) {
  http::ResponseLimits limits;
  limits.max_body_bytes = options_.max_response_bytes;
  try {
    conns_.push_back(std::make_unique<Conn>(*this, fd, std::move(url), limits));
  } catch (...) {
    ::close(fd);
    throw;
  }
  Conn* c = conns_.back().get();
  ++stats_.connections;
  loop_.watch(fd, EPOLLOUT, c);
  c->interest_ = EPOLLOUT;
  return c;
}

void HttpEngine::send(const http::Request& request, Done done) {
  try {
    if (!url_ || request.url != url_text_) {
      auto parsed = std::make_shared<const http::Url>(http::parse_url(request.url));
      url_text_ = request.url;
      url_ = std::move(parsed);
    }
    const http::Url& url = *url_;
    std::string& out = out_scratch_;
    out.clear();
    http::build_request_head(out, request, url, options_.user_agent);
    out += request.body;
    if (url.https && !tls_) tls_ = std::make_shared<http::TlsContext>(options_);
    Conn* c = nullptr;
    if (auto it = idle_.find(url.origin); it != idle_.end() && !it->second.empty()) {
      c = it->second.back();
      it->second.pop_back();
      --idle_count_;
      c->reused_ = true;
      c->url_ = url_;
    } else {
      c = add_conn(connect_to(url, where_text(request.method, url)), url_);
    }
    c->method_ = request.method;
    c->resend_if_stale_ = request.resend_if_stale;
    c->out_.swap(out);  // the connection's previous buffer (cleared) is the next request's
    c->out_off_ = 0;
    c->done_ = std::move(done);
    c->deadline_ = Clock::now() + options_.request_timeout;
    try {
      start(c);  // a reused connection writes at once
    } catch (...) {
      Done d = std::move(c->done_);
      c->done_ = nullptr;
      close(c);
      loop_.post([d = std::move(d), error = std::current_exception()]() mutable { d(nullptr, std::move(error)); });
    }
  } catch (...) {
    // Never from within send(): the caller may hold locks or be mid-update.
    loop_.post([done = std::move(done), error = std::current_exception()]() mutable { done(nullptr, std::move(error)); });
  }
}

void HttpEngine::start(Conn* c) {
  if (c->state_ == Conn::State::kConnecting) {
    c->arm(std::min(c->deadline_, Clock::now() + options_.connect_timeout), true);
    return;  // EPOLLOUT says when the connect is done
  }
  c->arm(c->deadline_, false);
  c->state_ = Conn::State::kWriting;
  c->write();
}

void HttpEngine::Conn::arm(Clock::time_point when, bool connecting) {
  expire_ = when;
  connecting_ = connecting;
  if (timer_ && timer_at_ <= when) return;  // fires first, then follows expire_
  if (timer_) e_.loop_.cancel_timer(timer_);
  timer_at_ = when;
  timer_ = e_.loop_.add_timer(when, [this] { on_timer(); });
}

void HttpEngine::Conn::on_timer() {
  timer_ = 0;
  if (expire_ == Clock::time_point::max()) return;  // nothing under way
  if (Clock::now() < expire_) {                     // a later request's deadline
    timer_at_ = expire_;
    timer_ = e_.loop_.add_timer(expire_, [this] { on_timer(); });
    return;
  }
  // Made in a statement of its own: the temporary error (whose message string shares its
  // reference-counted buffer) is gone before the copy is handed on to another thread.
  std::exception_ptr error = std::make_exception_ptr(
      connecting_ ? TimeoutError(where() + ": connect timed out after " + ms_text(e_.options_.connect_timeout), false)
                  : TimeoutError(where() + ": request timed out after " + ms_text(e_.options_.request_timeout)));
  fail(std::move(error));
}

void HttpEngine::Conn::fail(std::exception_ptr error) {
  Done done = std::move(done_);
  done_ = nullptr;
  e_.close(this);
  if (done) done(nullptr, std::move(error));
}

void HttpEngine::Conn::stale() {
  // Sent again once on a new connection; the deadline stays the request's.
  Done done = std::move(done_);
  done_ = nullptr;
  std::string out = std::move(out_);
  std::shared_ptr<const http::Url> url = url_;
  std::string method = method_;
  Clock::time_point deadline = deadline_;
  HttpEngine& e = e_;
  e.close(this);  // `this` is not touched below
  try {
    Conn* c = e.add_conn(e.connect_to(*url, where_text(method, *url)), url);
    c->method_ = std::move(method);
    c->out_ = std::move(out);
    c->done_ = std::move(done);
    c->deadline_ = deadline;
    e.start(c);  // connecting: only arms the timer
  } catch (...) {
    // Possibly within send() (a reused connection found closed at once): never call back there.
    if (done)
      e.loop_.post([done = std::move(done), error = std::current_exception()]() mutable {
        done(nullptr, std::move(error));
      });
  }
}

template <class F>
void HttpEngine::Conn::guarded(F f) {
  std::exception_ptr error;
  try {
    f();
  } catch (const ProtocolError& err) {
    error = std::make_exception_ptr(ProtocolError(where() + ": " + err.what(), err.retryable()));
  } catch (...) {
    error = std::current_exception();
  }
  if (error) fail(std::move(error));  // outside the handler: handed on with no reference kept
}

void HttpEngine::Conn::on_io(uint32_t events) {
  guarded([&] {
    switch (state_) {
      case State::kConnecting: return connected();
      case State::kHandshake: return handshake();
      case State::kWriting: return write();
      case State::kReading:
        if ((events & (EPOLLIN | EPOLLERR | EPOLLHUP)) && e_.batching()) return e_.queue_recv(this);
        // A TLS read may need the socket writable (a key update); a plain one never does.
        if ((events & (EPOLLIN | EPOLLERR | EPOLLHUP)) || ssl_) read();
        return;
      case State::kIdle: return e_.close(this);  // bytes or a close while idle: unexpected
      case State::kClosed: return;
    }
  });
}

void HttpEngine::Conn::connected() {
  int err = 0;
  socklen_t len = sizeof err;
  ::getsockopt(fd_, SOL_SOCKET, SO_ERROR, &err, &len);
  if (err != 0) throw ConnectError(where() + ": cannot connect: " + std::strerror(err), err == ECONNREFUSED);
  int one = 1;
  ::setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  ::setsockopt(fd_, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof one);
  if (url_->https) {
    sock_.ctx = e_.tls_.get();
    sock_.key = key_;
    ssl_ = e_.tls_->new_session(&sock_, *url_, where());
    // Records read whole (header and body in one recv, not two): read() reads until
    // SSL_read wants more, so nothing read ahead waits unseen by epoll, and got() does not
    // keep a connection with bytes buffered past its answer.
    SSL_set_read_ahead(ssl_, 1);
    state_ = State::kHandshake;
    return handshake();
  }
  state_ = State::kWriting;
  e_.start(this);
}

void HttpEngine::Conn::handshake() {
  ERR_clear_error();
  int rc = SSL_connect(ssl_);
  if (rc == 1) {
    ++e_.stats_.tls_handshakes;
    if (SSL_session_reused(ssl_)) ++e_.stats_.tls_resumptions;
    state_ = State::kWriting;  // the request's own deadline from here
    e_.start(this);
    return;
  }
  int err = SSL_get_error(ssl_, rc);
  if (err == SSL_ERROR_WANT_READ) return want(EPOLLIN);
  if (err == SSL_ERROR_WANT_WRITE) return want(EPOLLOUT);
  e_.tls_->handshake_failed(ssl_, sock_, where());
}

void HttpEngine::Conn::write() {
  if (!e_.batching()) return write_now();
  if (ssl_ && tls_out_.empty()) encrypt();
  e_.queue_send(this);
}

void HttpEngine::Conn::encrypt() {
  sock_.out = &tls_out_;
  tls_off_ = 0;
  http::clear_tls_errors();
  while (out_off_ < out_.size()) {
    size_t n = 0;
    if (SSL_write_ex(ssl_, out_.data() + out_off_, out_.size() - out_off_, &n) != 1) {
      sock_.out = nullptr;
      throw TransportError(where() + ": TLS encryption failed");
    }
    out_off_ += n;
  }
  sock_.out = nullptr;
}

bool HttpEngine::Conn::on_sent(ssize_t n, int err) {
  if (n >= 0) {
    (ssl_ ? tls_off_ : out_off_) += static_cast<size_t>(n);
    return true;
  }
  if (err == EINTR) return true;
  if (err == EAGAIN || err == EWOULDBLOCK) {
    want(EPOLLOUT);
    return false;
  }
  if (reused_ && (ssl_ ? tls_off_ : out_off_) == 0 && (err == EPIPE || err == ECONNRESET)) {
    stale();
    return false;
  }
  throw TransportError(where() + ": send failed: " + std::strerror(err));
}

void HttpEngine::Conn::write_now() {
  if (ssl_ && !tls_out_.empty()) {  // batched TLS: the rest of the ciphertext
    while (tls_off_ < tls_out_.size()) {
      ssize_t n = ::send(fd_, tls_out_.data() + tls_off_, tls_out_.size() - tls_off_, MSG_NOSIGNAL);
      if (!on_sent(n, n < 0 ? errno : 0)) return;
    }
    tls_out_.clear();
    tls_off_ = 0;
    return wrote_all();
  }
  while (out_off_ < out_.size()) {
    if (ssl_) {
      http::clear_tls_errors();
      size_t n = 0;
      int rc = SSL_write_ex(ssl_, out_.data() + out_off_, out_.size() - out_off_, &n);
      if (rc == 1) {
        out_off_ += n;
        continue;
      }
      int err = SSL_get_error(ssl_, rc);
      if (err == SSL_ERROR_WANT_WRITE) return want(EPOLLOUT);
      if (err == SSL_ERROR_WANT_READ) return want(EPOLLIN);
      if (reused_ && out_off_ == 0 && (sock_.last_errno == EPIPE || sock_.last_errno == ECONNRESET)) return stale();
      throw TransportError(where() + ": send failed: " +
                           (sock_.last_errno ? std::strerror(sock_.last_errno) : "TLS error"));
    }
    ssize_t n = ::send(fd_, out_.data() + out_off_, out_.size() - out_off_, MSG_NOSIGNAL);
    if (!on_sent(n, n < 0 ? errno : 0)) return;
  }
  wrote_all();
}

void HttpEngine::Conn::wrote_all() {
  state_ = State::kReading;
  resp_ = http::Response{};
  // A finished answer's header entries, their strings' buffers reused by the parser: no
  // allocation per header once warm. Else one allocation, not four as the count grows.
  resp_.headers.swap(e_.spare_headers_);
  if (resp_.headers.capacity() < 16) resp_.headers.reserve(16);
  parser_.reset(&resp_);
  want(EPOLLIN);
}

void HttpEngine::Conn::read() {
  char* buf = e_.buf_.get();
  // An answer's callback may start the next request on this very connection (reading again):
  // that one waits for epoll like every other, or one connection answered at once by a fast
  // server would keep the loop to itself (its timers and other connections starved).
  const uint64_t exchange = exchanges_;
  for (;;) {
    if (ssl_) {
      http::clear_tls_errors();
      size_t n = 0;
      int rc = SSL_read_ex(ssl_, buf, kReceiveBuffer, &n);
      if (rc == 1) {
        got(buf, n);
        if (state_ != State::kReading || exchanges_ != exchange) return;
        continue;
      }
      int err = SSL_get_error(ssl_, rc);
      if (err == SSL_ERROR_WANT_READ) return want(EPOLLIN);
      if (err == SSL_ERROR_WANT_WRITE) return want(EPOLLIN | EPOLLOUT);
      if (err == SSL_ERROR_ZERO_RETURN || (err == SSL_ERROR_SYSCALL && sock_.last_errno == 0))
        return eof_or_error(0, 0);
      if (err == SSL_ERROR_SYSCALL) return eof_or_error(-1, sock_.last_errno);
      throw TransportError(where() + ": TLS receive failed");
    }
    ssize_t n = ::recv(fd_, buf, kReceiveBuffer, 0);
    if (n > 0) {
      got(buf, static_cast<size_t>(n));
      // Level-triggered: a short read emptied the socket; epoll says when more comes.
      if (state_ != State::kReading || exchanges_ != exchange || static_cast<size_t>(n) < kReceiveBuffer) return;
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
    return eof_or_error(n, n < 0 ? errno : 0);
  }
}

void HttpEngine::Conn::received(long res, const char* data) {
  if (ssl_) {  // OpenSSL reads it through the socket's BIO (http::TlsSocket)
    if (res == -EINTR || res == -EAGAIN || res == -EWOULDBLOCK) return;  // epoll reports it again
    sock_.in_batched = true;
    sock_.in_result = res;
    sock_.in = data;
    sock_.in_len = res > 0 ? static_cast<size_t>(res) : 0;
    sock_.in_capacity = kSlot;
    struct Done {
      http::TlsSocket& s;
      ~Done() {
        s.in_batched = false;
        s.in = nullptr;
        s.in_len = 0;
      }
    } done{sock_};
    return read();
  }
  if (res > 0) {
    const uint64_t exchange = exchanges_;
    got(data, static_cast<size_t>(res));
    // A full slot: more may wait in the socket (a short one emptied it: level-triggered).
    if (state_ == State::kReading && exchanges_ == exchange && static_cast<size_t>(res) == kSlot) read();
    return;
  }
  if (res == -EINTR || res == -EAGAIN || res == -EWOULDBLOCK) return;  // epoll reports it again
  eof_or_error(res == 0 ? 0 : -1, res == 0 ? 0 : static_cast<int>(-res));
}

void HttpEngine::Conn::got(const char* data, size_t n) {
  size_t used = parser_.feed(data, n);
  if (!parser_.done()) {
    if (Clock::now() > deadline_)
      throw TimeoutError(where() + ": request timed out after " + ms_text(e_.options_.request_timeout));
    return;
  }
  // Bytes after the answer, or TLS records already buffered: unexpected, not reused.
  bool keep = parser_.keep_alive() && used == n && !(ssl_ && (SSL_has_pending(ssl_) || sock_.in_len > 0));
  e_.finished(this, keep);
}

void HttpEngine::Conn::eof_or_error(ssize_t n, int err) {
  if (n == 0 && parser_.on_eof()) return e_.finished(this, false);
  if (reused_ && resend_if_stale_ && !parser_.started() && (n == 0 || err == ECONNRESET)) return stale();
  throw TransportError(where() + (n == 0 ? ": connection closed before the whole response arrived"
                                        : std::string(": receive failed: ") + std::strerror(err)));
}

void HttpEngine::finished(Conn* c, bool keep) {
  c->disarm();
  ++c->exchanges_;
  Done done = std::move(c->done_);
  c->done_ = nullptr;
  http::Response resp = std::move(c->resp_);
  if (keep && idle_count_ < options_.max_idle_connections) {
    c->state_ = Conn::State::kIdle;
    c->out_.clear();
    c->want(EPOLLIN);  // a close or stray bytes while idle close it
    idle_[c->key_].push_back(c);
    ++idle_count_;
  } else {
    close(c);
  }
  done(&resp, nullptr);
  spare_headers_ = std::move(resp.headers);  // for the next request's answer (Conn::write)
}

void HttpEngine::close(Conn* c) {
  if (c->state_ == Conn::State::kClosed) return;
  if (c->state_ == Conn::State::kIdle) {
    auto& v = idle_[c->key_];
    v.erase(std::remove(v.begin(), v.end(), c), v.end());
    --idle_count_;
  }
  if (c->timer_) loop_.cancel_timer(c->timer_);
  c->timer_ = 0;
  c->state_ = Conn::State::kClosed;
  loop_.unwatch(c->fd_);
  if (c->queued_send_) std::replace(send_queue_.begin(), send_queue_.end(), c, static_cast<Conn*>(nullptr));
  if (c->queued_recv_) std::replace(recv_queue_.begin(), recv_queue_.end(), c, static_cast<Conn*>(nullptr));
  c->queued_send_ = c->queued_recv_ = false;
  // Freed after the current batch of events, which may still name it.
  auto it = std::find_if(conns_.begin(), conns_.end(), [c](auto& p) { return p.get() == c; });
  if (it == conns_.end()) return;
  bool first = graveyard_.empty();
  graveyard_.push_back(std::move(*it));
  *it = std::move(conns_.back());
  conns_.pop_back();
  if (first) loop_.post([this] { graveyard_.clear(); });
}

void HttpEngine::shutdown(const std::function<std::exception_ptr()>& make_error) {
  // Completing one may start another (a callback issuing a new request): loop until none.
  while (!conns_.empty()) {
    Conn* c = conns_.back().get();
    if (c->done_) {
      c->fail(make_error());
    } else {
      close(c);
    }
  }
  graveyard_.clear();
}

http::TransportStats HttpEngine::stats() const {
  http::TransportStats s = stats_;
  if (batch_) {
    s.batched_socket_calls = batch_->ops();
    s.batches = batch_->enters();
  }
  return s;
}

bool HttpEngine::batching() {
  if (!batch_tried_) {  // on the loop thread, on first use
    batch_tried_ = true;
    batch_ = SyscallBatch::make();
    if (batch_) hook_ = loop_.add_before_wait([this] { return flush(); });
  }
  return batch_ != nullptr;
}

void HttpEngine::queue_send(Conn* c) {
  if (c->queued_send_) return;
  c->queued_send_ = true;
  send_queue_.push_back(c);
}

void HttpEngine::queue_recv(Conn* c) {
  if (c->queued_recv_) return;
  c->queued_recv_ = true;
  recv_queue_.push_back(c);
}

bool HttpEngine::flush() {
  // One system call for the sends queued since the last flush and the receives epoll has
  // just reported. The answers' callbacks queue the next requests. When the loop is busy
  // (several answers in this batch) those go out with the next receives, after a look at
  // epoll that does not wait (the hook asks for it by returning true): two system calls per
  // iteration, not three. When it is quiet they go out now: waiting for company would add a
  // system call per request.
  size_t from = 0;
  for (int round = 0; round < 8; ++round) {
    ops_.clear();
    batch_conns_.clear();
    if (before_send_) before_send_();
    sending_.swap(send_queue_);  // what callbacks below queue waits for the next round
    for (Conn* c : sending_) {
      if (!c) continue;
      c->queued_send_ = false;
      const std::string_view rest = c->unsent();
      if (c->state_ != Conn::State::kWriting || rest.empty()) continue;
      ops_.push_back({c->fd_, true, const_cast<char*>(rest.data()), rest.size(), 0});
      batch_conns_.push_back(c);
    }
    sending_.clear();
    if (from < recv_queue_.size() && !slots_) slots_.reset(new char[kSlot * kSlots]);
    size_t receives = 0;
    for (; from < recv_queue_.size() && receives < kSlots; ++from) {
      Conn* c = recv_queue_[from];
      if (!c) continue;
      c->queued_recv_ = false;
      if (c->state_ != Conn::State::kReading) continue;
      ops_.push_back({c->fd_, false, slots_.get() + kSlot * receives++, kSlot, 0});
      batch_conns_.push_back(c);
    }
    batch_->run(ops_);
    // Each outcome handled in order. A callback may close another connection of this batch
    // (it is then kClosed, still allocated until the loop's tasks run).
    for (size_t i = 0; i < ops_.size(); ++i) {
      Conn* c = batch_conns_[i];
      const SyscallBatch::Op& op = ops_[i];
      if (op.send && c->state_ == Conn::State::kWriting) {
        c->guarded([&] {
          if (c->on_sent(op.res >= 0 ? op.res : -1, op.res >= 0 ? 0 : static_cast<int>(-op.res))) c->write_now();
        });
      } else if (!op.send && c->state_ == Conn::State::kReading) {
        c->guarded([&] { c->received(op.res, op.buf); });
      }
    }
    if (from < recv_queue_.size()) continue;  // more receives than slots
    recv_queue_.clear();
    if (before_send_) before_send_();
    if (send_queue_.empty()) return false;
    if (receives >= 2) return true;  // busy
  }
  return !send_queue_.empty() || !recv_queue_.empty();
}

int HttpEngine::connect_to(const http::Url& url, const std::string& where) {
  // Name resolution blocks the loop; endpoints are resolved once per connection, and a
  // numeric address (the common case for local endpoints) costs nothing.
  const http::AddrInfo res = http::resolve_host(url, where);
  std::string last = "no address";
  bool refused = false;
  for (addrinfo* a = res.get(); a; a = a->ai_next) {
    int fd = ::socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, a->ai_protocol);
    if (fd < 0) continue;
    if (::connect(fd, a->ai_addr, a->ai_addrlen) == 0 || errno == EINPROGRESS) {
      return fd;
    }
    last = std::strerror(errno);
    refused = errno == ECONNREFUSED;
    ::close(fd);
  }
  throw ConnectError(where + ": cannot connect: " + last, refused);
}

namespace {

class EventLoopTransport final : public http::Transport {
 public:
  explicit EventLoopTransport(const http::HttpOptions& o)
      : loop_(std::make_unique<EventLoop>()), engine_(std::make_unique<HttpEngine>(*loop_, o, nullptr)) {}
  ~EventLoopTransport() override {
    loop_->post([this] { engine_->shutdown([] { return std::make_exception_ptr(CancelledError("transport destroyed")); }); });
    loop_->join();
  }
  http::Response send(const http::Request& request) override {
    std::promise<http::Response> p;
    auto f = p.get_future();
    loop_->post([&] {
      engine_->send(request, [&p](http::Response* r, std::exception_ptr e) {
        if (e)
          p.set_exception(std::move(e));
        else
          p.set_value(std::move(*r));
      });
    });
    return f.get();
  }
  http::TransportStats stats() const override {
    std::promise<http::TransportStats> p;
    loop_->post([&] { p.set_value(engine_->stats()); });
    return p.get_future().get();
  }

 private:
  std::unique_ptr<EventLoop> loop_;
  std::unique_ptr<HttpEngine> engine_;
};

}  // namespace

std::shared_ptr<http::Transport> make_event_loop_transport(const http::HttpOptions& options) {
  return std::make_shared<EventLoopTransport>(options);
}

}  // namespace dynamodb_cache::io
