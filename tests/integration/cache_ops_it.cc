// The atomic and multi-key operations of DynamodbBackend against dynalite: add, touch,
// increment/decrement, contains, erase_many, with request counts checked on the wire.
#include <mutex>
#include <random>
#include <thread>

#include "counting_transport.h"
#include "it_env.h"
#include "test_server.h"
#include "util_clock.h"

using namespace dynamodb_cache;
using namespace std::chrono_literals;
namespace ddb = dynamodb_cache::dynamodb;
using testing_support::CountingTransport;

namespace {
struct OpsTable {
  std::shared_ptr<CountingTransport> wire = std::make_shared<CountingTransport>();
  std::shared_ptr<ddb::Client> c = [this] {
    ddb::ClientOptions o;
    o.transport = wire;
    return std::make_shared<ddb::Client>(o);
  }();
  std::string name = it::unique_table("it-ops");
  Table table = it::make_cache_table(c, name);
  test_clock::FakeWallClock clock;
  ~OpsTable() { table.drop(false); }
  DynamodbOptions opts() {
    DynamodbOptions o;
    o.table = name;
    o.now = clock.fn();
    return o;
  }
  // An item as the Python package writes it: no expire_at, no fmt, value as base64 text.
  void python_put(const std::string& key, int64_t expire, int64_t update_ts) {
    ddb::PutItemRequest p;
    p.table_name = name;
    p.item = {{"key", ddb::AttributeValue::S(key)},
              {"value", ddb::AttributeValue::B("cHl0aG9u")},  // "python"
              {"expire", ddb::AttributeValue::N(expire)},
              {"update_ts", ddb::AttributeValue::N(update_ts)}};
    c->put_item(p);
  }
  int64_t now_s() {
    return std::chrono::duration_cast<std::chrono::seconds>(clock.fn()().time_since_epoch()).count();
  }
  ddb::Item raw(const std::string& key) {
    ddb::GetItemRequest g;
    g.table_name = name;
    g.key = {{"key", ddb::AttributeValue::S(key)}};
    g.consistent_read = true;
    return c->get_item(g).item.value_or(ddb::Item{});
  }
};
}  // namespace

TEST(CacheOpsIT, AddIsOneConditionalPut) {
  OpsTable t;
  DynamodbBackend b(t.c, t.opts());
  t.wire->reset();
  EXPECT_TRUE(b.add("k", "first", 10s));
  EXPECT_EQ(t.wire->total(), 1);
  EXPECT_EQ(t.wire->count("PutItem"), 1);
  EXPECT_FALSE(b.add("k", "second", 10s));  // the condition fails; one read confirms it is live
  EXPECT_EQ(*b.get("k"), "first");
  t.clock.advance(10s);
  t.wire->reset();
  EXPECT_TRUE(b.add("k", "third", 0s));  // expired (still stored): written in one request
  EXPECT_EQ(t.wire->total(), 1);
  EXPECT_EQ(*b.get("k"), "third");
  EXPECT_FALSE(b.add("k", "fourth", 5s));  // never expires
}

TEST(CacheOpsIT, AddJudgesPythonWrittenItemsByTheirExpire) {
  OpsTable t;
  DynamodbBackend b(t.c, t.opts());
  t.python_put("live", 100, t.now_s() - 50);
  t.python_put("expired", 100, t.now_s() - 150);
  t.python_put("forever", 0, t.now_s() - 1000000);
  EXPECT_FALSE(b.add("live", "x", 0s));
  EXPECT_EQ(*b.get("live"), "python");
  EXPECT_TRUE(b.add("expired", "x", 0s));
  EXPECT_EQ(*b.get("expired"), "x");
  EXPECT_FALSE(b.add("forever", "x", 0s));
}

