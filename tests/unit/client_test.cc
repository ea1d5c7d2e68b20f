// DynamoDB client over a scripted transport: error mapping, CRC checks, retries, backoff,
// the retry quota.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdlib>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <random>
#include <type_traits>

#include "dynamodb/retry.h"
#include "dynamodb_cache/dynamodb.h"
#include "dynamodb_cache/errors.h"
#include "fake_transport.h"
#include "scoped_env.h"
#include "test_server.h"
#include "util/time.h"

using namespace dynamodb_cache;
using namespace dynamodb_cache::dynamodb;
using testing_support::ddb_error;
using testing_support::ddb_response;
using testing_support::FakeTransport;
using testing_support::RecordingSleeper;

namespace {

using testing_support::ScopedEnv;

const char* kGetOk = R"({"Item":{"key":{"S":"k"},"value":{"B":"aGk="}}})";

struct Harness {
  std::shared_ptr<FakeTransport> transport;
  std::shared_ptr<RecordingSleeper> sleeper = std::make_shared<RecordingSleeper>();
  std::unique_ptr<Client> client;
  int64_t clock_s = 1700000000;

  explicit Harness(FakeTransport::Handler h, RetryOptions retry = {},
                   const std::function<void(ClientOptions&)>& tweak = nullptr) {
    transport = std::make_shared<FakeTransport>(std::move(h));
    ClientOptions o;
    o.region = "us-west-2";
    o.endpoint = "http://127.0.0.1:9";
    o.credentials = aws::make_static_provider({"AKIDTEST", "SECRETKEYVALUE", "SESSIONTOKENVALUE", std::nullopt, ""});
    o.transport = transport;
    retry.sleeper = sleeper;
    if (!retry.jitter_seed) retry.jitter_seed = 7;
    o.retry = retry;
    o.now = [this] { return aws::SystemClock::time_point(std::chrono::seconds(clock_s++)); };
    if (tweak) tweak(o);
    client = std::make_unique<Client>(o);
  }
  GetItemResult get() {
    GetItemRequest r;
    r.table_name = "t";
    r.key = {{"key", AttributeValue::S("k")}};
    return client->get_item(r);
  }
};

const std::string* find_header(const http::Request& r, const std::string& name) {
  for (auto& h : r.headers)
    if (h.name == name) return &h.value;
  return nullptr;
}

}  // namespace

TEST(Client, SendsASignedDynamoDbRequest) {
  Harness h([](const http::Request&, int) { return ddb_response(200, kGetOk); });
  auto r = h.get();
  ASSERT_TRUE(r.item);
  EXPECT_EQ(r.item->at("value").scalar, "hi");
  auto reqs = h.transport->requests();
  ASSERT_EQ(reqs.size(), 1u);
  EXPECT_EQ(reqs[0].url, "http://127.0.0.1:9/");
  EXPECT_EQ(*find_header(reqs[0], "X-Amz-Target"), "DynamoDB_20120810.GetItem");
  EXPECT_EQ(*find_header(reqs[0], "Content-Type"), "application/x-amz-json-1.0");
  EXPECT_EQ(*find_header(reqs[0], "Host"), "127.0.0.1:9");
  EXPECT_EQ(*find_header(reqs[0], "X-Amz-Security-Token"), "SESSIONTOKENVALUE");
  const std::string* auth = find_header(reqs[0], "Authorization");
  ASSERT_NE(auth, nullptr);
  EXPECT_EQ(auth->rfind("AWS4-HMAC-SHA256 Credential=AKIDTEST/20231114/us-west-2/dynamodb/aws4_request, "
                        "SignedHeaders=content-type;host;x-amz-date;x-amz-security-token;x-amz-target, Signature=",
                        0),
            0u)
      << *auth;
}

TEST(Client, ErrorNamesMapToTypedErrors) {
  struct Case {
    int status;
    const char* name;
    ErrorKind kind;
    bool retryable;
  };
  for (auto c : std::vector<Case>{{400, "ResourceNotFoundException", ErrorKind::kResourceNotFound, false},
                                  {400, "ConditionalCheckFailedException", ErrorKind::kConditionFailed, false},
                                  {400, "ValidationException", ErrorKind::kService, false},
                                  {400, "UnrecognizedClientException", ErrorKind::kService, false},
                                  {400, "ProvisionedThroughputExceededException", ErrorKind::kThrottling, true},
                                  {400, "ThrottlingException", ErrorKind::kThrottling, true},
                                  {400, "RequestLimitExceeded", ErrorKind::kThrottling, true},
                                  {400, "RequestThrottledException", ErrorKind::kThrottling, true},
                                  {400, "RequestTimeoutException", ErrorKind::kServiceTransient, true},
                                  {400, "PriorRequestNotComplete", ErrorKind::kServiceTransient, true},
                                  {500, "InternalServerError", ErrorKind::kServiceTransient, true},
                                  {503, "ServiceUnavailable", ErrorKind::kServiceTransient, true},
                                  {502, "", ErrorKind::kServiceTransient, true}}) {
    RetryOptions retry;
    retry.max_attempts = 3;
    Harness h([&](const http::Request&, int) { return ddb_error(c.status, c.name, "boom"); }, retry);
    try {
      h.get();
      ADD_FAILURE() << c.name;
    } catch (const ServiceError& e) {
      EXPECT_EQ(e.kind(), c.kind) << c.name;
      EXPECT_EQ(e.retryable(), c.retryable) << c.name;
      EXPECT_EQ(e.name(), c.name);
      EXPECT_EQ(e.http_status(), c.status);
      EXPECT_FALSE(e.request_id().empty());
      EXPECT_EQ(std::string(e.what()).find("SECRETKEYVALUE"), std::string::npos);
      EXPECT_EQ(std::string(e.what()).find("SESSIONTOKENVALUE"), std::string::npos);
    }
    EXPECT_EQ(h.transport->calls(), c.retryable ? 3 : 1) << c.name;
  }
}

