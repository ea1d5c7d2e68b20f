// get_or_set's fleet-wide lease and refresh ahead against dynalite. Each DynamodbBackend object
// has its own single-flight registry, so several backends in one process stand for several
// processes of a fleet (the CLI test runs real processes: get_or_run_test.py).
#include <atomic>
#include <future>
#include <thread>

#include "cache/background_pool.h"
#include "cache/single_flight.h"
#include "counted_table.h"
#include "it_env.h"
#include "pool_idle.h"
#include "util_clock.h"

using namespace dynamodb_cache;
using namespace std::chrono_literals;
using testing_support::await_idle;
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
  int64_t now =
      std::chrono::duration_cast<std::chrono::milliseconds>(SystemClock::now().time_since_epoch()).count();
  ddb::PutItemRequest r;
  r.table_name = t.name;
  r.item = {{"key", ddb::AttributeValue::S(key + "#lease")},
            {"fmt", ddb::AttributeValue::N(5)},
            {"token", ddb::AttributeValue::S("someone-else")},
            {"until", ddb::AttributeValue::N(now + ms)}};
  t.c->put_item(r);
}

// `t`'s backend options on `clock`, the fake wall clock stale values are judged by.
DynamodbOptions on_clock(CountedTable& t, test_clock::FakeWallClock& clock) {
  auto o = t.opts();
  o.now = clock.fn();
  return o;
}

// The warnings a backend logs (DynamodbOptions::log). Thread-safe.
struct Warnings {
  std::mutex mu;
  std::vector<std::string> lines;
  LogHook hook() {
    return [this](LogLevel, std::string_view m) {
      std::lock_guard lock(mu);
      lines.emplace_back(m);
    };
  }
  // Expects exactly one warning, containing `says` and not `secret` (never a value).
  void expect_one(const std::string& says, const std::string& secret) {
    std::lock_guard lock(mu);
    ASSERT_EQ(lines.size(), 1u);
    EXPECT_NE(lines[0].find(says), std::string::npos) << lines[0];
    EXPECT_EQ(lines[0].find(secret), std::string::npos) << "never the value";
  }
};

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
      return get_or_set(
          *b, "hot",
          [&] {
            ++loads;
            std::this_thread::sleep_for(500ms);
            return std::string("computed once");
          },
          60s, with_lease(10s));
    }));
  for (auto& r : results) EXPECT_EQ(r.get(), "computed once");
  EXPECT_EQ(loads, 1);
  EXPECT_FALSE(raw(t, "hot#lease")) << "the holder releases its lease";
  EXPECT_EQ(*fleet[0]->get("hot"), "computed once");

  // On the wire: a hit is one GetItem; a miss in the loading process is GetItem, the lease's
  // PutItem, GetItem, the placeholder's PutItem (LeaseTable::reserve), the value's PutItem and
  // the lease's DeleteItem.
  t.wire->take();
  EXPECT_EQ(get_or_set(
                *fleet[0], "hot", [] { return std::string("x"); }, 60s, with_lease(10s)),
            "computed once");
  t.expect_wire({{"GetItem", 1}}, __LINE__);
  EXPECT_EQ(get_or_set(
                *fleet[0], "cold", [] { return std::string("c"); }, 60s, with_lease(10s)),
            "c");
  t.expect_wire({{"DeleteItem", 1}, {"GetItem", 2}, {"PutItem", 3}}, __LINE__);
}

TEST(GetOrSetIT, ACrashedHoldersLeaseLapsesAndTheWaitIsBounded) {
  CountedTable t("it-gos");
  DynamodbBackend b(t.c, t.opts());
  // A holder that died: its lease lapses after 1 s; then this process loads.
  foreign_lease(t, "k", 1000);
  auto start = std::chrono::steady_clock::now();
  EXPECT_EQ(get_or_set(
                b, "k", [] { return std::string("mine"); }, 0s, with_lease(5s)),
            "mine");
  EXPECT_GE(std::chrono::steady_clock::now() - start, 900ms);
  EXPECT_EQ(*b.get("k"), "mine");

  // A live lease held longer than lease_wait: the process stops waiting and loads itself; the
  // other holder's lease is left alone.
  foreign_lease(t, "k2", 60000);
  EXPECT_EQ(get_or_set(
                b, "k2", [] { return std::string("impatient"); }, 0s, with_lease(5s, 300ms)),
            "impatient");
  EXPECT_EQ(*b.get("k2"), "impatient");
  ASSERT_TRUE(raw(t, "k2#lease"));
  EXPECT_EQ(raw(t, "k2#lease")->at("token").scalar, "someone-else");
}

