// One attempt and the one retry policy (private; see client_impl.h): Impl's constructor, the
// signing of a request, the checking of its answer (CRC, error classification, clock skew),
// RetryRun, and the blocking retry loop call().
#include <algorithm>
#include <cctype>
#include <charconv>

#include "aws/fetch_deadline.h"
#include "dynamodb/client_impl.h"
#include "dynamodb/wire.h"
#include "http/headers.h"
#include "http/transports.h"
#include "util/crypto.h"
#include "util/text.h"
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

// What to do about an endpoint that is not DynamoDB's, in messages: where it came from.
const std::string kCheckEndpoint =
    "check the endpoint (the client's endpoint option or the CLI's --endpoint, AWS_ENDPOINT_URL_DYNAMODB, "
    "the "
    "profile's endpoint_url)";

// " Not Implemented": the reason phrase of the statuses a web server that is not DynamoDB
// answers with; "" for others.
const char* status_reason(int status) {
  switch (status) {
    case 400:
      return " Bad Request";
    case 401:
      return " Unauthorized";
    case 403:
      return " Forbidden";
    case 404:
      return " Not Found";
    case 405:
      return " Method Not Allowed";
    case 411:
      return " Length Required";
    case 413:
      return " Payload Too Large";
    case 415:
      return " Unsupported Media Type";
    case 501:
      return " Not Implemented";
    case 505:
      return " HTTP Version Not Supported";
    default:
      return "";
  }
}

// "30 s", "1500 ms".
std::string duration_text(std::chrono::milliseconds d) {
  return d.count() % 1000 == 0 ? std::to_string(d.count() / 1000) + " s" : std::to_string(d.count()) + " ms";
}

// Whether a failed attempt may have been applied: its request may have reached DynamoDB and
// only the answer was lost or damaged. A throttling or other 4xx answer says it was not; a
// connection never made, that it was never sent.
bool may_have_applied(const Error& e) {
  if (auto* t = dynamic_cast<const TransportError*>(&e); t && !t->request_sent()) return false;
  switch (e.kind()) {
    case ErrorKind::kTransport:
    case ErrorKind::kTimeout:
    case ErrorKind::kServiceTransient:
    case ErrorKind::kProtocol: return true;
    default: return false;
  }
}

// Operations that change items: after an attempt that may have been applied, a later failure
// does not say that nothing was written.
bool is_write(const char* target) {
  std::string_view op(target);
  op.remove_prefix(std::min(op.size(), Client::Impl::kTargetPrefix));
  return op == "PutItem" || op == "UpdateItem" || op == "DeleteItem" || op == "BatchWriteItem" ||
         op == "TransactWriteItems" || op == "ExecuteStatement" || op == "BatchExecuteStatement" ||
         op == "ExecuteTransaction";
}

double seconds_of(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration<double>(t.time_since_epoch()).count();
}

}  // namespace

ClientOptions Client::Impl::with_resolved_retry(ClientOptions o) {
  o.retry = detail::resolve_retry(std::move(o.retry), o.profile);
  return o;
}