TEST(Client, CrcMismatchIsRetriedThenReported) {
  Harness h([](const http::Request&, int n) {
    auto r = ddb_response(200, kGetOk);
    if (n < 3) r.body[10] ^= 1;  // corrupt in flight, header unchanged
    return r;
  });
  EXPECT_TRUE(h.get().item);
  EXPECT_EQ(h.transport->calls(), 3);
  EXPECT_EQ(h.client->stats().retries.load(), 2u);

  RetryOptions retry;
  retry.max_attempts = 2;
  Harness bad([](const http::Request&, int) {
    auto r = ddb_response(200, kGetOk);
    r.headers[0].value = "12345";
    return r;
  }, retry);
  try {
    bad.get();
    ADD_FAILURE();
  } catch (const ProtocolError& e) {
    EXPECT_TRUE(e.retryable());
    EXPECT_NE(std::string(e.what()).find("x-amz-crc32"), std::string::npos);
  }
}

TEST(Client, TransportErrorsAreRetriedAndEachAttemptIsResigned) {
  Harness h([](const http::Request&, int n) -> http::Response {
    if (n == 1) throw TransportError("connection reset");
    if (n == 2) throw TimeoutError("timed out");
    return ddb_response(200, kGetOk);
  });
  EXPECT_TRUE(h.get().item);
  auto reqs = h.transport->requests();
  ASSERT_EQ(reqs.size(), 3u);
  EXPECT_NE(*find_header(reqs[0], "X-Amz-Date"), *find_header(reqs[1], "X-Amz-Date"));
  EXPECT_NE(*find_header(reqs[0], "Authorization"), *find_header(reqs[1], "Authorization"));
  EXPECT_EQ(reqs[0].body, reqs[2].body);
}

// A write sent with resend_if_unknown = false is never sent twice after an attempt that may
// have been applied (its answer lost or failed); attempts refused before anything was applied
// are retried as usual. The flag reaches the transport too (no silent resend on a stale
// connection).
TEST(Client, WritesThatMustNotApplyTwiceAreNotResentAfterAnUnknownOutcome) {
  struct Case {
    const char* what;
    std::function<http::Response()> first;
    bool unknown;
  };
  const std::vector<Case> cases = {
      {"reset after sending", []() -> http::Response { throw TransportError("connection reset"); }, true},
      {"timeout", []() -> http::Response { throw TimeoutError("timed out"); }, true},
      {"500", [] { return ddb_error(500, "InternalServerError"); }, true},
      {"503", [] { return ddb_error(503, "ServiceUnavailable"); }, true},
      {"bad CRC", [] {
         auto r = ddb_response(200, "{}");
         r.headers[0].value = "12345";
         return r;
       }, true},
      {"refused", []() -> http::Response { throw ConnectError("cannot connect: refused"); }, false},
      {"throttled", [] { return ddb_error(400, "ThrottlingException"); }, false},
  };
  for (const auto& c : cases) {
    for (bool resend : {false, true}) {
      Harness h([&](const http::Request&, int n) { return n == 1 ? c.first() : ddb_response(200, "{}"); });
      UpdateItemRequest u;
      u.table_name = "t";
      u.key = {{"key", AttributeValue::S("k")}};
      u.update_expression = "SET n = n + :d";
      u.values = {{":d", AttributeValue::N(1)}};
      u.resend_if_unknown = resend;
      if (c.unknown && !resend) {
        try {
          h.client->update_item(u);
          ADD_FAILURE() << c.what;
        } catch (const UnknownOutcomeError& e) {
          EXPECT_EQ(e.kind(), ErrorKind::kUnknownOutcome) << c.what;
          EXPECT_FALSE(e.retryable());
          EXPECT_NE(std::string(e.what()).find("UpdateItem: the outcome of attempt 1 is unknown"), std::string::npos)
              << e.what();
        }
        EXPECT_EQ(h.transport->calls(), 1) << c.what;
      } else {
        EXPECT_NO_THROW(h.client->update_item(u)) << c.what;
        EXPECT_EQ(h.transport->calls(), 2) << c.what;
      }
      for (const auto& r : h.transport->requests()) EXPECT_EQ(r.resend_if_stale, resend) << c.what;
    }
  }
}

// A write sent again after an attempt that may have been applied, whose later attempts then
// fail, does not report their error as if nothing had been written: UnknownOutcomeError,
// retryable (the write is idempotent). A read ends with the last error, as ever.
TEST(Client, AWriteThatFailsAfterAnUnknownOutcomeSaysSo) {
  RetryOptions retry;
  retry.max_attempts = 3;
  auto handler = [](const http::Request&, int n) -> http::Response {
    if (n == 1) throw TransportError("connection reset");
    return ddb_error(400, "ThrottlingException");
  };
  Harness w(handler, retry);
  PutItemRequest p;
  p.table_name = "t";
  p.item = {{"key", AttributeValue::S("k")}};
  try {
    w.client->put_item(p);
    ADD_FAILURE();
  } catch (const UnknownOutcomeError& e) {
    EXPECT_TRUE(e.retryable());
    const std::string m = e.what();
    EXPECT_NE(m.find("PutItem: the outcome of attempt 1 is unknown (connection reset)"), std::string::npos) << m;
    EXPECT_NE(m.find("then attempt 3 failed: ThrottlingException"), std::string::npos) << m;
  }
  EXPECT_EQ(w.transport->calls(), 3);
  Harness r(handler, retry);
  EXPECT_THROW(r.get(), ServiceError);
  Harness refused([](const http::Request&, int n) -> http::Response {
    if (n == 1) throw ConnectError("cannot connect");
    return ddb_error(400, "ThrottlingException");
  }, retry);
  EXPECT_THROW(refused.client->put_item(p), ServiceError);  // nothing was ever applied
}

