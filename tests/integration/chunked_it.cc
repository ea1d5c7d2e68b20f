// Values past one 400 KB item (src/cache/chunked.h) against dynalite: round trips, the
// requests they cost on the wire, clean-up of overwritten chunks, and readers racing writers.
#include <atomic>
#include <cstring>
#include <optional>
#include <map>
#include <mutex>
#include <thread>

#include "cache/chunked.h"
#include "counted_table.h"
#include "it_env.h"

using namespace dynamodb_cache;
using namespace std::chrono_literals;
namespace ddb = dynamodb_cache::dynamodb;
using it::CountedTable;
using it::random_bytes;

TEST(ChunkedIT, RoundTripsAndCostsOneWriteAndOneReadPerBatch) {
  CountedTable t("it-chunks");
  DynamodbBackend b(t.c, t.opts());
  // 54 chunks of 384 KiB: 3 BatchWriteItem (25 a call) + the head; 1 GetItem + BatchGetItem
  // of at most 24 keys each: 3 on DynamoDB (16 MB an answer), more on dynalite, which cuts
  // answers at about 1.4 MB and returns the rest as UnprocessedKeys. No chunk is read twice.
  std::string big = random_bytes(20u << 20, 1);
  b.set("big", big, 0s);
  EXPECT_EQ(t.wire->take(), (std::map<std::string, int>{{"BatchWriteItem", 3}, {"PutItem", 1}}));
  auto got = b.get("big");
  ASSERT_TRUE(got);
  EXPECT_TRUE(*got == big);
  EXPECT_EQ(t.wire->max_keys_asked(), 24u);
  EXPECT_EQ(t.wire->items_answered(), 54u);
  auto calls = t.wire->take();
  EXPECT_EQ(calls["GetItem"], 1);
  EXPECT_GE(calls["BatchGetItem"], 3);

  auto items = t.scan();
  EXPECT_EQ(items.size(), 55u);
  for (auto& [k, size] : items) EXPECT_LT(size, 400u * 1024) << k;

  // Just past one item; compressible values are compressed first and stay in one item.
  std::string edge = random_bytes(400 * 1024, 2);
  b.set("edge", edge, 60s);
  EXPECT_EQ(*b.get("edge"), edge);
  std::string text(30u << 20, 'a');
  b.set("text", text, 0s);
  EXPECT_EQ(*b.get("text"), text);
  EXPECT_EQ(t.scan().size(), 55u + 3u + 1u);

  // get_many reads heads in one batch, then each chunked value's chunks.
  auto many = b.get_many({"edge", "big", "absent"});
  ASSERT_TRUE(many[0] && many[1]);
  EXPECT_TRUE(many[0]->value == edge);
  EXPECT_TRUE(many[1]->value == big);
  EXPECT_FALSE(many[2]);
  EXPECT_LE(many[0]->ttl_left->count(), 60000);

  // The limit, one byte over: refused before any request.
  t.wire->take();
  EXPECT_THROW(b.set("over", random_bytes(kMaxValueBytes + 1, 3), 0s), InvalidArgumentError);
  EXPECT_TRUE(t.wire->take().empty());
}

TEST(ChunkedIT, OverwrittenAndErasedChunksAreCleanedUpOrExpireWithTheirHead) {
  CountedTable t("it-chunks");
  DynamodbBackend b(t.c, t.opts());
  // Never expires: replacing the head deletes the old write's chunks.
  b.set("k", random_bytes(1u << 20, 1), 0s);  // 3 chunks
  EXPECT_EQ(t.scan().size(), 4u);
  t.wire->take();
  b.set("k", "small now", 0s);
  // The conditional put fails (a never-expiring chunked head), the second one returns the old
  // head, one BatchWriteItem deletes its chunks.
  EXPECT_EQ(t.wire->take(), (std::map<std::string, int>{{"BatchWriteItem", 1}, {"PutItem", 2}}));
  EXPECT_EQ(t.scan(), (std::map<std::string, size_t>{{"k", t.scan().at("k")}}));
  EXPECT_EQ(*b.get("k"), "small now");
  t.wire->take();
  b.set("k", "small again", 0s);  // nothing to clean: one request
  EXPECT_EQ(t.wire->take(), (std::map<std::string, int>{{"PutItem", 1}}));

  b.set("k", random_bytes(1u << 20, 2), 0s);
  b.erase("k");
  EXPECT_TRUE(t.scan().empty());
  EXPECT_FALSE(b.get("k"));

  // With a TTL: chunks carry the head's expire_at and are left to DynamoDB's TTL.
  b.set("t", random_bytes(1u << 20, 3), 3600s);
  b.set("t", random_bytes(1u << 20, 4), 60s);
  ddb::ScanRequest r;
  r.table_name = t.name;
  int64_t head_expire_at = 0;
  std::vector<int64_t> chunk_expire_at;
  t.c->scan_all(r, [&](ddb::PageResult& page) {
    for (auto& item : page.items) {
      int64_t e = std::stoll(item.at("expire_at").scalar);
      if (item.at("key").scalar == "t")
        head_expire_at = e;
      else
        chunk_expire_at.push_back(e);
    }
    return true;
  });
  ASSERT_EQ(chunk_expire_at.size(), 6u);  // both writes' chunks: the first's expire later
  int at_head = 0;
  for (auto e : chunk_expire_at) at_head += e == head_expire_at;
  EXPECT_EQ(at_head, 3);
  EXPECT_TRUE(*b.get("t") == random_bytes(1u << 20, 4));
}

