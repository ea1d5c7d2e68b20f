// CoherentNearCache against a local DynamoDB: two "processes" (each a Client, a DynamodbBackend
// that publishes its invalidations, and a near cache) share one table; what one writes, the
// other stops answering from memory within max_staleness. Requests are counted on each
// process's wire (CountingTransport).
#include <algorithm>
#include <iostream>
#include <map>
#include <mutex>
#include <thread>

#include "cache/feed.h"
#include "cache/near_cache.h"
#include "counting_transport.h"
#include "dynamodb_cache/get_or_set.h"
#include "it_env.h"

using namespace dynamodb_cache;
using namespace std::chrono_literals;
namespace ddb = dynamodb_cache::dynamodb;
using testing_support::CountingTransport;
using Steady = std::chrono::steady_clock;

namespace {

constexpr Ttl kBound = 200ms;  // max_staleness of every near cache here

struct Proc {
  std::shared_ptr<CountingTransport> wire = std::make_shared<CountingTransport>();
  std::shared_ptr<ddb::Client> c;
  std::shared_ptr<DynamodbBackend> b;
  std::unique_ptr<CoherentNearCache> near;
  Proc(const std::string& table, const std::string& ns = "", NearCacheOptions no = {}) {
    ddb::ClientOptions o;
    o.transport = wire;
    c = std::make_shared<ddb::Client>(o);
    DynamodbOptions d;
    d.table = table;
    d.key_namespace = ns;
    d.publish_invalidations = true;
    b = std::make_shared<DynamodbBackend>(c, d);
    no.max_staleness = kBound;
    near = std::make_unique<CoherentNearCache>(b, no);
  }
  // Waits until the last successful poll is recent (memory answers for most of the bound).
  void fresh() {
    const auto until = Steady::now() + 5s;
    while (near->near_stats().feed_lag > 40ms && Steady::now() < until) std::this_thread::sleep_for(1ms);
  }
  // Waits for two polls more: one started after every write made so far returned, so their
  // invalidations (own writes' too, heard back from the feed) are behind.
  void caught_up() {
    const uint64_t polls = near->near_stats().feed_polls;
    const auto until = Steady::now() + 5s;
    while (near->near_stats().feed_polls < polls + 2 && Steady::now() < until)
      std::this_thread::sleep_for(2ms);
  }
  // Waits until memory answers (a poll succeeded).
  void confirmed() {
    const auto until = Steady::now() + 5s;
    while (near->near_stats().feed_polls < 1 && Steady::now() < until) std::this_thread::sleep_for(5ms);
    ASSERT_GE(near->near_stats().feed_polls, 1u);
  }
  // GetItems answered (the poller sends BatchGetItem only). Answered, not sent: through the
  // fault proxy one get may take several attempts (a 500, then the answer).
  int gets() { return wire->answered("GetItem"); }
};

struct NearTable {
  std::shared_ptr<ddb::Client> c = it::client();
  std::string name = it::unique_table("it-near");
  Table table = it::make_cache_table(c, name);
  ~NearTable() { table.drop(false); }
};

// Reads `key` through `p` until it is in memory: a get then answers with no GetItem. A poll
// slower than the bound allows (a loaded machine, a cold JVM) closes memory for a while (the
// fail-safe): such a get goes to DynamoDB, and is tried again.
void in_memory(Proc& p, const std::string& key, const std::string& want) {
  p.confirmed();
  ASSERT_EQ(p.near->get(key), want);
  for (int attempt = 0; attempt < 50; ++attempt) {
    const int before = p.gets();
    const uint64_t hits = p.near->near_stats().memory_hits;
    ASSERT_EQ(p.near->get(key), want);
    if (p.gets() == before) {
      EXPECT_EQ(p.near->near_stats().memory_hits, hits + 1);
      return;
    }
    std::this_thread::sleep_for(10ms);
  }
  ADD_FAILURE() << "'" << key << "' never answered from memory";
}

// Publishes the table's feed items of the last 5 s hold, in all (the sum of their `n`), read
// strongly consistently (a Scan may answer as of a moment ago).
long publishes(const NearTable& t) {
  const int64_t now =
      std::chrono::duration_cast<std::chrono::milliseconds>(SystemClock::now().time_since_epoch()).count();
  long n = 0;
  for (const auto& i : t.c->batch_get_all(t.name, feed::window_keys(*feed::window(now, now - 5000)), true))
    n += std::stol(feed::publishes_in(i));
  return n;
}

// Runs `write` and checks it published (`expected`) or not.
template <class F>
void publishing(const NearTable& t, bool expected, F&& write, const char* what) {
  const long before = publishes(t);
  write();
  if (expected)
    EXPECT_GT(publishes(t), before) << what << " did not publish";
  else
    EXPECT_EQ(publishes(t), before) << what << " published";
}

// Waits past the bound after a write returned.
void past_bound() { std::this_thread::sleep_for(kBound + 100ms); }

}  // namespace

