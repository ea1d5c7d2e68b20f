// Hedged reads (ClientOptions::hedge) against a loopback DynamoDB stand-in whose answers to a
// key's first request are late: a late GetItem is sent once more and answered by the second
// copy, once; nothing is sent twice with hedging off, a write never is, the budget caps the
// second copies, an error of one copy waits for the other, and a loser still in flight when
// the client is destroyed is freed (the sanitizer builds check the memory). Assertions are on
// counters; the only time bound is far from the delays (a 2 s answer against a 300 ms hedge).
#include <gtest/gtest.h>

#include <atomic>
#include <future>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>

#include "dynamodb_cache/dynamodb.h"
#include "dynamodb_cache/errors.h"
#include "test_server.h"
#include "util/crypto.h"

using namespace dynamodb_cache;
using namespace dynamodb_cache::dynamodb;
using namespace std::chrono_literals;
using json = nlohmann::json;
using testing_support::TestRequest;
using testing_support::TestResponse;
using testing_support::TestServer;

namespace {

TestResponse answer(int status, const std::string& body, std::chrono::milliseconds delay = 0ms) {
  TestResponse r;
  r.status = status;
  r.headers.push_back({"x-amz-crc32", std::to_string(util::crc32(body))});
  r.headers.push_back({"Content-Type", "application/x-amz-json-1.0"});
  r.body = body;
  r.delay = delay;
  return r;
}

// Answers GetItem of table "t" with the item {key, value: "copy<n>"}, n the number of earlier
// requests for that key; PutItem with {}. A key starting with "slow" has its first request
// (n == 0) answered after `slow_delay`, or `first` decides that answer when set, and its
// second after `second_delay`.
class Stand {
 public:
  explicit Stand(std::chrono::milliseconds slow_delay = 2000ms,
                 std::function<TestResponse(const std::string& key)> first = nullptr,
                 std::chrono::milliseconds second_delay = 0ms)
      : slow_delay_(slow_delay),
        second_delay_(second_delay),
        first_(std::move(first)),
        server_([this](const TestRequest& r) { return handle(r); }) {}
  ClientOptions options(bool hedge = true) const {
    ClientOptions o;
    o.region = "us-west-2";
    o.endpoint = server_.url();
    o.credentials = aws::make_static_provider({"AKIDTEST", "SECRETKEYVALUE", "", std::nullopt, ""});
    o.retry.jitter_seed = 7;
    o.retry.base_delay = 1ms;
    o.hedge.enabled = hedge;
    o.hedge.min_samples = 5;
    // Far above a loopback answer even under a sanitizer, far below the slow answers.
    o.hedge.floor = 300ms;
    o.hedge.max_extra = 1;
    return o;
  }
  // Requests of `op` for `key` seen so far.
  int seen(const std::string& op, const std::string& key) {
    std::lock_guard lock(mu_);
    return seen_[op + " " + key];
  }
  int connections() const { return server_.connections(); }

 private:
  TestResponse handle(const TestRequest& r) {
    const std::string* target = r.header("x-amz-target");
    std::string op = target ? target->substr(target->find('.') + 1) : "";
    json body = json::parse(r.body);
    std::string key = body.contains("Key") ? body["Key"]["key"]["S"].get<std::string>()
                                           : body["Item"]["key"]["S"].get<std::string>();
    int n;
    {
      std::lock_guard lock(mu_);
      n = seen_[op + " " + key]++;
    }
    const bool slow = key.rfind("slow", 0) == 0 && n == 0;
    if (slow && first_) return first_(key);
    const bool slow_key = key.rfind("slow", 0) == 0;
    const auto delay = slow ? slow_delay_ : slow_key && n == 1 ? second_delay_ : 0ms;
    if (op == "PutItem") return answer(200, "{}", delay);
    json item = {{"key", {{"S", key}}}, {"value", {{"S", "copy" + std::to_string(n)}}}};
    return answer(200, json{{"Item", item}}.dump(), delay);
  }

  std::chrono::milliseconds slow_delay_, second_delay_;
  std::function<TestResponse(const std::string&)> first_;
  std::mutex mu_;
  std::map<std::string, int> seen_;
  TestServer server_;  // last: stopped first
};

GetItemRequest get(const std::string& key) {
  GetItemRequest r;
  r.table_name = "t";
  r.key = {{"key", AttributeValue::S(key)}};
  return r;
}

std::string value_of(const GetItemResult& r) { return r.item ? r.item->at("value").scalar : "miss"; }

// Enough fast gets for the percentile (min_samples) and the budget.
// (`prefix`: keys not asked before, whose answer is "copy0".)
void warm(Client& c, int n = 20, const std::string& prefix = "fast") {
  for (int i = 0; i < n; ++i)
    EXPECT_EQ(value_of(c.get_item_async(get(prefix + std::to_string(i))).get()), "copy0");
}

}  // namespace