TEST(ChunkedIT, DamagedOrForeignChunksAreCodecErrorsNeverWrongValues) {
  CountedTable t("it-chunks");
  DynamodbBackend b(t.c, t.opts());
  b.set("k", random_bytes(1u << 20, 1), 0s);
  // Replace chunk 1 by a chunk item of the same size and other bytes.
  std::string chunk1;
  for (auto& [k, size] : t.scan())
    if (k.ends_with(":1")) chunk1 = k;
  ASSERT_FALSE(chunk1.empty());
  ddb::PutItemRequest p;
  p.table_name = t.name;
  p.item = {{"key", ddb::AttributeValue::S(chunk1)},
            {"value", ddb::AttributeValue::B(random_bytes(384 * 1024, 9))},
            {"fmt", ddb::AttributeValue::N(4)}};
  t.c->put_item(p);
  EXPECT_THROW(b.get("k"), CodecError);
  // Reading a chunk as if it were a cache key: a clear error.
  try {
    b.get(chunk1);
    ADD_FAILURE();
  } catch (const CodecError& e) {
    EXPECT_NE(std::string(e.what()).find("chunk of a larger value"), std::string::npos) << e.what();
  }
  // A chunk gone (as after an overwrite): a miss, after re-reading the head.
  ddb::DeleteItemRequest d;
  d.table_name = t.name;
  d.key = {{"key", ddb::AttributeValue::S(chunk1)}};
  t.c->delete_item(d);
  t.wire->take();
  EXPECT_FALSE(b.get("k"));
  auto calls = t.wire->take();
  EXPECT_EQ(calls["GetItem"], chunked::kChunkedReadTries);  // the head, read again each time
}

// Two writers overwrite one key with big values while two readers read it: every read is a
// miss or exactly one of the written values, never a mix. Values say which they are: their
// first 8 bytes are the seed the rest was made from.
TEST(ChunkedIT, ReadersRacingWritersNeverSeeATornValue) {
  for (auto ttl : {0s, 600s}) {
    CountedTable t("it-chunks");
    auto b = std::make_shared<DynamodbBackend>(t.c, t.opts());
    auto make = [](uint64_t seed) {
      std::string v = random_bytes((1u << 20) + seed % 7 * 100000, seed);
      std::memcpy(v.data(), &seed, sizeof seed);
      return v;
    };
    b->set("hot", make(1), ttl);
    std::atomic<bool> stop{false};
    std::atomic<int> reads{0}, misses{0}, torn{0}, writes{0};
    std::vector<std::thread> threads;
    for (uint64_t w = 0; w < 2; ++w)
      threads.emplace_back([&, w] {
        for (uint64_t i = 0; i < 12; ++i) {
          b->set("hot", make(100 + w * 1000 + i), ttl);
          ++writes;
        }
      });
    for (int r = 0; r < 2; ++r)
      threads.emplace_back([&] {
        while (!stop) {
          auto v = b->get("hot");
          ++reads;
          if (!v) {
            ++misses;
            continue;
          }
          uint64_t seed;
          std::memcpy(&seed, v->data(), sizeof seed);
          if (*v != make(seed)) ++torn;
        }
      });
    threads[0].join();
    threads[1].join();
    stop = true;
    for (size_t i = 2; i < threads.size(); ++i) threads[i].join();
    EXPECT_EQ(torn, 0) << "ttl " << ttl.count();
    EXPECT_EQ(writes, 24);
    EXPECT_GT(reads - misses, 0) << "ttl " << ttl.count();
    // Never-expiring: only the last write's chunks are left.
    if (ttl == 0s) {
      EXPECT_EQ(t.scan().size(), 1u + (b->get("hot")->size() + 384 * 1024 - 1) / (384 * 1024));
    }
  }
}
