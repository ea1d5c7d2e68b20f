// Cache<T>'s own options (TypedOptions) and reads with the TTL left (Cache::get_entry).
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <mutex>
#include <set>

#include "dynamodb_cache/cache.h"
#include "dynamodb_cache/make_cache.h"

using namespace dynamodb_cache;
using namespace std::chrono_literals;

namespace {

// A MemoryBackend that records the TTL of every value written through set and add (the
// default batch and asynchronous forms, and get_or_set's store, come through them).
class TtlRecorder : public Backend {
 public:
  std::optional<Hit> get_entry(std::string_view key) override { return mem_.get_entry(key); }
  void set(std::string_view key, std::string_view value, Ttl ttl) override {
    record(ttl);
    mem_.set(key, value, ttl);
  }
  bool add(std::string_view key, std::string_view value, Ttl ttl) override {
    record(ttl);
    return mem_.add(key, value, ttl);
  }
  void erase(std::string_view key) override { mem_.erase(key); }
  void clear(const std::function<void(uint64_t)>& progress) override { mem_.clear(progress); }
  bool touch(std::string_view key, Ttl ttl) override { return mem_.touch(key, ttl); }
  int64_t increment(std::string_view key, int64_t delta, Ttl ttl) override {
    return mem_.increment(key, delta, ttl);
  }

  std::vector<Ttl> ttls() {
    std::lock_guard lock(mu_);
    return ttls_;
  }

 private:
  void record(Ttl ttl) {
    std::lock_guard lock(mu_);
    ttls_.push_back(ttl);
  }
  MemoryBackend mem_;
  std::mutex mu_;
  std::vector<Ttl> ttls_;
};

// Writes `n` values through every write path of Cache<std::string> with a TTL of `ttl`.
void write_every_way(Cache<std::string>& c, int n, Ttl ttl) {
  for (int i = 0; i < n; ++i) {
    const std::string k = std::to_string(i);
    c.set("set" + k, "v", ttl);
    EXPECT_TRUE(c.add("add" + k, "v", ttl));
    c.set_many({{"many" + k, "v"}}, ttl);
    EXPECT_EQ(c.get_or_set(
                  "gos" + k, [] { return std::string("v"); }, ttl),
              "v");
    c.set_async("aset" + k, "v", ttl).get();
    EXPECT_TRUE(c.add_async("aadd" + k, "v", ttl).get());
    c.set_many_async({{"amany" + k, "v"}}, ttl).get();
    EXPECT_EQ(c.get_or_set_async(
                   "agos" + k, [] { return std::string("v"); }, ttl)
                  .get(),
              "v");
  }
}
constexpr int kWritePaths = 8;

}  // namespace

TEST(CacheTtlJitter, SpreadsEveryWrittenTtlWithinItsBounds) {
  auto rec = std::make_shared<TtlRecorder>();
  Cache<std::string> c(rec, {}, {.ttl_jitter = 0.1});
  write_every_way(c, 25, 1000s);
  const auto ttls = rec->ttls();
  ASSERT_EQ(ttls.size(), 25u * kWritePaths);
  std::set<Ttl::rep> distinct;
  for (Ttl t : ttls) {
    EXPECT_GE(t, 900s);
    EXPECT_LE(t, 1100s);
    distinct.insert(t.count());
  }
  // 200 draws from 200,001 milliseconds: all equal only if jitter did nothing.
  EXPECT_GT(distinct.size(), 1u);
  // Every path jitters: each path's 25 draws are not all the exact TTL.
  for (int path = 0; path < kWritePaths; ++path) {
    bool spread = false;
    for (int i = 0; i < 25; ++i) spread |= ttls[static_cast<size_t>(i * kWritePaths + path)] != 1000s;
    EXPECT_TRUE(spread) << "write path " << path;
  }
}