TEST(Client, BackoffIsFullJitterWithinBounds) {
  RetryOptions retry;
  retry.max_attempts = 12;
  retry.base_delay = std::chrono::milliseconds(10);
  retry.throttling_base_delay = std::chrono::milliseconds(40);
  retry.max_delay = std::chrono::milliseconds(300);
  Harness h([](const http::Request&, int) { return ddb_error(500, "InternalServerError"); }, retry);
  EXPECT_THROW(h.get(), ServiceError);
  auto sleeps = h.sleeper->sleeps();
  ASSERT_EQ(sleeps.size(), 11u);
  std::chrono::microseconds total{0};
  for (size_t i = 0; i < sleeps.size(); ++i) {
    auto cap = std::min<int64_t>(300000, 10000LL << i);
    EXPECT_GE(sleeps[i].count(), 0);
    EXPECT_LE(sleeps[i].count(), cap) << "retry " << i + 1;
    total += sleeps[i];
  }
  EXPECT_GT(total.count(), 0);  // jitter is not always zero

  Harness t([](const http::Request&, int) { return ddb_error(400, "ThrottlingException"); }, retry);
  EXPECT_THROW(t.get(), ServiceError);
  for (size_t i = 0; i < t.sleeper->sleeps().size(); ++i)
    EXPECT_LE(t.sleeper->sleeps()[i].count(), std::min<int64_t>(300000, 40000LL << i));
}

TEST(Client, DefaultBackoffCapIsTwentySeconds) {
  RetryOptions retry;
  retry.max_attempts = 30;
  retry.quota_capacity = 1000000;
  Harness h([](const http::Request&, int) { return ddb_error(400, "ThrottlingException"); }, retry);
  EXPECT_THROW(h.get(), ServiceError);
  for (auto s : h.sleeper->sleeps()) EXPECT_LE(s.count(), 20'000'000);
}

TEST(Client, RetryQuotaStopsAStormAndRefillsOnSuccess) {
  RetryOptions retry;
  retry.quota_capacity = 20;  // four retries' worth at cost 5
  retry.retry_cost = 5;
  retry.max_attempts = 10;
  std::atomic<bool> healthy{false};
  Harness h([&](const http::Request&, int) {
    return healthy ? ddb_response(200, kGetOk) : ddb_error(503, "ServiceUnavailable");
  }, retry);
  EXPECT_THROW(h.get(), ServiceError);  // uses the 4 retries the bucket holds
  EXPECT_EQ(h.transport->calls(), 5);
  EXPECT_THROW(h.get(), ServiceError);  // empty bucket: one attempt, no retry
  EXPECT_EQ(h.transport->calls(), 6);
  EXPECT_GE(h.client->stats().quota_exhausted.load(), 1u);
  healthy = true;
  for (int i = 0; i < 10; ++i) h.get();  // each first-try success returns a token
  healthy = false;
  int before = h.transport->calls();
  EXPECT_THROW(h.get(), ServiceError);
  EXPECT_EQ(h.transport->calls() - before, 3);  // 10 tokens: two retries
}

// The acceptance bar for the defaults: 30% of requests failing transiently in every way a
// network and DynamoDB fail, and 1,000 operations all succeed.
TEST(Client, DefaultsSurviveThirtyPercentTransientFailures) {
  std::mt19937 rng(12345);
  std::mutex mu;
  int injected = 0;
  Harness h([&](const http::Request& r, int) -> http::Response {
    int roll, kind;
    {
      std::lock_guard lock(mu);
      roll = static_cast<int>(rng() % 100);
      kind = static_cast<int>(rng() % 6);
      if (roll < 30) ++injected;
    }
    bool put = r.body.find("\"Item\"") != std::string::npos;
    auto ok = ddb_response(200, put ? "{}" : kGetOk);
    if (roll >= 30) return ok;
    switch (kind) {
      case 0: return ddb_error(400, "ProvisionedThroughputExceededException");
      case 1: return ddb_error(500, "InternalServerError");
      case 2: return ddb_error(503, "");
      case 3: throw TransportError("Connection reset by peer");
      case 4: ok.body[ok.body.size() / 2] ^= 0x20; return ok;  // bad CRC
      default: throw TransportError("transfer closed with 20 bytes remaining to read");  // truncated
    }
  });
  int failures = 0;
  for (int i = 0; i < 1000; ++i) {
    try {
      if (i % 2) {
        h.get();
      } else {
        PutItemRequest p;
        p.table_name = "t";
        p.item = {{"key", AttributeValue::S("k" + std::to_string(i))}};
        h.client->put_item(p);
      }
    } catch (const Error& e) {
      if (++failures == 1) ADD_FAILURE() << "first failure: " << e.what();
    }
  }
  EXPECT_EQ(failures, 0);
  EXPECT_GT(injected, 300);
  EXPECT_EQ(h.client->stats().retries.load(), static_cast<uint64_t>(injected));
}

TEST(Client, NonRetryableErrorsAreNotRetried) {
  Harness h([](const http::Request&, int) { return ddb_error(400, "ValidationException", "bad key"); });
  EXPECT_THROW(h.get(), ServiceError);
  EXPECT_EQ(h.transport->calls(), 1);
  EXPECT_TRUE(h.sleeper->sleeps().empty());
}

TEST(Client, MalformedSuccessBodyIsAProtocolError) {
  Harness h([](const http::Request&, int) { return ddb_response(200, "{\"Item\": [oops"); });
  EXPECT_THROW(h.get(), ProtocolError);
  EXPECT_EQ(h.transport->calls(), 1);
}

