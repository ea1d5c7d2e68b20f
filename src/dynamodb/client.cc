#include "dynamodb_cache/dynamodb.h"

#include <algorithm>
#include <charconv>

#include <condition_variable>
#include <mutex>
#include <optional>

#include "dynamodb/raw_call.h"
#include "dynamodb/retry.h"
#include "dynamodb/wire.h"
#include "dynamodb_cache/errors.h"
#include "http/headers.h"
#include "http/transports.h"
#include "io/event_loop.h"
#include "io/http_engine.h"
#include "util/crypto.h"
#include "util/time.h"

namespace dynamodb_cache::dynamodb {

namespace {

// The throttling and transient error codes of the AWS SDKs' standard retry mode.
bool is_throttling(std::string_view name) {
  return name == "ProvisionedThroughputExceededException" || name == "ThrottlingException" ||
         name == "RequestLimitExceeded" || name == "Throttling" || name == "LimitExceededException" ||
         name == "TooManyRequestsException" || name == "TransactionInProgressException" ||
         name == "ThrottledException" || name == "RequestThrottledException" || name == "RequestThrottled" ||
         name == "BandwidthLimitExceeded" || name == "SlowDown" || name == "EC2ThrottledException";
}

ErrorKind classify(int status, std::string_view name) {
  if (is_throttling(name) || status == 429) return ErrorKind::kThrottling;
  if (name == "ConditionalCheckFailedException") return ErrorKind::kConditionFailed;
  if (name == "ResourceNotFoundException") return ErrorKind::kResourceNotFound;
  if (name == "InternalServerError" || name == "ServiceUnavailable" || name == "RequestTimeout" ||
      name == "RequestTimeoutException" || name == "PriorRequestNotComplete" || status >= 500)
    return ErrorKind::kServiceTransient;
  return ErrorKind::kService;
}

// "host[:port]" of an endpoint URL, as the Host header and the signature need it.
std::string host_of(const std::string& endpoint) {
  auto start = endpoint.find("://") + 3;
  auto end = endpoint.find_first_of("/?", start);
  std::string host = endpoint.substr(start, end == std::string::npos ? std::string::npos : end - start);
  // Drop a default port: signers on the other side see the Host header without it.
  bool https = endpoint.rfind("https://", 0) == 0;
  std::string_view def = https ? ":443" : ":80";
  if (host.size() > def.size() && host.compare(host.size() - def.size(), def.size(), def) == 0)
    host.resize(host.size() - def.size());
  return host;
}

// Errors with which services reject a request signed too far from their clock (the set the
// AWS SDKs treat as possible clock skew). InvalidSignatureException is also a wrong secret:
// only the Date header of the answer tells the two apart.
bool is_clock_skew_error(std::string_view name) {
  return name == "RequestTimeTooSkewed" || name == "RequestExpired" || name == "InvalidSignatureException" ||
         name == "SignatureDoesNotMatch" || name == "AuthFailure" || name == "RequestInTheFuture";
}

// "30 s", "1500 ms".
std::string duration_text(std::chrono::milliseconds d) {
  return d.count() % 1000 == 0 ? std::to_string(d.count() / 1000) + " s" : std::to_string(d.count()) + " ms";
}

double seconds_of(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration<double>(t.time_since_epoch()).count();
}

}  // namespace

struct Client::Impl {
  ClientOptions options;
  std::string region;
  std::string endpoint;
  std::string url;
  std::string path;
  std::string host;
  std::shared_ptr<aws::CredentialsProvider> credentials;
  std::shared_ptr<http::Transport> transport;
  http::HttpOptions http_options;  // of the built-in transports (the blocking one and the engines)
  std::shared_ptr<Sleeper> sleeper;
  detail::RetryQuota quota;
  detail::Backoff backoff;
  detail::ClientRateLimiter limiter;  // used in adaptive mode only
  // Server clock minus ours, learnt from clock-skew errors; added to options.now() when
  // signing. Milliseconds.
  std::atomic<int64_t> clock_offset_ms{0};
  ClientStats stats;

  static ClientOptions with_resolved_retry(ClientOptions o) {
    o.retry = detail::resolve_retry(std::move(o.retry), o.profile);
    return o;
  }