TEST(NearCache, RefusesATableThatDoesNotPublishAndBadOptions) {
  NearTable t;
  DynamodbOptions d;
  d.table = t.name;
  auto quiet = std::make_shared<DynamodbBackend>(t.c, d);
  EXPECT_THROW(CoherentNearCache c(quiet), InvalidArgumentError);
  d.publish_invalidations = true;
  auto loud = std::make_shared<DynamodbBackend>(t.c, d);
  NearCacheOptions o;
  o.max_staleness = 99ms;
  EXPECT_THROW(CoherentNearCache c(loud, o), InvalidArgumentError);
  o.max_staleness = 100ms;
  o.max_entries = 0;
  EXPECT_THROW(CoherentNearCache c(loud, o), InvalidArgumentError);
  EXPECT_THROW(CoherentNearCache c(nullptr), InvalidArgumentError);
  // The feed's item keys are reserved outside namespaces.
  EXPECT_THROW(loud->set("__dc#feed#0#1", "x", 0s), InvalidArgumentError);
}

TEST(NearCache, EveryWriteOfAnotherProcessIsSeenWithinTheBound) {
  NearTable t;
  Proc a(t.name), b(t.name);
  a.near->set("k", "v1", 0s);
  in_memory(b, "k", "v1");

  publishing(
      t, true, [&] { a.b->set("k", "v2", 0s); }, "set");  // through the table itself
  past_bound();
  EXPECT_EQ(b.near->get("k"), "v2") << "set";

  in_memory(b, "k", "v2");
  publishing(
      t, true, [&] { a.b->erase("k"); }, "erase");
  past_bound();
  EXPECT_EQ(b.near->get("k"), std::nullopt) << "erase";

  ASSERT_TRUE(a.b->add("k", "v3", 0s));
  past_bound();
  in_memory(b, "k", "v3");  // add after an erase: B did not keep the miss
  a.b->erase("k");
  publishing(
      t, true, [&] { ASSERT_TRUE(a.b->add("k", "v4", 0s)); }, "add");
  past_bound();
  EXPECT_EQ(b.near->get("k"), "v4") << "add";

  in_memory(b, "k", "v4");
  publishing(
      t, false, [&] { EXPECT_FALSE(a.b->add("k", "other", 0s)); }, "an add that did not write");

  // An increment is never sent twice: through the fault proxy a lost answer ends it in
  // UnknownOutcomeError, by design. The table, read strongly consistently, then says what it
  // did, and that is what B must see within the bound.
  auto counter = [&](int64_t delta) -> std::optional<std::string> {
    try {
      return std::to_string(a.b->increment("n", delta, 0s));
    } catch (const UnknownOutcomeError&) {
      if (!it::under_faults()) throw;
      DynamodbOptions consistent;
      consistent.table = t.name;
      consistent.consistent_read = true;
      return DynamodbBackend(a.c, consistent).get("n");
    }
  };
  if (auto n = counter(1)) in_memory(b, "n", *n);
  std::optional<std::string> n;
  publishing(
      t, true, [&] { n = counter(5); }, "increment");
  past_bound();
  EXPECT_EQ(b.near->get("n"), n) << "increment";
  if (!it::under_faults()) {
    EXPECT_EQ(n, "6");
  }

  in_memory(b, "k", "v4");
  publishing(
      t, true, [&] { ASSERT_TRUE(a.b->touch("k", 3600s)); }, "touch");
  publishing(
      t, false, [&] { EXPECT_FALSE(a.b->touch("absent", 3600s)); }, "a touch of nothing");
  past_bound();
  auto h = b.near->get_entry("k");
  ASSERT_TRUE(h);
  ASSERT_TRUE(h->ttl_left) << "touch";
  EXPECT_GT(*h->ttl_left, 3000s);

  EXPECT_EQ(b.near->get("m1"), std::nullopt);  // a miss is not kept in memory
  publishing(
      t, true,
      [&] {
        a.b->set_many({{"k", "v5"}, {"m1", "w1"}}, 0s);
      },
      "set_many");
  past_bound();
  EXPECT_EQ(b.near->get("k"), "v5") << "set_many";
  EXPECT_EQ(b.near->get("m1"), "w1") << "set_many";

  in_memory(b, "m1", "w1");
  publishing(
      t, true,
      [&] {
        a.b->erase_many({"k", "m1"});
      },
      "erase_many");
  past_bound();
  EXPECT_EQ(b.near->get("k"), std::nullopt) << "erase_many";
  EXPECT_EQ(b.near->get("m1"), std::nullopt) << "erase_many";

  // get_or_set's store (LeaseTable), with a lease. A writer that does not publish (here a
  // backend without publish_invalidations, as the Python package or the console) is not seen:
  // B keeps its value from memory until a publishing write of the key.
  a.b->set("g", "old", 0s);
  in_memory(b, "g", "old");  // and left there: the erase below is not heard
  DynamodbOptions quiet;
  quiet.table = t.name;
  publishing(
      t, false, [&] { DynamodbBackend(a.c, quiet).erase("g"); }, "a backend without publish_invalidations");
  GetOrSetOptions lease;
  lease.lease = 5s;
  // Through the fault proxy an eventually consistent read may answer as of before the erase
  // (its stale answers): get_or_set would find "old" and store nothing. There it reads
  // strongly consistently, as the other reads of another's write here do.
  DynamodbOptions reading = a.b->options();
  reading.consistent_read = it::under_faults();
  DynamodbBackend loader(a.c, reading);
  publishing(
      t, true,
      [&] {
        EXPECT_EQ(get_or_set(
                      loader, "g", [] { return std::string("loaded"); }, 0s, lease),
                  "loaded");
      },
      "get_or_set's store");
  past_bound();
  EXPECT_EQ(b.near->get("g"), "loaded") << "get_or_set";
}

