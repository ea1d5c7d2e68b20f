#include "dynamodb_cache/dynamodb.h"

#include <algorithm>
#include <charconv>

#include "dynamodb/retry.h"
#include "dynamodb/wire.h"
#include "dynamodb_cache/errors.h"
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
  std::string host;
  std::shared_ptr<aws::CredentialsProvider> credentials;
  std::shared_ptr<http::Transport> transport;
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
    region = aws::resolve_region(options.region, options.profile);
    endpoint = aws::resolve_dynamodb_endpoint(region, options.endpoint, options.profile);
    url = endpoint + "/";
    host = host_of(endpoint);
    credentials = options.credentials ? options.credentials : aws::make_default_chain(options.profile);
    // no attempt outlives the operation deadline
    http::HttpOptions http_options = aws::resolve_http_options(options.profile);
    http_options.request_timeout = std::min(http_options.request_timeout, options.operation_timeout);
    transport = options.transport ? options.transport : http::make_default_transport(http_options);
    sleeper = options.retry.sleeper ? options.retry.sleeper : real_sleeper();
    if (!options.now) options.now = [] { return aws::SystemClock::now(); };
  }

  static constexpr size_t kTargetPrefix = sizeof("DynamoDB_20120810.") - 1;

  // One attempt: sign, send, check. Returns the body of a 200 answer; throws Error otherwise.
  // `body` is lent to the request for the send and handed back, also when send() throws.
  // Sets `skew_corrected` when the answer was a clock-skew error and the clock offset was
  // corrected from its Date header (sending again may then succeed).
  std::string attempt(const char* target, std::string& body, bool& skew_corrected) {
    aws::Credentials creds = credentials->get();
    http::Request req;
    req.url = url;
    req.headers.reserve(7);
    req.headers.push_back({"Host", host});
    req.headers.push_back({"Content-Type", "application/x-amz-json-1.0"});
    req.headers.push_back({"X-Amz-Target", target});
    aws::SigningParams p;
    p.method = "POST";
    p.path = "/";
    p.headers = &req.headers;
    p.body = body;
    p.credentials = &creds;
    p.region = region;
    p.service = "dynamodb";
    p.time = options.now() + std::chrono::milliseconds(clock_offset_ms.load(std::memory_order_relaxed));
    auto signed_ = aws::sign_v4(p);
    for (auto& h : signed_.added_headers) req.headers.push_back(std::move(h));
    req.headers.push_back({"Authorization", std::move(signed_.authorization)});
    req.body = std::move(body);
    struct GiveBack {
      std::string& to;
      std::string& from;
      ~GiveBack() { to = std::move(from); }
    } give_back{body, req.body};
    http::Response resp = transport->send(req);

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
    if (is_clock_skew_error(err.name)) skew_corrected = learn_clock_offset(resp, p.time);
    throw ServiceError(kind, resp.status, std::move(err.name),
                       std::move(err.message), rid ? *rid : std::string());
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
  std::string call(const char* target, std::string body) {
    stats.calls.fetch_add(1, std::memory_order_relaxed);
    const auto deadline = sleeper->now() + options.operation_timeout;
    const bool adaptive = options.retry.mode == RetryMode::kAdaptive;
    int spent = 0;  // quota tokens taken by this call's retries
    bool refreshed_credentials = false, corrected_skew = false;
    std::string last_error;
    for (int n = 1;; ++n) {
      if (adaptive) {
        auto wait = limiter.acquire(seconds_of(sleeper->now()));
        if (wait.count() > 0) {
          if (sleeper->now() + wait >= deadline) deadline_expired(target, n - 1, last_error);
          sleeper->sleep(wait);
        }
      }
      stats.attempts.fetch_add(1, std::memory_order_relaxed);
      bool skew_corrected = false;
      try {
        std::string out = attempt(target, body, skew_corrected);
        if (adaptive) limiter.update(false, seconds_of(sleeper->now()));
        quota.release(n == 1 ? 1 : spent);
        return out;
      } catch (const Error& e) {
        if (adaptive) limiter.update(e.kind() == ErrorKind::kThrottling, seconds_of(sleeper->now()));
        last_error = e.what();
        auto* se = dynamic_cast<const ServiceError*>(&e);
        // A request signed with a clock too far from the service's: the offset is corrected
        // now, so sending again once (beyond max_attempts: this one never reached the
        // operation) can succeed.
        if (skew_corrected && !corrected_skew) {
          corrected_skew = true;
          if (sleeper->now() >= deadline) deadline_expired(target, n, last_error);
          stats.retries.fetch_add(1, std::memory_order_relaxed);
          --n;
          continue;
        }
        // Temporary credentials the service already considers expired (clock skew against
        // their issuer, or a revoked session): fetch new ones and try once more.
        if (se && se->name() == "ExpiredTokenException" && !refreshed_credentials &&
            n < options.retry.max_attempts) {
          refreshed_credentials = true;
          if (sleeper->now() >= deadline) deadline_expired(target, n, last_error);
          credentials->invalidate();
          stats.retries.fetch_add(1, std::memory_order_relaxed);
          continue;
        }
        if (!on_failure(e, n, spent, target, deadline)) {
          if (e.kind() == ErrorKind::kTimeout)  // say which timeout it was
            throw TimeoutError(std::string(target + kTargetPrefix) + ": " + e.what() +
                               " (the per-attempt transport timeout; attempt " + std::to_string(n) + " of " +
                               std::to_string(options.retry.max_attempts) + ")");
          throw;
        }
      }
    }
  }

  // Decides what follows a failed attempt: false to give up (the caller rethrows), true
  // after sleeping the backoff. Takes quota tokens for the retry. Throws the deadline error
  // when the backoff would end at or past the deadline.
  bool on_failure(const Error& e, int n, int& spent, const char* target,
                  std::chrono::steady_clock::time_point deadline) {
    if (!e.retryable() || n >= options.retry.max_attempts) {
      stats.failures.fetch_add(1, std::memory_order_relaxed);
      return false;
    }
    auto delay = backoff.delay(n, e.kind() == ErrorKind::kThrottling);
    if (sleeper->now() + delay >= deadline) deadline_expired(target, n, e.what());
    if (options.retry.mode != RetryMode::kLegacy) {  // legacy has no retry quota
      int cost = e.kind() == ErrorKind::kTimeout ? options.retry.timeout_retry_cost : options.retry.retry_cost;
      if (!quota.acquire(cost)) {
        stats.quota_exhausted.fetch_add(1, std::memory_order_relaxed);
        stats.failures.fetch_add(1, std::memory_order_relaxed);
        return false;
      }
      spent += cost;
    }
    stats.retries.fetch_add(1, std::memory_order_relaxed);
    sleeper->sleep(delay);
    return true;
  }
};

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
