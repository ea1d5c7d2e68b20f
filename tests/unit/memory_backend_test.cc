#include <gtest/gtest.h>

#include <thread>

#include "dynamodb_cache/backend.h"
#include "dynamodb_cache/errors.h"
#include "fake_steady.h"

using namespace dynamodb_cache;
using namespace std::chrono_literals;

using test_clock::FakeSteady;

TEST(MemoryBackend, GetSetEraseClear) {
  MemoryBackend m;
  EXPECT_FALSE(m.get("a"));
  m.set("a", "1", 0ms);
  m.set("b", std::string("\0bin", 4), 0ms);
  EXPECT_EQ(*m.get("a"), "1");
  EXPECT_EQ(*m.get("b"), std::string("\0bin", 4));
  m.set("a", "2", 0ms);
  EXPECT_EQ(*m.get("a"), "2");
  m.erase("a");
  m.erase("never-there");
  EXPECT_FALSE(m.get("a"));
  uint64_t cleared = 0;
  m.clear([&](uint64_t n) { cleared = n; });
  EXPECT_EQ(cleared, 1u);
  EXPECT_FALSE(m.get("b"));
  EXPECT_EQ(m.size(), 0u);
}

TEST(MemoryBackend, TtlExpiryAndRemainingTtl) {
  FakeSteady clock;
  MemoryOptions o;
  o.now = clock.fn();
  MemoryBackend m(o);
  m.set("k", "v", 1000ms);
  m.set("forever", "v", 0ms);
  clock.ms->store(400);
  auto h = m.get_entry("k");
  ASSERT_TRUE(h);
  EXPECT_EQ(h->ttl_left, Ttl(600));
  EXPECT_FALSE(m.get_entry("forever")->ttl_left);
  clock.ms->store(1000);
  EXPECT_FALSE(m.get("k"));
  EXPECT_TRUE(m.get("forever"));
}

TEST(MemoryBackend, BoundedByEntriesWithLruOrder) {
  MemoryOptions o;
  o.max_entries = 3;
  o.shards = 1;
  MemoryBackend m(o);
  m.set("a", "1", 0ms);
  m.set("b", "2", 0ms);
  m.set("c", "3", 0ms);
  m.get("a");  // a is now the most recent; b is the least
  m.set("d", "4", 0ms);
  EXPECT_TRUE(m.get("a"));
  EXPECT_FALSE(m.get("b"));
  EXPECT_TRUE(m.get("c"));
  EXPECT_TRUE(m.get("d"));
  EXPECT_EQ(m.size(), 3u);
  EXPECT_EQ(m.evictions(), 1u);
}

// A bound of 0 stores nothing: every get misses (a memory layer turned off by configuration).
TEST(MemoryBackend, MaxEntriesZeroStoresNothing) {
  for (size_t shards : {size_t{1}, size_t{16}}) {
    MemoryOptions o;
    o.max_entries = 0;
    o.shards = shards;
    MemoryBackend m(o);
    m.set("a", "1", 0ms);
    EXPECT_FALSE(m.get("a")) << shards;
    EXPECT_FALSE(m.add("b", "2", 0ms) && m.get("b")) << shards;
    EXPECT_EQ(m.size(), 0u) << shards;
  }
}

TEST(MemoryBackend, BoundedByBytes) {
  MemoryOptions o;
  o.max_bytes = 100;
  o.shards = 1;
  MemoryBackend m(o);
  for (int i = 0; i < 10; ++i) m.set(std::string("k").append(std::to_string(i)), std::string(20, 'x'), 0ms);
  EXPECT_LE(m.bytes(), 100u);
  EXPECT_TRUE(m.get("k9"));
  EXPECT_FALSE(m.get("k0"));
  m.set("huge", std::string(200, 'x'), 0ms);  // larger than the whole cache: not kept
  EXPECT_FALSE(m.get("huge"));
  EXPECT_TRUE(m.get("k9"));
}

TEST(MemoryBackend, RejectsBadKeysAndTtl) {
  MemoryBackend m;
  EXPECT_THROW(m.set("", "v", 0ms), InvalidArgumentError);
  EXPECT_THROW(m.get(std::string(2049, 'k')), InvalidArgumentError);
  EXPECT_NO_THROW(m.get(std::string(2048, 'k')));
  MemoryBackend wide(MemoryOptions{.max_key_bytes = 3000});
  EXPECT_NO_THROW(wide.set(std::string(3000, 'k'), "v", 0ms));
  EXPECT_THROW(wide.get(std::string(3001, 'k')), InvalidArgumentError);
  EXPECT_THROW(m.set("k", "v", -1ms), InvalidArgumentError);
  EXPECT_THROW(m.get("\xff\xfe"), InvalidArgumentError);
  EXPECT_THROW(m.get("\xed\xa0\x80"), InvalidArgumentError);  // UTF-16 surrogate
  EXPECT_NO_THROW(m.get("ключ-😀"));
}

TEST(MemoryBackend, ConcurrentReadersAndWriters) {
  MemoryOptions o;
  o.max_entries = 500;
  MemoryBackend m(o);
  std::vector<std::thread> threads;
  std::atomic<int> bad{0};
  for (int t = 0; t < 4; ++t)
    threads.emplace_back([&, t] {
      for (int i = 0; i < 20000; ++i) {
        std::string k = std::string("k").append(std::to_string((i * 7 + t) % 1000));
        if (i % 3 == 0) m.set(k, k, 0ms);
        else if (auto v = m.get(k); v && *v != k) ++bad;
        if (i % 997 == 0) m.erase(k);
      }
    });
  for (auto& th : threads) th.join();
  EXPECT_EQ(bad.load(), 0);
  EXPECT_LE(m.size(), 16u * ((500 + 15) / 16));
}
