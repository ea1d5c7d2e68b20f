// contains/touch/add/increment/erase_many on the in-process backends and the typed front,
// and durations at their limits (issue 8 item 6) and odd stored numbers (item 12). The
// DynamoDB versions of the atomic operations are tested against dynalite
// (tests/integration/cache_ops_it.cc).
#include <gtest/gtest.h>

#include <thread>

#include "dynamodb/wire.h"
#include "dynamodb_cache/cache.h"
#include "dynamodb_cache/errors.h"
#include "fake_transport.h"

using namespace dynamodb_cache;
using namespace std::chrono_literals;
using testing_support::ddb_response;
using testing_support::FakeTransport;

namespace {
struct FakeSteady {
  std::shared_ptr<std::atomic<int64_t>> ms = std::make_shared<std::atomic<int64_t>>(1000);
  MemoryOptions options() const {
    MemoryOptions o;
    auto m = ms;
    o.now = [m] { return std::chrono::steady_clock::time_point(std::chrono::milliseconds(m->load())); };
    return o;
  }
};

// A DynamodbBackend whose every GetItem answers with `item`.
struct ScriptedTable {
  dynamodb::Item item;
  std::shared_ptr<FakeTransport> transport =
      std::make_shared<FakeTransport>([this](const http::Request&, int) {
        dynamodb::PutItemRequest p;
        p.item = item;
        std::string put = dynamodb::wire::encode(p);
        return ddb_response(200, "{\"Item\":" + put.substr(put.find("\"Item\":") + 7));
      });
  std::shared_ptr<DynamodbBackend> backend() {
    dynamodb::ClientOptions o;
    o.region = "us-east-1";
    o.endpoint = "http://127.0.0.1:9";
    o.credentials = aws::make_static_provider({"a", "b", "", std::nullopt, ""});
    o.transport = transport;
    return std::make_shared<DynamodbBackend>(std::make_shared<dynamodb::Client>(o));
  }
};

dynamodb::Item python_item(const std::string& expire) {
  int64_t now =
      std::chrono::duration_cast<std::chrono::seconds>(SystemClock::now().time_since_epoch()).count();
  return {{"key", dynamodb::AttributeValue::S("k")},
          {"value", dynamodb::AttributeValue::B("dmFsdWU=")},  // base64 of "value", as PynamoDB stores it
          {"expire", dynamodb::AttributeValue::N(expire)},
          {"update_ts", dynamodb::AttributeValue::N(now - 10)}};
}
}  // namespace

TEST(MemoryBackendOps, AddWritesOnlyWhenAbsentOrExpired) {
  FakeSteady clock;
  MemoryBackend m(clock.options());
  EXPECT_TRUE(m.add("k", "first", 10s));
  EXPECT_FALSE(m.add("k", "second", 10s));
  EXPECT_EQ(*m.get("k"), "first");
  *clock.ms += 10000;  // expired
  EXPECT_TRUE(m.add("k", "third", 0s));
  EXPECT_EQ(*m.get("k"), "third");
}

TEST(MemoryBackendOps, TouchRetimesOnlyLiveEntries) {
  FakeSteady clock;
  MemoryBackend m(clock.options());
  EXPECT_FALSE(m.touch("k", 10s));
  m.set("k", "v", 2s);
  EXPECT_TRUE(m.touch("k", 10s));
  *clock.ms += 5000;
  ASSERT_TRUE(m.get_entry("k"));
  EXPECT_EQ(m.get_entry("k")->ttl_left, Ttl(5000));
  EXPECT_TRUE(m.touch("k", 0s));  // never expires now
  *clock.ms += 1000000;
  EXPECT_FALSE(m.get_entry("k")->ttl_left);
  m.set("gone", "v", 1s);
  *clock.ms += 1000;
  EXPECT_FALSE(m.touch("gone", 10s));
  EXPECT_FALSE(m.contains("gone"));
}

