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
#include "pool_idle.h"

using namespace dynamodb_cache;
using namespace std::chrono_literals;
using testing_support::await_idle;

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
std::vector<std::future<std::string>> stampede(Cache<std::string>& cache, int callers,
                                               std::atomic<int>& loads, std::function<std::string()> finish) {
  std::vector<std::future<std::string>> results;
  for (int i = 0; i < callers; ++i)
    results.push_back(std::async(std::launch::async, [&cache, &loads, finish, callers] {
      return cache.get_or_set(
          "k",
          [&] {
            ++loads;
            await_waiters(cache.backend(), "k", static_cast<std::size_t>(callers - 1));
            return finish();
          },
          60s);
    }));
  return results;
}

// A memory backend on a clock of the test's, for refreshes ahead of expiry (refresh_ahead 2 s).
struct Refreshing {
  test_clock::FakeSteady clock;
  std::shared_ptr<MemoryBackend> mem = std::make_shared<MemoryBackend>(MemoryOptions{.now = clock.fn()});
  GetOrSetOptions o = [] {
    GetOrSetOptions o;
    o.refresh_ahead = 2s;
    return o;
  }();
};

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
  auto results =
      stampede(cache, kCallers, loads, []() -> std::string { throw std::runtime_error("source is down"); });
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

namespace {

// A Backend of the user's own (over a MemoryBackend): its destructor cannot drain the pool.
class OwnBackend final : public Backend {
 public:
  explicit OwnBackend(std::shared_ptr<MemoryBackend> mem) : mem_(std::move(mem)) {}
  std::optional<Hit> get_entry(std::string_view key) override { return mem_->get_entry(key); }
  void set(std::string_view key, std::string_view value, Ttl ttl) override { mem_->set(key, value, ttl); }
  void erase(std::string_view key) override { mem_->erase(key); }
  void clear(const std::function<void(uint64_t)>& progress) override { mem_->clear(progress); }
  bool touch(std::string_view key, Ttl ttl) override { return mem_->touch(key, ttl); }
  bool add(std::string_view key, std::string_view value, Ttl ttl) override {
    return mem_->add(key, value, ttl);
  }
  int64_t increment(std::string_view key, int64_t delta, Ttl ttl) override {
    return mem_->increment(key, delta, ttl);
  }

 private:
  std::shared_ptr<MemoryBackend> mem_;
};

}  // namespace

// Over a Backend of the user's own nothing waits for a pool task when it is destroyed, so a
// refresh there is no background task: the caller that noticed it reloads, as a load.
TEST(GetOrSet, OverAnOwnBackendTheRefreshRunsOnTheCallersThread) {
  Refreshing r;
  auto& clock = r.clock;
  auto& mem = r.mem;
  auto& o = r.o;
  OwnBackend own(mem);
  EXPECT_EQ(get_or_set(
                own, "k", [] { return std::string("v1"); }, 10s, o),
            "v1");
  clock.ms->store(8500);  // 1.5 s left: due
  std::thread::id loaded_on;
  EXPECT_EQ(get_or_set(
                own, "k",
                [&] {
                  loaded_on = std::this_thread::get_id();
                  return std::string("v2");
                },
                10s, o),
            "v2");
  EXPECT_EQ(loaded_on, std::this_thread::get_id());
  EXPECT_EQ(detail::BackgroundPool::instance().pending(&own), 0u);
  EXPECT_EQ(*mem->get("k"), "v2");
}

// Issue 24: a refresh ahead of expiry runs in the background; the caller that noticed it gets
// the current value at once, like every other caller, and one reload runs at a time per key.
TEST(GetOrSet, RefreshAheadReloadsInTheBackgroundAndNoCallerWaitsForIt) {
  Refreshing r;
  auto& clock = r.clock;
  auto& mem = r.mem;
  auto& o = r.o;
  Cache<std::string> cache(mem);
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

  clock.ms->store(8500);  // 1.5 s left: due. The reload waits on `release`.
  std::promise<void> loading, release;
  std::shared_future<void> released = release.get_future().share();
  auto blocked = [&, released] {
    ++loads;
    loading.set_value();
    released.wait();
    return std::string("v2");
  };
  // Returns while its reload is held: it did not wait for it.
  EXPECT_EQ(cache.get_or_set("k", blocked, 10s, o), "v1");
  loading.get_future().wait();
  // Others, from many threads, get the current value and start no second reload.
  std::vector<std::future<std::string>> others;
  for (int i = 0; i < 8; ++i)
    others.push_back(
        std::async(std::launch::async, [&] { return cache.get_or_set("k", load("unused"), 10s, o); }));
  for (auto& r : others) EXPECT_EQ(r.get(), "v1");
  EXPECT_EQ(loads, 2);
  EXPECT_EQ(detail::BackgroundPool::instance().pending(mem.get()), 1u);
  release.set_value();
  await_idle(mem.get());
  EXPECT_EQ(loads, 2);
  auto hit = mem->get_entry("k");
  ASSERT_TRUE(hit);
  EXPECT_EQ(hit->value, "v2");
  EXPECT_EQ(*hit->ttl_left, 10s);
  EXPECT_EQ(cache.get_or_set("k", load("unused"), 10s, o), "v2");
  EXPECT_EQ(mem->stats().refresh_failures, 0u);

  // Entries that never expire are never refreshed.
  cache.set("forever", "f");
  EXPECT_EQ(cache.get_or_set("forever", load("unused"), 10s, o), "f");
  await_idle(mem.get());
  EXPECT_EQ(loads, 2);
}

