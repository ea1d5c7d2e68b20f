// get_or_set's single flight and refresh ahead, over the memory backend. The fleet-wide lease
// needs DynamoDB: tests/integration/get_or_set_it.cc.
#include <gtest/gtest.h>

#include <atomic>
#include <future>
#include <thread>

#include "cache/background_pool.h"
#include "cache/single_flight.h"
#include "dynamodb_cache/cache.h"
#include "fake_steady.h"

using namespace dynamodb_cache;
using namespace std::chrono_literals;

namespace {

// True once a submit for `owner` is refused (a drain of it has begun); false after 10 s.
bool eventually_refused(detail::BackgroundPool& pool, const void* owner) {
  auto until = std::chrono::steady_clock::now() + 10s;
  while (pool.submit(owner, [] {})) {
    if (std::chrono::steady_clock::now() > until) return false;
    std::this_thread::sleep_for(1ms);
  }
  return true;
}

// Blocks until `n` callers wait on the flight of (backend, key); fails the test after 10 s.
void await_waiters(const Backend& b, std::string_view key, std::size_t n) {
  auto until = std::chrono::steady_clock::now() + 10s;
  while (detail::FlightRegistry::instance().waiters(&b, key) < n) {
    if (std::chrono::steady_clock::now() > until) {
      ADD_FAILURE() << "waiters never reached " << n;
      return;
    }
    std::this_thread::sleep_for(1ms);
  }
}

// `callers` threads at once call get_or_set("k") on `cache`; the one that loads waits until
// all the others wait on its load, then returns what `finish` returns (or throws).
std::vector<std::future<std::string>> stampede(Cache<std::string>& cache, int callers, std::atomic<int>& loads,
                                               std::function<std::string()> finish) {
  std::vector<std::future<std::string>> results;
  for (int i = 0; i < callers; ++i)
    results.push_back(std::async(std::launch::async, [&cache, &loads, finish, callers] {
      return cache.get_or_set("k", [&] {
        ++loads;
        await_waiters(cache.backend(), "k", static_cast<std::size_t>(callers - 1));
        return finish();
      }, 60s);
    }));
  return results;
}

}  // namespace

TEST(GetOrSet, OneLoadPerKeyAndProcessTheOthersWaitForItsResult) {
  auto mem = std::make_shared<MemoryBackend>();
  Cache<std::string> cache(mem);
  constexpr int kCallers = 8;
  std::atomic<int> loads{0};
  auto results = stampede(cache, kCallers, loads, [] { return std::string("loaded"); });
  for (auto& r : results) EXPECT_EQ(r.get(), "loaded");
  EXPECT_EQ(loads, 1);
  EXPECT_EQ(*cache.get("k"), "loaded");
  // A hit does not load.
  EXPECT_EQ(cache.get_or_set("k", [&] { return std::string("again"); }), "loaded");
  EXPECT_EQ(loads, 1);
  // Other keys and other backends have flights of their own.
  auto mem2 = std::make_shared<MemoryBackend>();
  EXPECT_EQ(Cache<std::string>(mem2).get_or_set("k", [] { return std::string("other"); }), "other");
}

TEST(GetOrSet, ALoaderExceptionReachesEveryWaiterAndNothingIsCached) {
  auto mem = std::make_shared<MemoryBackend>();
  Cache<std::string> cache(mem);
  constexpr int kCallers = 6;
  std::atomic<int> loads{0};
  auto results = stampede(cache, kCallers, loads, []() -> std::string { throw std::runtime_error("source is down"); });
  for (auto& r : results) {
    try {
      r.get();
      ADD_FAILURE() << "no exception";
    } catch (const std::runtime_error& e) {
      EXPECT_STREQ(e.what(), "source is down");
    }
  }
  EXPECT_EQ(loads, 1);
  EXPECT_FALSE(mem->get("k"));
  EXPECT_EQ(detail::FlightRegistry::instance().waiters(mem.get(), "k"), 0u);
  // The next call loads anew.
  EXPECT_EQ(cache.get_or_set("k", [] { return std::string("back"); }), "back");
}

TEST(GetOrSet, RefreshAheadReloadsOnceWhileOthersGetTheCurrentValue) {
  test_clock::FakeSteady clock;
  MemoryOptions mo;
  mo.now = clock.fn();
  auto mem = std::make_shared<MemoryBackend>(mo);
  Cache<std::string> cache(mem);
  GetOrSetOptions o;
  o.refresh_ahead = 2s;
  std::atomic<int> loads{0};
  auto load = [&](std::string v) {
    return [&, v] {
      ++loads;
      return v;
    };
  };
  EXPECT_EQ(cache.get_or_set("k", load("v1"), 10s, o), "v1");
  clock.ms->store(7000);  // 3 s left: not yet
  EXPECT_EQ(cache.get_or_set("k", load("unused"), 10s, o), "v1");
  EXPECT_EQ(loads, 1);

  clock.ms->store(8500);  // 1.5 s left: one caller refreshes, the others are not held up
  std::promise<void> release;
  auto refresher = std::async(std::launch::async, [&] {
    return cache.get_or_set("k", [&] {
      ++loads;
      release.get_future().wait();
      return std::string("v2");
    }, 10s, o);
  });
  while (loads < 2) std::this_thread::sleep_for(1ms);
  for (int i = 0; i < 3; ++i) EXPECT_EQ(cache.get_or_set("k", load("unused"), 10s, o), "v1");
  release.set_value();
  EXPECT_EQ(refresher.get(), "v2");
  EXPECT_EQ(loads, 2);
  auto hit = mem->get_entry("k");
  ASSERT_TRUE(hit);
  EXPECT_EQ(hit->value, "v2");
  EXPECT_EQ(*hit->ttl_left, 10s);

  // Entries that never expire are never refreshed.
  cache.set("forever", "f");
  EXPECT_EQ(cache.get_or_set("forever", load("unused"), 10s, o), "f");
  EXPECT_EQ(loads, 2);
}

