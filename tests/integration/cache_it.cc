// The cache backends and the table helper against a local DynamoDB (dynalite, DynamoDB Local).
#include <set>
#include <thread>

#include "dynamodb_cache/json_codec.h"
#include "it_env.h"
#include "util_clock.h"

using namespace dynamodb_cache;
using namespace std::chrono_literals;
namespace ddb = dynamodb_cache::dynamodb;

namespace {
struct CacheTable {
  std::shared_ptr<ddb::Client> c = it::client();
  std::string name = it::unique_table("it-cache");
  Table table = it::make_cache_table(c, name);
  ~CacheTable() { table.drop(false); }
  DynamodbOptions opts(std::function<SystemClock::time_point()> now = nullptr) {
    DynamodbOptions o;
    o.table = name;
    o.now = std::move(now);
    return o;
  }
};
}  // namespace

TEST(CacheIT, TableCreateIsIdempotentAndChecksTheSchema) {
  CacheTable t;
  EXPECT_TRUE(t.table.exists());
  EXPECT_NO_THROW(t.table.create(true));
  auto d = t.table.describe();
  EXPECT_EQ(d.key_schema[0].name, "key");
  EXPECT_EQ(d.billing_mode, ddb::BillingMode::kPayPerRequest);

  // A table of the same name but another key: a clear error.
  std::string other = it::unique_table("it-other");
  ddb::CreateTableRequest r;
  r.table_name = other;
  r.attribute_definitions = {{"id", "S"}};
  r.key_schema = {{"id", ddb::KeyType::kHash}};
  t.c->create_table(r);
  TableOptions o;
  o.name = other;
  o.poll_interval = 20ms;
  try {
    Table(t.c, o).create(true);
    ADD_FAILURE();
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("id (HASH)"), std::string::npos) << e.what();
  }
  Table(t.c, o).drop(true);
  EXPECT_FALSE(Table(t.c, o).exists());
}

TEST(CacheIT, ProvisionedTable) {
  auto c = it::client();
  TableOptions o;
  o.name = it::unique_table("it-prov");
  o.billing_mode = ddb::BillingMode::kProvisioned;
  o.read_capacity_units = 3;
  o.write_capacity_units = 2;
  o.poll_interval = 20ms;
  std::vector<std::string> warnings;
  o.log = [&](LogLevel level, std::string_view w) {
    EXPECT_EQ(level, LogLevel::kWarning);
    warnings.emplace_back(w);
  };
  Table t(c, o);
  t.create(true);
  auto d = t.describe();
  EXPECT_EQ(d.billing_mode, ddb::BillingMode::kProvisioned);
  EXPECT_EQ(d.read_capacity_units, 3);
  EXPECT_EQ(d.write_capacity_units, 2);
  // Native TTL on expire_at where the server has UpdateTimeToLive (DynamoDB Local, DynamoDB);
  // one warning where it has not (dynalite: DescribeTimeToLive says DISABLED, and
  // UpdateTimeToLive is an UnknownOperationException), never a failure.
  auto ttl = c->describe_time_to_live(o.name);
  if (ttl.status == "ENABLED" || ttl.status == "ENABLING") {
    EXPECT_EQ(ttl.attribute_name, "expire_at");
    EXPECT_TRUE(warnings.empty()) << warnings[0];
  } else {
    ASSERT_EQ(warnings.size(), 1u);
    EXPECT_NE(warnings[0].find("TTL"), std::string::npos);
    try {
      c->update_time_to_live(o.name, "expire_at", true);
      ADD_FAILURE() << "the server has UpdateTimeToLive, yet create() left TTL " << ttl.status;
    } catch (const ServiceError& e) {
      EXPECT_EQ(e.name(), "UnknownOperationException");
    }
  }
  t.drop(true);
}

