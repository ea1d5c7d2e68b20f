// get_or_set's fleet-wide lease and refresh ahead against dynalite. Each DynamodbBackend object
// has its own single-flight registry, so several backends in one process stand for several
// processes of a fleet (the CLI test runs real processes: get_or_run_test.py).
#include <atomic>
#include <future>
#include <thread>

#include "counted_table.h"
#include "it_env.h"
#include "util_clock.h"

using namespace dynamodb_cache;
using namespace std::chrono_literals;
namespace ddb = dynamodb_cache::dynamodb;
using it::CountedTable;

namespace {

GetOrSetOptions with_lease(Ttl lease, Ttl wait = 10s) {
  GetOrSetOptions o;
  o.lease = lease;
  o.lease_wait = wait;
  o.poll_min = 20ms;
  o.poll_max = 200ms;
  return o;
}

std::optional<ddb::Item> raw(CountedTable& t, const std::string& key) {
  ddb::GetItemRequest r;
  r.table_name = t.name;
  r.key = {{"key", ddb::AttributeValue::S(key)}};
  r.consistent_read = true;
  return t.c->get_item(r).item;
}

// A lease item as another process would hold it, lapsing `ms` from now.
void foreign_lease(CountedTable& t, const std::string& key, int64_t ms) {
  int64_t now = std::chrono::duration_cast<std::chrono::milliseconds>(SystemClock::now().time_since_epoch()).count();
  ddb::PutItemRequest r;
  r.table_name = t.name;
  r.item = {{"key", ddb::AttributeValue::S(key + "#lease")},
            {"fmt", ddb::AttributeValue::N(5)},
            {"token", ddb::AttributeValue::S("someone-else")},
            {"until", ddb::AttributeValue::N(now + ms)}};
  t.c->put_item(r);
}

}  // namespace

TEST(GetOrSetIT, OneLoadAmongManyProcessesWithALease) {
  CountedTable t("it-gos");
  constexpr int kProcesses = 6;
  std::vector<std::shared_ptr<DynamodbBackend>> fleet;
  for (int i = 0; i < kProcesses; ++i) fleet.push_back(std::make_shared<DynamodbBackend>(t.c, t.opts()));
  std::atomic<int> loads{0};
  std::vector<std::future<std::string>> results;
  for (auto& b : fleet)
    results.push_back(std::async(std::launch::async, [&, b] {
      return get_or_set(*b, "hot", [&] {
        ++loads;
        std::this_thread::sleep_for(500ms);
        return std::string("computed once");
      }, 60s, with_lease(10s));
    }));
  for (auto& r : results) EXPECT_EQ(r.get(), "computed once");
  EXPECT_EQ(loads, 1);
  EXPECT_FALSE(raw(t, "hot#lease")) << "the holder releases its lease";
  EXPECT_EQ(*fleet[0]->get("hot"), "computed once");

  // On the wire: a hit is one GetItem; a miss in the loading process is GetItem, the lease's
  // PutItem, GetItem, the placeholder's PutItem (LeaseTable::reserve), the value's PutItem and
  // the lease's DeleteItem.
  t.wire->take();
  EXPECT_EQ(get_or_set(*fleet[0], "hot", [] { return std::string("x"); }, 60s, with_lease(10s)), "computed once");
  EXPECT_EQ(t.wire->take(), (std::map<std::string, int>{{"GetItem", 1}}));
  EXPECT_EQ(get_or_set(*fleet[0], "cold", [] { return std::string("c"); }, 60s, with_lease(10s)), "c");
  EXPECT_EQ(t.wire->take(), (std::map<std::string, int>{{"DeleteItem", 1}, {"GetItem", 2}, {"PutItem", 3}}));
}

TEST(GetOrSetIT, ACrashedHoldersLeaseLapsesAndTheWaitIsBounded) {
  CountedTable t("it-gos");
  DynamodbBackend b(t.c, t.opts());
  // A holder that died: its lease lapses after 1 s; then this process loads.
  foreign_lease(t, "k", 1000);
  auto start = std::chrono::steady_clock::now();
  EXPECT_EQ(get_or_set(b, "k", [] { return std::string("mine"); }, 0s, with_lease(5s)), "mine");
  EXPECT_GE(std::chrono::steady_clock::now() - start, 900ms);
  EXPECT_EQ(*b.get("k"), "mine");

  // A live lease held longer than lease_wait: the process stops waiting and loads itself; the
  // other holder's lease is left alone.
  foreign_lease(t, "k2", 60000);
  EXPECT_EQ(get_or_set(b, "k2", [] { return std::string("impatient"); }, 0s, with_lease(5s, 300ms)), "impatient");
  EXPECT_EQ(*b.get("k2"), "impatient");
  ASSERT_TRUE(raw(t, "k2#lease"));
  EXPECT_EQ(raw(t, "k2#lease")->at("token").scalar, "someone-else");
}