  explicit Impl(ClientOptions o)
      : options(with_resolved_retry(std::move(o))), quota(options.retry.quota_capacity), backoff(options.retry) {
    if (options.operation_timeout.count() <= 0) throw InvalidArgumentError("operation_timeout must be > 0");
    if (options.io_threads < 1) throw InvalidArgumentError("io_threads must be at least 1");
    if (options.max_in_flight < 1) throw InvalidArgumentError("max_in_flight must be at least 1");
    region = aws::resolve_region(options.region, options.profile);
    endpoint = aws::resolve_dynamodb_endpoint(region, options.endpoint, options.profile);
    url = endpoint + "/";
    path = http::parse_url(url, "endpoint").path;  // ConfigError for a malformed endpoint; signed below
    host = host_of(endpoint);
    credentials = options.credentials ? options.credentials : aws::make_default_chain(options.profile);
    // no attempt outlives the operation deadline
    http_options = aws::resolve_http_options(options.profile);
    http_options.request_timeout = std::min(http_options.request_timeout, options.operation_timeout);
    transport = options.transport ? options.transport : http::make_default_transport(http_options);
    sleeper = options.retry.sleeper ? options.retry.sleeper : real_sleeper();
    blocking_async = options.transport != nullptr || http::proxy_configured(endpoint.rfind("https://", 0) == 0);
    if (!options.now) options.now = [] { return aws::SystemClock::now(); };
  }

  static constexpr size_t kTargetPrefix = sizeof("DynamoDB_20120810.") - 1;
  struct RetryRun;

  // The Impl of `c` (a nested class may reach Client's members): for the private calls of
  // raw_call.h.
  static Impl& of(Client& c) { return *c.impl_; }

  // The signed request of one attempt, made in `req` (whose strings are reused: a request
  // kept by the caller allocates less the next time); `body` is lent to it (moved in: the
  // caller takes it back from the request after sending). `signed_at` receives the signing time.
  void prepare(const char* target, std::string& body, aws::SystemClock::time_point& signed_at, http::Request& req) {
    // Per thread, their strings reused: the credentials, the three headers signed, and the
    // SigningResult (canonical request, string to sign, signature). Nothing here allocates per
    // request once warm, when `req` is reused too. The provider is asked first: one that calls
    // a client on this thread (STS, SSO) has finished with these before they are written.
    thread_local aws::Credentials creds;
    credentials->get_into(creds);
    thread_local std::vector<http::Header> to_sign{
        {"Host", ""}, {"Content-Type", "application/x-amz-json-1.0"}, {"X-Amz-Target", ""}};
    to_sign[0].value.assign(host);
    to_sign[2].value.assign(target);
    aws::SigningParams p;
    p.method = "POST";
    p.path = path;
    p.headers = &to_sign;
    p.body = body;
    p.credentials = &creds;
    p.region = region;
    p.service = "dynamodb";
    p.time = options.now() + std::chrono::milliseconds(clock_offset_ms.load(std::memory_order_relaxed));
    signed_at = p.time;
    thread_local aws::SigningResult signed_;
    aws::sign_v4(p, signed_);
    req.method = "POST";
    req.url.assign(url);
    size_t n = 0;
    for (const auto& h : to_sign) http::put_header(req.headers, n, h.name, h.value);
    for (const auto& h : signed_.added_headers) http::put_header(req.headers, n, h.name, h.value);
    http::put_header(req.headers, n, "Authorization", signed_.authorization);
    req.headers.resize(n);
    req.body = std::move(body);
  }

  // The body of a 200 answer; throws Error otherwise. Sets `skew_corrected` when the answer
  // was a clock-skew error and the clock offset was corrected from its Date header (sending
  // again may then succeed).
  std::string check(const char* target, http::Response& resp, aws::SystemClock::time_point signed_at,
                    bool& skew_corrected) {
    if (const std::string* crc = resp.header("x-amz-crc32")) {
      uint32_t want = 0;
      auto [ptr, ec] = std::from_chars(crc->data(), crc->data() + crc->size(), want);
      if (ec != std::errc() || ptr != crc->data() + crc->size() || want != util::crc32(resp.body))
        throw ProtocolError(std::string(target + kTargetPrefix) + ": response failed its x-amz-crc32 check (" +
                                std::to_string(resp.body.size()) + " bytes)",
                            true);
    }
    if (resp.status == 200) return std::move(resp.body);

    auto err = wire::decode_error(resp.body);
    const std::string* rid = resp.header("x-amzn-requestid");
    const ErrorKind kind = classify(resp.status, err.name);  // before err.name is moved from
    if (is_clock_skew_error(err.name)) skew_corrected = learn_clock_offset(resp, signed_at);
    throw ServiceError(kind, resp.status, std::move(err.name),
                       std::move(err.message), rid ? *rid : std::string());
  }

  // A T kept per thread and reused by each blocking attempt, its strings' buffers with it; a
  // nested attempt on the same thread (a credentials provider or a custom transport calling
  // a client) gets a fresh one. `value` is valid for this object's life.
  template <class T>
  class PerThread {
   public:
    PerThread() : was_busy_(busy()) {
      busy() = true;
      value = was_busy_ ? &own_.emplace() : &kept();
    }
    ~PerThread() { busy() = was_busy_; }
    PerThread(const PerThread&) = delete;
    PerThread& operator=(const PerThread&) = delete;
    T* value;

