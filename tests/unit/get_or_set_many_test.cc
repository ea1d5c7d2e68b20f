// get_or_set_many (bulk loads) over the memory backend: one load of exactly the missing keys,
// single flight per key shared with concurrent get_or_set_many and get_or_set calls, the
// asynchronous and typed forms. Against DynamoDB: tests/integration/get_or_set_many_it.cc.
#include <gtest/gtest.h>

#include <atomic>
#include <future>
#include <latch>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include "cache/single_flight.h"
#include "dynamodb_cache/cache.h"
#include "fake_steady.h"

using namespace dynamodb_cache;
using namespace std::chrono_literals;

namespace {

using Bytes = std::vector<std::optional<std::string>>;
using Keys = std::vector<std::string>;

// Blocks until `n` callers wait on the flight of (backend, key); fails the test after 10 s.
void await_waiters(const Backend& b, std::string_view key, std::size_t n) {
  auto until = std::chrono::steady_clock::now() + 10s;
  while (detail::FlightRegistry::instance().waiters(&b, key) < n) {
    if (std::chrono::steady_clock::now() > until) {
      ADD_FAILURE() << "waiters on " << key << " never reached " << n;
      return;
    }
    std::this_thread::sleep_for(1ms);
  }
}

// A loader that records the keys of each call and answers "v:" + key, except for keys in
// `none` (no value).
struct Recorder {
  std::mutex mu;
  std::vector<Keys> calls;
  std::set<std::string> none;
  ManyLoader loader() {
    return [this](const Keys& missing) {
      std::lock_guard lock(mu);
      calls.push_back(missing);
      Bytes out;
      for (const auto& k : missing) out.push_back(none.count(k) ? std::nullopt : std::optional("v:" + k));
      return out;
    };
  }
};

}  // namespace

TEST(GetOrSetMany, LoadsOnceWithExactlyTheMissingKeysAndAnswersEachPosition) {
  MemoryBackend mem;
  mem.set("b", "stored b", 0s);
  Recorder r;
  r.none = {"d"};
  auto got = get_or_set_many(mem, {"a", "b", "c", "a", "d", "c"}, r.loader(), 60s);
  ASSERT_EQ(r.calls.size(), 1u);
  EXPECT_EQ(r.calls[0], (Keys{"a", "c", "d"})) << "the missing keys, each once, in order";
  EXPECT_EQ(got, (Bytes{"v:a", "stored b", "v:c", "v:a", std::nullopt, "v:c"}));
  EXPECT_EQ(mem.stats().loads, 1u);
  // Stored with the TTL; a key the loader had no value for is not cached.
  auto a = mem.get_entry("a");
  ASSERT_TRUE(a);
  EXPECT_EQ(a->value, "v:a");
  ASSERT_TRUE(a->ttl_left);
  EXPECT_GT(*a->ttl_left, 59s);
  EXPECT_EQ(*mem.get("c"), "v:c");
  EXPECT_FALSE(mem.get("d"));
  // Hits are not loaded again: only d is.
  EXPECT_EQ(get_or_set_many(mem, {"d", "a", "b", "c"}, r.loader(), 60s),
            (Bytes{std::nullopt, "v:a", "stored b", "v:c"}));
  ASSERT_EQ(r.calls.size(), 2u);
  EXPECT_EQ(r.calls[1], (Keys{"d"}));
  // All hits: no load at all; no keys: nothing.
  r.none.clear();
  EXPECT_EQ(get_or_set_many(mem, {"a", "c"}, r.loader(), 60s), (Bytes{"v:a", "v:c"}));
  EXPECT_EQ(get_or_set_many(mem, {}, r.loader(), 60s), Bytes{});
  EXPECT_EQ(r.calls.size(), 2u);
  EXPECT_EQ(mem.stats().loads, 2u);
  EXPECT_EQ(detail::FlightRegistry::instance().waiters(&mem, "d"), 0u);
}