TEST(GetOrSetIT, ALoaderExceptionReleasesTheLeaseAndCachesNothing) {
  CountedTable t("it-gos");
  DynamodbBackend b(t.c, t.opts());
  EXPECT_THROW(get_or_set(b, "k", []() -> std::string { throw std::runtime_error("down"); }, 0s, with_lease(30s)),
               std::runtime_error);
  EXPECT_FALSE(raw(t, "k#lease"));
  EXPECT_FALSE(raw(t, "k"));
  // The next caller does not wait for a lease nobody holds.
  auto start = std::chrono::steady_clock::now();
  EXPECT_EQ(get_or_set(b, "k", [] { return std::string("up"); }, 0s, with_lease(30s)), "up");
  EXPECT_LT(std::chrono::steady_clock::now() - start, 5s);
}

// Holder A's load outlives its lease; B takes the lapsed lease and stores a newer value. A
// finishes late: its callers get A's result, but the table keeps B's value.
TEST(GetOrSetIT, AHolderThatFinishesLateNeverOverwritesANewerValue) {
  CountedTable t("it-gos");
  auto a = std::make_shared<DynamodbBackend>(t.c, t.opts());
  auto b = std::make_shared<DynamodbBackend>(t.c, t.opts());
  for (bool big : {false, true}) {  // one-item values and chunked ones
    std::string key = big ? "big" : "small";
    std::string a_value = big ? it::random_bytes(1u << 20, 1) : "from A";  // 3 chunks
    std::string b_value = big ? it::random_bytes(1u << 20, 2) : "from B";
    // Something expired was there before: the "seen" item is a real one.
    a->set(key, "stale", 1ms);
    std::this_thread::sleep_for(1100ms);
    std::promise<void> a_loading, b_done;
    auto a_result = std::async(std::launch::async, [&] {
      return get_or_set(*a, key, [&] {
        a_loading.set_value();
        b_done.get_future().wait();
        return a_value;
      }, 0s, with_lease(1s));
    });
    a_loading.get_future().wait();
    try {
      EXPECT_TRUE(get_or_set(*b, key, [&] { return b_value; }, 0s, with_lease(1s)) == b_value);
    } catch (const std::exception& e) {
      ADD_FAILURE() << "B: " << e.what();
    }
    b_done.set_value();  // whatever happened, so that A does not wait forever
    EXPECT_TRUE(a_result.get() == a_value);
    EXPECT_TRUE(*a->get(key) == b_value) << key;
  }
  // Only B's chunks are left besides the heads.
  auto items = t.scan();
  size_t chunks = 0;
  for (auto& [k, size] : items) chunks += k.find("#chunk:") != std::string::npos;
  EXPECT_EQ(chunks, 3u);
}

// Without a lease too: a set made (by another process) while a load runs is the newer truth,
// and the load's store leaves it; the loading caller still gets what it loaded.
TEST(GetOrSetIT, ALoadWithoutALeaseNeverOverwritesASetMadeWhileItRan) {
  CountedTable t("it-gos");
  DynamodbBackend a(t.c, t.opts()), b(t.c, t.opts());
  for (bool big : {false, true}) {
    std::string key = big ? "big" : "small";
    std::string loaded = big ? it::random_bytes(1u << 20, 3) : "loaded";
    std::string newer = big ? it::random_bytes(1u << 20, 4) : "newer";
    for (bool expired_before : {false, true}) {
      if (expired_before) {
        a.set(key, "stale", 1ms);
        std::this_thread::sleep_for(1100ms);
      } else {
        a.erase(key);
      }
      auto v = get_or_set(a, key, [&] {
        b.set(key, newer, 0s);
        return loaded;
      }, 0s);
      EXPECT_TRUE(v == loaded);
      EXPECT_TRUE(*b.get(key) == newer) << key << (expired_before ? " over an expired item" : " over none");
    }
  }
  // Nobody else writing: the load is stored.
  EXPECT_EQ(get_or_set(a, "quiet", [] { return std::string("x"); }, 0s), "x");
  EXPECT_EQ(*b.get("quiet"), "x");
}

TEST(GetOrSetIT, RefreshAheadWithALeaseOneProcessReloadsTheOthersGetTheCurrentValue) {
  CountedTable t("it-gos");
  test_clock::FakeWallClock clock;
  auto opts = t.opts();
  opts.now = clock.fn();
  auto a = std::make_shared<DynamodbBackend>(t.c, opts);
  auto b = std::make_shared<DynamodbBackend>(t.c, opts);
  auto o = with_lease(10s);
  o.refresh_ahead = 5s;
  a->set("k", "v1", 60s);
  clock.advance(50s);  // 10 s left: no refresh
  EXPECT_EQ(get_or_set(*a, "k", [] { return std::string("unused"); }, 60s, o), "v1");
  clock.advance(6s);  // 4 s left: A refreshes, B gets v1 at once
  std::promise<void> a_loading, release;
  auto refresher = std::async(std::launch::async, [&] {
    return get_or_set(*a, "k", [&] {
      a_loading.set_value();
      release.get_future().wait();
      return std::string("v2");
    }, 60s, o);
  });
  a_loading.get_future().wait();
  t.wire->take();
  EXPECT_EQ(get_or_set(*b, "k", [] { return std::string("unused"); }, 60s, o), "v1");
  // B's cost: the read and one failed lease attempt.
  EXPECT_EQ(t.wire->take(), (std::map<std::string, int>{{"GetItem", 1}, {"PutItem", 1}}));
  release.set_value();
  EXPECT_EQ(refresher.get(), "v2");
  auto hit = b->get_entry("k");
  ASSERT_TRUE(hit);
  EXPECT_EQ(hit->value, "v2");
  EXPECT_GT(*hit->ttl_left, 55s);
}

