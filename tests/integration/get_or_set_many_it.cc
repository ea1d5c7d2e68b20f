// get_or_set_many (bulk loads) against dynalite: one load of exactly the missing keys, batched
// reads and writes past DynamoDB's per-request limits, and through a LayeredBackend.
#include <set>

#include "counted_table.h"
#include "it_env.h"

using namespace dynamodb_cache;
using namespace std::chrono_literals;
using it::CountedTable;

namespace {

using Bytes = std::vector<std::optional<std::string>>;
using Keys = std::vector<std::string>;

}  // namespace

// 130 keys (BatchGetItem takes 100, BatchWriteItem 25), 30 of them stored before.
TEST(GetOrSetManyIT, LoadsExactlyTheMissingKeysInBatchesAndStoresThemWithTheirTtl) {
  CountedTable t("it-gosm");
  DynamodbBackend b(t.c, t.opts());
  Keys keys;
  std::vector<std::pair<std::string, std::string>> before;
  for (int i = 0; i < 130; ++i) {
    keys.push_back("k" + std::to_string(i));
    if (i % 13 < 3) before.emplace_back(keys.back(), "before " + keys.back());
  }
  ASSERT_EQ(before.size(), 30u);
  b.set_many(before, 0s);
  Keys expected_missing;
  std::set<std::string> stored(keys.begin(), keys.end());
  for (auto& [k, v] : before) stored.erase(k);
  for (auto& k : keys)
    if (stored.count(k)) expected_missing.push_back(k);
  keys.push_back("k5");  // named twice: answered twice, loaded once

  std::vector<Keys> calls;
  auto load = [&](const Keys& missing) {
    calls.push_back(missing);
    Bytes out;
    for (const auto& k : missing) out.push_back(k == "k129" ? std::nullopt : std::optional("loaded " + k));
    return out;
  };
  t.wire->take();
  auto got = get_or_set_many(b, keys, load, 60s);
  ASSERT_EQ(calls.size(), 1u);
  EXPECT_EQ(calls[0], expected_missing);
  EXPECT_EQ(calls[0].size(), 100u);
  // 130 keys read in two BatchGetItems; 99 values written in four BatchWriteItems.
  t.expect_wire({{"BatchGetItem", 2}, {"BatchWriteItem", 4}}, __LINE__);
  ASSERT_EQ(got.size(), 131u);
  for (size_t i = 0; i < 130; ++i) {
    const auto& k = keys[i];
    if (k == "k129")
      EXPECT_FALSE(got[i]);
    else
      EXPECT_EQ(got[i], (stored.count(k) ? "loaded " : "before ") + k);
  }
  EXPECT_EQ(got[130], "loaded k5");
  EXPECT_EQ(b.stats().loads, 1u);

  // Readable by get with their TTL; the key the loader had nothing for is not stored.
  for (const auto& k : expected_missing) {
    auto e = b.get_entry(k);
    if (k == "k129") {
      EXPECT_FALSE(e);
      continue;
    }
    ASSERT_TRUE(e) << k;
    EXPECT_EQ(e->value, "loaded " + k);
    ASSERT_TRUE(e->ttl_left);
    EXPECT_GT(*e->ttl_left, 50s);
    EXPECT_LE(*e->ttl_left, 60s);
  }
  // Again: only the key without a value is loaded.
  t.wire->take();
  EXPECT_EQ(get_or_set_many(b, keys, load, 60s), got);
  ASSERT_EQ(calls.size(), 2u);
  EXPECT_EQ(calls[1], Keys{"k129"});
  t.expect_wire({{"BatchGetItem", 2}}, __LINE__);
}

// Over memory on DynamoDB: a value only in the table is read through (and copied into the
// memory layer), not loaded; loaded values are written into both layers.
TEST(GetOrSetManyIT, ThroughALayeredBackendReadsThroughAndWritesThrough) {
  CountedTable t("it-gosm");
  auto table = std::make_shared<DynamodbBackend>(t.c, t.opts());
  auto memory = std::make_shared<MemoryBackend>();
  auto layered = make_layered(memory, table);
  table->set("in-table", "shared", 0s);
  memory->set("in-memory", "local", 0s);
  std::vector<Keys> calls;
  auto load = [&](const Keys& missing) {
    calls.push_back(missing);
    return Bytes(missing.size(), std::optional<std::string>("loaded"));
  };
  EXPECT_EQ(get_or_set_many(*layered, {"in-memory", "in-table", "new1", "new2"}, load, 30s),
            (Bytes{"local", "shared", "loaded", "loaded"}));
  ASSERT_EQ(calls.size(), 1u);
  EXPECT_EQ(calls[0], (Keys{"new1", "new2"}));
  EXPECT_EQ(*memory->get("in-table"), "shared") << "read through, copied up";
  for (const char* k : {"new1", "new2"}) {
    EXPECT_EQ(*memory->get(k), "loaded") << k;
    auto e = table->get_entry(k);
    ASSERT_TRUE(e) << k;
    EXPECT_EQ(e->value, "loaded");
    EXPECT_GT(*e->ttl_left, 20s);
  }
  // The typed front and its asynchronous form over the same layers.
  Cache<std::string> cache(layered);
  auto typed = [&](const Keys& missing) {
    calls.push_back(missing);
    return std::vector<std::optional<std::string>>(missing.size(), std::string("typed"));
  };
  EXPECT_EQ(cache.get_or_set_many_async(Keys{"new1", "new3"}, typed, 30s).get(),
            (std::vector<std::optional<std::string>>{"loaded", "typed"}));
  ASSERT_EQ(calls.size(), 2u);
  EXPECT_EQ(calls[1], Keys{"new3"});
  EXPECT_EQ(*table->get("new3"), "typed");
}