TEST(GetOrSetMany, AWrongResultCountOrALoaderExceptionReachesTheCallerAndNothingIsCached) {
  MemoryBackend mem;
  int calls = 0;
  auto short_loader = [&](const Keys&) {
    ++calls;
    return Bytes{"only one"};
  };
  try {
    get_or_set_many(mem, {"x", "y"}, short_loader, 0s);
    ADD_FAILURE() << "no exception";
  } catch (const InvalidArgumentError& e) {
    EXPECT_NE(std::string(e.what()).find("returned 1 results for 2 keys"), std::string::npos) << e.what();
  }
  EXPECT_FALSE(mem.get("x"));
  auto throwing = [&](const Keys&) -> Bytes {
    ++calls;
    throw std::runtime_error("source is down");
  };
  EXPECT_THROW(get_or_set_many(mem, {"x", "y"}, throwing, 0s), std::runtime_error);
  EXPECT_FALSE(mem.get("x"));
  EXPECT_FALSE(mem.get("y"));
  EXPECT_EQ(calls, 2);
  EXPECT_EQ(mem.stats().loads, 2u);
  // The flights ended: the next call loads anew, without waiting.
  Recorder r;
  EXPECT_EQ(get_or_set_many(mem, {"x", "y"}, r.loader(), 0s), (Bytes{"v:x", "v:y"}));
  // Bad arguments.
  EXPECT_THROW(get_or_set_many(mem, {"ok", ""}, r.loader(), 0s), InvalidArgumentError);
  EXPECT_THROW(get_or_set_many(mem, {"ok"}, r.loader(), -1ms), InvalidArgumentError);
  EXPECT_THROW(get_or_set_many(mem, {"ok"}, r.loader(), 0s, {.ttl_jitter = 1}), InvalidArgumentError);
  EXPECT_THROW(get_or_set_many(mem, {"ok"}, ManyLoader(), 0s), InvalidArgumentError);
}

// A loads k1..k3 and is held inside its loader; B asks for k2..k4: it loads only k4, waits
// for A's k2 and k3, and gets A's values. A waiter of a key that fails gets the exception.
TEST(GetOrSetMany, OverlappingCallsShareTheLoadsOfTheirCommonKeys) {
  MemoryBackend mem;
  std::latch a_loading(1), release(1);
  Keys a_keys, b_keys;
  auto a = std::async(std::launch::async, [&] {
    return get_or_set_many(
        mem, {"k1", "k2", "k3"},
        [&](const Keys& missing) {
          a_keys = missing;
          a_loading.count_down();
          release.wait();
          return Bytes{"A1", "A2", std::nullopt};
        },
        0s);
  });
  a_loading.wait();
  auto b = std::async(std::launch::async, [&] {
    return get_or_set_many(
        mem, {"k2", "k3", "k4"},
        [&](const Keys& missing) {
          b_keys = missing;
          return Bytes{"B4"};
        },
        0s);
  });
  await_waiters(mem, "k2", 1);
  release.count_down();
  EXPECT_EQ(a.get(), (Bytes{"A1", "A2", std::nullopt}));
  EXPECT_EQ(b.get(), (Bytes{"A2", std::nullopt, "B4"}));
  EXPECT_EQ(a_keys, (Keys{"k1", "k2", "k3"}));
  EXPECT_EQ(b_keys, (Keys{"k4"}));
  EXPECT_EQ(mem.stats().loads, 2u);

  std::latch failing(1), fail_now(1);
  auto c = std::async(std::launch::async, [&] {
    return get_or_set_many(
        mem, {"e1"},
        [&](const Keys&) -> Bytes {
          failing.count_down();
          fail_now.wait();
          throw std::runtime_error("down");
        },
        0s);
  });
  failing.wait();
  Recorder d_loader;
  auto d = std::async(std::launch::async, [&] {
    return get_or_set_many(mem, {"e1", "k1"}, d_loader.loader(), 0s);
  });
  await_waiters(mem, "e1", 1);
  fail_now.count_down();
  EXPECT_THROW(c.get(), std::runtime_error);
  EXPECT_THROW(d.get(), std::runtime_error);
}