// Items another tool wrote with some of the liveness attributes missing: add, increment and
// touch agree with get (the conditions DynamoDB evaluates state the same rule), never
// "the item changed" for an item nobody changes.
TEST(CacheOpsIT, ItemsMissingLivenessAttributesAreJudgedAsGetJudgesThem) {
  OpsTable t;
  DynamodbBackend b(t.c, t.opts());
  auto put = [&](const std::string& key, ddb::Item attrs) {
    ddb::PutItemRequest p;
    p.table_name = t.name;
    p.item = std::move(attrs);
    p.item["key"] = ddb::AttributeValue::S(key);
    p.item["value"] = ddb::AttributeValue::B("v");
    p.item["fmt"] = ddb::AttributeValue::N(1);
    t.c->put_item(p);
  };
  // expire but no update_ts: expired (update_ts counts as 0), as get says.
  const ddb::Item no_ts = {{"expire", ddb::AttributeValue::N(3600)}};
  for (const char* k : {"a", "i", "t"}) put(k, no_ts);
  EXPECT_FALSE(b.get("a"));
  EXPECT_FALSE(b.touch("t", 60s));
  EXPECT_TRUE(b.add("a", "added", 0s));
  EXPECT_EQ(*b.get("a"), "added");
  EXPECT_EQ(b.increment("i", 5, 0s), 5);
  // ...and with an expire_at in the future, which decides: live, for every operation.
  put("live",
      {{"expire", ddb::AttributeValue::N(3600)}, {"expire_at", ddb::AttributeValue::N(t.now_s() + 600)}});
  EXPECT_EQ(*b.get("live"), "v");
  EXPECT_FALSE(b.add("live", "x", 0s));
  EXPECT_TRUE(b.touch("live", 60s));
  EXPECT_THROW(b.increment("live", 1, 0s), WrongTypeError);
  // No expire at all (or one that is no number): never expires.
  put("forever", {{"update_ts", ddb::AttributeValue::N(1)}});
  put("text", {{"expire", ddb::AttributeValue::S("60")}, {"update_ts", ddb::AttributeValue::N(1)}});
  for (const char* k : {"forever", "text"}) {
    EXPECT_EQ(*b.get(k), "v") << k;
    EXPECT_FALSE(b.add(k, "x", 0s)) << k;
    EXPECT_TRUE(b.touch(k, 60s)) << k;
    EXPECT_TRUE(b.get_entry(k)->ttl_left) << k;  // re-timed: it expires now
  }
  // A live counter without expire_at (no expire at all, or the Python rule's expire and
  // update_ts) is incremented, as get reads it: not 16 rounds of "the item changed".
  auto put_counter = [&](const std::string& key, ddb::Item attrs) {
    ddb::PutItemRequest p;
    p.table_name = t.name;
    p.item = std::move(attrs);
    p.item["key"] = ddb::AttributeValue::S(key);
    p.item["counter"] = ddb::AttributeValue::N(5);
    t.c->put_item(p);
  };
  put_counter("c-forever", {});
  put_counter("c-python", {{"expire", ddb::AttributeValue::N(3600)},
                           {"update_ts", ddb::AttributeValue::N(t.now_s() - 10)}});
  for (const char* k : {"c-forever", "c-python"}) {
    EXPECT_EQ(*b.get(k), "5") << k;
    EXPECT_EQ(b.increment(k, 2, 0s), 7) << k;
    EXPECT_EQ(*b.get(k), "7") << k;
  }
}

TEST(CacheOpsIT, ConcurrentAddsHaveOneWinner) {
  OpsTable t;
  std::atomic<int> won{0};
  std::vector<std::thread> threads;
  for (int i = 0; i < 8; ++i)
    threads.emplace_back([&, i] {
      DynamodbBackend b(it::client(), t.opts());  // a client each, as separate processes
      for (int round = 0; round < 5; ++round)
        if (b.add("race" + std::to_string(round), "by " + std::to_string(i), 0s)) ++won;
    });
  for (auto& th : threads) th.join();
  EXPECT_EQ(won.load(), 5);
}