   private:
    static T& kept() {
      thread_local T t;
      return t;
    }
    static bool& busy() {
      thread_local bool b = false;
      return b;
    }
    const bool was_busy_;
    std::optional<T> own_;
  };

  // One blocking attempt: sign, send, check. `body` is lent to the request for the send and
  // handed back, also when send() throws. The request and the response are the thread's,
  // reused (prepare and the built-in transport's send_into overwrite their strings in place):
  // no allocation for their headers per request. The answer's body leaves with the result;
  // an error's large body is not kept.
  std::string attempt(const char* target, std::string& body, bool& skew_corrected) {
    aws::SystemClock::time_point signed_at;
    PerThread<http::Request> req;
    prepare(target, body, signed_at, *req.value);
    struct GiveBack {
      std::string& to;
      std::string& from;
      ~GiveBack() { to = std::move(from); }
    } give_back{body, req.value->body};
    PerThread<http::Response> resp;
    struct Trim {
      std::string& body;
      ~Trim() {
        if (body.capacity() > (64u << 10)) std::string().swap(body);
      }
    } trim{resp.value->body};
    transport->send_into(*req.value, *resp.value);
    return check(target, *resp.value, signed_at, skew_corrected);
  }

  // Corrects the clock offset when the answer's Date is more than 4 minutes (the AWS SDKs'
  // threshold; services allow 5) from the time the request was signed with. Returns whether
  // it did.
  bool learn_clock_offset(const http::Response& resp, aws::SystemClock::time_point signed_at) {
    const std::string* date = resp.header("date");
    auto server = date ? util::parse_http_date(*date) : std::nullopt;
    if (!server) return false;
    using std::chrono::milliseconds;
    if (std::chrono::abs(*server - signed_at) <= std::chrono::minutes(4)) return false;
    clock_offset_ms.store(std::chrono::duration_cast<milliseconds>(*server - options.now()).count(),
                          std::memory_order_relaxed);
    return true;
  }

  // Thrown when the operation deadline ends the retries.
  [[noreturn]] void deadline_expired(const char* target, int attempts, const std::string& last) {
    stats.failures.fetch_add(1, std::memory_order_relaxed);
    throw TimeoutError(std::string(target + kTargetPrefix) + ": operation deadline of " +
                       duration_text(options.operation_timeout) + " (ClientOptions::operation_timeout) expired after " +
                       std::to_string(attempts) + (attempts == 1 ? " attempt" : " attempts") +
                       (last.empty() ? std::string() : "; last error: " + last));
  }

  // The retry loop around attempt(), within the operation deadline.
  std::string call(const char* target, std::string body);

  // ---- the asynchronous path ----
  struct AsyncOp;
  template <class Done>
  struct OpWith;
  struct IoThread {
    std::unique_ptr<io::EventLoop> loop;
    std::unique_ptr<io::HttpEngine> engine;
    // Loop thread only: every operation not yet completed, an intrusive list (AsyncOp::prev,
    // next) so that starting and ending one allocates nothing.
    AsyncOp* ops = nullptr;
    http::Request request;  // loop thread only: each attempt's, reused (see prepare)
    void link(AsyncOp* op);
    void unlink(AsyncOp* op);
  };
  std::once_flag io_once;
  std::vector<std::unique_ptr<IoThread>> io;  // set once (io_once)
  std::atomic<size_t> next_io{0};
  std::atomic<bool> closing{false};
  std::atomic<size_t> in_flight{0};
  std::atomic<int> slot_waiters{0};
  std::mutex slot_mu;
  std::condition_variable slot_cv;
  bool blocking_async = false;  // a custom transport or a proxy: the loop calls `transport`

  ~Impl() { stop_io(); }
  void start_io();
  void stop_io();
  bool acquire_slot();
  void release_slot();
  // Starts an operation that completes with done(body, error): `Done` is called once with
  // the 200 answer's body (non-null) or a null body and the error. The operation, `done`
  // inside, is one allocation.
  template <class Done>
  void submit(const char* target, std::string body, Done done);
  void begin(IoThread& t, AsyncOp* op);
  void send(IoThread& t, AsyncOp* op);
  void on_answer(IoThread& t, AsyncOp* op, http::Response* resp, std::exception_ptr error);
  // After a failed attempt: the error to complete with, or nullptr and `delay` (nullopt: at once).
  std::exception_ptr decide(AsyncOp* op, std::exception_ptr error, bool skew_corrected,
                            std::optional<std::chrono::microseconds>& delay);
  void finish(IoThread& t, AsyncOp* op, std::string* body, std::exception_ptr error);
};

// One operation's retry state: what the blocking loop and the asynchronous path both ask
// before each attempt and after each failure, so the two share one policy (quota, backoff,
// deadline, adaptive limiter, clock-skew and expired-token resends). One operation at a time.
struct Client::Impl::RetryRun {
  Impl& c;
  const char* target;
  const std::chrono::steady_clock::time_point deadline;
  const bool adaptive;
  int n = 1;      // the attempt about to be made (1-based)
  int spent = 0;  // quota tokens taken by this operation's retries
  bool refreshed_credentials = false, corrected_skew = false;
  std::string last_error;