// A call finishes the loads it leads before it waits for anyone else's: while it waits for a
// key another caller leads, its own keys are already stored and their flights over. So calls
// that lead some keys and wait for others never wait in a circle.
TEST(GetOrSetMany, ACallEndsItsOwnLoadsBeforeWaitingSoOverlappingCallsNeverDeadlock) {
  MemoryBackend mem;
  auto& registry = detail::FlightRegistry::instance();
  auto other = registry.join(&mem, "y");  // another caller leads y
  ASSERT_TRUE(other.leader);
  Recorder r;
  auto a = std::async(std::launch::async, [&] { return get_or_set_many(mem, {"x", "y"}, r.loader(), 0s); });
  await_waiters(mem, "y", 1);
  EXPECT_EQ(*mem.get("x"), "v:x");
  auto x = registry.join(&mem, "x");
  EXPECT_TRUE(x.leader) << "A still held the flight of x while waiting for y";
  registry.leave(&mem, "x", x.flight);
  x.flight->finish({""});
  registry.leave(&mem, "y", other.flight);
  other.flight->finish({"from the other"});
  ASSERT_EQ(a.wait_for(10s), std::future_status::ready);
  EXPECT_EQ(a.get(), (Bytes{"v:x", "from the other"}));

  // Many rounds of two calls over the same keys in opposite orders: each key loaded once per
  // round, and every call returns.
  for (int round = 0; round < 50; ++round) {
    Keys keys;
    for (int i = 0; i < 6; ++i) keys.push_back("r" + std::to_string(round) + "-" + std::to_string(i));
    Keys reversed(keys.rbegin(), keys.rend());
    std::mutex mu;
    std::map<std::string, int> loads;
    auto counting = [&](const Keys& missing) {
      std::lock_guard lock(mu);
      Bytes out;
      for (const auto& k : missing) {
        ++loads[k];
        out.push_back("v:" + k);
      }
      return out;
    };
    std::latch go(2);
    auto run = [&](const Keys& ks) {
      go.arrive_and_wait();
      return get_or_set_many(mem, ks, counting, 0s);
    };
    auto f1 = std::async(std::launch::async, run, keys);
    auto f2 = std::async(std::launch::async, run, reversed);
    ASSERT_EQ(f1.wait_for(10s), std::future_status::ready) << "deadlock in round " << round;
    ASSERT_EQ(f2.wait_for(10s), std::future_status::ready) << "deadlock in round " << round;
    auto r1 = f1.get(), r2 = f2.get();
    for (size_t i = 0; i < keys.size(); ++i) {
      EXPECT_EQ(r1[i], "v:" + keys[i]);
      EXPECT_EQ(r2[i], "v:" + reversed[i]);
      EXPECT_EQ(loads[keys[i]], 1) << keys[i];
    }
  }
}

TEST(GetOrSetMany, SharesLoadsWithAPlainGetOrSetOfOneKey) {
  MemoryBackend mem;
  // get_or_set leads k: get_or_set_many loads only m and takes get_or_set's k.
  {
    std::latch loading(1), release(1);
    auto single = std::async(std::launch::async, [&] {
      return get_or_set(
          mem, "k",
          [&] {
            loading.count_down();
            release.wait();
            return std::string("single k");
          },
          0s);
    });
    loading.wait();
    Recorder r;
    auto many = std::async(std::launch::async, [&] {
      return get_or_set_many(mem, {"k", "m"}, r.loader(), 0s);
    });
    await_waiters(mem, "k", 1);
    release.count_down();
    EXPECT_EQ(single.get(), "single k");
    EXPECT_EQ(many.get(), (Bytes{"single k", "v:m"}));
    ASSERT_EQ(r.calls.size(), 1u);
    EXPECT_EQ(r.calls[0], Keys{"m"});
  }
  // get_or_set_many leads: get_or_set waits for its value; for a key it had none for,
  // get_or_set gets an error saying so.
  for (bool has_value : {true, false}) {
    std::string key = has_value ? "n1" : "n2";
    std::latch loading(1), release(1);
    auto many = std::async(std::launch::async, [&] {
      return get_or_set_many(
          mem, {key},
          [&](const Keys&) {
            loading.count_down();
            release.wait();
            return has_value ? Bytes{"many"} : Bytes{std::nullopt};
          },
          0s);
    });
    loading.wait();
    int single_loads = 0;
    auto single = std::async(std::launch::async, [&] {
      return get_or_set(
          mem, key,
          [&] {
            ++single_loads;
            return std::string("single");
          },
          0s);
    });
    await_waiters(mem, key, 1);
    release.count_down();
    if (has_value) {
      EXPECT_EQ(many.get(), Bytes{"many"});
      EXPECT_EQ(single.get(), "many");
    } else {
      EXPECT_EQ(many.get(), Bytes{std::nullopt});
      try {
        single.get();
        ADD_FAILURE() << "no exception";
      } catch (const InvalidArgumentError& e) {
        EXPECT_NE(std::string(e.what()).find("had no value"), std::string::npos) << e.what();
      }
    }
    EXPECT_EQ(single_loads, 0);
  }
}

// A loader that asks for a key it is loading gets an error at once, not a hang.
TEST(GetOrSetMany, ALoaderAskingForItsOwnKeyGetsAnErrorNotAHang) {
  MemoryBackend mem;
  auto outer = std::async(std::launch::async, [&] {
    return get_or_set_many(
        mem, {"p", "q"},
        [&](const Keys& missing) {
          get_or_set(
              mem, "q", [] { return std::string("inner"); }, 0s);
          return Bytes(missing.size(), "x");
        },
        0s);
  });
  ASSERT_EQ(outer.wait_for(10s), std::future_status::ready) << "the loader waited for itself";
  EXPECT_THROW(outer.get(), InvalidArgumentError);
  EXPECT_FALSE(mem.get("p"));
}