TEST(GetOrSet, TypedFrontDecodesForWaitersAndChecksOptions) {
  auto mem = std::make_shared<MemoryBackend>();
  Cache<std::vector<std::byte>> cache(mem);
  auto v = cache.get_or_set("b", [] { return std::vector<std::byte>{std::byte{1}, std::byte{2}}; });
  EXPECT_EQ(v.size(), 2u);
  EXPECT_EQ(cache.get_or_set("b", [] { return std::vector<std::byte>{}; }).size(), 2u);
  GetOrSetOptions lease;
  lease.lease = 5s;
  EXPECT_THROW(cache.get_or_set("b", [] { return std::vector<std::byte>{}; }, 0s, lease), InvalidArgumentError);
  GetOrSetOptions bad;
  bad.poll_max = 1ms;
  EXPECT_THROW(cache.get_or_set("c", [] { return std::vector<std::byte>{}; }, 0s, bad), InvalidArgumentError);
  EXPECT_THROW(cache.get_or_set("", [] { return std::vector<std::byte>{}; }), InvalidArgumentError);
}

// A loader that asks for its own key on the same cache would wait for its own flight forever:
// it gets InvalidArgumentError at once; the outer call fails with it and caches nothing, and
// other keys from inside a loader still work (found by a new user: it hung).
TEST(GetOrSet, ALoaderAskingForItsOwnKeyGetsAnErrorNotAHang) {
  Cache<std::string> cache(std::make_shared<MemoryBackend>());
  auto outer = std::async(std::launch::async, [&] {
    return cache.get_or_set("r", [&] { return cache.get_or_set("r", [] { return std::string("in"); }); });
  });
  ASSERT_EQ(outer.wait_for(10s), std::future_status::ready) << "the loader waited for itself";
  EXPECT_THROW(outer.get(), InvalidArgumentError);
  EXPECT_FALSE(cache.get("r"));
  EXPECT_EQ(cache.get_or_set("a", [&] { return cache.get_or_set("b", [] { return std::string("b"); }) + "a"; }),
            "ba");
}

TEST(GetOrSet, StaleIfErrorOptionsAreChecked) {
  MemoryBackend memory;
  auto ok = [] { return std::string("v"); };
  GetOrSetOptions o;
  o.stale_if_error = -1ms;
  EXPECT_THROW(get_or_set(memory, "k", ok, 1s, o), InvalidArgumentError);
  o.stale_if_error = 0ms;
  o.load_timeout = -1ms;
  EXPECT_THROW(get_or_set(memory, "k", ok, 1s, o), InvalidArgumentError);
  o.load_timeout = 100ms;  // without stale_if_error: nothing to serve instead
  EXPECT_THROW(get_or_set(memory, "k", ok, 1s, o), InvalidArgumentError);
  // The grace needs the item layout of DynamoDB: a memory backend says so.
  o.stale_if_error = 10s;
  try {
    get_or_set(memory, "k", ok, 1s, o);
    ADD_FAILURE() << "no error";
  } catch (const InvalidArgumentError& e) {
    EXPECT_NE(std::string(e.what()).find("stale_if_error"), std::string::npos) << e.what();
  }
  EXPECT_FALSE(memory.get("k"));
  // The typed front: the entry form, never stale without the option.
  Cache<std::string> cache(std::make_shared<MemoryBackend>());
  auto e = cache.get_or_set_entry("k", ok, 1s);
  EXPECT_EQ(e.value, "v");
  EXPECT_FALSE(e.stale);
}

TEST(BackgroundPool, ABackendsDrainWaitsForItsRunningTasksAndDropsQueuedOnes) {
  auto& pool = detail::BackgroundPool::instance();
  int owner = 0, other = 0;
  std::promise<void> started, release;
  std::shared_future<void> released = release.get_future().share();
  std::atomic<int> ran{0};
  ASSERT_TRUE(pool.submit(&owner, [&, released] {
    started.set_value();
    released.wait();
    ++ran;
  }));
  started.get_future().wait();
  EXPECT_EQ(pool.pending(&owner), 1u);
  auto drained = std::async(std::launch::async, [&] { pool.drain(&owner); });
  EXPECT_EQ(drained.wait_for(100ms), std::future_status::timeout) << "drain waits for the running task";
  // While draining, the owner's new tasks are refused; another owner's run.
  EXPECT_TRUE(eventually_refused(pool, &owner));
  std::promise<void> other_ran;
  ASSERT_TRUE(pool.submit(&other, [&] { other_ran.set_value(); }));
  EXPECT_EQ(other_ran.get_future().wait_for(10s), std::future_status::ready);
  release.set_value();
  drained.get();
  EXPECT_EQ(ran, 1);
  EXPECT_EQ(pool.pending(&owner), 0u);
}