TEST(CacheOpsIT, TouchRetimesLiveItemsOnly) {
  OpsTable t;
  DynamodbBackend b(t.c, t.opts());
  EXPECT_FALSE(b.touch("absent", 10s));
  b.set("k", "v", 5s);
  t.wire->reset();
  EXPECT_TRUE(b.touch("k", 100s));
  EXPECT_EQ(t.wire->total(), 1);
  EXPECT_EQ(t.wire->count("UpdateItem"), 1);
  t.clock.advance(50s);
  auto h = b.get_entry("k");
  ASSERT_TRUE(h);
  EXPECT_EQ(h->value, "v");
  EXPECT_LE(h->ttl_left->count(), 50000);
  auto item = t.raw("k");
  EXPECT_EQ(item.at("expire").scalar, "100");
  EXPECT_EQ(std::stoll(item.at("expire_at").scalar), std::stoll(item.at("update_ts").scalar) + 100);
  EXPECT_TRUE(b.touch("k", 0s));  // never expires: expire_at removed
  EXPECT_EQ(t.raw("k").count("expire_at"), 0u);
  t.clock.advance(1000000s);
  EXPECT_TRUE(b.contains("k"));

  b.set("short", "v", 1s);
  t.clock.advance(2s);
  EXPECT_FALSE(b.touch("short", 100s));  // expired stays expired
  EXPECT_FALSE(b.get("short"));

  t.python_put("py", 100, t.now_s() - 50);
  EXPECT_TRUE(b.touch("py", 1000s));
  t.clock.advance(500s);
  EXPECT_EQ(*b.get("py"), "python");
  t.python_put("py-old", 100, t.now_s() - 150);
  EXPECT_FALSE(b.touch("py-old", 1000s));
}

TEST(CacheOpsIT, CountersAreOneUpdateItemAndStartAtZero) {
  OpsTable t;
  DynamodbBackend b(t.c, t.opts());
  t.wire->reset();
  EXPECT_EQ(b.increment("n", 1, 10s), 1);  // created: the update's condition fails, the put wins
  EXPECT_EQ(t.wire->count("UpdateItem"), 1);
  EXPECT_EQ(t.wire->count("PutItem"), 1);
  t.wire->reset();
  EXPECT_EQ(b.increment("n", 41, 0s), 42);
  EXPECT_EQ(t.wire->total(), 1);  // one UpdateItem
  EXPECT_EQ(b.decrement("n", 2, 0s), 40);
  EXPECT_EQ(*b.get("n"), "40");
  auto item = t.raw("n");
  EXPECT_EQ(item.at("counter").scalar, "40");
  EXPECT_EQ(item.count("value"), 0u);
  EXPECT_EQ(item.at("expire").scalar, "10");  // kept from creation
  t.clock.advance(10s);                       // expired, though DynamoDB still holds it
  EXPECT_FALSE(b.get("n"));
  EXPECT_EQ(b.increment("n", 5, 0s), 5);
  EXPECT_EQ(b.decrement("fresh", 3, 0s), -3);
}

TEST(CacheOpsIT, ACounterAndAValueUnderOneKeyIsAWrongTypeError) {
  OpsTable t;
  DynamodbBackend b(t.c, t.opts());
  b.set("v", "text", 0s);
  EXPECT_THROW(b.increment("v", 1, 0s), WrongTypeError);
  EXPECT_EQ(*b.get("v"), "text");  // untouched
  t.python_put("py", 0, t.now_s());
  EXPECT_THROW(b.increment("py", 1, 0s), WrongTypeError);
  EXPECT_EQ(*b.get("py"), "python");
  t.python_put("py-expired", 10, t.now_s() - 20);
  EXPECT_EQ(b.increment("py-expired", 7, 0s), 7);  // an expired Python item is replaced
  EXPECT_EQ(b.increment("c", 1, 0s), 1);
  EXPECT_FALSE(b.add("c", "value", 0s));  // a live counter is a live entry
  b.set("c", "now a value", 0s);          // set() replaces whatever is there
  EXPECT_THROW(b.increment("c", 1, 0s), WrongTypeError);
}