TEST(Client, BatchGetAllRetriesUnprocessedKeysUntilDone) {
  // Each call processes only the first key it is given: slow, but progress every call, so
  // more calls than max_attempts are fine.
  RetryOptions retry;
  retry.max_attempts = 3;
  Harness h([](const http::Request& r, int) {
    std::string body = r.body;
    std::vector<std::string> keys;
    for (size_t p = body.find("{\"key\":{\"S\":\""); p != std::string::npos; p = body.find("{\"key\":{\"S\":\"", p + 1)) {
      auto s = p + 13;
      keys.push_back(body.substr(s, body.find('"', s) - s));
    }
    std::string resp = "{\"Responses\":{\"t\":[{\"key\":{\"S\":\"" + keys[0] + "\"}}]}";
    if (keys.size() > 1) {
      resp += ",\"UnprocessedKeys\":{\"t\":{\"Keys\":[";
      for (size_t i = 1; i < keys.size(); ++i)
        resp += std::string(i > 1 ? "," : "") + "{\"key\":{\"S\":\"" + keys[i] + "\"}}";
      resp += "]}}";
    }
    return ddb_response(200, resp + "}");
  }, retry);
  std::vector<Item> keys;
  for (int i = 0; i < 5; ++i) keys.push_back({{"key", AttributeValue::S("k" + std::to_string(i))}});
  auto items = h.client->batch_get_all("t", keys);
  EXPECT_EQ(items.size(), 5u);
  EXPECT_EQ(h.transport->calls(), 5);
  EXPECT_EQ(h.sleeper->sleeps().size(), 4u);  // a backoff after every call with leftovers
}

TEST(Client, BatchWriteAllReportsWhatItCouldNotWrite) {
  RetryOptions retry;
  retry.max_attempts = 4;
  Harness h([](const http::Request& r, int) {
    // Never processes anything: echo every request back as unprocessed.
    std::string items = r.body.substr(r.body.find("[") );
    items = items.substr(0, items.rfind("]") + 1);
    return ddb_response(200, "{\"UnprocessedItems\":{\"t\":" + items + "}}");
  }, retry);
  std::vector<WriteRequest> writes(30);
  for (int i = 0; i < 30; ++i) writes[i].put_item = Item{{"key", AttributeValue::S("k" + std::to_string(i))}};
  try {
    h.client->batch_write_all("t", writes);
    ADD_FAILURE();
  } catch (const ServiceError& e) {
    EXPECT_EQ(e.kind(), ErrorKind::kThrottling);
    EXPECT_NE(std::string(e.what()).find("30 of 30"), std::string::npos) << e.what();
    EXPECT_EQ(h.transport->calls(), 4);
  }
}

TEST(Client, BatchWriteAllSplitsIntoTwentyFives) {
  std::vector<size_t> sizes;
  std::mutex mu;
  Harness h([&](const http::Request& r, int) {
    size_t n = 0;
    for (size_t p = r.body.find("PutRequest"); p != std::string::npos; p = r.body.find("PutRequest", p + 1)) ++n;
    std::lock_guard lock(mu);
    sizes.push_back(n);
    return ddb_response(200, "{}");
  });
  std::vector<WriteRequest> writes(60);
  for (int i = 0; i < 60; ++i) writes[i].put_item = Item{{"key", AttributeValue::S(std::string("k").append(std::to_string(i)))}};
  h.client->batch_write_all("t", writes);
  EXPECT_EQ(sizes, (std::vector<size_t>{25, 25, 10}));
}

TEST(Client, ConfigurationErrorsAreTyped) {
  ClientOptions o;
  o.region = "us-east-1";
  o.endpoint = "ftp://example";
  o.credentials = aws::make_static_provider({"a", "b", "", std::nullopt, ""});
  EXPECT_THROW(Client{o}, ConfigError);
  o.endpoint = "";
  o.region = "bad region!";
  EXPECT_THROW(Client{o}, ConfigError);
}

TEST(Client, ExpiredTokenRefreshesCredentialsOnce) {
  struct Rotating : aws::CredentialsProvider {
    std::atomic<int> fetches{0};
    aws::Credentials get() override {
      return {"ASIA" + std::to_string(fetches.load()), "s", "t", std::nullopt, "rotating"};
    }
    void invalidate() override { ++fetches; }
  };
  auto rotating = std::make_shared<Rotating>();
  auto cached = aws::make_caching_provider(rotating);
  auto transport = std::make_shared<FakeTransport>([](const http::Request& r, int) {
    for (auto& h : r.headers)
      if (h.name == "Authorization" && h.value.find("Credential=ASIA0/") != std::string::npos)
        return ddb_error(400, "ExpiredTokenException", "The security token included in the request is expired");
    return ddb_response(200, kGetOk);
  });
  ClientOptions o;
  o.region = "us-east-1";
  o.endpoint = "http://127.0.0.1:9";
  o.credentials = cached;
  o.transport = transport;
  o.retry.sleeper = std::make_shared<RecordingSleeper>();
  Client c(o);
  GetItemRequest g;
  g.table_name = "t";
  g.key = {{"key", AttributeValue::S("k")}};
  EXPECT_TRUE(c.get_item(g).item);
  EXPECT_EQ(transport->calls(), 2);
  EXPECT_EQ(rotating->fetches.load(), 1);  // the cache passed the invalidation on
  EXPECT_TRUE(c.get_item(g).item);         // the new credentials stay cached
  EXPECT_EQ(transport->calls(), 3);

  // Still expired after the refresh: reported, not retried forever.
  auto always = std::make_shared<FakeTransport>(
      [](const http::Request&, int) { return ddb_error(400, "ExpiredTokenException"); });
  o.transport = always;
  Client d(o);
  EXPECT_THROW(d.get_item(g), ServiceError);
  EXPECT_EQ(always->calls(), 2);
}

// ---- clock skew, operation deadline, retry settings ----