TEST(NearCache, ClearsOfAnotherProcessAreSeenWithinTheBound) {
  NearTable t;
  {  // a namespace clear: B drops the namespace and reads its new generation
    Proc a(t.name, "ns1"), b(t.name, "ns1");
    a.near->set("k", "v1", 0s);
    in_memory(b, "k", "v1");
    publishing(
        t, true, [&] { a.b->clear(); }, "namespace clear");
    past_bound();
    EXPECT_EQ(b.near->get("k"), std::nullopt) << "namespace clear";
    a.near->set("k", "v2", 0s);
    past_bound();
    EXPECT_EQ(b.near->get("k"), "v2");
  }
  {  // a full clear (Scan and delete), which leaves the feed's items
    Proc a(t.name), b(t.name);
    a.near->set("k", "v1", 0s);
    in_memory(b, "k", "v1");
    publishing(
        t, true, [&] { a.b->clear(); }, "full clear");
    past_bound();
    EXPECT_EQ(b.near->get("k"), std::nullopt) << "full clear";
    bool feed_left = false;
    ddb::ScanRequest s;
    s.table_name = t.name;
    t.c->scan_all(s, [&](ddb::PageResult& p) {
      for (auto& i : p.items) feed_left |= i.at("key").scalar.starts_with(feed::kFeedPrefix);
      return true;
    });
    EXPECT_TRUE(feed_left) << "a full clear must not delete invalidations readers have not read";
  }
}