// A reload that fails is counted and never thrown: its caller got the current value, and the
// next hit tries again.
TEST(GetOrSet, AFailingRefreshIsCountedAndNeverThrown) {
  Refreshing r;
  auto& clock = r.clock;
  auto& mem = r.mem;
  auto& o = r.o;
  EXPECT_EQ(get_or_set(
                *mem, "k", [] { return std::string("v1"); }, 10s, o),
            "v1");
  clock.ms->store(9000);
  std::atomic<int> calls{0};
  auto failing = [&]() -> std::string {
    ++calls;
    throw std::runtime_error("source is down");
  };
  EXPECT_EQ(get_or_set(*mem, "k", failing, 10s, o), "v1");
  await_idle(mem.get());
  EXPECT_EQ(calls, 1);
  EXPECT_EQ(mem->stats().refresh_failures, 1u);
  EXPECT_EQ(get_or_set(*mem, "k", failing, 10s, o), "v1");
  await_idle(mem.get());
  EXPECT_EQ(calls, 2);
  EXPECT_EQ(mem->stats().refresh_failures, 2u);
  EXPECT_EQ(*mem->get("k"), "v1");
  // The registry has let go of the key: a reload that works replaces the value.
  EXPECT_EQ(get_or_set(
                *mem, "k", [] { return std::string("v2"); }, 10s, o),
            "v1");
  await_idle(mem.get());
  EXPECT_EQ(*mem->get("k"), "v2");
}

// get_or_set_async with a refresh due completes with the current value while the reload is
// held; and the typed form's loader, which captures its state by value, is owned by the reload
// (the call's scope, the loader object and the Cache are gone when it runs).
TEST(GetOrSet, AsyncAndTypedRefreshesOwnTheirLoaderAndDoNotWait) {
  Refreshing r;
  auto& clock = r.clock;
  auto& mem = r.mem;
  auto& o = r.o;
  mem->set("k", "v1", 10s);
  clock.ms->store(9000);
  std::promise<void> release;
  std::shared_future<void> released = release.get_future().share();
  auto pending = get_or_set_async(
      *mem, "k",
      [released] {
        released.wait();
        return std::string("v2");
      },
      10s, o);
  EXPECT_EQ(pending.get(), "v1");
  release.set_value();
  await_idle(mem.get());
  EXPECT_EQ(*mem->get("k"), "v2");

  // Typed: a loader object that says whether it is still alive when it runs.
  struct Loader {
    std::string value;
    std::shared_future<void> go;
    std::atomic<uint64_t> alive{0xA11CE};
    Loader(std::string v, std::shared_future<void> g) : value(std::move(v)), go(std::move(g)) {}
    Loader(const Loader& other) : value(other.value), go(other.go) {}
    ~Loader() { alive = 0; }
    std::string operator()() const {
      go.wait();
      return alive == 0xA11CE ? value : std::string("a destroyed loader");
    }
  };
  for (bool async : {false, true}) {
    const std::string key = async ? "typed-async" : "typed";
    mem->set(key, "t1", 10s);
    clock.ms->store(clock.ms->load() + 9000);  // 1 s left: due
    std::promise<void> go;
    {
      Cache<std::string> cache(mem);
      Loader loader(std::string("t2"), go.get_future().share());
      if (async)
        EXPECT_EQ(cache.get_or_set_async(key, loader, 10s, o).get(), "t1");
      else
        EXPECT_EQ(cache.get_or_set(key, loader, 10s, o), "t1");
    }
    go.set_value();
    await_idle(mem.get());
    EXPECT_EQ(*mem->get(key), "t2") << key;
  }
}