namespace {

// A Sleeper on a virtual monotonic clock: sleeping advances it, as does advance().
class ClockSleeper : public Sleeper {
 public:
  void sleep(std::chrono::microseconds d) override {
    std::lock_guard lock(mu_);
    t_ += d;
    sleeps_.push_back(d);
  }
  std::chrono::steady_clock::time_point now() override {
    std::lock_guard lock(mu_);
    return t_;
  }
  void advance(std::chrono::microseconds d) {
    std::lock_guard lock(mu_);
    t_ += d;
  }
  std::chrono::microseconds elapsed() {
    std::lock_guard lock(mu_);
    return std::chrono::duration_cast<std::chrono::microseconds>(t_ - start_);
  }
  std::vector<std::chrono::microseconds> sleeps() {
    std::lock_guard lock(mu_);
    return sleeps_;
  }

 private:
  std::mutex mu_;
  const std::chrono::steady_clock::time_point start_{std::chrono::hours(1)};
  std::chrono::steady_clock::time_point t_ = start_;
  std::vector<std::chrono::microseconds> sleeps_;
};

std::string http_date(int64_t unix_s) {
  std::time_t t = unix_s;
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[40];
  std::strftime(buf, sizeof buf, "%a, %d %b %Y %H:%M:%S GMT", &tm);
  return buf;
}

int64_t amz_date_seconds(const http::Request& r) {
  const std::string* d = find_header(r, "X-Amz-Date");
  std::tm tm{};
  strptime(d->c_str(), "%Y%m%dT%H%M%SZ", &tm);
  return timegm(&tm);
}

}  // namespace

// A service whose clock is `skew` seconds ahead of the client's and that, like DynamoDB,
// rejects signatures more than 5 minutes off with InvalidSignatureException and its Date.
TEST(Client, ClockSkewIsLearntFromTheDateHeaderKeptPerClientAndRetried) {
  for (int64_t skew : {15 * 60, -15 * 60}) {
    int64_t* local = nullptr;
    auto handler = [&](const http::Request& r, int) {
      int64_t server_now = *local + skew;
      auto resp = std::abs(amz_date_seconds(r) - server_now) > 300
                      ? ddb_error(400, "InvalidSignatureException", skew > 0 ? "Signature expired" : "Signature not yet current")
                      : ddb_response(200, kGetOk);
      resp.headers.push_back({"date", http_date(server_now)});
      return resp;
    };
    RetryOptions retry;
    retry.max_attempts = 1;  // the skew retry is made even so
    Harness h(handler, retry);
    local = &h.clock_s;
    EXPECT_TRUE(h.get().item) << skew;
    EXPECT_EQ(h.transport->calls(), 2);
    EXPECT_TRUE(h.get().item);  // the offset is kept: one request
    EXPECT_EQ(h.transport->calls(), 3);
    EXPECT_LE(std::abs(amz_date_seconds(h.transport->requests()[2]) - (h.clock_s + skew)), 5);

    Harness other(handler, retry);  // another client learns on its own
    local = &other.clock_s;
    EXPECT_TRUE(other.get().item);
    EXPECT_EQ(other.transport->calls(), 2);
  }
}

TEST(Client, SignatureErrorsWithoutSkewAreNotRetried) {
  int64_t* local = nullptr;
  Harness h([&](const http::Request&, int) {
    auto resp = ddb_error(400, "InvalidSignatureException", "The request signature we calculated does not match");
    resp.headers.push_back({"date", http_date(*local)});
    return resp;
  });
  local = &h.clock_s;
  EXPECT_THROW(h.get(), ServiceError);
  EXPECT_EQ(h.transport->calls(), 1);

  // A skewed service whose clock keeps running away: one correction per call, not a loop.
  RetryOptions retry;
  retry.max_attempts = 1;
  Harness away([&](const http::Request&, int n) {
    auto resp = ddb_error(400, "InvalidSignatureException", "Signature expired");
    resp.headers.push_back({"date", http_date(*local + 3600 * n)});
    return resp;
  }, retry);
  local = &away.clock_s;
  EXPECT_THROW(away.get(), ServiceError);
  EXPECT_EQ(away.transport->calls(), 2);
}

TEST(Util, ParsesHttpDates) {
  auto t = util::parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT");
  ASSERT_TRUE(t);
  EXPECT_EQ(std::chrono::duration_cast<std::chrono::seconds>(t->time_since_epoch()).count(), 784111777);
  EXPECT_EQ(util::parse_http_date(http_date(1700000000)).value().time_since_epoch(),
            std::chrono::seconds(1700000000));
  for (const char* bad : {"", "Sun, 06 Nov 1994 08:49:37 UTC", "Sun, 06 Foo 1994 08:49:37 GMT",
                          "Sun, 31 Feb 1994 08:49:37 GMT", "Sun, 06 Nov 1994 25:49:37 GMT", "Sunday, 06-Nov-94 08:49:37 GMT"})
    EXPECT_FALSE(util::parse_http_date(bad)) << bad;
}

// A slow, failing service: every attempt takes 300 ms and fails. The operation ends at its
// deadline, never sleeps past it, and says which deadline expired.
TEST(Client, OperationDeadlineBoundsAttemptsAndBackoff) {
  auto clock = std::make_shared<ClockSleeper>();
  RetryOptions retry;
  retry.max_attempts = 50;
  retry.quota_capacity = 100000;
  Harness h([&](const http::Request&, int) {
    clock->advance(std::chrono::milliseconds(300));
    return ddb_error(500, "InternalServerError");
  }, retry, [&](ClientOptions& o) {
    o.retry.sleeper = clock;
    o.operation_timeout = std::chrono::milliseconds(2000);
  });
  try {
    h.get();
    ADD_FAILURE();
  } catch (const TimeoutError& e) {
    std::string m = e.what();
    EXPECT_NE(m.find("GetItem: operation deadline of 2 s"), std::string::npos) << m;
    EXPECT_NE(m.find("InternalServerError"), std::string::npos) << m;  // the last error
  }
  // No backoff ends past the deadline; only an attempt already under way may (the
  // transport's own timeout bounds it).
  std::chrono::microseconds slept{0};
  for (auto s : clock->sleeps()) slept += s;
  EXPECT_LT(slept + std::chrono::milliseconds(300) * (h.transport->calls() - 1), std::chrono::milliseconds(2000));
  EXPECT_LE(clock->elapsed(), std::chrono::milliseconds(2000 + 300));
  EXPECT_GE(h.transport->calls(), 2);
  EXPECT_LT(h.transport->calls(), 8);
}