TEST(NearCache, OwnWritesAreVisibleAtOnce) {
  NearTable t;
  Proc b(t.name);
  b.near->set("k", "v1", 0s);
  in_memory(b, "k", "v1");
  b.near->set("k", "v2", 0s);
  EXPECT_EQ(b.near->get("k"), "v2");
  in_memory(b, "k", "v2");
  b.near->erase("k");
  EXPECT_EQ(b.near->get("k"), std::nullopt);
  EXPECT_EQ(b.near->increment("n", 2, 0s), 2);
  in_memory(b, "n", "2");
  EXPECT_EQ(b.near->increment("n", 2, 0s), 4);
  EXPECT_EQ(b.near->get("n"), "4");
  b.near->clear();
  EXPECT_EQ(b.near->get("n"), std::nullopt);
}

TEST(NearCache, AsynchronousWritesPublishToo) {
  NearTable t;
  Proc a(t.name), b(t.name);
  a.b->set("k", "v1", 0s);
  a.b->set("e", "v1", 0s);
  in_memory(b, "k", "v1");
  in_memory(b, "e", "v1");
  publishing(
      t, true, [&] { a.b->set_async("k", "v2", 0s).get(); }, "set_async");
  publishing(
      t, true, [&] { a.b->erase_async("e").get(); }, "erase_async");
  past_bound();
  EXPECT_EQ(b.near->get("k"), "v2");
  EXPECT_EQ(b.near->get("e"), std::nullopt);
  in_memory(b, "k", "v2");
  publishing(
      t, true,
      [&] {
        a.b->set_many_async({{"k", "v3"}}, 0s).get();
      },
      "set_many_async");
  past_bound();
  EXPECT_EQ(b.near->get("k"), "v3");
  publishing(
      t, true, [&] { a.b->add_async("a", "v", 0s).get(); }, "add_async");
  // Through the fault proxy an increment whose answer was lost ends in UnknownOutcomeError,
  // by design (never sent twice); it may have been applied, so it publishes all the same.
  publishing(
      t, true,
      [&] {
        try {
          a.b->increment_async("i", 1, 0s).get();
        } catch (const UnknownOutcomeError&) {
          if (!it::under_faults()) throw;
        }
      },
      "increment_async");
  publishing(
      t, true, [&] { a.b->touch_async("k", 0s).get(); }, "touch_async");
  publishing(
      t, true, [&] { a.b->erase_many_async({"k"}).get(); }, "erase_many_async");
  publishing(
      t, true, [&] { a.b->clear_async().get(); }, "clear_async");
}

// The fail-safe: a poller that cannot read the feed stops memory from answering (gets go to
// DynamoDB, and see what another process wrote), and memory answers again once it can.
TEST(NearCache, AnUnreadableFeedStopsMemoryFromAnswering) {
  NearTable t;
  Proc a(t.name), b(t.name);
  a.near->set("k", "v1", 0s);
  in_memory(b, "k", "v1");
  ddb::ClientOptions dead;
  dead.endpoint = "http://127.0.0.1:1";  // nothing listens there
  dead.retry.max_attempts = 1;
  dead.operation_timeout = 200ms;
  detail::NearCacheAccess::feed_client(*b.near, std::make_shared<ddb::Client>(dead));
  const uint64_t failures = b.near->near_stats().feed_poll_failures;
  const auto until = Steady::now() + 5s;
  while (b.near->near_stats().feed_poll_failures < failures + 2 && Steady::now() < until)
    std::this_thread::sleep_for(5ms);
  std::this_thread::sleep_for(kBound);  // the last success is now older than the bound
  const int before = b.gets();
  EXPECT_EQ(b.near->get("k"), "v1");
  EXPECT_EQ(b.gets(), before + 1) << "memory must not answer while the feed cannot be read";
  EXPECT_GE(b.near->near_stats().stopped, 1u);
  EXPECT_GE(b.near->near_stats().feed_lag, kBound);
  // A write B cannot hear of: B must still answer it (from DynamoDB).
  a.b->set("k", "v2", 0s);
  EXPECT_EQ(b.near->get("k"), "v2");

  detail::NearCacheAccess::feed_client(*b.near, nullptr);
  const uint64_t polls = b.near->near_stats().feed_polls;
  while (b.near->near_stats().feed_polls < polls + 1 && Steady::now() < until + 5s)
    std::this_thread::sleep_for(5ms);
  in_memory(b, "k", "v2");  // answering from memory again
}