// A server without UpdateTimeToLive (dynalite) is reported once, by the create() that made
// the table; creating the existing table again (every program start) says nothing new.
TEST(CacheIT, MissingNativeTtlIsReportedByTheCreateThatMadeTheTable) {
  auto c = it::client();
  TableOptions o;
  o.name = it::unique_table("it-ttl-warn");
  o.poll_interval = 20ms;
  std::vector<std::string> warnings;
  o.log = [&](LogLevel, std::string_view w) { warnings.emplace_back(w); };
  Table(c, o).create(true);
  if (warnings.empty()) {
    Table(c, o).drop(true);
    GTEST_SKIP() << "this server has native TTL";
  }
  ASSERT_EQ(warnings.size(), 1u);
  EXPECT_NE(warnings[0].find("no native TTL"), std::string::npos) << warnings[0];
  EXPECT_NE(warnings[0].find(c->endpoint()), std::string::npos) << warnings[0];
  Table(c, o).create(true);
  Table(c, o).create(true);
  EXPECT_EQ(warnings.size(), 1u);
  Table(c, o).drop(true);

  // The library never writes to stderr itself: without a hook the warning goes nowhere; the
  // deprecated TableOptions::warn still receives it.
  TableOptions quiet;
  quiet.name = it::unique_table("it-ttl-quiet");
  quiet.poll_interval = 20ms;
  testing::internal::CaptureStderr();
  Table(c, quiet).create(true);
  EXPECT_EQ(testing::internal::GetCapturedStderr(), "");
  Table(c, quiet).drop(true);
  std::vector<std::string> old_hook;
  quiet.name = it::unique_table("it-ttl-old-hook");
  quiet.warn = [&](const std::string& w) { old_hook.push_back(w); };
  Table(c, quiet).create(true);
  ASSERT_EQ(old_hook.size(), 1u);
  EXPECT_NE(old_hook[0].find("no native TTL"), std::string::npos) << old_hook[0];
  Table(c, quiet).drop(true);
}

TEST(CacheIT, SetGetEraseBinarySafe) {
  CacheTable t;
  auto b = std::make_shared<DynamodbBackend>(t.c, t.opts());
  std::string bin;
  for (int i = 0; i < 256; ++i) bin.push_back(static_cast<char>(i));
  b->set("bin", bin, 0s);
  EXPECT_EQ(*b->get("bin"), bin);
  b->set("ключ 😀", "unicode key", 60s);
  EXPECT_EQ(*b->get("ключ 😀"), "unicode key");
  b->set("empty", "", 0s);
  EXPECT_EQ(*b->get("empty"), "");
  b->erase("bin");
  EXPECT_FALSE(b->get("bin"));
  EXPECT_FALSE(b->get("never-set"));
}

TEST(CacheIT, ExpiredItemsAreMissesThoughDynamoDbStillHasThem) {
  CacheTable t;
  test_clock::FakeWallClock clock;
  DynamodbBackend b(t.c, t.opts(clock.fn()));
  b.set("k", "v", 10s);
  clock.advance(9s);
  auto h = b.get_entry("k");
  ASSERT_TRUE(h);
  EXPECT_LE(h->ttl_left->count(), 1000);
  clock.advance(1s);
  EXPECT_FALSE(b.get("k"));
  ddb::GetItemRequest raw;
  raw.table_name = t.name;
  raw.key = {{"key", ddb::AttributeValue::S("k")}};
  EXPECT_TRUE(t.c->get_item(raw).item);  // still stored; DynamoDB's TTL sweep is lazy
}

TEST(CacheIT, LargeValuesCompressedAndRawAndTooLarge) {
  CacheTable t;
  DynamodbBackend b(t.c, t.opts());
  std::string doc;
  while (doc.size() < 350 * 1024) doc += "{\"user\":\"alice\",\"roles\":[\"admin\",\"dev\"],\"n\":" + std::to_string(doc.size()) + "},";
  b.set("doc", doc, 0s);
  EXPECT_EQ(*b.get("doc"), doc);
  auto random_bytes = [](size_t n) {
    std::string s(n, '\0');
    uint64_t x = 88172645463325252ull;
    for (auto& ch : s) { x ^= x << 13; x ^= x >> 7; x ^= x << 17; ch = static_cast<char>(x >> 32); }
    return s;
  };
  std::string noise = random_bytes(390 * 1024);  // incompressible: stored raw
  b.set("noise", noise, 0s);
  EXPECT_EQ(*b.get("noise"), noise);
  std::string more_noise = random_bytes(401 * 1024);  // past one item: chunked (chunked_it.cc)
  b.set("noise2", more_noise, 0s);
  EXPECT_EQ(*b.get("noise2"), more_noise);
}

TEST(CacheIT, ManyKeysBatchedAndClear) {
  CacheTable t;
  auto b = std::make_shared<DynamodbBackend>(t.c, t.opts());
  std::vector<std::pair<std::string, std::string>> entries;
  std::vector<std::string> keys;
  for (int i = 0; i < 260; ++i) {
    entries.emplace_back(std::string("k").append(std::to_string(i)), std::string("v").append(std::to_string(i)));
    keys.push_back(std::string("k").append(std::to_string(i)));
  }
  entries.emplace_back("k0", "last wins");
  b->set_many(entries, 0s);
  keys.push_back("missing");
  keys.push_back("k1");  // asked twice
  auto hits = b->get_many(keys);
  ASSERT_EQ(hits.size(), keys.size());
  EXPECT_EQ(hits[0]->value, "last wins");
  EXPECT_EQ(hits[259]->value, "v259");
  EXPECT_FALSE(hits[260]);
  EXPECT_EQ(hits[261]->value, "v1");
  uint64_t last = 0;
  b->clear([&](uint64_t n) { last = n; });
  EXPECT_EQ(last, 260u);
  EXPECT_FALSE(b->get("k5"));
}