TEST(CacheTtlJitter, SetManySpreadsItsEntriesAndKeepsTheLastValueOfAKey) {
  for (bool async : {false, true}) {
    auto rec = std::make_shared<TtlRecorder>();
    Cache<std::string> c(rec, {}, {.ttl_jitter = 0.1});
    std::vector<std::pair<std::string, std::string>> entries;
    for (int i = 0; i < 200; ++i) entries.emplace_back("k" + std::to_string(i), "v");
    entries.emplace_back("k0", "last");  // the last value of a key wins, as without jitter
    if (async)
      c.set_many_async(entries, 1000s).get();
    else
      c.set_many(entries, 1000s);
    const auto ttls = rec->ttls();
    ASSERT_EQ(ttls.size(), 200u);  // each key once
    std::set<Ttl::rep> distinct;
    for (Ttl t : ttls) {
      EXPECT_GE(t, 900s);
      EXPECT_LE(t, 1100s);
      distinct.insert(t.count());
    }
    EXPECT_GT(distinct.size(), 1u) << "one batch written together expires together";
    EXPECT_EQ(c.get("k0"), "last");
    EXPECT_EQ(c.get("k199"), "v");
  }
}

TEST(CacheTtlJitter, OffByDefaultTtlsAreExact) {
  auto rec = std::make_shared<TtlRecorder>();
  Cache<std::string> c(rec);
  write_every_way(c, 2, 1000s);
  for (Ttl t : rec->ttls()) EXPECT_EQ(t, 1000s);
}

TEST(CacheTtlJitter, NeverExpiringStaysNeverExpiringAndShortTtlsStayPositive) {
  auto rec = std::make_shared<TtlRecorder>();
  Cache<std::string> c(rec, {}, {.ttl_jitter = 0.9});
  write_every_way(c, 2, 0s);
  for (Ttl t : rec->ttls()) EXPECT_EQ(t, 0ms);
  for (int i = 0; i < 50; ++i) {
    c.set("short", "v", 1ms);
    c.set("short", "v", 2ms);
  }
  for (Ttl t : rec->ttls()) {
    if (t != 0ms) {
      EXPECT_GE(t, 1ms);
    }
  }
  // Nor does it push a TTL past the longest a write accepts.
  EXPECT_LE(jitter_ttl(kMaxTtl, 0.5), kMaxTtl);
}

TEST(CacheTtlJitter, InvalidValuesAreRefusedAtConstruction) {
  auto mem = std::make_shared<MemoryBackend>();
  for (double bad : {-0.1, 1.0, 1.5, std::nan(""), std::numeric_limits<double>::infinity()}) {
    EXPECT_THROW(Cache<std::string>(mem, {}, {.ttl_jitter = bad}), InvalidArgumentError) << bad;
    EXPECT_THROW(make_cache<std::string>("t", {.typed = {.ttl_jitter = bad}}), InvalidArgumentError) << bad;
  }
  EXPECT_NO_THROW(Cache<std::string>(mem, {}, {.ttl_jitter = 0.0}));
  EXPECT_NO_THROW(Cache<std::string>(mem, {}, {.ttl_jitter = 0.99}));
}

TEST(CacheGetEntry, GivesTheValueWithItsTtlLeft) {
  auto mem = std::make_shared<MemoryBackend>();
  Cache<std::string> c(mem);
  EXPECT_FALSE(c.get_entry("k"));
  EXPECT_FALSE(c.get_entry_async("k").get());
  c.set("k", "v", 1h);
  auto e = c.get_entry("k");
  ASSERT_TRUE(e);
  EXPECT_EQ(e->value, "v");
  ASSERT_TRUE(e->ttl_left);
  // Written an instant ago for an hour (this test does not take half of it).
  EXPECT_GT(*e->ttl_left, 30min);
  EXPECT_LE(*e->ttl_left, 1h);
  // The TTL left is the backend's: one read of each agrees to within the time between them.
  auto raw = mem->get_entry("k");
  EXPECT_LE(*raw->ttl_left, *e->ttl_left);
  c.set("forever", "w");
  auto f = c.get_entry_async("forever").get();
  ASSERT_TRUE(f);
  EXPECT_EQ(f->value, "w");
  EXPECT_FALSE(f->ttl_left);
  auto a = c.get_entry_async("k").get();
  ASSERT_TRUE(a && a->ttl_left);
  EXPECT_EQ(a->value, "v");
  EXPECT_GT(*a->ttl_left, 30min);
  EXPECT_LE(*a->ttl_left, *e->ttl_left);
  mem->set("k", "v", 0ms);
  EXPECT_FALSE(c.get_entry("k")->ttl_left);
}