TEST(Client, TransportTimeoutSaysItIsThePerAttemptTimeout) {
  RetryOptions retry;
  retry.max_attempts = 2;
  Harness h([](const http::Request&, int) -> http::Response {
    throw TimeoutError("HTTP POST 127.0.0.1:9: request timed out after 10000 ms");
  }, retry);
  try {
    h.get();
    ADD_FAILURE();
  } catch (const TimeoutError& e) {
    std::string m = e.what();
    EXPECT_NE(m.find("request timed out after 10000 ms"), std::string::npos) << m;
    EXPECT_NE(m.find("per-attempt transport timeout; attempt 2 of 2"), std::string::npos) << m;
  }
}

TEST(Client, ErrorsThatWillRecurAreNotRetried) {
  Harness h([](const http::Request&, int) -> http::Response {
    throw TransportError("HTTP POST 127.0.0.1:9: answer larger than 16 MiB", false);
  });
  try {
    h.get();
    ADD_FAILURE();
  } catch (const TransportError& e) {
    EXPECT_FALSE(e.retryable());
  }
  EXPECT_EQ(h.transport->calls(), 1);
  EXPECT_TRUE(h.sleeper->sleeps().empty());
}

namespace {

// Attempts on the wire: a loopback server that always answers 500, a client with the
// library's default transport and no sleeping.
int attempts_on_the_wire(RetryOptions retry, aws::ProfileOptions profile = {}) {
  std::atomic<int> seen{0};
  testing_support::TestServer server([&](const testing_support::TestRequest&) {
    ++seen;
    testing_support::TestResponse r;
    r.status = 500;
    r.body = R"({"__type":"com.amazonaws.dynamodb.v20120810#InternalServerError","message":"m"})";
    return r;
  });
  ClientOptions o;
  o.region = "us-east-1";
  o.endpoint = server.url();
  o.profile = std::move(profile);
  o.credentials = aws::make_static_provider({"AKIDTEST", "SECRETKEYVALUE", "", std::nullopt, ""});
  retry.sleeper = std::make_shared<RecordingSleeper>();
  o.retry = retry;
  Client c(o);
  GetItemRequest g;
  g.table_name = "t";
  g.key = {{"key", AttributeValue::S("k")}};
  EXPECT_THROW(c.get_item(g), ServiceError);
  return seen.load();
}

std::string write_config(const std::string& text) {
  auto path = std::filesystem::temp_directory_path() / ("ddbc-client-test-" + std::to_string(::getpid()) + ".ini");
  std::ofstream(path) << text;
  return path.string();
}

}  // namespace

TEST(ClientRetrySettings, MaxAttemptsFromEnvironmentProfileOrExplicit) {
  ScopedEnv mode("AWS_RETRY_MODE", nullptr);
  aws::ProfileOptions none;
  none.config_file = "/nonexistent/config";
  {
    ScopedEnv env("AWS_MAX_ATTEMPTS", "2");
    EXPECT_EQ(attempts_on_the_wire({}, none), 2);
    RetryOptions explicit_;
    explicit_.max_attempts = 4;
    EXPECT_EQ(attempts_on_the_wire(explicit_, none), 4);  // explicit wins
  }
  ScopedEnv env("AWS_MAX_ATTEMPTS", nullptr);
  aws::ProfileOptions prof;
  prof.profile = "cache";
  prof.config_file = write_config("[default]\nmax_attempts = 7\n[profile cache]\nregion = us-east-1\nmax_attempts = 3\n");
  EXPECT_EQ(attempts_on_the_wire({}, prof), 3);
  RetryOptions explicit_;
  explicit_.max_attempts = 1;
  EXPECT_EQ(attempts_on_the_wire(explicit_, prof), 1);
  {
    ScopedEnv env2("AWS_MAX_ATTEMPTS", "2");  // the environment before the profile
    EXPECT_EQ(attempts_on_the_wire({}, prof), 2);
  }
  RetryOptions dflt;
  dflt.default_max_attempts = 6;
  EXPECT_EQ(attempts_on_the_wire(dflt, none), 6);  // nothing set: today's default
  std::filesystem::remove(prof.config_file);
}