// A write that lands while B's read of the old value is in flight: B's fill is refused once
// the invalidation was processed, so B never answers the old value from memory past the bound.
TEST(NearCache, AFillRacingAnInvalidationIsRefused) {
  NearTable t;
  Proc a(t.name), b(t.name);
  a.near->set("k", "old", 0s);
  b.confirmed();
  bool once = true;
  detail::NearCacheAccess::before_fill(*b.near, [&](std::string_view) {
    if (!std::exchange(once, false)) return;
    a.near->set("k", "new", 0s);  // lands after B read "old"
    // Two polls more: one of them started after the write returned and has processed it.
    const uint64_t polls = b.near->near_stats().feed_polls;
    const auto until = Steady::now() + 5s;
    while (b.near->near_stats().feed_polls < polls + 2 && Steady::now() < until)
      std::this_thread::sleep_for(2ms);
  });
  EXPECT_EQ(b.near->get("k"), "old");  // what it read
  detail::NearCacheAccess::before_fill(*b.near, nullptr);
  EXPECT_EQ(b.near->get("k"), "new") << "the old value was filled after its invalidation";
}

TEST(NearCache, ConcurrentGetsOfOneKeyShareOneRead) {
  NearTable t;
  Proc b(t.name);
  b.near->set("k", "v", 0s);
  b.confirmed();
  constexpr int kThreads = 8;
  detail::NearCacheAccess::before_fill(*b.near, [&](std::string_view) {
    // Hold the read until every get has missed (and joined it).
    const auto until = Steady::now() + 5s;
    while (b.near->near_stats().memory_misses < kThreads && Steady::now() < until)
      std::this_thread::sleep_for(1ms);
  });
  b.fresh();
  // Read operations of the table (a fault proxy's error makes the client send one again:
  // still one operation).
  auto reads = [&] {
    const CacheStats& s = b.b->stats();
    return s.hits.load() + s.misses.load();
  };
  const uint64_t before = reads();
  std::vector<std::thread> threads;
  std::atomic<int> right{0};
  for (int i = 0; i < kThreads; ++i)
    threads.emplace_back([&] { right += b.near->get("k") == std::optional<std::string>("v"); });
  for (auto& th : threads) th.join();
  EXPECT_EQ(right.load(), kThreads);
  EXPECT_EQ(reads(), before + 1) << "one GetItem for all";
}

TEST(NearCache, StatsReportHitsAndTheHottestKeys) {
  NearTable t;
  NearCacheOptions o;
  o.top_k = 2;
  Proc b(t.name, "", o);
  b.near->set("hot", "h", 0s);
  b.near->set("warm", "w", 0s);
  b.near->set("cold", "c", 0s);
  b.confirmed();
  // A poll after the sets, which read their feed items (a poll of items not there yet may
  // count no read units: DynamoDB Local).
  b.caught_up();
  for (int i = 0; i < 20; ++i) b.near->get("hot");
  for (int i = 0; i < 10; ++i) b.near->get("warm");
  b.near->get("cold");
  NearCacheStats s = b.near->near_stats();
  ASSERT_EQ(s.hottest.size(), 2u);
  EXPECT_EQ(s.hottest[0].first, "hot");
  EXPECT_EQ(s.hottest[0].second, 20u);
  EXPECT_EQ(s.hottest[1].first, "warm");
  EXPECT_EQ(s.memory_hits + s.memory_misses, 31u);  // every get, and only gets
  EXPECT_GE(s.memory_hits, 1u);
  EXPECT_GT(s.feed_write_units, 0);  // its own three sets' publishes
  EXPECT_GT(s.feed_read_units, 0);
}

