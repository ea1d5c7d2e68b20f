// The near cache's pure parts: the feed's layout and window arithmetic (src/cache/feed.h), the
// top-K counter and the fill/invalidation epochs (src/cache/near_cache.h).
#include "cache/near_cache.h"

#include <gtest/gtest.h>

#include <random>
#include <set>

#include "cache/feed.h"

using namespace dynamodb_cache;
namespace ddb = dynamodb_cache::dynamodb;

TEST(NearFeed, SlotsAreFloorsOfTheWallClock) {
  EXPECT_EQ(feed::slot_of(0), 0);
  EXPECT_EQ(feed::slot_of(199), 0);
  EXPECT_EQ(feed::slot_of(200), 1);
  EXPECT_EQ(feed::slot_of(-1), -1);
  EXPECT_EQ(feed::slot_of(-200), -1);
  EXPECT_EQ(feed::slot_of(-201), -2);
  EXPECT_EQ(feed::item_key(1, 42), "__dc#feed#1#42");
  EXPECT_EQ(feed::slot_in_key("__dc#feed#1#42"), 42);
  EXPECT_EQ(feed::slot_in_key("__dc#feed#0#-3"), -3);
  EXPECT_EQ(feed::slot_in_key("user#42"), std::nullopt);
  EXPECT_EQ(feed::slot_in_key("__dc#feed#0#4x"), std::nullopt);
}

TEST(NearFeed, HashesAreDomainSeparatedAndRoundTrip) {
  EXPECT_NE(feed::key_hash("", "a"), feed::key_hash("a", ""));
  EXPECT_NE(feed::key_hash("", "n"), feed::namespace_hash(""));
  EXPECT_NE(feed::key_hash("ns", "k"), feed::key_hash("ns", "k2"));
  EXPECT_EQ(feed::key_hash("ns", "k"), feed::key_hash("ns", "k"));
  EXPECT_NE(feed::clear_all_hash(), feed::namespace_hash("*"));
  for (uint64_t h : {uint64_t{0}, uint64_t{1}, ~uint64_t{0}, feed::key_hash("", "x")})
    EXPECT_EQ(feed::hash_of_bytes(feed::hash_bytes(h)), h);
  EXPECT_EQ(feed::hash_of_bytes("short"), std::nullopt);
  // Both shards get keys.
  std::set<uint64_t> shards;
  for (int i = 0; i < 64; ++i) shards.insert(feed::shard_of(feed::key_hash("", std::to_string(i))));
  EXPECT_EQ(shards.size(), feed::kShards);
}

TEST(NearFeed, APublishIsOneUpdateItemPerShard) {
  const uint64_t h = feed::key_hash("", "k");
  auto r = feed::publish_request("t", 1, 7, {h, h});
  EXPECT_EQ(r.table_name, "t");
  EXPECT_EQ(r.key.at("key").scalar, "__dc#feed#1#7");
  EXPECT_EQ(r.update_expression, "ADD #h :h, #n :one SET #t = if_not_exists(#t, :t)");
  ASSERT_EQ(r.values.at(":h").type, ddb::AttrType::kBS);
  EXPECT_EQ(r.values.at(":h").set, std::vector<std::string>{feed::hash_bytes(h)});  // once
  // expire_at: the slot's end (1.6 s) + 10 minutes, rounded up to a whole second.
  EXPECT_EQ(r.values.at(":t").scalar, std::to_string(1 + 1 + 600));
  auto groups = feed::by_shard({feed::key_hash("", "a"), feed::key_hash("", "b"), feed::key_hash("", "c")});
  ASSERT_EQ(groups.size(), feed::kShards);
  for (uint64_t s = 0; s < feed::kShards; ++s)
    for (uint64_t x : groups[s]) EXPECT_EQ(feed::shard_of(x), s);

  ddb::Item item;
  item["key"] = ddb::AttributeValue::S(feed::item_key(0, 1));
  item[feed::kHashes] = ddb::AttributeValue::BS({feed::hash_bytes(5), "bad"});
  item[feed::kPublishes] = ddb::AttributeValue::N(3);
  EXPECT_EQ(feed::hashes_in(item), std::vector<uint64_t>{5});
  EXPECT_EQ(feed::publishes_in(item), "3");
}