TEST(GetOrSet, TypedFrontDecodesForWaitersAndChecksOptions) {
  auto mem = std::make_shared<MemoryBackend>();
  Cache<std::vector<std::byte>> cache(mem);
  auto v = cache.get_or_set("b", [] { return std::vector<std::byte>{std::byte{1}, std::byte{2}}; });
  EXPECT_EQ(v.size(), 2u);
  EXPECT_EQ(cache.get_or_set("b", [] { return std::vector<std::byte>{}; }).size(), 2u);
  GetOrSetOptions lease;
  lease.lease = 5s;
  EXPECT_THROW(cache.get_or_set(
                   "b", [] { return std::vector<std::byte>{}; }, 0s, lease),
               InvalidArgumentError);
  GetOrSetOptions bad;
  bad.poll_max = 1ms;
  EXPECT_THROW(cache.get_or_set(
                   "c", [] { return std::vector<std::byte>{}; }, 0s, bad),
               InvalidArgumentError);
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
  EXPECT_EQ(
      cache.get_or_set("a", [&] { return cache.get_or_set("b", [] { return std::string("b"); }) + "a"; }),
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

// The loader decides, over a backend without a table: its TTL is the value's, an uncached
// value is handed over and not stored, and "missing" is answered std::nullopt.
// The asynchronous forms of a loader that decides, byte level and typed, Pending and callback.
TEST(GetOrSet, AsyncLoadersDecideToo) {
  test_clock::FakeSteady clock;
  MemoryOptions mo;
  mo.now = clock.fn();
  auto mem = std::make_shared<MemoryBackend>(mo);
  EXPECT_EQ(get_or_set_async(
                *mem, "t", [] { return Loaded::found("v", 5s); }, 60s)
                .get(),
            std::optional<std::string>("v"));
  EXPECT_EQ(*mem->get_entry("t")->ttl_left, 5s);
  EXPECT_EQ(get_or_set_async(
                *mem, "m", [] { return Loaded::missing(); }, 60s)
                .get(),
            std::nullopt);
  EXPECT_FALSE(mem->get("m"));
  Cache<std::string> cache(mem);
  EXPECT_EQ(cache
                .get_or_set_async(
                    "u", [] { return LoadResult<std::string>::uncached("u"); }, 60s)
                .get(),
            std::optional<std::string>("u"));
  EXPECT_FALSE(mem->get("u"));
  std::promise<std::optional<std::string>> got;
  cache.get_or_set_async(
      "c", [] { return LoadResult<std::string>::found("c", 7s); }, 60s, {},
      [&](Outcome<std::optional<std::string>> r) { got.set_value(r.value()); });
  EXPECT_EQ(got.get_future().get(), std::optional<std::string>("c"));
  EXPECT_EQ(*mem->get_entry("c")->ttl_left, 7s);
  // What the loader throws reaches the Pending.
  EXPECT_THROW(cache
                   .get_or_set_async(
                       "x", []() -> LoadResult<std::string> { throw std::runtime_error("down"); }, 60s)
                   .get(),
               std::runtime_error);
  // The string loaders keep their forms.
  EXPECT_EQ(cache
                .get_or_set_async(
                    "s", [] { return std::string("plain"); }, 60s)
                .get(),
            "plain");
}

TEST(GetOrSet, TheLoaderDecidesItsTtlAndWhetherToCache) {
  test_clock::FakeSteady clock;
  MemoryOptions mo;
  mo.now = clock.fn();
  auto mem = std::make_shared<MemoryBackend>(mo);
  EXPECT_EQ(get_or_set(
                *mem, "t", [] { return Loaded::found("v", 5s); }, 60s),
            std::optional<std::string>("v"));
  EXPECT_EQ(*mem->get_entry("t")->ttl_left, 5s);
  std::atomic<int> loads{0};
  auto uncached = [&] {
    ++loads;
    return Loaded::uncached("u");
  };
  EXPECT_EQ(get_or_set(*mem, "u", uncached, 60s), std::optional<std::string>("u"));
  EXPECT_FALSE(mem->get("u"));
  EXPECT_EQ(get_or_set(*mem, "u", uncached, 60s), std::optional<std::string>("u"));
  EXPECT_EQ(loads, 2);
  EXPECT_EQ(get_or_set(
                *mem, "m", [] { return Loaded::missing(); }, 60s),
            std::nullopt);
  EXPECT_FALSE(mem->get("m"));
  // Typed, with ttl_jitter applied to the loader's TTL too; the string forms are unchanged.
  Cache<std::string> cache(mem, {}, TypedOptions{.ttl_jitter = 0.5});
  EXPECT_EQ(cache.get_or_set(
                "typed", [] { return LoadResult<std::string>::found("tv", 10s); }, 60s),
            std::optional<std::string>("tv"));
  auto left = *mem->get_entry("typed")->ttl_left;
  EXPECT_GE(left, 5s);
  EXPECT_LE(left, 15s);
  EXPECT_EQ(cache.get_or_set(
                "plain", [] { return std::string("p"); }, 60s),
            "p");
}