TEST(CacheOpsIT, CounterOverflowChangesNothing) {
  OpsTable t;
  DynamodbBackend b(t.c, t.opts());
  EXPECT_EQ(b.increment("big", INT64_MAX - 1, 0s), INT64_MAX - 1);
  EXPECT_EQ(b.increment("big", 1, 0s), INT64_MAX);
  EXPECT_THROW(b.increment("big", 1, 0s), InvalidArgumentError);
  EXPECT_EQ(*b.get("big"), std::to_string(INT64_MAX));
  EXPECT_EQ(b.increment("small", INT64_MIN + 1, 0s), INT64_MIN + 1);
  EXPECT_THROW(b.decrement("small", 2, 0s), InvalidArgumentError);
  EXPECT_EQ(b.decrement("small", 1, 0s), INT64_MIN);
}

TEST(CacheOpsIT, ConcurrentIncrementsFromManyClientsLoseNothing) {
  OpsTable t;
  std::vector<std::thread> threads;
  for (int i = 0; i < 8; ++i)
    threads.emplace_back([&] {
      DynamodbBackend b(it::client(), t.opts());
      for (int n = 0; n < 50; ++n) b.increment("hits", 1, 3600s);
    });
  for (auto& th : threads) th.join();
  DynamodbBackend b(t.c, t.opts());
  EXPECT_EQ(*b.get("hits"), "400");
}

TEST(CacheOpsIT, ContainsReadsNoValueAndEraseManyBatches) {
  OpsTable t;
  DynamodbBackend b(t.c, t.opts());
  std::vector<std::pair<std::string, std::string>> entries;
  std::vector<std::string> keys;
  for (int i = 0; i < 60; ++i) {
    entries.emplace_back("k" + std::to_string(i), std::string(1000, 'x'));
    keys.push_back("k" + std::to_string(i));
  }
  b.set_many(entries, 0s);
  EXPECT_TRUE(b.contains("k7"));
  EXPECT_FALSE(b.contains("nope"));
  b.set("short", "v", 1s);
  t.clock.advance(1s);
  EXPECT_FALSE(b.contains("short"));
  keys.push_back("k0");  // twice
  keys.push_back("never-set");
  t.wire->reset();
  b.erase_many(keys);
  EXPECT_EQ(t.wire->count("BatchWriteItem"), 3);  // 61 distinct keys in calls of 25
  // One BatchGetItem of the heads first: the chunks of never-expiring values must go too.
  EXPECT_EQ(t.wire->count("BatchGetItem"), 1);
  EXPECT_EQ(t.wire->total(), 4);
  for (int i = 0; i < 60; i += 7) EXPECT_FALSE(b.contains("k" + std::to_string(i)));
}

TEST(CacheOpsIT, LayeredMemoryOverDynamoDb) {
  OpsTable t;
  auto shared = std::make_shared<DynamodbBackend>(t.c, t.opts());
  auto l1 = std::make_shared<MemoryBackend>();
  LayeredBackend layered({l1, shared});
  EXPECT_TRUE(layered.add("k", "v", 60s));
  EXPECT_EQ(*l1->get("k"), "v");
  EXPECT_FALSE(layered.add("k", "w", 60s));
  EXPECT_EQ(layered.increment("n", 2, 0s), 2);
  EXPECT_EQ(shared->increment("n", 3, 0s), 5);  // another process
  EXPECT_EQ(layered.increment("n", 1, 0s), 6);
  EXPECT_EQ(*layered.get("n"), "6");
  EXPECT_EQ(shared->increment("n", 1, 0s), 7);  // another process again
  EXPECT_EQ(*layered.get("n"), "7");            // not served stale from memory
  EXPECT_TRUE(layered.touch("k", 600s));
  EXPECT_GT(l1->get_entry("k")->ttl_left->count(), 60000);
  layered.erase_many({"k", "n"});
  EXPECT_FALSE(shared->contains("k"));
  EXPECT_FALSE(layered.contains("n"));
}