TEST(CacheIT, LayeredMemoryOverDynamoDbBackFillsWithRemainingTtl) {
  CacheTable t;
  test_clock::FakeWallClock wall;
  auto ddb_layer = std::make_shared<DynamodbBackend>(t.c, t.opts(wall.fn()));
  auto l1 = std::make_shared<MemoryBackend>();
  LayeredBackend layered({l1, ddb_layer});
  ddb_layer->set("k", "from dynamodb", 100s);
  wall.advance(40s);
  EXPECT_EQ(*layered.get("k"), "from dynamodb");
  auto up = l1->get_entry("k");
  ASSERT_TRUE(up);
  EXPECT_LE(up->ttl_left->count(), 60000);
  EXPECT_GE(up->ttl_left->count(), 59000);
  layered.erase("k");
  EXPECT_FALSE(ddb_layer->get("k"));
  EXPECT_FALSE(l1->get("k"));
}

TEST(CacheIT, TypedJsonCacheOverDynamoDb) {
  CacheTable t;
  JsonCache c(std::make_shared<DynamodbBackend>(t.c, t.opts()));
  c.set("dict", {{"a", 1}, {"b", "two"}}, 1h);
  EXPECT_EQ((*c.get("dict"))["b"], "two");
}

TEST(CacheIT, TypedGetEntryGivesTheTtlLeft) {
  CacheTable t;
  test_clock::FakeWallClock clock;
  Cache<std::string> c(std::make_shared<DynamodbBackend>(t.c, t.opts(clock.fn())));
  c.set("k", "v", 100s);
  c.set("forever", "w");
  clock.advance(40s);
  for (auto e : {c.get_entry("k"), c.get_entry_async("k").get()}) {
    ASSERT_TRUE(e && e->ttl_left);
    EXPECT_EQ(e->value, "v");
    EXPECT_GE(*e->ttl_left, 59s);
    EXPECT_LE(*e->ttl_left, 60s);
  }
  auto f = c.get_entry("forever");
  ASSERT_TRUE(f);
  EXPECT_EQ(f->value, "w");
  EXPECT_FALSE(f->ttl_left);
  EXPECT_FALSE(c.get_entry("missing"));
  EXPECT_FALSE(c.get_entry_async("missing").get());
}

TEST(CacheIT, JitteredTtlsAreStoredWithinTheirBounds) {
  CacheTable t;
  test_clock::FakeWallClock clock;  // frozen: ttl_left is the TTL written
  auto backend = std::make_shared<DynamodbBackend>(t.c, t.opts(clock.fn()));
  Cache<std::string> c(backend, {}, {.ttl_jitter = 0.2});
  std::vector<std::pair<std::string, std::string>> entries;
  std::vector<std::string> keys;
  for (int i = 0; i < 200; ++i) keys.push_back("k" + std::to_string(i));
  for (const auto& k : keys) entries.emplace_back(k, "v");
  c.set_many(entries, 100s);  // 8 BatchWriteItems, each with a TTL of its own
  c.set("one", "v", 100s);
  keys.push_back("one");
  std::set<Ttl::rep> distinct;
  auto hits = backend->get_many(keys);
  for (size_t i = 0; i < keys.size(); ++i) {
    ASSERT_TRUE(hits[i] && hits[i]->ttl_left) << keys[i];
    EXPECT_GE(*hits[i]->ttl_left, 80s - 1s) << keys[i];  // the table keeps whole seconds
    EXPECT_LE(*hits[i]->ttl_left, 120s) << keys[i];
    distinct.insert(hits[i]->ttl_left->count());
  }
  EXPECT_GT(distinct.size(), 1u);
}

TEST(CacheIT, ConcurrentClientsShareOneBackend) {
  CacheTable t;
  auto b = std::make_shared<DynamodbBackend>(t.c, t.opts());
  std::vector<std::thread> threads;
  std::atomic<int> wrong{0};
  for (int th = 0; th < 6; ++th)
    threads.emplace_back([&, th] {
      for (int i = 0; i < 30; ++i) {
        std::string k = std::string("t").append(std::to_string(th)).append("-").append(std::to_string(i));
        b->set(k, k, 0s);
        if (auto v = b->get(k); !v || *v != k) ++wrong;
      }
    });
  for (auto& x : threads) x.join();
  EXPECT_EQ(wrong.load(), 0);
}