TEST(HedgedReads, ALateGetIsAnsweredByItsSecondCopyOnce) {
  Stand stand;
  Client c(stand.options());
  warm(c);
  const uint64_t hedged0 = c.stats().hedged.load(), wins0 = c.stats().hedge_wins.load();
  std::atomic<int> calls{0};
  std::promise<Outcome<GetItemResult>> p;
  const auto start = std::chrono::steady_clock::now();
  c.get_item_async(get("slow1"), [&](Outcome<GetItemResult> o) {
    if (calls.fetch_add(1) == 0) p.set_value(std::move(o));
  });
  auto o = p.get_future().get();
  const auto took = std::chrono::steady_clock::now() - start;
  ASSERT_TRUE(o.ok());
  EXPECT_EQ(value_of(o.value()), "copy1");  // the second copy's answer
  EXPECT_LT(took, 1500ms);                  // the first copy's comes after 2 s
  EXPECT_EQ(c.stats().hedged.load() - hedged0, 1u);
  EXPECT_EQ(c.stats().hedge_wins.load() - wins0, 1u);
  EXPECT_EQ(stand.seen("GetItem", "slow1"), 2);
  // The first copy's answer arrives and is dropped: the operation completed once, and the
  // client goes on (its connection read whole, back in the pool).
  std::this_thread::sleep_for(2500ms);
  EXPECT_EQ(calls.load(), 1);
  warm(c, 5, "after");
  EXPECT_EQ(calls.load(), 1);
}

TEST(HedgedReads, OffSendsNothingTwice) {
  Stand stand(600ms);
  Client c(stand.options(false));
  warm(c);
  auto r = c.get_item_async(get("slow1")).get();
  EXPECT_EQ(value_of(r), "copy0");
  EXPECT_EQ(stand.seen("GetItem", "slow1"), 1);
  EXPECT_EQ(c.stats().hedged.load(), 0u);
  EXPECT_EQ(c.stats().hedge_wins.load(), 0u);
}

TEST(HedgedReads, NoHedgeBeforeMinSamples) {
  Stand stand(600ms);
  auto o = stand.options();
  o.hedge.min_samples = 50;
  Client c(o);
  warm(c);  // 20 < 50
  EXPECT_EQ(value_of(c.get_item_async(get("slow1")).get()), "copy0");
  EXPECT_EQ(stand.seen("GetItem", "slow1"), 1);
  EXPECT_EQ(c.stats().hedged.load(), 0u);
}

TEST(HedgedReads, WritesAreNeverHedged) {
  Stand stand(1000ms);
  Client c(stand.options());
  warm(c);
  PutItemRequest put;
  put.table_name = "t";
  put.item = {{"key", AttributeValue::S("slow-put")}, {"value", AttributeValue::S("v")}};
  c.put_item_async(put).get();
  EXPECT_EQ(stand.seen("PutItem", "slow-put"), 1);
  EXPECT_EQ(c.stats().hedged.load(), 0u);
}

TEST(HedgedReads, TheBudgetCapsSecondCopies) {
  Stand stand(1000ms);
  auto o = stand.options();
  o.hedge.max_extra = 0.05;
  Client c(o);
  warm(c);  // earns 20 * 0.05 = 1 hedge
  std::vector<std::future<GetItemResult>> fs;
  for (int i = 0; i < 100; ++i) fs.push_back(c.get_item_async(get("slow" + std::to_string(i))));
  int seconds = 0, requests = 0;
  for (int i = 0; i < 100; ++i) {
    auto v = value_of(fs[static_cast<size_t>(i)].get());
    seconds += v == "copy1";
    EXPECT_TRUE(v == "copy0" || v == "copy1") << v;
    requests += stand.seen("GetItem", "slow" + std::to_string(i));
  }
  // 120 gets earned 6 hedges at 0.05 each.
  const uint64_t hedged = c.stats().hedged.load();
  EXPECT_GE(hedged, 1u);
  EXPECT_LE(hedged, 6u);
  EXPECT_LE(requests, 106);
  EXPECT_EQ(static_cast<uint64_t>(seconds), c.stats().hedge_wins.load());
  EXPECT_LE(c.stats().hedge_wins.load(), hedged);
}

TEST(HedgedReads, AnErrorOfOneCopyWaitsForTheOther) {
  // The first copy fails (a 500, retryable) after 800 ms, when the second (sent at 300 ms,
  // answered 1 s later) is in flight: the second's success answers, and no retry (a third
  // request, "copy2") is made.
  Stand stand(
      0ms,
      [](const std::string&) {
        return answer(
            500, R"({"__type":"com.amazonaws.dynamodb.v20120810#InternalServerError","message":"m"})", 800ms);
      },
      1000ms);
  Client c(stand.options());
  warm(c);
  const uint64_t retries0 = c.stats().retries.load();
  EXPECT_EQ(value_of(c.get_item_async(get("slow1")).get()), "copy1");
  EXPECT_EQ(c.stats().retries.load(), retries0);
  EXPECT_EQ(c.stats().hedge_wins.load(), 1u);
  EXPECT_EQ(stand.seen("GetItem", "slow1"), 2);
  EXPECT_EQ(c.stats().retries.load(), retries0);
}

TEST(HedgedReads, ALoserInFlightWhenTheClientIsDestroyedIsFreed) {
  Stand stand;
  std::string v;
  {
    Client c(stand.options());
    warm(c);
    v = value_of(c.get_item_async(get("slow1")).get());
  }  // the first copy still waits for its 2 s answer: shutdown completes and frees it
  EXPECT_EQ(v, "copy1");
}

TEST(HedgedReads, BadOptionsAreRefused) {
  Stand stand;
  auto o = stand.options();
  o.hedge.percentile = 0;
  EXPECT_THROW(Client{o}, InvalidArgumentError);
  o = stand.options();
  o.hedge.max_extra = 1.5;
  EXPECT_THROW(Client{o}, InvalidArgumentError);
  o = stand.options();
  o.hedge.min_samples = 0;
  EXPECT_THROW(Client{o}, InvalidArgumentError);
}