TEST(CacheOpsIT, StatsCountHitsBytesCapacityAndLatency) {
  OpsTable t;
  DynamodbBackend b(t.c, t.opts());
  b.set("k", std::string(3000, 'x'), 0s);  // compressed on the wire, 3000 bytes counted
  b.get("k");
  b.get("absent");
  b.get_many({"k", "absent"});
  b.increment("n", 1, 0s);
  b.erase("k");
  auto& s = b.stats();
  EXPECT_EQ(s.hits.load(), 2u);
  EXPECT_EQ(s.misses.load(), 2u);
  EXPECT_EQ(s.sets.load(), 1u);
  EXPECT_EQ(s.erases.load(), 1u);
  EXPECT_EQ(s.bytes_written.load(), 3000u);
  EXPECT_EQ(s.bytes_read.load(), 6000u);
  EXPECT_GT(s.read_capacity_units.load(), 0);  // ReturnConsumedCapacity TOTAL
  EXPECT_GT(s.write_capacity_units.load(), 0);
  EXPECT_EQ(s.latency[static_cast<size_t>(Op::kGet)].count(), 2u);
  EXPECT_EQ(s.latency[static_cast<size_t>(Op::kIncrement)].count(), 1u);
  EXPECT_GT(s.latency[static_cast<size_t>(Op::kGet)].percentile_us(50), 0);
  EXPECT_THROW(b.increment("n", INT64_MAX, 0s), InvalidArgumentError);
  EXPECT_EQ(s.errors[static_cast<size_t>(ErrorKind::kInvalidArgument)].load(), 1u);
}

// ---- Exactly-once writes (README, "Exactly-once writes") ----
// A proxy on 127.0.0.1 in front of dynalite forwards every request and loses the answers it is
// told to (a connection closed after forwarding: the write was applied, its answer never
// arrives), the case in which a resent write would apply twice.
namespace {
using testing_support::TestRequest;
using testing_support::TestResponse;
using testing_support::TestServer;

struct LossyProxy {
  explicit LossyProxy(std::string upstream) : upstream_(std::move(upstream) + "/") {}
  // Which 200 answers to lose (called under a lock, in request order), and what to do after
  // forwarding such a request and before losing its answer (another writer's turn).
  std::function<bool(const TestRequest&)> lose;
  std::function<void()> meanwhile;
  // Which requests to answer with a 500 without forwarding them (not applied; to the client,
  // an unknown outcome all the same).
  std::function<bool(const TestRequest&)> fail_before;
  int fail_status = 500;  // and the error name: InternalServerError, or ThrottlingException for 400

  int lost() {
    std::lock_guard lock(mu_);
    return lost_;
  }
  std::string url() const { return server_.url(); }

 private:
  TestResponse handle(const TestRequest& r) {
    {
      std::lock_guard lock(mu_);
      if (fail_before && fail_before(r)) {
        ++lost_;
        TestResponse e;
        e.status = fail_status;
        e.body = std::string(R"({"__type":"com.amazonaws.dynamodb.v20120810#)") +
                 (fail_status == 500 ? "InternalServerError" : "ThrottlingException") + R"(","message":"injected"})";
        return e;
      }
    }
    TestResponse out = testing_support::forward_dynamodb(*forward_, upstream_, r);
    bool drop = false;
    {
      std::lock_guard lock(mu_);
      drop = out.status == 200 && lose && lose(r);
      if (drop) ++lost_;
    }
    if (drop) {
      if (meanwhile) meanwhile();
      out.raw.emplace();  // closed without an answer
    }
    return out;
  }

  std::string upstream_;
  std::shared_ptr<http::Transport> forward_ = http::make_default_transport();
  std::mutex mu_;
  int lost_ = 0;
  TestServer server_{[this](const TestRequest& r) { return handle(r); }};
};