TEST(GetOrSetIT, ALoaderExceptionReleasesTheLeaseAndCachesNothing) {
  CountedTable t("it-gos");
  DynamodbBackend b(t.c, t.opts());
  EXPECT_THROW(get_or_set(
                   b, "k", []() -> std::string { throw std::runtime_error("down"); }, 0s, with_lease(30s)),
               std::runtime_error);
  EXPECT_FALSE(raw(t, "k#lease"));
  EXPECT_FALSE(raw(t, "k"));
  // The next caller does not wait for a lease nobody holds.
  auto start = std::chrono::steady_clock::now();
  EXPECT_EQ(get_or_set(
                b, "k", [] { return std::string("up"); }, 0s, with_lease(30s)),
            "up");
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
      return get_or_set(
          *a, key,
          [&] {
            a_loading.set_value();
            b_done.get_future().wait();
            return a_value;
          },
          0s, with_lease(1s));
    });
    a_loading.get_future().wait();
    try {
      EXPECT_TRUE(get_or_set(
                      *b, key, [&] { return b_value; }, 0s, with_lease(1s)) == b_value);
    } catch (const std::exception& e) {
      ADD_FAILURE() << "B: " << e.what();
    }
    b_done.set_value();  // whatever happened, so that A does not wait forever
    EXPECT_TRUE(a_result.get() == a_value);
    auto now_there = a->get(key);
    EXPECT_TRUE(now_there && *now_there == b_value)
        << key << ": " << (!now_there ? "nothing" : *now_there == a_value ? "A's value" : "another value");
  }
  // Only B's chunks are left besides the heads. Through the fault proxy A's may stay too: after
  // a lost answer a write's chunks are kept (LeaseTable::write_unless_changed), since a copy of
  // its head delayed in the network may still land and name them.
  auto items = t.scan();
  size_t chunks = 0;
  for (auto& [k, size] : items) chunks += k.find("#chunk:") != std::string::npos;
  if (it::under_faults()) {
    EXPECT_TRUE(chunks == 3u || chunks == 6u) << chunks;
  } else {
    EXPECT_EQ(chunks, 3u);
  }
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
      auto v = get_or_set(
          a, key,
          [&] {
            b.set(key, newer, 0s);
            return loaded;
          },
          0s);
      EXPECT_TRUE(v == loaded);
      EXPECT_TRUE(*b.get(key) == newer) << key << (expired_before ? " over an expired item" : " over none");
    }
  }
  // Nobody else writing: the load is stored.
  EXPECT_EQ(get_or_set(
                a, "quiet", [] { return std::string("x"); }, 0s),
            "x");
  EXPECT_EQ(*b.get("quiet"), "x");
}