  RetryRun(Impl& impl, const char* t)
      : c(impl), target(t), deadline(impl.sleeper->now() + impl.options.operation_timeout),
        adaptive(impl.options.retry.mode == RetryMode::kAdaptive) {
    c.stats.calls.fetch_add(1, std::memory_order_relaxed);
  }

  // Before attempt n: how long to wait first (the adaptive mode's limiter; zero otherwise).
  // Counts the attempt. Throws the deadline error when the wait would pass the deadline.
  std::chrono::microseconds before_attempt() {
    std::chrono::microseconds wait{0};
    if (adaptive) {
      wait = c.limiter.acquire(seconds_of(c.sleeper->now()));
      if (wait.count() > 0 && c.sleeper->now() + wait >= deadline) c.deadline_expired(target, n - 1, last_error);
    }
    c.stats.attempts.fetch_add(1, std::memory_order_relaxed);
    return wait;
  }

  void succeeded() {
    if (adaptive) c.limiter.update(false, seconds_of(c.sleeper->now()));
    c.quota.release(n == 1 ? 1 : spent);
  }

  // After attempt n failed with `e`: the backoff to sleep before the next attempt, or
  // nullopt to send again at once. Gives up by throwing: `e` itself (rethrown: call only
  // from the handler catching `e`), a TimeoutError naming the transport timeout, or the
  // deadline error. Takes quota tokens for a retry.
  std::optional<std::chrono::microseconds> failed(const Error& e, bool skew_corrected) {
    if (adaptive) c.limiter.update(e.kind() == ErrorKind::kThrottling, seconds_of(c.sleeper->now()));
    last_error = e.what();
    auto* se = dynamic_cast<const ServiceError*>(&e);
    // A request signed with a clock too far from the service's: the offset is corrected
    // now, so sending again once (beyond max_attempts: this one never reached the
    // operation) can succeed.
    if (skew_corrected && !corrected_skew) {
      corrected_skew = true;
      if (c.sleeper->now() >= deadline) c.deadline_expired(target, n, last_error);
      c.stats.retries.fetch_add(1, std::memory_order_relaxed);
      return std::nullopt;
    }
    // Temporary credentials the service already considers expired (clock skew against
    // their issuer, or a revoked session): fetch new ones and try once more.
    if (se && se->name() == "ExpiredTokenException" && !refreshed_credentials && n < c.options.retry.max_attempts) {
      refreshed_credentials = true;
      if (c.sleeper->now() >= deadline) c.deadline_expired(target, n, last_error);
      c.credentials->invalidate();
      c.stats.retries.fetch_add(1, std::memory_order_relaxed);
      ++n;
      return std::nullopt;
    }
    if (!e.retryable() || n >= c.options.retry.max_attempts) give_up(e);
    auto delay = c.backoff.delay(n, e.kind() == ErrorKind::kThrottling);
    if (c.sleeper->now() + delay >= deadline) c.deadline_expired(target, n, e.what());
    if (c.options.retry.mode != RetryMode::kLegacy) {  // legacy has no retry quota
      int cost = e.kind() == ErrorKind::kTimeout ? c.options.retry.timeout_retry_cost : c.options.retry.retry_cost;
      if (!c.quota.acquire(cost)) {
        c.stats.quota_exhausted.fetch_add(1, std::memory_order_relaxed);
        give_up(e);
      }
      spent += cost;
    }
    c.stats.retries.fetch_add(1, std::memory_order_relaxed);
    ++n;
    return delay;
  }