// Issue 24's "a late load never overwrites a newer truth": an erase made while a get_or_set
// is loading (by this process's backend, or another's) leaves the key erased; the loader's
// callers still get what it loaded. A key with no item is reserved by a placeholder first
// (LeaseTable::reserve), which the erase deletes; over an expired item the store is already
// conditional on that item.
TEST(GetOrSetIT, AnEraseDuringALoadLeavesTheKeyErased) {
  CountedTable t("it-gos");
  DynamodbBackend a(t.c, t.opts()), b(t.c, t.opts());
  for (bool leased : {false, true})
    for (bool big : {false, true})
      for (bool same_process : {false, true})
        for (bool expired_before : {false, true}) {
          const std::string key = std::string(big ? "big" : "small") + (leased ? "-l" : "") +
                                  (same_process ? "-same" : "-other") + (expired_before ? "-exp" : "");
          const std::string loaded = big ? it::random_bytes(1u << 20, 5) : "loaded";
          if (expired_before) {
            a.set(key, "stale", 1ms);
            std::this_thread::sleep_for(1100ms);
          }
          DynamodbBackend& eraser = same_process ? a : b;
          GetOrSetOptions o = leased ? with_lease(10s) : GetOrSetOptions{};
          auto v = get_or_set(
              a, key,
              [&] {
                // While loading, the key reads as missing everywhere (a placeholder is an expired entry).
                EXPECT_FALSE(b.get(key)) << key;
                EXPECT_FALSE(b.contains(key)) << key;
                eraser.erase(key);
                return loaded;
              },
              0s, o);
          EXPECT_TRUE(v == loaded) << key;
          EXPECT_FALSE(a.get(key)) << key << ": the late load was stored over the erase";
          EXPECT_FALSE(b.get(key)) << key;
        }
}

// Two processes' worth of backends with the loader held on a latch: the erase happens strictly
// inside the load, from the other backend, with no call of the loader's own.
TEST(GetOrSetIT, AnEraseFromAnotherProcessWhileTheLoaderWaitsWins) {
  CountedTable t("it-gos");
  DynamodbBackend a(t.c, t.opts()), b(t.c, t.opts());
  std::promise<void> loading, erased;
  auto result = std::async(std::launch::async, [&] {
    return get_or_set(
        a, "k",
        [&] {
          loading.set_value();
          erased.get_future().wait();
          return std::string("late");
        },
        60s);
  });
  loading.get_future().wait();
  b.erase("k");
  erased.set_value();
  EXPECT_EQ(result.get(), "late");
  EXPECT_FALSE(b.get("k"));
  EXPECT_FALSE(raw(t, "k")) << "nothing left in the table";
  // Without an erase the load is stored as before.
  EXPECT_EQ(get_or_set(
                a, "k", [] { return std::string("on time"); }, 60s),
            "on time");
  EXPECT_EQ(*b.get("k"), "on time");
}

// The placeholder: expired by the Python package's rule (now - update_ts >= expire), no
// expire_at (so native TTL never deletes it under a load), and gone when the loader fails.
TEST(GetOrSetIT, ThePlaceholderReadsAsExpiredAndALoaderFailureRemovesIt) {
  CountedTable t("it-gos");
  DynamodbBackend a(t.c, t.opts()), b(t.c, t.opts());
  std::optional<ddb::Item> during;
  EXPECT_EQ(get_or_set(
                a, "k",
                [&] {
                  during = raw(t, "k");
                  EXPECT_TRUE(b.add("k", "added", 60s)) << "add sees no live entry";
                  return std::string("late");
                },
                60s),
            "late");
  ASSERT_TRUE(during);
  const double now = std::chrono::duration<double>(SystemClock::now().time_since_epoch()).count();
  EXPECT_GE(now - std::stod(during->at("update_ts").scalar), std::stod(during->at("expire").scalar));
  EXPECT_FALSE(during->count("expire_at"));
  EXPECT_EQ(*b.get("k"), "added") << "an add during the load wins too";

  EXPECT_THROW(get_or_set(
                   a, "gone", []() -> std::string { throw std::runtime_error("source down"); }, 60s),
               std::runtime_error);
  EXPECT_FALSE(raw(t, "gone"));
}