TEST(GetOrSetMany, AsynchronousForms) {
  auto mem = std::make_shared<MemoryBackend>();
  mem->set("hit", "h", 0s);
  Recorder r;
  EXPECT_EQ(get_or_set_many_async(*mem, {"hit", "miss"}, r.loader(), 10s).get(), (Bytes{"h", "v:miss"}));
  std::promise<Outcome<Bytes>> got;
  get_or_set_many_async(*mem, {"miss", "other"}, r.loader(), 10s, {},
                        [&](Outcome<Bytes> o) { got.set_value(std::move(o)); });
  auto o = got.get_future().get();
  ASSERT_TRUE(o.ok());
  EXPECT_EQ(o.value(), (Bytes{"v:miss", "v:other"}));
  ASSERT_EQ(r.calls.size(), 2u);
  EXPECT_EQ(r.calls[1], Keys{"other"});
  // Errors arrive in the outcome.
  auto bad = get_or_set_many_async(*mem, {""}, r.loader(), 10s);
  EXPECT_THROW(bad.get(), InvalidArgumentError);

  // Single flight as in the blocking form: an async call waits for a load another caller leads.
  std::latch loading(1), release(1);
  auto blocking = std::async(std::launch::async, [&] {
    return get_or_set_many(
        *mem, {"s"},
        [&](const Keys&) {
          loading.count_down();
          release.wait();
          return Bytes{"shared"};
        },
        0s);
  });
  loading.wait();
  // Over memory the asynchronous form runs inline (run_blocking): on a thread of its own here.
  auto async = std::async(std::launch::async,
                          [&] { return get_or_set_many_async(*mem, {"s"}, r.loader(), 0s).get(); });
  await_waiters(*mem, "s", 1);
  release.count_down();
  EXPECT_EQ(async.get(), Bytes{"shared"});
  EXPECT_EQ(blocking.get(), Bytes{"shared"});
  EXPECT_EQ(r.calls.size(), 2u);
}

namespace {

// ints as decimal text; counts its decodes.
struct IntCodec {
  std::shared_ptr<std::atomic<int>> decodes = std::make_shared<std::atomic<int>>(0);
  std::string encode(const int& v) const { return std::to_string(v); }
  int decode(std::string_view b) const {
    ++*decodes;
    if (b.empty() || b.find_first_not_of("-0123456789") != std::string_view::npos)
      throw std::invalid_argument("not an int");
    return std::stoi(std::string(b));
  }
};

}  // namespace

TEST(GetOrSetMany, TypedFormEncodesLoadsAndDecodesTheRest) {
  auto mem = std::make_shared<MemoryBackend>();
  IntCodec codec;
  Cache<int, IntCodec> cache(mem, codec);
  cache.set("one", 1);
  std::vector<Keys> calls;
  auto load = [&](const Keys& missing) {
    calls.push_back(missing);
    std::vector<std::optional<int>> out;
    for (const auto& k : missing)
      out.push_back(k == "none" ? std::nullopt : std::optional<int>(int(k.size())));
    return out;
  };
  *codec.decodes = 0;
  auto got = cache.get_or_set_many({"one", "three", "none", "three"}, load, 30s);
  EXPECT_EQ(got, (std::vector<std::optional<int>>{1, 5, std::nullopt, 5}));
  ASSERT_EQ(calls.size(), 1u);
  EXPECT_EQ(calls[0], (Keys{"three", "none"}));
  // "one" decoded, and the repeated "three"; the first "three" as the loader returned it.
  EXPECT_EQ(*codec.decodes, 2);
  EXPECT_EQ(*mem->get("three"), "5");
  EXPECT_FALSE(mem->get("none"));
  EXPECT_EQ(cache.get_or_set_many({"three"}, load, 30s), (std::vector<std::optional<int>>{5}));
  EXPECT_EQ(calls.size(), 1u);

  // Asynchronous forms.
  EXPECT_EQ(cache.get_or_set_many_async(Keys{"one", "four"}, load, 30s).get(),
            (std::vector<std::optional<int>>{1, 4}));
  std::promise<Outcome<std::vector<std::optional<int>>>> done;
  cache.get_or_set_many_async(
      Keys{"four", "fives"}, load, 30s,
      [&](Outcome<std::vector<std::optional<int>>> o) { done.set_value(std::move(o)); });
  auto o = done.get_future().get();
  ASSERT_TRUE(o.ok());
  EXPECT_EQ(o.value(), (std::vector<std::optional<int>>{4, 5}));
  ASSERT_EQ(calls.size(), 3u);
  EXPECT_EQ(calls[2], Keys{"fives"});
  // A wrong count from the typed loader is the same error.
  EXPECT_THROW(cache.get_or_set_many({"new"}, [](const Keys&) { return std::vector<std::optional<int>>{}; }),
               InvalidArgumentError);
  EXPECT_FALSE(mem->get("new"));
}