bool is_write(const TestRequest& r, const char* op) {
  const std::string* t = r.header("x-amz-target");
  return t && *t == std::string("DynamoDB_20120810.") + op;
}

struct ExactlyOnce : ::testing::Test {
  std::shared_ptr<ddb::Client> direct = it::client();
  std::string name = it::unique_table("it-once");
  Table table = it::make_cache_table(direct, name);
  LossyProxy proxy{direct->endpoint()};
  std::shared_ptr<ddb::Client> lossy = [this] {
    ddb::ClientOptions o;
    o.region = "us-east-1";
    o.endpoint = proxy.url();
    o.retry.max_attempts = 5;
    return std::make_shared<ddb::Client>(o);
  }();
  DynamodbOptions opts() {
    DynamodbOptions o;
    o.table = name;
    o.consistent_read = true;
    return o;
  }
  DynamodbBackend through{lossy, opts()};  // answers may be lost
  DynamodbBackend beside{direct, opts()};  // another process, directly
  ~ExactlyOnce() override { table.drop(false); }
};
}  // namespace

TEST_F(ExactlyOnce, AddWhoseAnswerIsLostReportsItsOwnWrite) {
  EXPECT_FALSE(through.get("k"));  // the connection the add reuses (a lost answer on a kept-alive one)
  proxy.lose = [](const TestRequest& r) { return is_write(r, "PutItem"); };
  EXPECT_TRUE(through.add("k", "mine", 0s));  // not "already present": the write found is its own
  EXPECT_EQ(proxy.lost(), 1);
  EXPECT_FALSE(through.add("k", "again", 0s));  // its condition fails: an answer, none lost
  EXPECT_EQ(proxy.lost(), 1);
  EXPECT_EQ(*beside.get("k"), "mine");
}

TEST_F(ExactlyOnce, IncrementsWhoseAnswersAreLostApplyOnceAndReturnTheirValue) {
  proxy.lose = [](const TestRequest& r) { return is_write(r, "PutItem") || is_write(r, "UpdateItem"); };
  EXPECT_EQ(through.increment("c", 5, 0s), 5);   // created (PutItem), answer lost
  EXPECT_EQ(through.increment("c", 5, 0s), 10);  // UpdateItem, answer lost
  EXPECT_EQ(through.increment("c", -3, 0s), 7);
  EXPECT_EQ(proxy.lost(), 3);
  EXPECT_EQ(beside.increment("c", 0, 0s), 7);
}

TEST_F(ExactlyOnce, AnIncrementChangedByAnotherWriterBeforeItsReadBackIsUnknownNeverDoubled) {
  EXPECT_EQ(through.increment("c", 1, 0s), 1);
  proxy.lose = [](const TestRequest& r) { return is_write(r, "UpdateItem"); };
  proxy.meanwhile = [this] { beside.increment("c", 100, 0s); };
  try {
    through.increment("c", 5, 0s);
    ADD_FAILURE() << "an increment whose answer was lost and whose token was overwritten must not report success";
  } catch (const UnknownOutcomeError& e) {
    EXPECT_EQ(e.kind(), ErrorKind::kUnknownOutcome);
    EXPECT_FALSE(e.retryable());
    EXPECT_NE(std::string(e.what()).find("UpdateItem"), std::string::npos) << e.what();
  }
  proxy.lose = nullptr;
  EXPECT_EQ(beside.increment("c", 0, 0s), 106);  // 1 + 5 + 100: applied once, not resent
}