// With a lease, one process of the fleet reloads (in its background: its caller does not
// wait); the others, whose own refreshes find the lease taken, keep serving the current value.
TEST(GetOrSetIT, RefreshAheadWithALeaseOneProcessReloadsTheOthersGetTheCurrentValue) {
  CountedTable t("it-gos");
  test_clock::FakeWallClock clock;
  auto opts = on_clock(t, clock);
  auto a = std::make_shared<DynamodbBackend>(t.c, opts);
  auto b = std::make_shared<DynamodbBackend>(t.c, opts);
  auto o = with_lease(10s);
  o.refresh_ahead = 5s;
  a->set("k", "v1", 60s);
  clock.advance(50s);  // 10 s left: no refresh
  EXPECT_EQ(get_or_set(
                *a, "k", [] { return std::string("unused"); }, 60s, o),
            "v1");
  EXPECT_EQ(detail::BackgroundPool::instance().pending(a.get()), 0u);
  clock.advance(6s);  // 4 s left: A's caller gets v1 at once, its reload is held
  std::promise<void> a_loading, release;
  std::shared_future<void> released = release.get_future().share();
  EXPECT_EQ(get_or_set(
                *a, "k",
                [&, released] {
                  a_loading.set_value();
                  released.wait();
                  return std::string("v2");
                },
                60s, o),
            "v1");
  a_loading.get_future().wait();
  t.wire->take();
  std::atomic<int> b_loads{0};
  EXPECT_EQ(get_or_set(
                *b, "k",
                [&] {
                  ++b_loads;
                  return std::string("unused");
                },
                60s, o),
            "v1");
  await_idle(b.get());
  // B's cost: the read, and its refresh's one failed lease attempt.
  t.expect_wire({{"GetItem", 1}, {"PutItem", 1}}, __LINE__);
  EXPECT_EQ(b_loads, 0);
  release.set_value();
  await_idle(a.get());
  auto hit = b->get_entry("k");
  ASSERT_TRUE(hit);
  EXPECT_EQ(hit->value, "v2");
  EXPECT_GT(*hit->ttl_left, 55s);
  EXPECT_FALSE(raw(t, "k#lease")) << "the refresh releases its lease";
  EXPECT_EQ(a->stats().refresh_failures + b->stats().refresh_failures, 0u);
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

// ---- stale_if_error: serving the stale value while the source is down ----

namespace {

GetOrSetOptions with_grace(Ttl grace, Ttl load_timeout = 0ms) {
  GetOrSetOptions o;
  o.stale_if_error = grace;
  o.load_timeout = load_timeout;
  o.poll_min = 20ms;
  o.poll_max = 200ms;
  return o;
}

std::string failing() { throw std::runtime_error("the source is down"); }

int64_t number(const ddb::Item& item, const std::string& name) { return std::stoll(item.at(name).scalar); }

// Waits (bounded) until `ready` holds.
template <class F>
bool eventually(F ready, std::chrono::milliseconds within = 10s) {
  auto end = std::chrono::steady_clock::now() + within;
  while (!ready()) {
    if (std::chrono::steady_clock::now() > end) return false;
    std::this_thread::sleep_for(20ms);
  }
  return true;
}

}  // namespace

TEST(GetOrSetIT, StaleIsServedDuringAnOutageWithinTheGraceAndNotAfter) {
  CountedTable t("it-gos");
  test_clock::FakeWallClock clock;
  auto opts = on_clock(t, clock);
  Warnings warnings;
  opts.log = warnings.hook();
  DynamodbBackend b(t.c, opts);
  const auto o = with_grace(10s);
  auto r = get_or_set_entry(
      b, "k", [] { return std::string("secret-v1"); }, 60s, o);
  EXPECT_EQ(r.value, "secret-v1");
  EXPECT_FALSE(r.stale);

  // The item: the Python package's attributes as always; fresh_until and the grace after it.
  auto item = raw(t, "k");
  ASSERT_TRUE(item);
  const int64_t written = number(*item, "update_ts");
  EXPECT_EQ(number(*item, "expire"), 60);
  EXPECT_EQ(number(*item, "fresh_until"), written + 60);
  EXPECT_EQ(number(*item, "expire_at"), written + 70);

  clock.advance(61s);
  // The Python package's rule (now - update_ts < expire) sees it expired, and so do our reads.
  const int64_t now_s =
      std::chrono::duration_cast<std::chrono::seconds>(clock.fn()().time_since_epoch()).count();
  EXPECT_GE(now_s - written, number(*item, "expire"));
  EXPECT_FALSE(b.get("k"));
  EXPECT_FALSE(b.contains("k"));
  // ... but not get_or_set when the source fails: the stale value, marked, counted and logged.
  r = get_or_set_entry(b, "k", failing, 60s, o);
  EXPECT_EQ(r.value, "secret-v1");
  EXPECT_TRUE(r.stale);
  EXPECT_EQ(b.stats().stale_served, 1u);
  warnings.expect_one("the source is down", "secret-v1");
  // Within the backoff (at least 500 ms) nobody calls the loader: the stale value at once.
  std::atomic<int> calls{0};
  r = get_or_set_entry(
      b, "k",
      [&]() -> std::string {
        ++calls;
        return "unused";
      },
      60s, o);
  EXPECT_TRUE(r.stale);
  EXPECT_EQ(calls, 0);
  EXPECT_EQ(b.stats().stale_served, 2u);
  // The plain form gives the value alone.
  EXPECT_EQ(get_or_set(b, "k", failing, 60s, o), "secret-v1");

  // Past the grace: no stale value, the error reaches the caller.
  clock.advance(10s);
  EXPECT_THROW(get_or_set_entry(b, "k", failing, 60s, o), std::runtime_error);
  // The source is back: loaded and stored, fresh again.
  r = get_or_set_entry(
      b, "k", [] { return std::string("v2"); }, 60s, o);
  EXPECT_EQ(r.value, "v2");
  EXPECT_FALSE(r.stale);
  EXPECT_EQ(*b.get("k"), "v2");
}

TEST(GetOrSetIT, AfterTheBackoffOneCallerTriesTheSourceAgain) {
  CountedTable t("it-gos");
  test_clock::FakeWallClock clock;
  auto opts = on_clock(t, clock);
  DynamodbBackend b(t.c, opts);
  const auto o = with_grace(60s);
  get_or_set(
      b, "k", [] { return std::string("v1"); }, 10s, o);
  clock.advance(11s);
  EXPECT_TRUE(get_or_set_entry(b, "k", failing, 10s, o).stale);
  // The first backoff is 0.5 to 1 s (jittered): past it, the loader is called again.
  std::this_thread::sleep_for(1100ms);
  std::atomic<int> calls{0};
  auto r = get_or_set_entry(
      b, "k",
      [&] {
        ++calls;
        return std::string("back");
      },
      10s, o);
  EXPECT_EQ(calls, 1);
  EXPECT_EQ(r.value, "back");
  EXPECT_FALSE(r.stale);
  // A success ends the outage: the next failure is tried at once (no backoff left over).
  clock.advance(11s);
  calls = 0;
  r = get_or_set_entry(
      b, "k",
      [&]() -> std::string {
        ++calls;
        throw std::runtime_error("down again");
      },
      10s, o);
  EXPECT_EQ(calls, 1);
  EXPECT_TRUE(r.stale);
  EXPECT_EQ(r.value, "back");
}

// A grace that ends while the load runs leaves nothing to serve: the stale value was judged
// at the read before the load, and a failure (or load_timeout) after the grace gives the error.
TEST(GetOrSetIT, AStaleValueIsNotServedPastItsGraceEvenIfTheLoadBeganWithinIt) {
  CountedTable t("it-gos");
  test_clock::FakeWallClock clock;
  auto opts = on_clock(t, clock);
  DynamodbBackend b(t.c, opts);
  const auto o = with_grace(10s);
  get_or_set(
      b, "k", [] { return std::string("v1"); }, 10s, o);
  clock.advance(15s);  // stale, 5 s of grace left
  auto failing_late = [&]() -> std::string {
    clock.advance(6s);  // the grace ends during the load
    throw std::runtime_error("the source is down");
  };
  EXPECT_THROW(get_or_set_entry(b, "k", failing_late, 10s, o), std::runtime_error);
  EXPECT_EQ(b.stats().stale_served, 0u);

  // The same with load_timeout: the load outlives it after the grace ended.
  get_or_set(
      b, "t", [] { return std::string("v1"); }, 10s, o);
  clock.advance(15s);
  const auto timed = with_grace(10s, 100ms);
  auto slow_late = [&] {
    clock.advance(6s);
    std::this_thread::sleep_for(400ms);
    return std::string("v2");
  };
  EXPECT_THROW(get_or_set_entry(b, "t", slow_late, 10s, timed), TimeoutError);
  EXPECT_EQ(b.stats().stale_served, 0u);
  // Within the grace the same slow load is served stale.
  get_or_set(
      b, "u", [] { return std::string("v1"); }, 10s, o);
  clock.advance(15s);
  auto slow = [] {
    std::this_thread::sleep_for(400ms);
    return std::string("v2");
  };
  auto r = get_or_set_entry(b, "u", slow, 10s, timed);
  EXPECT_TRUE(r.stale);
  EXPECT_EQ(r.value, "v1");
  await_idle(&b);
}

namespace {
struct DigitsCodec {
  std::string encode(int v) const { return std::to_string(v); }
  int decode(std::string_view s) const {
    if (s.empty() || s.find_first_not_of("0123456789") != std::string_view::npos)
      throw std::invalid_argument("not an int");
    return std::stoi(std::string(s));
  }
};
}  // namespace

// A stale value that does not decode (decode_error_is_miss, a changed type) cannot be served,
// and the loader, which just failed, is not called again: a typed error. Through each typed
// form, which must all tell a stale answer: get_or_set_entry and get_or_set_async with a loader
// of T, get_or_set and get_or_set_async with a loader of LoadResult<T>.
enum class TypedForm { kEntry, kAsync, kResult, kResultAsync };
void stale_value_that_does_not_decode(TypedForm form) {
  CountedTable t("it-gos");
  test_clock::FakeWallClock clock;
  auto opts = on_clock(t, clock);
  auto b = std::make_shared<DynamodbBackend>(t.c, opts);
  const auto o = with_grace(60s);
  get_or_set(
      *b, "k", [] { return std::string("text of the old type"); }, 10s, o);
  clock.advance(11s);
  Cache<int, DigitsCodec> ints(b, {}, {.decode_error_is_miss = true, .log = [](LogLevel, std::string_view) {}});
  int calls = 0;
  auto failing = [&]() -> int {
    ++calls;
    throw std::runtime_error("the source is down");
  };
  // The answer of `form`, with `load` (returning T) as its loader.
  auto ask = [&](auto load) -> std::optional<int> {
    auto result = [&] { return LoadResult<int>::found(load()); };
    switch (form) {
      case TypedForm::kEntry: return ints.get_or_set_entry("k", load, 10s, o).value;
      case TypedForm::kAsync: return ints.get_or_set_async("k", load, 10s, o).get();
      case TypedForm::kResult: return ints.get_or_set("k", result, 10s, o);
      case TypedForm::kResultAsync: return ints.get_or_set_async("k", result, 10s, o).get();
    }
    return std::nullopt;
  };
  EXPECT_THROW(ask(failing), CodecError);
  EXPECT_EQ(calls, 1);
  // Within the backoff (the first is at most 1 s) the same; past it, the source is back:
  // loaded and stored over it.
  EXPECT_THROW(ask(failing), CodecError);
  EXPECT_EQ(calls, 1);
  std::this_thread::sleep_for(1100ms);
  EXPECT_EQ(ask([] { return 7; }), 7);
  EXPECT_EQ(ints.get("k"), 7);
}

TEST(GetOrSetIT, AStaleValueThatDoesNotDecodeIsAnErrorAndTheLoaderIsNotCalledAgain) {
  stale_value_that_does_not_decode(TypedForm::kEntry);
}

TEST(GetOrSetIT, AStaleValueThatDoesNotDecodeIsAnErrorThroughEveryTypedForm) {
  stale_value_that_does_not_decode(TypedForm::kAsync);
  stale_value_that_does_not_decode(TypedForm::kResult);
  stale_value_that_does_not_decode(TypedForm::kResultAsync);
}

namespace {
// Forwards to the default transport; while `armed`, writes (PutItem, UpdateItem) fail as a
// DynamoDB that is down would answer them (a 500, retried by the client, then thrown).
class WritesFailTransport : public http::Transport {
 public:
  http::Response send(const http::Request& r) override {
    if (armed)
      for (const auto& h : r.headers)
        if ((h.name == "X-Amz-Target" || h.name == "x-amz-target") &&
            (h.value.ends_with(".PutItem") || h.value.ends_with(".UpdateItem"))) {
          http::Response res;
          res.status = 500;
          res.body = R"({"__type":"com.amazonaws.dynamodb.v20120810#InternalServerError","message":"down"})";
          return res;
        }
    return inner_->send(r);
  }
  std::atomic<bool> armed{false};

 private:
  std::shared_ptr<http::Transport> inner_ = http::make_default_transport();
};
}  // namespace

// The table failing after a successful load is not the source's failure: the callers get the
// loaded value (fresher than the stale one), unstored, and no backoff starts.
TEST(GetOrSetIT, AValueLoadedButNotStoredIsAnsweredAndStartsNoBackoff) {
  CountedTable t("it-gos");
  auto wire = std::make_shared<WritesFailTransport>();
  ddb::ClientOptions co;
  co.transport = wire;
  co.retry.max_attempts = 2;
  auto client = std::make_shared<ddb::Client>(co);
  test_clock::FakeWallClock clock;
  auto opts = on_clock(t, clock);
  Warnings warnings;
  opts.log = warnings.hook();
  DynamodbBackend b(client, opts);
  const auto o = with_grace(60s);
  get_or_set(
      b, "k", [] { return std::string("v1"); }, 10s, o);
  clock.advance(11s);
  int calls = 0;
  auto r = get_or_set_entry(
      b, "k",
      [&] {
        ++calls;
        wire->armed = true;  // DynamoDB goes down during the load
        return std::string("v2");
      },
      10s, o);
  wire->armed = false;
  EXPECT_EQ(r.value, "v2");
  EXPECT_FALSE(r.stale);
  EXPECT_EQ(b.stats().stale_served, 0u);
  uint64_t errors = 0;  // the store's error, of whatever kind the failed write ended as
  for (const auto& n : b.stats().errors) errors += n.load();
  EXPECT_EQ(errors, 1u);
  warnings.expect_one("answered unstored", "v2");
  // Not stored: the table still holds the stale v1. And no backoff: the next caller loads.
  EXPECT_FALSE(b.get("k"));
  r = get_or_set_entry(
      b, "k",
      [&] {
        ++calls;
        return std::string("v3");
      },
      10s, o);
  EXPECT_EQ(calls, 2);
  EXPECT_EQ(r.value, "v3");
  EXPECT_EQ(*b.get("k"), "v3");
  // Without a grace the table's error reaches the caller, as before.
  clock.advance(11s);
  EXPECT_THROW(get_or_set(
                   b, "k",
                   [&] {
                     wire->armed = true;
                     return std::string("v4");
                   },
                   10s),
               Error);
  wire->armed = false;
}

// A backend's failing keys are forgotten with it: a backend made later, maybe at the same
// address, does not inherit their backoff (it did: this test's predecessor failed when repeated).
TEST(GetOrSetIT, ABackendsOutagesAreForgottenWithIt) {
  CountedTable t("it-gos");
  test_clock::FakeWallClock clock;
  auto opts = on_clock(t, clock);
  const auto o = with_grace(60s);
  const std::size_t before = dynamodb_cache::detail::remembered_outages();
  {
    DynamodbBackend b(t.c, opts);
    get_or_set(
        b, "k", [] { return std::string("v1"); }, 10s, o);
    clock.advance(11s);
    EXPECT_TRUE(get_or_set_entry(b, "k", failing, 10s, o).stale);
    EXPECT_EQ(dynamodb_cache::detail::remembered_outages(), before + 1);
  }
  EXPECT_EQ(dynamodb_cache::detail::remembered_outages(), before);
  // A new backend on the same table loads at once: no backoff left over.
  DynamodbBackend b2(t.c, opts);
  std::atomic<int> calls{0};
  auto r = get_or_set_entry(
      b2, "k",
      [&] {
        ++calls;
        return std::string("back");
      },
      10s, o);
  EXPECT_EQ(calls, 1);
  EXPECT_EQ(r.value, "back");
}

TEST(GetOrSetIT, OneLoadAtATimePerKeyAndEveryWaiterGetsTheStaleValue) {
  CountedTable t("it-gos");
  test_clock::FakeWallClock clock;
  auto opts = on_clock(t, clock);
  DynamodbBackend b(t.c, opts);
  const auto o = with_grace(60s);
  get_or_set(
      b, "k", [] { return std::string("v1"); }, 10s, o);
  clock.advance(11s);
  std::atomic<int> calls{0};
  std::promise<void> entered;
  std::shared_future<void> release = std::promise<void>().get_future().share();
  std::promise<void> go;
  std::shared_future<void> go_f = go.get_future().share();
  auto load = [&]() -> std::string {
    if (++calls == 1) entered.set_value();
    go_f.wait();
    throw std::runtime_error("down");
  };
  std::vector<std::future<GetOrSetResult>> callers;
  for (int i = 0; i < 8; ++i)
    callers.push_back(std::async(std::launch::async, [&] { return get_or_set_entry(b, "k", load, 10s, o); }));
  entered.get_future().wait();
  // Everyone else joins the leader's flight (or, once it failed, the backoff).
  EXPECT_TRUE(eventually([&] { return detail::FlightRegistry::instance().waiters(&b, "k") >= 7; }, 5s));
  go.set_value();
  for (auto& c : callers) {
    auto r = c.get();
    EXPECT_EQ(r.value, "v1");
    EXPECT_TRUE(r.stale);
  }
  EXPECT_EQ(calls, 1);
  EXPECT_EQ(b.stats().stale_served, 8u);
}

TEST(GetOrSetIT, ALoadPastLoadTimeoutServesStaleAndStoresItsValueWhenItEnds) {
  CountedTable t("it-gos");
  test_clock::FakeWallClock clock;
  auto opts = on_clock(t, clock);
  DynamodbBackend b(t.c, opts);
  const auto o = with_grace(60s, 200ms);
  // A slow load within the timeout: its value.
  auto r = get_or_set_entry(
      b, "k",
      [] {
        std::this_thread::sleep_for(20ms);
        return std::string("v1");
      },
      10s, o);
  EXPECT_EQ(r.value, "v1");
  clock.advance(11s);
  // One that hangs: the stale value after load_timeout.
  std::promise<void> release;
  std::shared_future<void> released = release.get_future().share();
  std::atomic<int> calls{0};
  auto hanging = [&calls, released] {
    ++calls;
    released.wait();
    return std::string("v2");
  };
  auto start = std::chrono::steady_clock::now();
  r = get_or_set_entry(b, "k", hanging, 10s, o);
  EXPECT_LT(std::chrono::steady_clock::now() - start, 5s);
  EXPECT_TRUE(r.stale);
  EXPECT_EQ(r.value, "v1");
  // While it runs, nobody starts another load of the key (however long the backoff was).
  std::this_thread::sleep_for(1100ms);
  r = get_or_set_entry(b, "k", hanging, 10s, o);
  EXPECT_TRUE(r.stale);
  EXPECT_EQ(calls, 1);
  EXPECT_EQ(detail::BackgroundPool::instance().pending(&b), 1u);
  // It ends: its value is stored, and read fresh.
  release.set_value();
  EXPECT_TRUE(eventually([&] { return b.get("k") == std::optional<std::string>("v2"); }));
  r = get_or_set_entry(b, "k", hanging, 10s, o);
  EXPECT_EQ(r.value, "v2");
  EXPECT_FALSE(r.stale);
  EXPECT_EQ(calls, 1);
}

// The typed asynchronous form with load_timeout: the load that outlives the call owns what it
// uses (not the Cache, which is gone when it ends here), and stores what it loaded.
TEST(GetOrSetIT, ATypedAsyncLoadPastLoadTimeoutOutlivesItsCache) {
  CountedTable t("it-gos");
  test_clock::FakeWallClock clock;
  auto opts = on_clock(t, clock);
  auto b = std::make_shared<DynamodbBackend>(t.c, opts);
  const auto o = with_grace(60s, 200ms);
  std::promise<void> release;
  std::shared_future<void> released = release.get_future().share();
  {
    Cache<std::string> cache(b);
    EXPECT_EQ(cache
                  .get_or_set_async(
                      "k", [] { return std::string("v1"); }, 10s, o)
                  .get(),
              "v1");
    clock.advance(11s);
    auto hanging = [released] {
      released.wait();
      return std::string("v2");
    };
    EXPECT_EQ(cache.get_or_set_async("k", hanging, 10s, o).get(), "v1");  // stale, at load_timeout
  }
  release.set_value();
  EXPECT_TRUE(eventually([&] { return b->get("k") == std::optional<std::string>("v2"); }));
}

TEST(GetOrSetIT, WithALeaseTheOthersServeStaleInsteadOfWaiting) {
  CountedTable t("it-gos");
  test_clock::FakeWallClock clock;
  auto opts = on_clock(t, clock);
  auto a = std::make_shared<DynamodbBackend>(t.c, opts);
  auto b = std::make_shared<DynamodbBackend>(t.c, opts);
  auto o = with_grace(60s);
  o.lease = 10s;
  o.lease_wait = 10s;
  get_or_set(
      *a, "k", [] { return std::string("v1"); }, 10s, o);
  clock.advance(11s);
  std::promise<void> a_loading, release;
  auto a_result = std::async(std::launch::async, [&] {
    return get_or_set_entry(
        *a, "k",
        [&]() -> std::string {
          a_loading.set_value();
          release.get_future().wait();
          throw std::runtime_error("down");
        },
        10s, o);
  });
  a_loading.get_future().wait();
  // B (another process): A holds the lease, so B serves the stale value at once.
  std::atomic<int> b_calls{0};
  auto start = std::chrono::steady_clock::now();
  auto r = get_or_set_entry(
      *b, "k",
      [&] {
        ++b_calls;
        return std::string("b");
      },
      10s, o);
  EXPECT_LT(std::chrono::steady_clock::now() - start, 5s);
  EXPECT_TRUE(r.stale);
  EXPECT_EQ(r.value, "v1");
  EXPECT_EQ(b_calls, 0);
  EXPECT_EQ(b->stats().lease_waits, 0u);
  release.set_value();
  auto ra = a_result.get();
  EXPECT_TRUE(ra.stale);
  EXPECT_EQ(ra.value, "v1");
  EXPECT_FALSE(raw(t, "k#lease")) << "released after the failed load";
}

TEST(GetOrSetIT, AnItemWithoutFreshUntilHasNoGrace) {
  CountedTable t("it-gos");
  DynamodbBackend b(t.c, t.opts());
  // The Python package's item, expired 5 s ago; and ours written by set(): no fresh_until.
  const int64_t now =
      std::chrono::duration_cast<std::chrono::seconds>(SystemClock::now().time_since_epoch()).count();
  ddb::PutItemRequest p;
  p.table_name = t.name;
  p.item = {{"key", ddb::AttributeValue::S("py")},
            {"value", ddb::AttributeValue::B("djE=")},  // base64 of "v1"
            {"expire", ddb::AttributeValue::N(10)},
            {"update_ts", ddb::AttributeValue::N(now - 15)}};
  t.c->put_item(p);
  b.set("ours", "v1", 1ms);
  std::this_thread::sleep_for(1100ms);
  for (const char* key : {"py", "ours"}) {
    EXPECT_THROW(get_or_set_entry(b, key, failing, 10s, with_grace(60s)), std::runtime_error) << key;
    EXPECT_EQ(get_or_set(
                  b, key, [] { return std::string("v2"); }, 10s, with_grace(60s)),
              "v2")
        << key;
  }
  // A set() replaces an item with a grace by one without: its value is no longer kept.
  test_clock::FakeWallClock clock;
  auto opts = on_clock(t, clock);
  DynamodbBackend c(t.c, opts);
  get_or_set(
      c, "g", [] { return std::string("graced"); }, 10s, with_grace(60s));
  c.set("g", "plain", 10s);
  EXPECT_FALSE(raw(t, "g")->count("fresh_until"));
  clock.advance(11s);
  EXPECT_THROW(get_or_set_entry(c, "g", failing, 10s, with_grace(60s)), std::runtime_error);
}

TEST(GetOrSetIT, StaleOverLayersIsServedButNotCopiedUp) {
  CountedTable t("it-gos");
  test_clock::FakeWallClock clock;
  auto opts = on_clock(t, clock);
  auto memory = std::make_shared<MemoryBackend>();
  auto layered = make_layered(memory, std::make_shared<DynamodbBackend>(t.c, opts));
  get_or_set(
      *layered, "k", [] { return std::string("v1"); }, 10s, with_grace(60s));
  memory->erase("k");  // as if its copy had expired
  clock.advance(11s);
  auto r = get_or_set_entry(*layered, "k", failing, 10s, with_grace(60s));
  EXPECT_TRUE(r.stale);
  EXPECT_EQ(r.value, "v1");
  EXPECT_FALSE(memory->get("k"));
  // Over a backend without DynamoDB: a clear error.
  EXPECT_THROW(get_or_set(*memory, "k", failing, 10s, with_grace(60s)), InvalidArgumentError);
}

// ---- refresh ahead of expiry, in the background ----

// A refresh's store is conditional like every load's: an erase made while the reload runs (by
// another process) wins, and its failure is counted and logged, never thrown at the caller.
TEST(GetOrSetIT, ARefreshLosesToAnEraseMadeDuringItAndItsFailureIsOnlyLogged) {
  CountedTable t("it-gos");
  test_clock::FakeWallClock clock;
  auto opts = t.opts();
  std::mutex mu;
  std::vector<std::string> logged;
  opts.now = clock.fn();
  opts.log = [&](LogLevel level, std::string_view m) {
    std::lock_guard lock(mu);
    if (level == LogLevel::kWarning) logged.emplace_back(m);
  };
  auto a = std::make_shared<DynamodbBackend>(t.c, opts);
  DynamodbBackend b(t.c, t.opts());
  GetOrSetOptions o;
  o.refresh_ahead = 5s;
  a->set("k", "secret-v1", 60s);
  clock.advance(56s);
  std::promise<void> loading, erased;
  std::shared_future<void> erased_f = erased.get_future().share();
  EXPECT_EQ(get_or_set(
                *a, "k",
                [&, erased_f] {
                  loading.set_value();
                  erased_f.wait();
                  return std::string("v2");
                },
                60s, o),
            "secret-v1");
  loading.get_future().wait();
  b.erase("k");
  erased.set_value();
  await_idle(a.get());
  EXPECT_FALSE(a->get("k")) << "the refresh was stored over the erase";
  EXPECT_FALSE(raw(t, "k"));
  EXPECT_EQ(a->stats().refresh_failures, 0u);

  // A refresh that fails.
  a->set("f", "secret-v1", 60s);
  clock.advance(56s);
  EXPECT_EQ(get_or_set(
                *a, "f", []() -> std::string { throw std::runtime_error("the source is down"); }, 60s, o),
            "secret-v1");
  await_idle(a.get());
  EXPECT_EQ(a->stats().refresh_failures, 1u);
  EXPECT_EQ(*a->get("f"), "secret-v1");
  std::lock_guard lock(mu);
  ASSERT_EQ(logged.size(), 1u);
  EXPECT_NE(logged[0].find("'f'"), std::string::npos) << logged[0];
  EXPECT_NE(logged[0].find("the source is down"), std::string::npos) << logged[0];
  EXPECT_EQ(logged[0].find("secret"), std::string::npos) << "the value was logged: " << logged[0];
}

// Through layers: the caller that starts the refresh does not copy the current value into the
// layers above as if it were fresh; the reload's value is copied up once the table took it,
// and not when an erase made during the reload won.
TEST(GetOrSetIT, ARefreshThroughLayersFillsThemOnlyWithAStoredValue) {
  CountedTable t("it-gos");
  test_clock::FakeWallClock clock;
  auto opts = on_clock(t, clock);
  auto memory = std::make_shared<MemoryBackend>();
  auto table = std::make_shared<DynamodbBackend>(t.c, opts);
  auto layered = make_layered(memory, table);
  DynamodbBackend other(t.c, t.opts());
  GetOrSetOptions o;
  o.refresh_ahead = 5s;
  for (bool erase : {false, true}) {
    const std::string key = erase ? "erased" : "kept";
    table->set(key, "v1", 60s);
    clock.advance(56s);  // 4 s left in the table; the memory layer has no copy
    std::promise<void> loading, go;
    std::shared_future<void> go_f = go.get_future().share();
    EXPECT_EQ(get_or_set(
                  *layered, key,
                  [&, go_f] {
                    loading.set_value();
                    go_f.wait();
                    return std::string("v2");
                  },
                  60s, o),
              "v1");
    loading.get_future().wait();
    auto above = memory->get_entry(key);
    ASSERT_TRUE(above) << key;  // the read's back-fill, at the time left
    EXPECT_LE(*above->ttl_left, 4s) << key;
    if (erase) other.erase(key);
    go.set_value();
    await_idle(layered.get());
    above = memory->get_entry(key);
    if (erase) {
      EXPECT_FALSE(raw(t, key));
      EXPECT_FALSE(above && above->value == "v2") << "copied up a value the table did not take";
    } else {
      EXPECT_EQ(*table->get(key), "v2");
      ASSERT_TRUE(above);
      EXPECT_EQ(above->value, "v2");
      EXPECT_GT(*above->ttl_left, 55s);
    }
  }
}

// ---- the loader decides: its TTL, "do not cache", "missing" (cache_misses_for) ----

TEST(GetOrSetIT, ALoadersTtlIsStoredAndAnUncachedValueIsNot) {
  CountedTable t("it-gos");
  DynamodbBackend b(t.c, t.opts());
  EXPECT_EQ(get_or_set(
                b, "k", [] { return Loaded::found("v", 5s); }, 60s),
            std::optional<std::string>("v"));
  ASSERT_TRUE(raw(t, "k"));
  EXPECT_EQ(number(*raw(t, "k"), "expire"), 5);
  EXPECT_LE(*b.get_entry("k")->ttl_left, 5s);
  // Not to be cached: the callers get it, the table keeps nothing (the placeholder is gone).
  std::atomic<int> loads{0};
  auto uncached = [&] {
    ++loads;
    return Loaded::uncached("fresh each time");
  };
  EXPECT_EQ(get_or_set(b, "u", uncached, 60s), std::optional<std::string>("fresh each time"));
  EXPECT_FALSE(raw(t, "u"));
  EXPECT_EQ(get_or_set(b, "u", uncached, 60s), std::optional<std::string>("fresh each time"));
  EXPECT_EQ(loads, 2);
  // A negative TTL from the loader: a clear error, nothing stored.
  EXPECT_THROW(get_or_set(
                   b, "n", [] { return Loaded::found("v", -1s); }, 60s),
               InvalidArgumentError);
  EXPECT_FALSE(raw(t, "n"));
  // Typed: the same, the answer std::optional<T>.
  Cache<std::string> cache(std::make_shared<DynamodbBackend>(t.c, t.opts()));
  EXPECT_EQ(cache.get_or_set(
                "typed", [] { return LoadResult<std::string>::found("tv", 7s); }, 60s),
            std::optional<std::string>("tv"));
  EXPECT_EQ(number(*raw(t, "typed"), "expire"), 7);
  EXPECT_EQ(cache.get_or_set(
                "none", [] { return LoadResult<std::string>::missing(); }, 60s),
            std::nullopt);
  EXPECT_FALSE(raw(t, "none"));
}

TEST(GetOrSetIT, AMissIsRememberedForCacheMissesForAndReadsAsExpiredEverywhereElse) {
  CountedTable t("it-gos");
  test_clock::FakeWallClock clock;
  auto opts = on_clock(t, clock);
  DynamodbBackend a(t.c, opts), b(t.c, opts);
  GetOrSetOptions o;
  o.cache_misses_for = 5s;
  std::atomic<int> loads{0};
  auto none = [&] {
    ++loads;
    return Loaded::missing();
  };
  EXPECT_EQ(get_or_set(a, "k", none, 60s, o), std::nullopt);
  EXPECT_EQ(loads, 1);
  // Within the window: missing, without the loader, in this process and another.
  clock.advance(4s);
  EXPECT_EQ(get_or_set(a, "k", none, 60s, o), std::nullopt);
  EXPECT_EQ(get_or_set(b, "k", none, 60s, o), std::nullopt);
  EXPECT_EQ(loads, 1);
  // Every other read sees no value; the Python package 0.1.1's rule (expire != 0 and
  // now - update_ts >= expire) says expired.
  EXPECT_FALSE(b.get("k"));
  EXPECT_FALSE(b.contains("k"));
  auto item = raw(t, "k");
  ASSERT_TRUE(item);
  EXPECT_EQ(number(*item, "update_ts"), 0);
  EXPECT_GT(number(*item, "expire"), 0);
  EXPECT_TRUE(item->count("miss_until"));
  EXPECT_GT(number(*item, "expire_at") * 1000, number(*item, "miss_until"))
      << "native TTL keeps it to its end";
  // A caller without cache_misses_for loads (its loader may have a value).
  EXPECT_EQ(get_or_set(b, "k2", none, 60s, o), std::nullopt);
  EXPECT_EQ(get_or_set(
                b, "k2", [] { return Loaded::found("v"); }, 60s),
            std::optional<std::string>("v"));
  // Past the window the loader is asked again.
  clock.advance(2s);
  EXPECT_EQ(get_or_set(a, "k", none, 60s, o), std::nullopt);
  EXPECT_EQ(loads, 3);
  // A set during the window wins; an erase ends it.
  b.set("k", "set meanwhile", 60s);
  EXPECT_EQ(get_or_set(a, "k", none, 60s, o), std::optional<std::string>("set meanwhile"));
  EXPECT_EQ(loads, 3);
  b.erase("k");
  EXPECT_EQ(get_or_set(
                a, "k", [] { return Loaded::found("back"); }, 60s, o),
            std::optional<std::string>("back"));
  EXPECT_EQ(*b.get("k"), "back");
  // A value loaded later is stored over a miss (conditionally, on the negative item).
  EXPECT_EQ(get_or_set(a, "m", none, 60s, o), std::nullopt);
  clock.advance(6s);
  EXPECT_EQ(get_or_set(
                a, "m", [] { return Loaded::found("found"); }, 60s, o),
            std::optional<std::string>("found"));
  EXPECT_EQ(*b.get("m"), "found");
  EXPECT_FALSE(raw(t, "m")->count("miss_until"));
  // The forms whose loader must return a value cannot ask for it; nor can a backend without a table.
  EXPECT_THROW(get_or_set(
                   a, "x", [] { return std::string("v"); }, 60s, o),
               InvalidArgumentError);
  MemoryBackend memory;
  EXPECT_THROW(get_or_set(memory, "x", none, 60s, o), InvalidArgumentError);
}

// With a lease, and with the single flight: the callers waiting on a load that found nothing
// get std::nullopt; a get_or_set whose loader must return a value gets a clear error.
TEST(GetOrSetIT, WaitersOfAMissingLoadGetNothing) {
  CountedTable t("it-gos");
  DynamodbBackend a(t.c, t.opts());
  GetOrSetOptions o = with_lease(10s);
  o.cache_misses_for = 60s;
  std::promise<void> loading, release;
  std::shared_future<void> released = release.get_future().share();
  auto leader = std::async(std::launch::async, [&] {
    return get_or_set(
        a, "k",
        [&, released] {
          loading.set_value();
          released.wait();
          return Loaded::missing();
        },
        60s, o);
  });
  loading.get_future().wait();
  auto waiter = std::async(std::launch::async, [&] {
    return get_or_set(
        a, "k", [] { return Loaded::found("w"); }, 60s, o);
  });
  auto plain = std::async(std::launch::async, [&] {
    return get_or_set(
        a, "k", [] { return std::string("p"); }, 60s);
  });
  auto until = std::chrono::steady_clock::now() + 10s;
  while (detail::FlightRegistry::instance().waiters(&a, "k") < 2 && std::chrono::steady_clock::now() < until)
    std::this_thread::sleep_for(1ms);
  release.set_value();
  EXPECT_EQ(leader.get(), std::nullopt);
  EXPECT_EQ(waiter.get(), std::nullopt);
  EXPECT_THROW(plain.get(), InvalidArgumentError);
  EXPECT_FALSE(raw(t, "k#lease"));
}

// With stale_if_error, "missing" is the source's answer, not its failure: no stale value is
// served for it (nor counted), and the remembered miss replaces the stale item, so a failure
// after the window has nothing stale to fall back on.
TEST(GetOrSetIT, AMissingAnswerIsNotServedStale) {
  CountedTable t("it-gos");
  test_clock::FakeWallClock clock;
  auto opts = on_clock(t, clock);
  DynamodbBackend b(t.c, opts);
  GetOrSetOptions o = with_grace(60s);
  o.cache_misses_for = 5s;
  EXPECT_EQ(get_or_set(
                b, "k", [] { return Loaded::found("v1"); }, 10s, o),
            std::optional<std::string>("v1"));
  clock.advance(11s);  // expired, within its grace
  std::atomic<int> loads{0};
  auto none = [&] {
    ++loads;
    return Loaded::missing();
  };
  EXPECT_EQ(get_or_set(b, "k", none, 10s, o), std::nullopt);
  EXPECT_EQ(get_or_set(b, "k", none, 10s, o), std::nullopt);
  EXPECT_EQ(loads, 1);
  EXPECT_EQ(b.stats().stale_served, 0u);
  clock.advance(6s);
  EXPECT_THROW(get_or_set(
                   b, "k", []() -> Loaded { throw std::runtime_error("down"); }, 10s, o),
               std::runtime_error);
}

// get_or_set_entry with a loader that decides: the value and whether it is stale, or nullopt.
TEST(GetOrSetIT, AnEntryOfADecidingLoaderSaysStaleOrNothing) {
  CountedTable t("it-gos");
  test_clock::FakeWallClock clock;
  auto opts = on_clock(t, clock);
  DynamodbBackend b(t.c, opts);
  const auto o = with_grace(60s);
  auto r = get_or_set_entry(
      b, "k", [] { return Loaded::found("v1", 5s); }, 60s, o);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->value, "v1");
  EXPECT_FALSE(r->stale);
  clock.advance(6s);  // past the loader's own TTL, within the grace
  r = get_or_set_entry(
      b, "k", []() -> Loaded { throw std::runtime_error("down"); }, 60s, o);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->value, "v1");
  EXPECT_TRUE(r->stale);
  EXPECT_FALSE(get_or_set_entry(
      b, "none", [] { return Loaded::missing(); }, 60s, o));
}
