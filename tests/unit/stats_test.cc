// CacheStats, the latency histogram, fail-open and the logging hook.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <thread>

#include "dynamodb_cache/backend.h"
#include "dynamodb_cache/errors.h"
#include "fake_transport.h"

using namespace dynamodb_cache;
using namespace std::chrono_literals;
using testing_support::ddb_error;
using testing_support::FakeTransport;

namespace {
constexpr const char* kSecret = "SECRET-KEY-must-never-be-logged";

std::shared_ptr<dynamodb::Client> failing_client(std::shared_ptr<FakeTransport> t) {
  dynamodb::ClientOptions o;
  o.region = "us-east-1";
  o.endpoint = "http://127.0.0.1:9";
  o.credentials =
      aws::make_static_provider({"AKIDEXAMPLE", kSecret, "TOKEN-must-never-be-logged", std::nullopt, ""});
  o.transport = std::move(t);
  o.retry.max_attempts = 1;
  return std::make_shared<dynamodb::Client>(o);
}
}  // namespace

TEST(LatencyHistogram, PercentilesAreWithinTheBucketWidth) {
  LatencyHistogram h;
  EXPECT_EQ(h.percentile_us(50), 0);
  for (int ms = 1; ms <= 100; ++ms) h.record(std::chrono::milliseconds(ms));
  EXPECT_EQ(h.count(), 100u);
  EXPECT_GE(h.percentile_us(50), 50000);
  EXPECT_LE(h.percentile_us(50), 50000 * 1.25);
  EXPECT_GE(h.percentile_us(99), 99000);
  EXPECT_LE(h.percentile_us(99), 99000 * 1.25);
  EXPECT_GE(h.percentile_us(100), 100000);
  h.record(std::chrono::hours(5));  // beyond the last bucket: counted there
  h.record(-5ns);
  EXPECT_EQ(h.count(), 102u);
}

TEST(LatencyHistogram, ManyThreadsRecordWithoutLosingCounts) {
  LatencyHistogram h;
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t)
    threads.emplace_back([&] {
      for (int i = 0; i < 10000; ++i) h.record(std::chrono::microseconds(i % 500));
    });
  for (auto& t : threads) t.join();
  EXPECT_EQ(h.count(), 40000u);
}

TEST(CacheStats, JsonHasEveryCounterAndTheOperationsUsed) {
  MemoryBackend m;
  m.set("a", "1", 0s);
  m.get("a");
  m.get("b");
  m.erase("a");
  auto& s = m.stats();
  EXPECT_EQ(s.hits.load(), 1u);
  EXPECT_EQ(s.misses.load(), 1u);
  EXPECT_EQ(s.sets.load(), 1u);
  EXPECT_EQ(s.erases.load(), 1u);
  m.add("c", "1", 0s);
  m.add("c", "2", 0s);
  EXPECT_EQ(m.stats().sets.load(), 2u);  // re-summed from the shards on each call
  s.latency[static_cast<size_t>(Op::kGet)].record(250us);
  s.count_error(ErrorKind::kThrottling);
  s.read_capacity_units = 1.5;
  uint64_t retries = 7;
  auto j = nlohmann::json::parse(s.to_json(&retries));
  for (const char* k :
       {"hits", "misses", "sets", "erases", "loads", "load_time_us", "lease_waits", "stale_served",
        "refresh_failures", "fail_open", "throttles", "decode_errors", "retries", "bytes_read",
        "bytes_written", "read_capacity_units", "write_capacity_units", "errors", "latency_us"})
    EXPECT_TRUE(j.contains(k)) << k;
  EXPECT_EQ(j["errors"]["throttling"], 1);
  EXPECT_EQ(j["throttles"], 1);
  EXPECT_EQ(j["retries"], 7);
  EXPECT_EQ(j["read_capacity_units"], 1.5);
  EXPECT_EQ(j["latency_us"]["get"]["count"], 1);
  EXPECT_FALSE(j["latency_us"].contains("set"));
}