TEST_F(ExactlyOnce, LeaseAndConditionalStoreWhoseAnswersAreLost) {
  proxy.lose = [](const TestRequest& r) { return is_write(r, "PutItem"); };  // the lease and the store
  GetOrSetOptions g;
  g.lease = 5s;
  g.lease_wait = 2s;
  int loads = 0;
  auto v = get_or_set(through, "k", [&] { return "loaded " + std::to_string(++loads); }, 0s, g);
  EXPECT_EQ(v, "loaded 1");
  EXPECT_EQ(loads, 1);
  EXPECT_GE(proxy.lost(), 2);
  EXPECT_EQ(*beside.get("k"), "loaded 1");
  // The lease was its own, and was given back: another caller takes it at once.
  proxy.lose = nullptr;
  beside.erase("k");
  auto w = get_or_set(beside, "k", [&] { return std::string("other"); }, 0s, g);
  EXPECT_EQ(w, "other");
}

TEST_F(ExactlyOnce, AChunkedValueWhoseHeadAnswerIsLostKeepsItsChunks) {
  std::mt19937_64 rng(22);
  auto incompressible = [&] {  // past one item even after zstd: chunked
    std::string s(900 * 1024, '\0');
    for (auto& c : s) c = static_cast<char>(rng());
    return s;
  };
  const std::string big1 = incompressible(), big2 = incompressible();
  through.set("big", big1, 0s);  // never expires: replacing it cleans its chunks up
  // The replacing head (unconditional, ALL_OLD) is applied and its answer lost: the client sends
  // it again and is answered with its own head as the old one, whose chunks must stay.
  proxy.lose = [once = true](const TestRequest& r) mutable {
    bool lose = once && is_write(r, "PutItem") && r.body.find("\"ReturnValues\":\"ALL_OLD\"") != std::string::npos;
    if (lose) once = false;
    return lose;
  };
  through.set("big", big2, 0s);
  EXPECT_EQ(proxy.lost(), 1);
  auto got = beside.get("big");
  ASSERT_TRUE(got);
  EXPECT_TRUE(*got == big2) << "the value read back is not the one written";
}

// A store whose attempt failed before it was applied (a 500: to the client, an unknown
// outcome): the read back does not find it, and it is sent again, so the value is cached.
TEST_F(ExactlyOnce, AStoreWhoseOutcomeIsUnknownButNotAppliedIsSentAgain) {
  for (bool leased : {false, true}) {
    std::string key = leased ? "leased" : "plain";
    proxy.fail_before = [once = true](const TestRequest& r) mutable {
      bool fail = once && is_write(r, "PutItem") && r.body.find("\"ver\"") != std::string::npos;
      if (fail) once = false;
      return fail;
    };
    GetOrSetOptions g;
    if (leased) g.lease = 5s;
    EXPECT_EQ(get_or_set(through, key, [] { return std::string("loaded"); }, 0s, g), "loaded");
    auto got = beside.get(key);
    ASSERT_TRUE(got) << key << ": the load was not cached";
    EXPECT_EQ(*got, "loaded");
  }
  EXPECT_EQ(proxy.lost(), 2);
}

// A big value's head whose answer is lost, then whose replacing write is refused (throttled
// every time): the value may have been written, and the error says so, not "throttled".
TEST_F(ExactlyOnce, ABigValueWrittenAndThenRefusedReportsAnUnknownOutcome) {
  std::mt19937_64 rng(7);
  std::string big(900 * 1024, '\0');
  for (auto& c : big) c = static_cast<char>(rng());
  proxy.lose = [once = true](const TestRequest& r) mutable {
    bool lose = once && is_write(r, "PutItem") && r.body.find("\"wid\"") != std::string::npos;
    if (lose) once = false;
    return lose;
  };
  proxy.fail_status = 400;
  proxy.fail_before = [](const TestRequest& r) {
    return is_write(r, "PutItem") && r.body.find("\"ReturnValues\":\"ALL_OLD\"") != std::string::npos;
  };
  EXPECT_THROW(through.set("big", big, 0s), UnknownOutcomeError);
  proxy.fail_before = nullptr;
  auto got = beside.get("big");
  ASSERT_TRUE(got) << "the first attempt was applied";
  EXPECT_TRUE(*got == big);
}