Client::Impl::Impl(ClientOptions o)
    : options(with_resolved_retry(std::move(o))),
      quota(options.retry.quota_capacity),
      backoff(options.retry) {
  if (options.operation_timeout.count() <= 0) throw InvalidArgumentError("operation_timeout must be > 0");
  if (options.io_threads < 1) throw InvalidArgumentError("io_threads must be at least 1");
  if (options.max_in_flight < 1) throw InvalidArgumentError("max_in_flight must be at least 1");
  const HedgeOptions& h = options.hedge;
  if (!(h.percentile > 0 && h.percentile <= 100))
    throw InvalidArgumentError("hedge.percentile must be in (0, 100]");
  if (!(h.max_extra >= 0 && h.max_extra <= 1))
    throw InvalidArgumentError("hedge.max_extra must be in [0, 1]");
  if (h.floor.count() < 0) throw InvalidArgumentError("hedge.floor must be >= 0");
  if (h.min_samples < 1) throw InvalidArgumentError("hedge.min_samples must be at least 1");
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

void Client::Impl::prepare(const char* target, std::string& body, const aws::Credentials& creds,
                           aws::SystemClock::time_point& signed_at, http::Request& req,
                           bool resend_if_stale) {
  // Per thread, their strings reused: the three headers signed, and the SigningResult
  // (canonical request, string to sign, signature). Nothing here allocates per request once
  // warm, when `req` is reused too.
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
  req.resend_if_stale = resend_if_stale;
  req.url.assign(url);
  size_t n = 0;
  for (const auto& h : to_sign) http::put_header(req.headers, n, h.name, h.value);
  for (const auto& h : signed_.added_headers) http::put_header(req.headers, n, h.name, h.value);
  http::put_header(req.headers, n, "Authorization", signed_.authorization);
  req.headers.resize(n);
  req.body = std::move(body);
}

namespace {

// Text a server sent (an error's name and message, a request id) made fit for an error
// message: the secrets `req` carried redacted (its session token and signature: a server may
// echo the request), then util::printable (one line, bounded). On the asynchronous path `req`
// may be a later request signed on the same thread, with the same credentials but another
// signature: a signature is also redacted wherever it follows "Signature=", as in an echoed
// Authorization header.
std::string server_text(std::string text, const http::Request& req) {
  static constexpr std::string_view kSignature = "Signature=";
  static constexpr size_t kMaxRedactedBytes = 64 * 1024;
  std::vector<std::string_view> secrets;
  for (const auto& h : req.headers) {
    if (h.name == "X-Amz-Security-Token") secrets.push_back(h.value);
    if (auto at = h.name == "Authorization" ? h.value.find(kSignature) : std::string::npos;
        at != std::string::npos)
      secrets.push_back(std::string_view(h.value).substr(at + kSignature.size()));
  }
  // Only the first kMaxPeerTextBytes are shown: redacting more of a hostile body than what
  // can reach them (plus the secrets that may shrink before them) would only cost time.
  if (text.size() > kMaxRedactedBytes) text.resize(kMaxRedactedBytes);
  text = util::redact(std::move(text), secrets);
  for (size_t at = text.find(kSignature); at != std::string::npos; at = text.find(kSignature, at + 1)) {
    size_t start = at + kSignature.size(), end = start;
    while (end < text.size() && std::isxdigit(static_cast<unsigned char>(text[end]))) ++end;
    if (end > start) text.replace(start, end - start, "[redacted]");
  }
  return util::printable(text);
}

}  // namespace

std::string Client::Impl::check(const char* target, const http::Request& req, http::Response& resp,
                                aws::SystemClock::time_point signed_at, bool& skew_corrected) {
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
  if (const std::string* type = resp.header("x-amzn-errortype"); type && err.name.empty())
    err.name = type->substr(0, type->find(':'));  // "Name:http://internal.amazon.com/..."
  const std::string* rid = resp.header("x-amzn-requestid");
  std::string request_id = rid ? server_text(*rid, req) : std::string();
  const std::string operation(target + kTargetPrefix);
  // No error type (neither __type nor x-amzn-ErrorType): not DynamoDB's answer. A 429 and the
  // statuses gateways and proxies give for a passing fault stay transient; anything else (a
  // web server's 404 or 501) is a wrong endpoint, which no retry mends.
  if (err.name.empty() && resp.status != 429 && resp.status != 500 && resp.status != 502 &&
      resp.status != 503 && resp.status != 504)
    throw ServiceError(ErrorKind::kService, resp.status, "",
                       operation + ": the endpoint " + endpoint + " is not DynamoDB: HTTP " +
                           std::to_string(resp.status) + status_reason(resp.status) +
                           " without a DynamoDB error type; " + kCheckEndpoint,
                       std::move(request_id));
  const ErrorKind kind = classify(resp.status, err.name);  // before err.name is moved from
  if (is_clock_skew_error(err.name)) skew_corrected = learn_clock_offset(resp, signed_at);
  std::string name = server_text(std::move(err.name), req),
              message = server_text(std::move(err.message), req);
  switch (kind) {
    case ErrorKind::kResourceNotFound:
      throw ResourceNotFoundError(resp.status, std::move(name), std::move(message), std::move(request_id),
                                  wire::request_table(req.body), operation);
    case ErrorKind::kThrottling:
      throw ThrottlingError(resp.status, std::move(name), std::move(message), std::move(request_id));
    case ErrorKind::kConditionFailed:
      throw ConditionFailedError(resp.status, std::move(name), std::move(message), std::move(request_id));
    default:
      throw ServiceError(kind, resp.status, std::move(name), std::move(message), std::move(request_id));
  }
}

// A T kept per thread and reused by each blocking attempt, its strings' buffers with it; a
// nested attempt on the same thread (a credentials provider or a custom transport calling
// a client) gets a fresh one. `value` is valid for this object's life.
template <class T>
class Client::Impl::PerThread {
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

bool Client::Impl::ready_credentials(aws::Credentials& out) {
  switch (credentials->try_get_into(out)) {
    case aws::CredentialsProvider::Cached::kReady:
      return true;
    case aws::CredentialsProvider::Cached::kRefreshDue:
      want_credentials(std::chrono::steady_clock::now() + options.operation_timeout);
      return true;
    case aws::CredentialsProvider::Cached::kNone:
      break;
  }
  return false;
}

std::string Client::Impl::attempt(RetryRun& run, std::string& body, bool& skew_corrected) {
  const char* target = run.target;
  // The thread's, its strings reused (no allocation once they fit). The provider is asked
  // before anything else: one that calls a client on this thread has finished with these
  // before they are written.
  thread_local aws::Credentials creds;
  run.creds_epoch = creds_epoch.load(std::memory_order_relaxed);
  if (!ready_credentials(creds)) {
    aws::detail::ScopedFetchDeadline within(run.real_deadline(), kDeadlineWhat);
    credentials->get_into(creds);
  }
  aws::SystemClock::time_point signed_at;
  PerThread<http::Request> req;
  prepare(target, body, creds, signed_at, *req.value, run.resend_if_unknown);
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
  return check(target, *req.value, *resp.value, signed_at, skew_corrected);
}

bool Client::Impl::learn_clock_offset(const http::Response& resp, aws::SystemClock::time_point signed_at) {
  const std::string* date = resp.header("date");
  auto server = date ? util::parse_http_date(*date) : std::nullopt;
  if (!server) return false;
  using std::chrono::milliseconds;
  if (std::chrono::abs(*server - signed_at) <= std::chrono::minutes(4)) return false;
  clock_offset_ms.store(std::chrono::duration_cast<milliseconds>(*server - options.now()).count(),
                        std::memory_order_relaxed);
  return true;
}

void Client::Impl::deadline_expired(const char* target, int attempts, const std::string& last) {
  stats.failures.fetch_add(1, std::memory_order_relaxed);
  throw TimeoutError(std::string(target + kTargetPrefix) + ": operation deadline of " +
                     duration_text(options.operation_timeout) +
                     " (ClientOptions::operation_timeout) expired after " + std::to_string(attempts) +
                     (attempts == 1 ? " attempt" : " attempts") +
                     (last.empty() ? std::string() : "; last error: " + last));
}

Client::Impl::RetryRun::RetryRun(Impl& impl, const char* t, bool resend)
    : c(impl),
      target(t),
      deadline(impl.sleeper->now() + impl.options.operation_timeout),
      adaptive(impl.options.retry.mode == RetryMode::kAdaptive),
      resend_if_unknown(resend),
      write(is_write(t)) {
  c.stats.calls.fetch_add(1, std::memory_order_relaxed);
}

std::chrono::steady_clock::time_point Client::Impl::RetryRun::real_deadline() const {
  return std::chrono::steady_clock::now() + (deadline - c.sleeper->now());
}

void Client::Impl::RetryRun::unknown_outcome(const std::string& last) {
  c.stats.failures.fetch_add(1, std::memory_order_relaxed);
  std::string m = std::string(target + kTargetPrefix) + ": the outcome of attempt " + std::to_string(unknown_attempt) +
                  " is unknown (" + unknown_what + "); it may have been applied";
  if (!resend_if_unknown) throw UnknownOutcomeError(m + ", so it was not sent again");
  // An idempotent write, sent again and then failed: applying it once more is harmless.
  throw UnknownOutcomeError(m + "; " + last, true);
}

void Client::Impl::RetryRun::out_of_time(int attempts, const std::string& last) {
  if (write && unknown_attempt > 0)
    unknown_outcome("the operation deadline of " + duration_text(c.options.operation_timeout) + " expired after " +
                    std::to_string(attempts) + " attempts; last error: " + last);
  c.deadline_expired(target, attempts, last);
}

std::chrono::microseconds Client::Impl::RetryRun::before_attempt() {
  std::chrono::microseconds wait{0};
  if (adaptive) {
    wait = c.limiter.acquire(seconds_of(c.sleeper->now()));
    if (wait.count() > 0 && c.sleeper->now() + wait >= deadline)
      out_of_time(n - 1, last_error);
  }
  c.stats.attempts.fetch_add(1, std::memory_order_relaxed);
  return wait;
}

void Client::Impl::RetryRun::succeeded() {
  if (adaptive) c.limiter.update(false, seconds_of(c.sleeper->now()));
  c.quota.release(n == 1 ? 1 : spent);
}

std::optional<std::chrono::microseconds> Client::Impl::RetryRun::failed(const Error& e, bool skew_corrected) {
  if (adaptive) c.limiter.update(e.kind() == ErrorKind::kThrottling, seconds_of(c.sleeper->now()));
  last_error = e.what();
  if (unknown_attempt == 0 && may_have_applied(e)) {
    unknown_attempt = n;
    unknown_what = e.what();
    if (!resend_if_unknown) unknown_outcome("");
  }
  auto* se = dynamic_cast<const ServiceError*>(&e);
  // A request signed with a clock too far from the service's: the offset is corrected
  // now, so sending again once (beyond max_attempts: this one never reached the
  // operation) can succeed.
  if (skew_corrected && !corrected_skew) {
    corrected_skew = true;
    if (c.sleeper->now() >= deadline) out_of_time(n, last_error);
    c.stats.retries.fetch_add(1, std::memory_order_relaxed);
    return std::nullopt;
  }
  // Temporary credentials the service already considers expired (clock skew against
  // their issuer, or a revoked session): fetch new ones and try once more.
  if (se && se->name() == "ExpiredTokenException" && !refreshed_credentials &&
      n < c.options.retry.max_attempts) {
    refreshed_credentials = true;
    if (c.sleeper->now() >= deadline) out_of_time(n, last_error);
    // The first refusal of the credentials taken in this epoch invalidates them; the others
    // retry with what the provider has now. (The provider limits invalidations in time too.)
    uint64_t seen = creds_epoch;
    if (c.creds_epoch.compare_exchange_strong(seen, seen + 1, std::memory_order_relaxed))
      c.credentials->invalidate();
    c.stats.retries.fetch_add(1, std::memory_order_relaxed);
    ++n;
    return std::nullopt;
  }
  if (!e.retryable() || n >= c.options.retry.max_attempts) give_up(e);
  // Nothing listens on the endpoint's port: a wrong endpoint, or a server not (yet) running.
  // Retried as the AWS SDKs' standard mode retries anything (3 attempts, well under a second),
  // not max_attempts times: a refusal comes back at once, and ten of them only delay the error.
  if (auto* ce = dynamic_cast<const ConnectError*>(&e); ce && ce->refused() && n >= kRefusedAttempts)
    give_up(e);
  auto delay = c.backoff.delay(n, e.kind() == ErrorKind::kThrottling);
  if (c.sleeper->now() + delay >= deadline) out_of_time(n, e.what());
  if (c.options.retry.mode != RetryMode::kLegacy) {  // legacy has no retry quota
    int cost =
        e.kind() == ErrorKind::kTimeout ? c.options.retry.timeout_retry_cost : c.options.retry.retry_cost;
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

void Client::Impl::RetryRun::give_up(const Error& e) {
  // A failed condition is an answer about the item as it is now (perhaps as an earlier attempt
  // left it): the caller's to judge, as chunked::put_replacing does.
  if (write && unknown_attempt > 0 && e.kind() != ErrorKind::kConditionFailed)
    unknown_outcome(unknown_attempt == n ? std::string("not sent again")
                                         : "then attempt " + std::to_string(n) + " failed: " + e.what());
  c.stats.failures.fetch_add(1, std::memory_order_relaxed);
  if (e.kind() == ErrorKind::kTimeout)  // say which timeout it was
    throw TimeoutError(std::string(target + kTargetPrefix) + ": " + e.what() +
                       " (the per-attempt transport timeout; attempt " + std::to_string(n) + " of " +
                       std::to_string(c.options.retry.max_attempts) + ")");
  if (auto* ce = dynamic_cast<const ConnectError*>(&e))  // say what was tried, and what to do
    throw ConnectError(std::string(target + kTargetPrefix) + ": cannot reach DynamoDB at " + c.endpoint +
                           " after " + std::to_string(n) + (n == 1 ? " attempt: " : " attempts: ") +
                           e.what() + "; " + kCheckEndpoint + " and that the server runs",
                       ce->refused());
  throw;
}

std::string Client::Impl::call(const char* target, std::string body, bool resend_if_unknown) {
  RetryRun run(*this, target, resend_if_unknown);
  for (;;) {
    if (auto wait = run.before_attempt(); wait.count() > 0) sleeper->sleep(wait);
    bool skew_corrected = false;
    try {
      std::string out = attempt(run, body, skew_corrected);
      run.succeeded();
      return out;
    } catch (const Error& e) {
      if (auto delay = run.failed(e, skew_corrected)) sleeper->sleep(*delay);
    }
  }
}

}  // namespace dynamodb_cache::dynamodb