// A hot key survives eviction that a cold one does not.
TEST(NearCache, HotKeysAreKeptWithPriority) {
  NearTable t;
  NearCacheOptions o;
  o.max_entries = 2;  // two shards of one entry
  o.hot_threshold = 4;
  Proc b(t.name, "", o);
  std::vector<std::string> keys;
  for (int i = 0; i < 7; ++i) {
    keys.push_back("k" + std::to_string(i));
    b.near->set(keys.back(), "v", 0s);
  }
  b.caught_up();  // the sets' own invalidations, which evict whatever their key holds, are behind
  for (int i = 0; i < 200; ++i) b.near->get("k0");  // hot
  for (const auto& k : keys) b.near->get(k);        // six others pass through its shard or the other
  b.fresh();
  const int before = b.gets();
  b.near->get("k0");
  EXPECT_EQ(b.gets(), before) << "the hot key was evicted";
}

// Writers in one process, readers in the other, with steady-clock times: no read that began
// more than the bound after a write was acknowledged answers an older version.
TEST(NearCache, NoReadIsStalerThanTheBound) {
  NearTable t;
  Proc a(t.name), b(t.name);
  constexpr int kKeys = 3;
  std::mutex mu;
  std::map<int, std::vector<std::pair<Steady::time_point, int>>> acked;  // key -> (ack time, version)
  for (int k = 0; k < kKeys; ++k) {
    a.near->set("s" + std::to_string(k), "0", 0s);
    acked[k].emplace_back(Steady::now(), 0);
  }
  b.confirmed();
  std::atomic<bool> stop{false};
  std::vector<std::thread> writers;
  for (int k = 0; k < kKeys; ++k)
    writers.emplace_back([&, k] {
      for (int v = 1; !stop; ++v) {
        a.b->set("s" + std::to_string(k), std::to_string(v), 0s);
        const auto at = Steady::now();
        std::lock_guard lock(mu);
        acked[k].emplace_back(at, v);
        std::this_thread::sleep_for(30ms);
      }
    });
  struct Read {
    int key;
    Steady::time_point began;
    int version;
  };
  std::vector<Read> reads;
  std::mutex reads_mu;
  std::vector<std::thread> readers;
  for (int r = 0; r < 3; ++r)
    readers.emplace_back([&, r] {
      for (int i = 0; !stop; ++i) {
        const int k = (i + r) % kKeys;
        const auto began = Steady::now();
        auto v = b.near->get("s" + std::to_string(k));
        if (!v) continue;
        {
          std::lock_guard lock(reads_mu);
          reads.push_back({k, began, std::stoi(*v)});
        }
        std::this_thread::sleep_for(100us);  // a bounded record of reads
      }
    });
  std::this_thread::sleep_for(2s);
  stop = true;
  for (auto& th : writers) th.join();
  for (auto& th : readers) th.join();
  size_t checked = 0, stale = 0;
  std::string first_stale;
  for (const auto& r : reads) {
    int newest = 0;  // the newest version acknowledged more than the bound before the read began
    for (const auto& [at, v] : acked[r.key])
      if (at + kBound < r.began) newest = std::max(newest, v);
    if (r.version < newest && stale++ == 0)
      first_stale = "key " + std::to_string(r.key) + " read version " + std::to_string(r.version) +
                    " after " + std::to_string(newest) + " was acknowledged";
    ++checked;
  }
  EXPECT_EQ(stale, 0u) << first_stale;
  EXPECT_GT(checked, 100u);
  const NearCacheStats s = b.near->near_stats();
  std::cout << checked << " reads, " << s.memory_hits << " from memory, " << s.memory_misses
            << " from DynamoDB, " << s.stopped << " stops; feed: " << s.feed_polls << " polls ("
            << s.feed_poll_failures << " failed), " << s.feed_read_units << " read units; writer's publishes "
            << a.near->near_stats().feed_write_units << " write units\n";
  EXPECT_GT(s.memory_hits, 50u) << "the test must exercise memory";
}