TEST(FailOpen, BackendErrorsBecomeMissesCountedAndLogged) {
  // A refused connection: nothing was ever sent, so the writes fail plainly (no unknown outcome).
  auto t = std::make_shared<FakeTransport>(
      [](const http::Request&, int) -> http::Response { throw ConnectError("connection refused"); });
  std::vector<std::pair<LogLevel, std::string>> logged;
  std::mutex mu;
  DynamodbOptions o;
  o.fail_open = true;
  o.log = [&](LogLevel level, std::string_view msg) {
    std::lock_guard lock(mu);
    logged.emplace_back(level, std::string(msg));
  };
  DynamodbBackend b(failing_client(t), o);
  EXPECT_FALSE(b.get("k"));
  EXPECT_FALSE(b.contains("k"));
  auto many = b.get_many({"a", "b"});
  EXPECT_FALSE(many[0] || many[1]);
  EXPECT_NO_THROW(b.set("k", "v", 0s));  // dropped
  EXPECT_NO_THROW(b.set_many({{"a", "1"}}, 0s));
  EXPECT_THROW(b.increment("n", 1, 0s), TransportError);  // no safe made-up answer
  EXPECT_THROW(b.add("n", "v", 0s), TransportError);
  EXPECT_THROW(b.erase("k"), TransportError);
  EXPECT_THROW(b.get(""), InvalidArgumentError);  // the caller's mistake is not hidden

  auto& s = b.stats();
  EXPECT_EQ(s.fail_open.load(), 5u);
  EXPECT_EQ(s.errors[static_cast<size_t>(ErrorKind::kTransport)].load(), 8u);
  EXPECT_EQ(s.errors[static_cast<size_t>(ErrorKind::kInvalidArgument)].load(), 1u);
  EXPECT_EQ(s.misses.load(), 3u);
  EXPECT_EQ(s.sets.load(), 0u);
  ASSERT_EQ(logged.size(), 5u);
  for (const auto& [level, msg] : logged) {
    EXPECT_EQ(level, LogLevel::kWarning);
    EXPECT_NE(msg.find("connection refused"), std::string::npos) << msg;
    EXPECT_EQ(msg.find(kSecret), std::string::npos) << msg;
    EXPECT_EQ(msg.find("TOKEN-must-never"), std::string::npos) << msg;
  }
}

TEST(FailOpen, OffByDefaultAndAThrowingHookIsHarmless) {
  auto t = std::make_shared<FakeTransport>(
      [](const http::Request&, int) { return ddb_error(400, "ResourceNotFoundException", "no table"); });
  DynamodbBackend strict(failing_client(t));
  EXPECT_THROW(strict.get("k"), ServiceError);
  EXPECT_EQ(strict.stats().errors[static_cast<size_t>(ErrorKind::kResourceNotFound)].load(), 1u);
  EXPECT_EQ(strict.stats().latency[static_cast<size_t>(Op::kGet)].count(), 1u);

  DynamodbOptions o;
  o.fail_open = true;
  o.log = [](LogLevel, std::string_view) { throw std::runtime_error("hook broke"); };
  DynamodbBackend open(failing_client(t), o);
  EXPECT_FALSE(open.get("k"));
}

TEST(FailOpen, AFailedNamespaceGenerationReadIsAMissToo) {
  auto t = std::make_shared<FakeTransport>(
      [](const http::Request&, int) -> http::Response { throw TransportError("connection reset"); });
  DynamodbOptions o;
  o.fail_open = true;
  o.key_namespace = "ns";
  DynamodbBackend b(failing_client(t), o);
  EXPECT_FALSE(b.get("k"));
  EXPECT_FALSE(b.get_many({"a", "b"})[1]);
  EXPECT_NO_THROW(b.set("k", "v", 0s));
  EXPECT_NO_THROW(b.set_many({{"a", "1"}}, 0s));
  EXPECT_EQ(b.stats().fail_open.load(), 4u);
  // Not failed open; with no generation known it reads the generation first, which fails.
  EXPECT_THROW(b.clear(), TransportError);
}

TEST(CacheStats, SharedBetweenBackendsSumsThem) {
  auto shared = std::make_shared<CacheStats>();
  auto t = std::make_shared<FakeTransport>(
      [](const http::Request&, int) { return testing_support::ddb_response(200, "{}"); });
  DynamodbOptions o;
  o.stats = shared;
  DynamodbBackend a(failing_client(t), o), b(failing_client(t), o);
  a.get("x");
  b.get("y");
  EXPECT_EQ(shared->misses.load(), 2u);
  EXPECT_EQ(&a.stats(), shared.get());
}