TEST(ClientRetrySettings, RetryModeFromEnvironmentOrProfile) {
  ScopedEnv attempts("AWS_MAX_ATTEMPTS", nullptr);
  aws::ProfileOptions none;
  none.config_file = "/nonexistent/config";
  {
    ScopedEnv mode("AWS_RETRY_MODE", "standard");
    EXPECT_EQ(attempts_on_the_wire({}, none), 3);  // standard's default
    auto r = dynamodb::detail::resolve_retry({}, none);
    EXPECT_EQ(r.mode, RetryMode::kStandard);
  }
  aws::ProfileOptions prof;
  prof.config_file = write_config("[default]\nretry_mode = legacy\n");
  auto r = dynamodb::detail::resolve_retry({}, prof);
  EXPECT_EQ(r.mode, RetryMode::kLegacy);
  EXPECT_EQ(r.max_attempts, 10);
  // Legacy: botocore's DynamoDB delays, 50 ms doubling, no jitter, no quota.
  r.quota_capacity = 0;
  Harness h([](const http::Request&, int) { return ddb_error(500, "InternalServerError"); }, r);
  EXPECT_THROW(h.get(), ServiceError);
  EXPECT_EQ(h.transport->calls(), 10);
  auto sleeps = h.sleeper->sleeps();
  ASSERT_EQ(sleeps.size(), 9u);
  EXPECT_EQ(sleeps[0], std::chrono::milliseconds(50));
  EXPECT_EQ(sleeps[3], std::chrono::milliseconds(400));
  {
    ScopedEnv mode("AWS_RETRY_MODE", "adaptive");  // the environment before the profile
    EXPECT_EQ(dynamodb::detail::resolve_retry({}, prof).mode, RetryMode::kAdaptive);
  }
  std::filesystem::remove(prof.config_file);

  for (auto [name, value] : {std::pair{"AWS_MAX_ATTEMPTS", "zero"}, {"AWS_MAX_ATTEMPTS", "0"},
                             {"AWS_RETRY_MODE", "fast"}}) {
    ScopedEnv bad(name, value);
    try {
      dynamodb::detail::resolve_retry({}, none);
      ADD_FAILURE() << name << "=" << value;
    } catch (const ConfigError& e) {
      EXPECT_NE(std::string(e.what()).find(name), std::string::npos) << e.what();
    }
  }
}

// The adaptive mode's limiter, on a virtual clock: off until a throttle, then the fill rate
// drops to 0.7 x the measured rate, and successes raise it again along the cubic.
TEST(ClientRateLimiter, ThrottlesCutTheRateAndSuccessesRestoreIt) {
  dynamodb::detail::ClientRateLimiter l;
  double t = 1000.0;
  for (int i = 0; i < 40; ++i, t += 0.05) {  // 20 requests/s, all fine
    EXPECT_EQ(l.acquire(t).count(), 0);
    l.update(false, t);
  }
  EXPECT_FALSE(l.enabled());
  l.update(true, t);
  EXPECT_TRUE(l.enabled());
  double cut = l.fill_rate();
  EXPECT_GT(cut, 0.7 * 15);
  EXPECT_LT(cut, 0.7 * 25);
  // Sending faster than the fill rate now waits once the bucket's tokens are spent; each
  // further send waits 1 / rate longer.
  std::chrono::microseconds w1{0};
  for (int i = 0; i < 100 && w1.count() == 0; ++i) w1 = l.acquire(t);
  EXPECT_GT(w1.count(), 0);
  auto w2 = l.acquire(t);
  EXPECT_NEAR(static_cast<double>((w2 - w1).count()), 1e6 / cut, 2.0);
  for (int i = 0; i < 60; ++i) {
    t += 0.1;
    l.update(false, t);
  }
  EXPECT_GT(l.fill_rate(), cut);
}

TEST(ClientRateLimiter, AdaptiveClientWaitsAfterThrottling) {
  auto clock = std::make_shared<ClockSleeper>();
  RetryOptions retry;
  retry.mode = RetryMode::kAdaptive;
  retry.max_attempts = 3;
  Harness h([&](const http::Request&, int n) {
    clock->advance(std::chrono::milliseconds(10));
    return n % 2 ? ddb_error(400, "ThrottlingException") : ddb_response(200, kGetOk);
  }, retry, [&](ClientOptions& o) { o.retry.sleeper = clock; });
  for (int i = 0; i < 20; ++i) EXPECT_TRUE(h.get().item);
  // Backoff sleeps are at most 1 s * 2^0 each (one throttle per call); the rest is pacing.
  std::chrono::microseconds slept{0};
  for (auto s : clock->sleeps()) slept += s;
  EXPECT_GT(clock->sleeps().size(), 20u);
  EXPECT_EQ(h.transport->calls(), 40);
  EXPECT_GT(slept, std::chrono::milliseconds(0));
}

// Without a transport of its own, the client's default transport never waits longer per
// attempt than the whole operation may take: a server that answers after 2 s is given up on
// by a 300 ms operation, though the transport's default request timeout is 10 s.
TEST(Client, DefaultTransportTimeoutIsClampedToTheOperationDeadline) {
  testing_support::TestServer server([](const testing_support::TestRequest&) {
    testing_support::TestResponse r;
    r.delay = std::chrono::milliseconds(2000);
    r.body = "{}";
    return r;
  });
  ClientOptions o;
  o.region = "us-east-1";
  o.endpoint = server.url();
  o.credentials = aws::make_static_provider({"AKIDTEST", "SECRETKEYVALUE", "", std::nullopt, ""});
  o.retry.max_attempts = 3;
  o.operation_timeout = std::chrono::milliseconds(300);
  Client c(o);
  GetItemRequest g;
  g.table_name = "t";
  g.key = {{"key", AttributeValue::S("k")}};
  try {
    c.get_item(g);
    ADD_FAILURE() << "answered";
  } catch (const TimeoutError& e) {
    EXPECT_NE(std::string(e.what()).find("operation deadline of 300 ms"), std::string::npos) << e.what();
  }
  EXPECT_EQ(server.requests(), 1);
}