TEST(NearCache, GetManyAndContainsUseMemory) {
  NearTable t;
  Proc a(t.name), b(t.name);
  a.near->set_many({{"x", "1"}, {"y", "2"}}, 0s);
  b.confirmed();
  b.caught_up();  // the set_many's invalidations are behind: what B fills now stays
  auto got = b.near->get_many({"x", "y", "z", "x"});
  ASSERT_EQ(got.size(), 4u);
  EXPECT_EQ(got[0]->value, "1");
  EXPECT_EQ(got[1]->value, "2");
  EXPECT_FALSE(got[2]);
  EXPECT_EQ(got[3]->value, "1");
  in_memory(b, "x", "1");  // filled by get_many
  b.fresh();
  const int before = b.gets();
  EXPECT_TRUE(b.near->contains("x"));
  EXPECT_EQ(b.gets(), before) << "contains of a key in memory makes no request";
  a.b->set("x", "3", 0s);
  past_bound();
  EXPECT_EQ(b.near->get_many({"x"})[0]->value, "3");
  a.b->erase("y");
  past_bound();
  EXPECT_FALSE(b.near->contains("y"));
}

// What a memory hit costs here (printed, not asserted: timing belongs in bench/), and that
// 10,000 of them make no request.
TEST(NearCache, MemoryHitsMakeNoRequests) {
  NearTable t;
  Proc b(t.name);
  b.near->set("k", std::string(100, 'v'), 0s);
  in_memory(b, "k", std::string(100, 'v'));
  b.fresh();
  const int before = b.gets();
  const uint64_t hits = b.near->near_stats().memory_hits;
  const auto start = Steady::now();
  for (int i = 0; i < 10000; ++i) b.near->get_entry("k");
  const auto took = Steady::now() - start;
  const NearCacheStats s = b.near->near_stats();
  std::cout << "10,000 gets: " << std::chrono::duration<double, std::micro>(took).count() / 10000
            << " us each, " << s.memory_hits - hits << " from memory; feed: " << s.feed_polls << " polls, "
            << s.feed_read_units << " read units, lag " << s.feed_lag.count() << " ms\n";
  EXPECT_LE(b.gets() - before, static_cast<int>(10000 - (s.memory_hits - hits)))
      << "only gets memory did not answer (a slow poll) may read";
  EXPECT_GT(s.memory_hits - hits, 0u);
}

// fail_open drops a failed set without an error; its publish (the set may have landed) is
// then tried quietly too, and never turns the dropped set into an error.
TEST(NearCache, AFailOpenSetStaysQuietWhenNothingCanBePublished) {
  ddb::ClientOptions dead;
  dead.endpoint = "http://127.0.0.1:1";  // nothing listens there
  dead.retry.max_attempts = 1;
  dead.operation_timeout = 200ms;
  DynamodbOptions o;
  o.table = "nowhere";
  o.fail_open = true;
  o.publish_invalidations = true;
  DynamodbBackend b(std::make_shared<ddb::Client>(dead), o);
  EXPECT_NO_THROW(b.set("k", "v", 0s));
  EXPECT_NO_THROW(b.set_many({{"k", "v"}}, 0s));
  EXPECT_EQ(b.stats().fail_open.load(), 2u);
  EXPECT_THROW(b.erase("k"), Error) << "an erase is not covered by fail_open";
}

TEST(NearCache, AsynchronousFormsAnswerFromMemoryAndWriteThrough) {
  NearTable t;
  Proc a(t.name), b(t.name);
  b.near->set_async("k", "v1", 0s).get();
  b.confirmed();
  b.caught_up();  // its own invalidation, heard back from the feed, is behind
  in_memory(b, "k", "v1");
  b.fresh();
  const int before = b.gets();
  auto hit = b.near->get_entry_async("k").get();
  ASSERT_TRUE(hit);
  EXPECT_EQ(hit->value, "v1");
  EXPECT_EQ(b.gets(), before) << "a memory hit makes no request, asynchronous too";
  b.near->erase_async("k").get();
  EXPECT_FALSE(b.near->get_entry_async("k").get()) << "own erase visible at once";
  b.near->set_many_async({{"x", "1"}}, 0s).get();
  EXPECT_EQ(b.near->get_many_async({"x", "y"}).get()[0]->value, "1");
  EXPECT_EQ(a.near->get("x"), "1");
  b.near->clear_async().get();
  EXPECT_FALSE(b.near->get_entry_async("x").get());
}
