// DynamoDB client over a scripted transport: error mapping, CRC checks, retries, backoff,
// the retry quota.
#include <gtest/gtest.h>

#include <random>

#include "dynamodb_cache/dynamodb.h"
#include "dynamodb_cache/errors.h"
#include "fake_transport.h"

using namespace dynamodb_cache;
using namespace dynamodb_cache::dynamodb;
using testing_support::ddb_error;
using testing_support::ddb_response;
using testing_support::FakeTransport;
using testing_support::RecordingSleeper;

namespace {

const char* kGetOk = R"({"Item":{"key":{"S":"k"},"value":{"B":"aGk="}}})";

struct Harness {
  std::shared_ptr<FakeTransport> transport;
  std::shared_ptr<RecordingSleeper> sleeper = std::make_shared<RecordingSleeper>();
  std::unique_ptr<Client> client;
  int64_t clock_s = 1700000000;

  explicit Harness(FakeTransport::Handler h, RetryOptions retry = {}) {
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