// The timing contract of feed.h: a publish that returned before a poll started lies in the
// poll's window, for every order of events and clock skew within the tolerance.
TEST(NearFeed, EveryPublishThatReturnedBeforeAPollIsInItsWindow) {
  std::mt19937_64 rng(7);
  const int64_t d = feed::kPublishDeadline.count(), tol = feed::kClockTolerance.count();
  for (int i = 0; i < 200000; ++i) {
    // Real times (ms): the previous successful poll started at `prev`, this one at `poll`; the
    // write's publish returned at `ret` in between, having taken its slot at `sent`, no more
    // than the deadline before (the writer's guard).
    const int64_t prev = 1'000'000 + static_cast<int64_t>(rng() % 5000);
    const int64_t poll = prev + 1 + static_cast<int64_t>(rng() % 3000);
    const int64_t ret = prev + static_cast<int64_t>(rng() % static_cast<uint64_t>(poll - prev));
    const int64_t sent = ret - static_cast<int64_t>(rng() % static_cast<uint64_t>(d + 1));
    // Clocks: the writer's and the reader's each off by up to the tolerance / 2.
    auto skew = [&] { return static_cast<int64_t>(rng() % static_cast<uint64_t>(tol + 1)) - tol / 2; };
    const int64_t writer = skew(), reader = skew();
    auto w = feed::window(poll + reader, prev + reader);
    if (!w) continue;  // too long: the reader drops its memory instead
    const int64_t slot = feed::slot_of(sent + writer);
    ASSERT_GE(slot, w->first) << i;
    ASSERT_LE(slot, w->last) << i;
  }
}

TEST(NearFeed, AWindowTooLongIsRefused) {
  EXPECT_FALSE(feed::window(100'000, 0));
  auto w = feed::window(100'000, std::nullopt);
  ASSERT_TRUE(w);
  EXPECT_EQ(w->last, feed::slot_of(100'100));
  EXPECT_EQ(w->first, feed::slot_of(100'000 - 600));
  EXPECT_EQ(feed::window_keys(*w).size(), static_cast<size_t>(w->last - w->first + 1) * feed::kShards);
  // A wall clock that went back: the window still reaches back from the earlier time.
  auto back = feed::window(100'000, 100'500);
  ASSERT_TRUE(back);
  EXPECT_EQ(back->first, feed::slot_of(100'000 - 600));
}

TEST(NearTopK, KeepsTheHeavyHitters) {
  // Space-saving keeps every key counted more than (all counts) / capacity: here 350 / 8.
  detail::TopK top(8);
  for (int i = 0; i < 100; ++i) top.add("a");
  for (int i = 0; i < 50; ++i) top.add("b");
  for (int i = 0; i < 200; ++i) top.add("cold" + std::to_string(i));  // one each
  auto t = top.top(2);
  ASSERT_EQ(t.size(), 2u);
  EXPECT_EQ(t[0], (std::pair<std::string, uint64_t>("a", 100)));
  EXPECT_EQ(t[1], (std::pair<std::string, uint64_t>("b", 50)));
  EXPECT_EQ(top.top(10).size(), 8u);
  detail::TopK none(0);
  none.add("x");
  EXPECT_TRUE(none.top(3).empty());
}

TEST(NearEpochs, AFillIsRefusedAfterAnInvalidationOfItsKey) {
  detail::InvalidationLog log(2);
  EXPECT_TRUE(log.may_fill(1, 0));
  log.invalidated(1, 5);
  EXPECT_FALSE(log.may_fill(1, 4)) << "read began before the invalidation";
  EXPECT_TRUE(log.may_fill(1, 5)) << "read began after it";
  EXPECT_TRUE(log.may_fill(2, 0)) << "another key";
  log.invalidated(2, 6);
  log.invalidated(3, 7);  // overflow: everything begun before 7 is refused
  EXPECT_FALSE(log.may_fill(4, 6));
  EXPECT_TRUE(log.may_fill(4, 7));
  log.drop_all(9);
  EXPECT_FALSE(log.may_fill(3, 8));
  EXPECT_TRUE(log.may_fill(3, 9));
}