TEST(MemoryBackendOps, CountersStartAtZeroKeepTheirExpiryAndRefuseValues) {
  FakeSteady clock;
  MemoryBackend m(clock.options());
  EXPECT_EQ(m.increment("c", 1, 10s), 1);
  EXPECT_EQ(m.increment("c", 5, 100s), 6);  // the ttl applies at creation only
  EXPECT_EQ(m.decrement("c", 10, 0s), -4);
  EXPECT_EQ(*m.get("c"), "-4");
  *clock.ms += 10000;
  EXPECT_EQ(m.increment("c", 2, 0s), 2);  // expired: starts again at 0
  m.set("v", "text", 0s);
  EXPECT_THROW(m.increment("v", 1, 0s), WrongTypeError);
  EXPECT_EQ(*m.get("v"), "text");
  EXPECT_EQ(m.increment("max", INT64_MAX, 0s), INT64_MAX);
  EXPECT_THROW(m.increment("max", 1, 0s), InvalidArgumentError);
  EXPECT_EQ(*m.get("max"), std::to_string(INT64_MAX));
  EXPECT_THROW(m.decrement("x", INT64_MIN, 0s), InvalidArgumentError);
  m.set("c", "overwritten", 0s);  // set() replaces a counter, as any entry
  EXPECT_EQ(*m.get("c"), "overwritten");
}

TEST(MemoryBackendOps, ConcurrentIncrementsAndAddsAreAtomic) {
  MemoryBackend m;
  std::atomic<int> added{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t)
    threads.emplace_back([&] {
      for (int i = 0; i < 1000; ++i) m.increment("n", 1, 0s);
      if (m.add("once", "x", 0s)) ++added;
    });
  for (auto& t : threads) t.join();
  EXPECT_EQ(*m.get("n"), "8000");
  EXPECT_EQ(added.load(), 1);
}

TEST(MemoryBackendOps, EraseManyAndContains) {
  MemoryBackend m;
  m.set("a", "1", 0s);
  m.set("b", "2", 0s);
  EXPECT_TRUE(m.contains("a"));
  m.erase_many({"a", "b", "a", "never"});
  EXPECT_FALSE(m.contains("a"));
  EXPECT_FALSE(m.contains("b"));
}

TEST(LayeredBackendOps, AtomicOpsAreDecidedByTheLowestLayer) {
  FakeSteady clock;
  auto l1 = std::make_shared<MemoryBackend>(clock.options());
  auto l2 = std::make_shared<MemoryBackend>(clock.options());
  LayeredBackend both({l1, l2});
  l1->set("stale", "only above", 0s);
  EXPECT_TRUE(both.add("stale", "shared", 10s));  // the shared layer had nothing live
  EXPECT_EQ(*l1->get("stale"), "shared");
  EXPECT_FALSE(both.add("stale", "again", 10s));
  EXPECT_TRUE(both.touch("stale", 100s));
  *clock.ms += 50000;
  EXPECT_TRUE(l1->contains("stale"));  // re-timed above too
  EXPECT_TRUE(both.contains("stale"));
  l1->set("ghost", "above only", 0s);
  EXPECT_FALSE(both.touch("ghost", 10s));
  EXPECT_FALSE(l1->contains("ghost"));  // erased: it outlived the shared entry
  l1->set("n", "cached", 0s);
  EXPECT_EQ(both.increment("n", 3, 0s), 3);
  EXPECT_FALSE(l1->contains("n"));  // counters are never cached above
  EXPECT_EQ(*both.get("n"), "3");
  EXPECT_FALSE(l1->contains("n"));  // nor copied up by a read
  EXPECT_EQ(both.get_many({"n"})[0]->value, "3");
  EXPECT_FALSE(l1->contains("n"));
  both.erase_many({"stale", "n"});
  EXPECT_FALSE(l1->contains("stale"));
  EXPECT_FALSE(l2->contains("n"));
}

TEST(CacheOps, TypedFrontForwardsTheOperations) {
  auto m = std::make_shared<MemoryBackend>();
  Cache<std::string> c(m);
  EXPECT_TRUE(c.add("k", "v", 1h));
  EXPECT_FALSE(c.add("k", "w"));
  EXPECT_TRUE(c.contains("k"));
  EXPECT_TRUE(c.touch("k", std::chrono::minutes(5)));
  EXPECT_EQ(c.increment("n"), 1);
  EXPECT_EQ(c.increment("n", 41), 42);
  EXPECT_EQ(c.decrement("n", 2), 40);
  EXPECT_EQ(*c.get("n"), "40");
  c.erase_many({"k", "n"});
  EXPECT_FALSE(c.contains("n"));
}