namespace {
// Ints as decimal text; anything else does not decode (a value of an older type).
struct IntCodec {
  std::string encode(int v) const { return std::to_string(v); }
  int decode(std::string_view s) const {
    if (s.empty() || s.find_first_not_of("0123456789") != std::string_view::npos)
      throw std::invalid_argument("not an int: " + std::string(s));
    return std::stoi(std::string(s));
  }
};

// A cache of ints over `mem` where "old" holds a string (the type before a deploy).
struct ChangedType {
  std::shared_ptr<MemoryBackend> mem = std::make_shared<MemoryBackend>();
  std::mutex mu;
  std::vector<std::pair<LogLevel, std::string>> logged;
  ChangedType() { Cache<std::string>(mem).set("old", "secret text"); }
  Cache<int, IntCodec> ints(bool as_miss) {
    return Cache<int, IntCodec>(
        mem, {}, {.decode_error_is_miss = as_miss, .log = [this](LogLevel l, std::string_view m) {
                    std::lock_guard lock(mu);
                    logged.emplace_back(l, std::string(m));
                  }});
  }
  uint64_t decode_errors() { return mem->stats().decode_errors.load(); }
};
}  // namespace

TEST(CacheDecodeErrorIsMiss, ReadsAnUndecodableValueAsAMissCountedAndLogged) {
  ChangedType t;
  auto c = t.ints(true);
  c.set("new", 7);
  EXPECT_FALSE(c.get("old"));
  EXPECT_FALSE(c.get_entry("old"));
  EXPECT_FALSE(c.get_async("old").get());
  EXPECT_FALSE(c.get_entry_async("old").get());
  auto many = c.get_many({"old", "new"});
  ASSERT_EQ(many.size(), 2u);
  EXPECT_FALSE(many[0]);
  EXPECT_EQ(many[1], 7);
  many = c.get_many_async("old", "new").get();
  EXPECT_FALSE(many[0]);
  EXPECT_EQ(many[1], 7);
  EXPECT_EQ(t.decode_errors(), 6u);
  ASSERT_EQ(t.logged.size(), 6u);
  for (const auto& [level, message] : t.logged) {
    EXPECT_EQ(level, LogLevel::kWarning);
    EXPECT_NE(message.find("'old'"), std::string::npos) << message;
    EXPECT_EQ(message.find("secret text"), std::string::npos) << message;  // never the value
  }
  // The next set replaces it.
  c.set("old", 1);
  EXPECT_EQ(c.get("old"), 1);
  EXPECT_EQ(t.decode_errors(), 6u);
}

TEST(CacheDecodeErrorIsMiss, GetOrSetLoadsAndStoresAsOnAMiss) {
  ChangedType t;
  Cache<std::string>(t.mem).set("old2", "more text");
  auto c = t.ints(true);
  int loads = 0;
  EXPECT_EQ(c.get_or_set(
                "old", [&] { return ++loads, 42; }, 1h),
            42);
  EXPECT_EQ(c.get_or_set_async(
                 "old2", [&] { return ++loads, 43; }, 1h)
                .get(),
            43);
  EXPECT_EQ(loads, 2);
  EXPECT_EQ(t.decode_errors(), 2u);
  // Stored: the next reads decode without loading.
  EXPECT_EQ(c.get("old"), 42);
  EXPECT_EQ(c.get_or_set(
                "old2", [&] { return ++loads, 0; }, 1h),
            43);
  EXPECT_EQ(loads, 2);
  EXPECT_TRUE(c.get_entry("old")->ttl_left);
}

TEST(CacheDecodeErrorIsMiss, OffByDefaultAnUndecodableValueIsACodecError) {
  ChangedType t;
  auto c = t.ints(false);
  EXPECT_THROW(c.get("old"), CodecError);
  EXPECT_THROW(c.get_entry("old"), CodecError);
  EXPECT_THROW(c.get_many({"old"}), CodecError);
  EXPECT_THROW(c.get_async("old").get(), CodecError);
  EXPECT_THROW(c.get_or_set("old", [] { return 1; }), CodecError);
  EXPECT_THROW(c.get_or_set_async("old", [] { return 1; }).get(), CodecError);
  EXPECT_THROW((Cache<int, IntCodec>(t.mem).get("old")), CodecError);
  EXPECT_EQ(t.decode_errors(), 0u);
  EXPECT_TRUE(t.logged.empty());
  EXPECT_EQ(Cache<std::string>(t.mem).get("old"), "secret text");  // left alone
}