// The kinds callers branch on are classes of their own, thrown where the kind is decided, and
// still ServiceErrors (old catch sites keep working). A missing table's message names the
// operation, the table and how to create it.
TEST(Client, ServiceErrorKindsCallersBranchOnHaveClasses) {
  auto thrown = [](const char* name) -> std::exception_ptr {
    RetryOptions once;
    once.max_attempts = 1;
    Harness h([&](const http::Request&, int) { return ddb_error(400, name, "Requested resource not found"); },
              once);
    try {
      h.get();
    } catch (...) {
      return std::current_exception();
    }
    return nullptr;
  };
  try {
    std::rethrow_exception(thrown("ResourceNotFoundException"));
  } catch (const ResourceNotFoundError& e) {
    EXPECT_EQ(e.kind(), ErrorKind::kResourceNotFound);
    EXPECT_EQ(e.table(), "t");
    EXPECT_EQ(e.name(), "ResourceNotFoundException");
    const std::string w = e.what();
    EXPECT_EQ(w.find("GetItem: table 't' does not exist"), 0u) << w;
    EXPECT_NE(w.find("Requested resource not found"), std::string::npos) << w;
    EXPECT_NE(w.find("in C++: Table::create"), std::string::npos) << w;
    EXPECT_NE(w.find("in Python: the record class's create_table(wait=True)"), std::string::npos) << w;
    EXPECT_NE(w.find("create-table --table t"), std::string::npos) << w;
  }
  EXPECT_THROW(std::rethrow_exception(thrown("ThrottlingException")), ThrottlingError);
  EXPECT_THROW(std::rethrow_exception(thrown("ConditionalCheckFailedException")), ConditionFailedError);
  EXPECT_THROW(std::rethrow_exception(thrown("ConditionalCheckFailedException")), ServiceError);
  try {
    std::rethrow_exception(thrown("ValidationException"));
  } catch (const ServiceError& e) {
    EXPECT_EQ(dynamic_cast<const ThrottlingError*>(&e), nullptr);
    EXPECT_EQ(dynamic_cast<const ResourceNotFoundError*>(&e), nullptr);
    EXPECT_EQ(dynamic_cast<const ConditionFailedError*>(&e), nullptr);
  }
}

// A web server that is not DynamoDB (no __type, no x-amzn-ErrorType) answers a final error
// that says so at once, not a retryable "HTTP 501 (HTTP 501)" after the retries; the statuses
// gateways give for a passing fault stay transient.
TEST(Client, AnEndpointThatIsNotDynamoDbIsSaidAtOnce) {
  for (int status : {501, 404, 405, 400}) {
    Harness h([&](const http::Request&, int) {
      http::Response r;
      r.status = status;
      r.body = "<html><body>Not here</body></html>";
      return r;
    });
    try {
      h.get();
      ADD_FAILURE() << status;
    } catch (const ServiceError& e) {
      EXPECT_FALSE(e.retryable()) << status;
      EXPECT_EQ(e.kind(), ErrorKind::kService) << status;
      const std::string w = e.what();
      EXPECT_EQ(
          w.find("GetItem: the endpoint http://127.0.0.1:9 is not DynamoDB: HTTP " + std::to_string(status)),
          0u)
          << w;
      EXPECT_EQ(w.find("(HTTP"), std::string::npos) << w;
    }
    EXPECT_EQ(h.transport->calls(), 1) << status;
  }
  Harness h([](const http::Request&, int) {
    http::Response r;
    r.status = 501;
    return r;
  });
  try {
    h.get();
  } catch (const ServiceError& e) {
    EXPECT_NE(std::string(e.what()).find("HTTP 501 Not Implemented"), std::string::npos) << e.what();
  }
  RetryOptions three;
  three.max_attempts = 3;
  Harness gateway(
      [](const http::Request&, int) {
        http::Response r;
        r.status = 503;
        r.body = "<html>Service Unavailable</html>";
        return r;
      },
      three);
  EXPECT_THROW(gateway.get(), ServiceError);
  EXPECT_EQ(gateway.transport->calls(), 3);
}

// Nothing listening on the endpoint: three attempts (the SDKs' standard mode), not the ten of
// the default policy, and a message naming the operation, the endpoint, the attempts and what
// to do. Both paths.
TEST(Client, ARefusedConnectionIsTriedThreeTimesAndSaysWhatToDo) {
  int port = 0;
  {
    int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
    socklen_t len = sizeof a;
    ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
    port = ntohs(a.sin_port);
    ::close(fd);  // bound, never listened on: connections to it are refused
  }
  for (bool async : {false, true}) {
    ClientOptions o;
    o.region = "us-east-1";
    o.endpoint = "http://127.0.0.1:" + std::to_string(port);
    o.credentials = aws::make_static_provider({"AKIDTEST", "SECRETKEYVALUE", "", std::nullopt, ""});
    o.retry.sleeper = std::make_shared<RecordingSleeper>();
    Client c(o);
    GetItemRequest g;
    g.table_name = "t";
    g.key = {{"key", AttributeValue::S("k")}};
    try {
      if (async)
        c.get_item_async(g).get();
      else
        c.get_item(g);
      ADD_FAILURE() << async;
    } catch (const ConnectError& e) {
      EXPECT_TRUE(e.refused()) << async;
      const std::string w = e.what();
      EXPECT_EQ(w.find("GetItem: cannot reach DynamoDB at " + o.endpoint + " after 3 attempts: "), 0u) << w;
      EXPECT_NE(w.find("refused"), std::string::npos) << w;
      EXPECT_NE(w.find("check the endpoint"), std::string::npos) << w;
    }
    EXPECT_EQ(c.stats().attempts.load(), 3u) << async;
  }
}

// A certificate that cannot be trusted is a TransportError (catch sites for the transport
// catch it), final and never sent.
TEST(Client, ACertificateErrorIsAFinalTransportError) {
  static_assert(std::is_base_of_v<TransportError, CertificateError>);
  Harness h([](const http::Request&, int) -> http::Response { throw CertificateError("untrusted CA"); });
  try {
    h.get();
    ADD_FAILURE();
  } catch (const TransportError& e) {
    EXPECT_NE(dynamic_cast<const CertificateError*>(&e), nullptr);
    EXPECT_EQ(e.kind(), ErrorKind::kTransport);
    EXPECT_FALSE(e.retryable());
    EXPECT_FALSE(e.request_sent());
  }
  EXPECT_EQ(h.transport->calls(), 1);
}