TEST(GetOrSetMany, TypedFormJittersTheTtlPerGroupOf25AndReloadsUndecodableValues) {
  test_clock::FakeSteady clock;
  MemoryOptions mo;
  mo.now = clock.fn();
  auto mem = std::make_shared<MemoryBackend>(mo);
  Cache<int, IntCodec> cache(mem, IntCodec(), {.ttl_jitter = 0.5});
  Keys keys;
  for (int i = 0; i < 60; ++i) keys.push_back("j" + std::to_string(i));
  auto load = [](const Keys& missing) { return std::vector<std::optional<int>>(missing.size(), 7); };
  cache.get_or_set_many(keys, load, 100s);
  std::set<Ttl> ttls;
  for (size_t i = 0; i < keys.size(); ++i) {
    auto e = mem->get_entry(keys[i]);
    ASSERT_TRUE(e);
    EXPECT_GE(*e->ttl_left, 50s);
    EXPECT_LE(*e->ttl_left, 150s);
    ttls.insert(*e->ttl_left);
    if (i % 25 != 0) {
      EXPECT_EQ(*e->ttl_left, *mem->get_entry(keys[i - 1])->ttl_left) << "one TTL per group";
    }
  }
  EXPECT_LE(ttls.size(), 3u);
  EXPECT_GE(ttls.size(), 2u) << "three groups drew the same TTL (a chance of about 1e-10)";

  // Under decode_error_is_miss, a value that does not decode is loaded again and stored over.
  Cache<int, IntCodec> lenient(mem, IntCodec(),
                               {.decode_error_is_miss = true, .log = [](LogLevel, std::string_view) {}});
  mem->set("bad", "not a number", 0s);
  std::vector<Keys> calls;
  auto counting = [&](const Keys& missing) {
    calls.push_back(missing);
    return std::vector<std::optional<int>>(missing.size(), 9);
  };
  EXPECT_EQ(lenient.get_or_set_many({"bad", "fresh", "bad"}, counting, 0s),
            (std::vector<std::optional<int>>{9, 9, 9}));
  ASSERT_EQ(calls.size(), 2u);
  EXPECT_EQ(calls[0], Keys{"fresh"});
  EXPECT_EQ(calls[1], Keys{"bad"});
  EXPECT_EQ(*mem->get("bad"), "9");
  EXPECT_EQ(mem->stats().decode_errors, 2u);
}

namespace {

// A MemoryBackend whose next get_many runs `after_read` once, after reading.
class HookedBackend final : public Backend {
 public:
  std::optional<Hit> get_entry(std::string_view key) override { return mem_.get_entry(key); }
  void set(std::string_view key, std::string_view value, Ttl ttl) override { mem_.set(key, value, ttl); }
  void erase(std::string_view key) override { mem_.erase(key); }
  void clear(const std::function<void(uint64_t)>& progress) override { mem_.clear(progress); }
  bool touch(std::string_view key, Ttl ttl) override { return mem_.touch(key, ttl); }
  bool add(std::string_view key, std::string_view value, Ttl ttl) override { return mem_.add(key, value, ttl); }
  int64_t increment(std::string_view key, int64_t delta, Ttl ttl) override {
    return mem_.increment(key, delta, ttl);
  }
  std::vector<std::optional<Hit>> get_many(const std::vector<std::string>& keys) override {
    auto hits = mem_.get_many(keys);
    if (auto hook = std::exchange(after_read, nullptr)) hook();
    return hits;
  }
  std::function<void()> after_read;

 private:
  MemoryBackend mem_;
};

}  // namespace

// Another caller's load of a key ends between this call's read (a miss) and its join: the
// call becomes the key's leader, reads it again, and takes the stored value without loading.
TEST(GetOrSetMany, AKeyStoredBetweenTheReadAndTheJoinIsReadAgainNotLoaded) {
  HookedBackend b;
  b.after_read = [&] { EXPECT_EQ(get_or_set(b, "k", [] { return std::string("other"); }, 0s), "other"); };
  Recorder r;
  EXPECT_EQ(get_or_set_many(b, {"k", "m"}, r.loader(), 0s), (Bytes{"other", "v:m"}));
  ASSERT_EQ(r.calls.size(), 1u);
  EXPECT_EQ(r.calls[0], Keys{"m"});
}