// Issue 8 item 6: every duration conversion is clamped or rejected, never overflowed.
TEST(TtlLimits, HugeDurationsAreRejectedNotWrapped) {
  Cache<std::string> c(std::make_shared<MemoryBackend>());
  // 18446744073709552 s is 2^64 ms: it used to wrap to about a second.
  try {
    c.set("k", "v", std::chrono::seconds(18446744073709552));
    ADD_FAILURE() << "accepted";
  } catch (const InvalidArgumentError& e) {
    EXPECT_NE(std::string(e.what()).find("10,000 years"), std::string::npos) << e.what();
  }
  // INT64_MAX seconds used to overflow to a negative count: "must not be negative".
  try {
    c.set("k", "v", std::chrono::seconds(INT64_MAX));
    ADD_FAILURE() << "accepted";
  } catch (const InvalidArgumentError& e) {
    EXPECT_EQ(std::string(e.what()).find("negative"), std::string::npos) << e.what();
  }
  EXPECT_THROW(c.set("k", "v", std::chrono::duration<double>(std::nan(""))), InvalidArgumentError);
  EXPECT_THROW(c.set("k", "v", std::chrono::duration<double>(1e300)), InvalidArgumentError);
  EXPECT_THROW(c.set("k", "v", -1s), InvalidArgumentError);
  EXPECT_NO_THROW(c.set("k", "v", std::chrono::duration_cast<std::chrono::seconds>(kMaxTtl)));
  EXPECT_EQ(to_ttl(std::chrono::duration<double>(0.0001)), Ttl(1));  // never rounds to "never"
  EXPECT_EQ(to_ttl(std::chrono::microseconds(1)), Ttl(1));
  MemoryBackend m;
  EXPECT_THROW(m.set("k", "v", kMaxTtl + Ttl(1)), InvalidArgumentError);
}

TEST(TtlLimits, MemoryBackendLivesThroughA300YearTtl) {
  MemoryBackend m;  // steady_clock counts nanoseconds: 300 years do not fit
  m.set("k", "v", std::chrono::hours(24 * 365 * 300));
  auto h = m.get_entry("k");
  ASSERT_TRUE(h);
  ASSERT_TRUE(h->ttl_left);
  EXPECT_GT(*h->ttl_left, std::chrono::hours(24 * 365 * 100));
  EXPECT_TRUE(m.add("k2", "v", kMaxTtl));
  EXPECT_FALSE(m.add("k2", "v", kMaxTtl));
  EXPECT_TRUE(m.touch("k2", kMaxTtl));
  EXPECT_TRUE(m.contains("k2"));
}

TEST(TtlLimits, HugeStoredExpireIsALiveItemInALayeredBackend) {
  for (std::string expire : {"1e16", "1E+300", "inf"}) {
    ScriptedTable t;
    t.item = python_item(expire);
    auto l1 = std::make_shared<MemoryBackend>();
    LayeredBackend layered({l1, t.backend()});
    auto h = layered.get_entry("k");
    ASSERT_TRUE(h) << expire;
    EXPECT_EQ(h->value, "value");
    EXPECT_EQ(h->ttl_left, kMaxTtl) << expire;
    EXPECT_TRUE(l1->contains("k")) << expire;  // back-filled
  }
}

// Issue 8 item 12: fmt is an integer, or the item is refused.
TEST(StoredNumbers, NonIntegerOrUnknownFormatIsACodecError) {
  // (3, 4 and 5 are chunked heads, chunks and leases: chunked.h, item_layout.h.)
  for (std::string fmt : {"1.9", "1e0", "99999999999999999999", "6"}) {
    ScriptedTable t;
    t.item = python_item("0");
    t.item["value"] = dynamodb::AttributeValue::B("raw");
    t.item["fmt"] = dynamodb::AttributeValue::N(fmt);
    try {
      t.backend()->get("k");
      ADD_FAILURE() << "fmt " << fmt << " read as a value";
    } catch (const CodecError& e) {
      EXPECT_NE(std::string(e.what()).find(fmt), std::string::npos) << e.what();
    }
  }
  ScriptedTable t;
  t.item = python_item("0");
  t.item["value"] = dynamodb::AttributeValue::B("raw");
  t.item["fmt"] = dynamodb::AttributeValue::N("1");
  EXPECT_EQ(*t.backend()->get("k"), "raw");
}