  [[noreturn]] void give_up(const Error& e) {
    c.stats.failures.fetch_add(1, std::memory_order_relaxed);
    if (e.kind() == ErrorKind::kTimeout)  // say which timeout it was
      throw TimeoutError(std::string(target + kTargetPrefix) + ": " + e.what() +
                         " (the per-attempt transport timeout; attempt " + std::to_string(n) + " of " +
                         std::to_string(c.options.retry.max_attempts) + ")");
    throw;
  }
};

std::string Client::Impl::call(const char* target, std::string body) {
  RetryRun run(*this, target);
  for (;;) {
    if (auto wait = run.before_attempt(); wait.count() > 0) sleeper->sleep(wait);
    bool skew_corrected = false;
    try {
      std::string out = attempt(target, body, skew_corrected);
      run.succeeded();
      return out;
    } catch (const Error& e) {
      if (auto delay = run.failed(e, skew_corrected)) sleeper->sleep(*delay);
    }
  }
}

// An asynchronous operation: owned by its I/O thread from submit() to finish().
struct Client::Impl::AsyncOp {
  AsyncOp(Impl& c, const char* t, std::string b) : target(t), body(std::move(b)), run(c, t) {}
  virtual ~AsyncOp() = default;
  // The operation's end: the 200 answer's body, or null and the error. Called once.
  virtual void complete(std::string* body, std::exception_ptr error) = 0;
  const char* target;
  std::string body;  // lent to each attempt's request
  RetryRun run;
  uint64_t timer = 0;  // a backoff or limiter wait under way
  aws::SystemClock::time_point signed_at;
  IoThread* io = nullptr;  // the loop it runs on, once linked there
  AsyncOp* prev = nullptr;
  AsyncOp* next = nullptr;
};

// An operation and its completion in one allocation (a std::function beside the operation
// would be a second one whenever its captures outgrow the function's inline buffer).
template <class Done>
struct Client::Impl::OpWith final : AsyncOp {
  OpWith(Impl& c, const char* t, std::string b, Done d) : AsyncOp(c, t, std::move(b)), done(std::move(d)) {}
  void complete(std::string* body, std::exception_ptr error) override { done(body, std::move(error)); }
  Done done;
};

void Client::Impl::IoThread::link(AsyncOp* op) {
  op->io = this;
  op->prev = nullptr;
  op->next = ops;
  if (ops) ops->prev = op;
  ops = op;
}

void Client::Impl::IoThread::unlink(AsyncOp* op) {
  (op->prev ? op->prev->next : ops) = op->next;
  if (op->next) op->next->prev = op->prev;
}

void Client::Impl::start_io() {
  std::call_once(io_once, [this] {
    auto tls = endpoint.rfind("https://", 0) == 0 && !blocking_async ? std::make_shared<http::TlsContext>(http_options)
                                                                      : nullptr;
    http::HttpOptions engine_options = http_options;
    engine_options.max_idle_connections =
        std::max(http_options.max_idle_connections,
                 (options.max_in_flight + static_cast<size_t>(options.io_threads) - 1) / static_cast<size_t>(options.io_threads));
    for (int i = 0; i < options.io_threads; ++i) {
      auto t = std::make_unique<IoThread>();
      t->loop = std::make_unique<io::EventLoop>();
      t->engine = std::make_unique<io::HttpEngine>(*t->loop, engine_options, tls);
      io.push_back(std::move(t));
    }
  });
}

void Client::Impl::stop_io() {
  closing.store(true);
  for (auto& t : io) {
    IoThread* tp = t.get();
    t->loop->post([this, tp] {
      // One error object per operation: callers on other threads share none.
      auto cancelled = [] {
        return std::make_exception_ptr(CancelledError("DynamoDB client destroyed with the operation pending"));
      };
      // In-flight requests first (their operations give up: CancelledError is final), then
      // those waiting on a backoff timer.
      tp->engine->shutdown(cancelled);
      while (tp->ops) finish(*tp, tp->ops, nullptr, cancelled());
    });
  }
  for (auto& t : io) t->loop->stop();
  for (auto& t : io) t->loop->join();  // nothing runs on the loops any more
  io.clear();
}

bool Client::Impl::acquire_slot() {
  auto try_take = [this] {
    size_t cur = in_flight.load(std::memory_order_relaxed);
    while (cur < options.max_in_flight)
      if (in_flight.compare_exchange_weak(cur, cur + 1, std::memory_order_acq_rel)) return true;
    return false;
  };
  if (try_take()) return true;
  bool on_loop = false;
  for (auto& t : io) on_loop = on_loop || t->loop->in_loop();
  if (options.in_flight_policy == InFlightPolicy::kFail || on_loop) return false;  // waiting there would deadlock
  std::unique_lock lock(slot_mu);
  slot_waiters.fetch_add(1);
  slot_cv.wait(lock, try_take);
  slot_waiters.fetch_sub(1);
  return true;
}

void Client::Impl::release_slot() {
  in_flight.fetch_sub(1, std::memory_order_acq_rel);
  if (slot_waiters.load() > 0) {
    std::lock_guard lock(slot_mu);
    slot_cv.notify_one();
  }
}

template <class Done>
void Client::Impl::submit(const char* target, std::string body, Done done) {
  const std::string_view op_name(target + kTargetPrefix);
  if (closing.load()) {
    auto error = std::make_exception_ptr(
        CancelledError(std::string(op_name).append(": the DynamoDB client is being destroyed")));
    return done(nullptr, std::move(error));
  }
  try {
    start_io();
  } catch (...) {  // a bad CA bundle, no threads left
    done(nullptr, std::current_exception());
    return;
  }
  if (!acquire_slot()) {
    auto error = std::make_exception_ptr(
        OverloadedError(std::string(op_name) + ": " + std::to_string(options.max_in_flight) +
                        " operations already in flight (ClientOptions::max_in_flight)"));
    return done(nullptr, std::move(error));
  }
  AsyncOp* op = new OpWith<Done>(*this, target, std::move(body), std::move(done));
  // Called on one of the loops (a callback starting the next operation): start it there at
  // once, without a hand-off through the task queue.
  for (auto& l : io)
    if (l->loop->in_loop()) {
      l->link(op);
      return begin(*l, op);
    }
  IoThread& t = *io[next_io.fetch_add(1, std::memory_order_relaxed) % io.size()];
  t.loop->post([this, &t, op] {
    t.link(op);
    begin(t, op);
  });
}

void Client::Impl::begin(IoThread& t, AsyncOp* op) {
  try {
    auto wait = op->run.before_attempt();
    if (wait.count() > 0) {
      op->timer = t.loop->add_timer(io::Clock::now() + wait, [this, &t, op] {
        op->timer = 0;
        send(t, op);
      });
      return;
    }
  } catch (...) {
    return finish(t, op, nullptr, std::current_exception());
  }
  send(t, op);
}

void Client::Impl::send(IoThread& t, AsyncOp* op) {
  http::Request& req = t.request;
  try {
    prepare(op->target, op->body, op->signed_at, req);
  } catch (...) {  // prepare lends the body last, with a move: op->body is untouched
    return on_answer(t, op, nullptr, std::current_exception());
  }
  if (blocking_async) {
    http::Response resp;
    std::exception_ptr error;
    try {
      resp = transport->send(req);
    } catch (...) {
      error = std::current_exception();
    }
    op->body = std::move(req.body);
    return on_answer(t, op, error ? nullptr : &resp, error);
  }
  // The engine copies the request before it returns, and never calls back from within send().
  // One pointer captured: the callback fits std::function's inline buffer (no allocation).
  t.engine->send(req, [op](http::Response* resp, std::exception_ptr error) {
    op->run.c.on_answer(*op->io, op, resp, std::move(error));
  });
  op->body = std::move(req.body);
}

void Client::Impl::on_answer(IoThread& t, AsyncOp* op, http::Response* resp, std::exception_ptr error) {
  bool skew_corrected = false;
  if (!error) {
    try {
      std::string out = check(op->target, *resp, op->signed_at, skew_corrected);
      op->run.succeeded();
      return finish(t, op, &out, nullptr);
    } catch (...) {
      error = std::current_exception();
    }
  }
  std::optional<std::chrono::microseconds> delay;
  // Decided outside any catch handler, and the error moved on: when the user sees it, this
  // thread holds no reference to it (its last release is then ordered by what hands it over).
  error = decide(op, std::move(error), skew_corrected, delay);
  if (error) return finish(t, op, nullptr, std::move(error));
  if (!delay) return begin(t, op);
  // The backoff is a timer: the loop runs other operations meanwhile.
  op->timer = t.loop->add_timer(io::Clock::now() + *delay, [this, &t, op] {
    op->timer = 0;
    begin(t, op);
  });
}

std::exception_ptr Client::Impl::decide(AsyncOp* op, std::exception_ptr error, bool skew_corrected,
                                        std::optional<std::chrono::microseconds>& delay) {
  try {
    std::rethrow_exception(std::move(error));
  } catch (const Error& e) {
    try {
      delay = op->run.failed(e, skew_corrected);
      return nullptr;
    } catch (...) {
      return std::current_exception();
    }
  } catch (...) {
    return std::current_exception();
  }
}

void Client::Impl::finish(IoThread& t, AsyncOp* op, std::string* body, std::exception_ptr error) {
  if (op->timer) t.loop->cancel_timer(op->timer);
  t.unlink(op);
  std::unique_ptr<AsyncOp> owned(op);
  release_slot();
  owned->complete(body, std::move(error));
}

namespace {

// The callback form of an operation's completion: decodes the body on the I/O thread.
// Kept whole in the operation (Impl::OpWith): no allocation of its own.
template <class T, class Decode>
struct Typed {
  Callback<T> done;
  Decode decode;
  void operator()(std::string* body, std::exception_ptr error) {
    if (error) return done(Outcome<T>(std::move(error)));
    std::optional<Outcome<T>> out;
    try {
      out.emplace(decode(std::move(*body)));
    } catch (...) {
      out.emplace(std::current_exception());
    }
    done(std::move(*out));
  }
};
template <class T, class Decode>
Typed<T, Decode> typed(Callback<T> done, Decode decode) {
  return Typed<T, Decode>{std::move(done), decode};
}

template <class T>
Callback<T> promise_callback(std::shared_ptr<std::promise<T>> p) {
  return [p = std::move(p)](Outcome<T> o) {
    if (o.ok())
      p->set_value(std::move(o).value());
    else
      p->set_exception(std::move(o).error());  // no reference left on this thread
  };
}

}  // namespace

Client::Client(ClientOptions options) : impl_(std::make_unique<Impl>(std::move(options))) {}
Client::~Client() = default;

const std::string& Client::region() const { return impl_->region; }
const std::string& Client::endpoint() const { return impl_->endpoint; }
const ClientStats& Client::stats() const { return impl_->stats; }

#define DDB_TARGET(op) "DynamoDB_20120810." op

GetItemResult Client::get_item(const GetItemRequest& r) {
  return wire::decode_get_item(impl_->call(DDB_TARGET("GetItem"), wire::encode(r)));
}
WriteResult Client::put_item(const PutItemRequest& r) {
  return wire::decode_write(impl_->call(DDB_TARGET("PutItem"), wire::encode(r)));
}
WriteResult Client::delete_item(const DeleteItemRequest& r) {
  return wire::decode_write(impl_->call(DDB_TARGET("DeleteItem"), wire::encode(r)));
}
WriteResult Client::update_item(const UpdateItemRequest& r) {
  return wire::decode_write(impl_->call(DDB_TARGET("UpdateItem"), wire::encode(r)));
}
BatchGetItemResult Client::batch_get_item(const BatchGetItemRequest& r) {
  return wire::decode_batch_get(impl_->call(DDB_TARGET("BatchGetItem"), wire::encode(r)));
}
BatchWriteItemResult Client::batch_write_item(const BatchWriteItemRequest& r) {
  return wire::decode_batch_write(impl_->call(DDB_TARGET("BatchWriteItem"), wire::encode(r)));
}
PageResult Client::query(const QueryRequest& r) {
  return wire::decode_page(impl_->call(DDB_TARGET("Query"), wire::encode(r)));
}
PageResult Client::scan(const ScanRequest& r) {
  return wire::decode_page(impl_->call(DDB_TARGET("Scan"), wire::encode(r)));
}
TableDescription Client::create_table(const CreateTableRequest& r) {
  return wire::decode_table(impl_->call(DDB_TARGET("CreateTable"), wire::encode(r)), "TableDescription");
}
TableDescription Client::describe_table(const std::string& t) {
  return wire::decode_table(impl_->call(DDB_TARGET("DescribeTable"), wire::encode_table_name(t)), "Table");
}
TableDescription Client::delete_table(const std::string& t) {
  return wire::decode_table(impl_->call(DDB_TARGET("DeleteTable"), wire::encode_table_name(t)),
                            "TableDescription");
}
TimeToLiveDescription Client::update_time_to_live(const std::string& t, const std::string& attr, bool on) {
  return wire::decode_ttl(impl_->call(DDB_TARGET("UpdateTimeToLive"), wire::encode_update_ttl(t, attr, on)),
                          true);
}
TimeToLiveDescription Client::describe_time_to_live(const std::string& t) {
  return wire::decode_ttl(impl_->call(DDB_TARGET("DescribeTimeToLive"), wire::encode_table_name(t)), false);
}

size_t Client::in_flight() const { return impl_->in_flight.load(std::memory_order_relaxed); }

http::TransportStats Client::io_stats() const {
  http::TransportStats sum;
  for (auto& t : impl_->io) {
    std::promise<http::TransportStats> p;
    t->loop->post([&] { p.set_value(t->engine->stats()); });
    auto s = p.get_future().get();
    sum.connections += s.connections;
    sum.tls_handshakes += s.tls_handshakes;
    sum.tls_resumptions += s.tls_resumptions;
    sum.batched_socket_calls += s.batched_socket_calls;
    sum.batches += s.batches;
  }
  return sum;
}

#define DDB_ASYNC(name, Req, Res, op, decode_expr)                                              \
  void Client::name(Req r, Callback<Res> done) {                                                 \
    impl_->submit(DDB_TARGET(op), wire::encode(r), typed<Res>(std::move(done), [](std::string b) { return decode_expr; })); \
  }                                                                                              \
  std::future<Res> Client::name(Req r) {                                                         \
    auto p = std::make_shared<std::promise<Res>>();                                              \
    auto f = p->get_future();                                                                    \
    name(std::move(r), promise_callback<Res>(std::move(p)));                                     \
    return f;                                                                                    \
  }

DDB_ASYNC(get_item_async, GetItemRequest, GetItemResult, "GetItem", wire::decode_get_item(b))
DDB_ASYNC(put_item_async, PutItemRequest, WriteResult, "PutItem", wire::decode_write(b))
DDB_ASYNC(delete_item_async, DeleteItemRequest, WriteResult, "DeleteItem", wire::decode_write(b))
DDB_ASYNC(update_item_async, UpdateItemRequest, WriteResult, "UpdateItem", wire::decode_write(b))
DDB_ASYNC(batch_get_item_async, BatchGetItemRequest, BatchGetItemResult, "BatchGetItem", wire::decode_batch_get(b))
DDB_ASYNC(batch_write_item_async, BatchWriteItemRequest, BatchWriteItemResult, "BatchWriteItem",
          wire::decode_batch_write(b))
DDB_ASYNC(query_async, QueryRequest, PageResult, "Query", wire::decode_page(b))
DDB_ASYNC(scan_async, ScanRequest, PageResult, "Scan", wire::decode_page(b))
#undef DDB_ASYNC

namespace detail {

std::string get_item_body(Client& client, std::string request) {
  return Client::Impl::of(client).call(DDB_TARGET("GetItem"), std::move(request));
}

void get_item_body_async(Client& client, std::string request, BodyDone done) {
  Client::Impl::of(client).submit(DDB_TARGET("GetItem"), std::move(request), std::move(done));
}

}  // namespace detail

namespace {

// Sends `work` in calls of at most `per_call` entries; `send` performs one call and returns
// the entries it left unprocessed, which go first into the next call. Every call that comes
// back with leftovers is followed by a backoff; only calls that make no progress at all count
// against max_attempts, so a slow but moving batch always finishes. What is still left after
// that is reported, never dropped.
template <class T, class Send>
void drain(std::vector<T> work, size_t per_call, const char* what, const RetryOptions& retry,
           detail::Backoff& backoff, Sleeper& sleeper, ClientStats& stats, Send send) {
  const size_t total = work.size();
  std::vector<T> pending;
  size_t next = 0;
  int stalled = 0, backoff_round = 0;
  while (next < work.size() || !pending.empty()) {
    std::vector<T> batch = std::move(pending);
    pending.clear();
    while (batch.size() < per_call && next < work.size()) batch.push_back(std::move(work[next++]));
    const size_t sent = batch.size();
    pending = send(std::move(batch));
    if (pending.empty()) {
      stalled = backoff_round = 0;
      continue;
    }
    stalled = pending.size() < sent ? 0 : stalled + 1;
    if (stalled >= retry.max_attempts)
      throw ServiceError(ErrorKind::kThrottling, 200, std::string("Unprocessed") + what,
                         std::to_string(pending.size() + (work.size() - next)) + " of " +
                             std::to_string(total) + " requests still unprocessed after " +
                             std::to_string(stalled) + " calls without progress",
                         "");
    stats.retries.fetch_add(1, std::memory_order_relaxed);
    sleeper.sleep(backoff.delay(++backoff_round, true));
  }
}

}  // namespace

std::vector<Item> Client::batch_get_all(const std::string& table, std::vector<Item> keys,
                                        bool consistent_read, std::vector<ConsumedCapacity>* consumed) {
  std::vector<Item> out;
  out.reserve(keys.size());
  drain(std::move(keys), 100 /* BatchGetItem limit */, "Keys", impl_->options.retry, impl_->backoff,
        *impl_->sleeper, impl_->stats, [&](std::vector<Item> batch) {
          BatchGetItemRequest req;
          if (consumed) req.return_consumed_capacity = ReturnConsumedCapacity::kTotal;
          auto& ka = req.request_items[table];
          ka.consistent_read = consistent_read;
          ka.keys = std::move(batch);
          auto res = batch_get_item(req);
          for (auto& [t, items] : res.responses)
            for (auto& i : items) out.push_back(std::move(i));
          if (consumed) consumed->insert(consumed->end(), res.consumed.begin(), res.consumed.end());
          auto it = res.unprocessed_keys.find(table);
          return it == res.unprocessed_keys.end() ? std::vector<Item>{} : std::move(it->second.keys);
        });
  return out;
}

void Client::batch_write_all(const std::string& table, std::vector<WriteRequest> writes,
                             std::vector<ConsumedCapacity>* consumed) {
  drain(std::move(writes), 25 /* BatchWriteItem limit */, "Items", impl_->options.retry, impl_->backoff,
        *impl_->sleeper, impl_->stats, [&](std::vector<WriteRequest> batch) {
          BatchWriteItemRequest req;
          if (consumed) req.return_consumed_capacity = ReturnConsumedCapacity::kTotal;
          req.request_items[table] = std::move(batch);
          auto res = batch_write_item(req);
          if (consumed) consumed->insert(consumed->end(), res.consumed.begin(), res.consumed.end());
          auto it = res.unprocessed_items.find(table);
          return it == res.unprocessed_items.end() ? std::vector<WriteRequest>{} : std::move(it->second);
        });
}

void Client::scan_all(ScanRequest r, const std::function<bool(PageResult&)>& on_page) {
  for (;;) {
    auto page = scan(r);
    auto last = page.last_evaluated_key;
    if (!on_page(page) || !last) return;
    r.exclusive_start_key = std::move(last);
  }
}

}  // namespace dynamodb_cache::dynamodb
