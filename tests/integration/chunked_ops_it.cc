// Where chunked values (chunked.h) and get_or_set meet namespaces, long keys, add, touch,
// increment, erase_many and stats, against dynalite (issue 11: the two halves wired together).
#include <map>
#include <optional>
#include <string>
#include <thread>

#include "counted_table.h"
#include "it_env.h"

using namespace dynamodb_cache;
using namespace std::chrono_literals;
namespace ddb = dynamodb_cache::dynamodb;
using it::CountedTable;
using it::random_bytes;

namespace {

// The keys of the table's items that start with `prefix`.
size_t count_prefixed(CountedTable& t, const std::string& prefix) {
  size_t n = 0;
  for (auto& [k, size] : t.scan())
    if (k.starts_with(prefix)) ++n;
  return n;
}

}  // namespace

// Chunk and lease keys derive from the stored key: in a namespace they carry NS:GEN:, so a
// clear (a new generation) leaves the old value, its chunks and its lease unreachable.
TEST(ChunkedOpsIT, ChunksAndLeasesLiveInTheNamespaceGeneration) {
  CountedTable t("it-chops");
  auto o = t.opts();
  o.key_namespace = "ns";
  DynamodbBackend b(t.c, o);
  std::string big = random_bytes(1u << 20, 1);  // 3 chunks
  b.set("big", big, 0s);
  const std::string first = b.key_prefix();
  auto items = t.scan();
  EXPECT_EQ(items.size(), 5u);  // with "ns:generation"
  for (auto& [k, size] : items) EXPECT_TRUE(k.starts_with(first + "big") || k == "ns:generation") << k;
  EXPECT_EQ(*b.get("big"), big);

  GetOrSetOptions lease;
  lease.lease = 5s;
  int loads = 0;
  EXPECT_EQ(get_or_set(b, "loaded", [&] { ++loads; return std::string("v"); }, 0s, lease), "v");
  EXPECT_EQ(loads, 1);
  EXPECT_EQ(b.stats().loads.load(), 1u);
  EXPECT_TRUE(t.scan().count(first + "loaded"));

  b.clear();
  EXPECT_FALSE(b.get("big"));
  b.set("big", "small", 0s);
  EXPECT_EQ(*b.get("big"), "small");
  const std::string second = b.key_prefix();
  EXPECT_TRUE(t.scan().count(second + "big"));
  EXPECT_EQ(count_prefixed(t, second + "big#chunk:"), 0u);
  EXPECT_EQ(count_prefixed(t, first + "big#chunk:"), 3u);  // orphaned with their generation
}

// A long key that is chunked: stored under its digest, its head keeps full_key, and a digest
// item holding another key reads as a miss before any chunk is asked.
TEST(ChunkedOpsIT, LongKeysChunkUnderTheirDigest) {
  CountedTable t("it-chops");
  auto o = t.opts();
  o.long_keys = true;
  DynamodbBackend b(t.c, o);
  std::string key(3000, 'k');
  std::string big = random_bytes(1u << 20, 2);
  b.set(key, big, 0s);
  const std::string stored = b.stored_key(key, "");
  ASSERT_TRUE(stored.starts_with("#sha256:"));
  auto items = t.scan();
  EXPECT_EQ(items.size(), 4u);
  for (auto& [k, size] : items) EXPECT_TRUE(k.starts_with(stored)) << k.substr(0, 80);
  EXPECT_EQ(*b.get(key), big);

  // The head as another key's: full_key differs. A miss, and no chunk read.
  ddb::UpdateItemRequest u;
  u.table_name = t.name;
  u.key = {{"key", ddb::AttributeValue::S(stored)}};
  u.update_expression = "SET full_key = :o";
  u.values = {{":o", ddb::AttributeValue::S(std::string(3000, 'o'))}};
  t.c->update_item(u);
  t.wire->take();
  EXPECT_FALSE(b.get(key));
  EXPECT_EQ(t.wire->take(), (std::map<std::string, int>{{"GetItem", 1}}));
}

// add of a value past one item: when a live entry wins, the chunks it wrote are deleted.
TEST(ChunkedOpsIT, AddOfABigValueLeavesNoChunksWhenItLoses) {
  CountedTable t("it-chops");
  DynamodbBackend b(t.c, t.opts());
  std::string big = random_bytes(1u << 20, 3);
  EXPECT_TRUE(b.add("a", big, 60s));
  EXPECT_EQ(*b.get("a"), big);
  EXPECT_EQ(t.scan().size(), 4u);
  EXPECT_FALSE(b.add("a", random_bytes(1u << 20, 4), 60s));
  EXPECT_EQ(t.scan().size(), 4u);  // the loser's 3 chunks are gone
  EXPECT_EQ(*b.get("a"), big);
}

// touch cannot re-time a chunked value's chunks: it refuses clearly and changes nothing.
// increment of a chunked value is a WrongTypeError and leaves it intact.
TEST(ChunkedOpsIT, TouchAndIncrementOfAChunkedValueAreWrongTypeErrors) {
  CountedTable t("it-chops");
  DynamodbBackend b(t.c, t.opts());
  std::string big = random_bytes(1u << 20, 5);
  b.set("big", big, 60s);
  auto before = t.scan();
  EXPECT_THROW(b.touch("big", 3600s), WrongTypeError);
  EXPECT_THROW(b.increment("big", 1, 0s), WrongTypeError);
  EXPECT_EQ(t.scan(), before);
  auto hit = b.get_entry("big");
  ASSERT_TRUE(hit);
  EXPECT_TRUE(hit->value == big);
  EXPECT_LE(hit->ttl_left->count(), 60000);
  EXPECT_FALSE(b.touch("absent", 10s));
  b.set("small", "v", 60s);
  EXPECT_TRUE(b.touch("small", 3600s));
}

// erase_many deletes the chunks of values that never expire (they have no TTL of their own).
TEST(ChunkedOpsIT, EraseManyDeletesTheChunksOfNeverExpiringValues) {
  CountedTable t("it-chops");
  DynamodbBackend b(t.c, t.opts());
  b.set("forever", random_bytes(1u << 20, 6), 0s);
  b.set("ttl", random_bytes(1u << 20, 7), 60s);
  b.set("small", "v", 0s);
  EXPECT_EQ(t.scan().size(), 9u);
  b.erase_many({"forever", "ttl", "small", "absent"});
  auto left = t.scan();
  // The TTL value's chunks carry expire_at: DynamoDB's TTL removes them, no request spent.
  EXPECT_EQ(left.size(), 3u);
  for (auto& [k, size] : left) EXPECT_TRUE(k.starts_with("ttl#chunk:")) << k;
}

// get_or_set counts its loads, their time, and the waits for another process's lease.
TEST(ChunkedOpsIT, GetOrSetCountsLoadsAndLeaseWaits) {
  CountedTable t("it-chops");
  DynamodbBackend holder(t.c, t.opts());
  DynamodbBackend waiter(t.c, t.opts());
  GetOrSetOptions o;
  o.lease = 10s;
  o.lease_wait = 300ms;
  o.poll_min = 20ms;
  o.poll_max = 50ms;
  // Another process's lease, held past lease_wait: the waiter polls, then loads itself.
  ddb::PutItemRequest r;
  r.table_name = t.name;
  int64_t now = std::chrono::duration_cast<std::chrono::milliseconds>(SystemClock::now().time_since_epoch()).count();
  r.item = {{"key", ddb::AttributeValue::S("k#lease")},
            {"fmt", ddb::AttributeValue::N(5)},
            {"token", ddb::AttributeValue::S("someone-else")},
            {"until", ddb::AttributeValue::N(now + 10000)}};
  t.c->put_item(r);
  EXPECT_EQ(get_or_set(waiter, "k", [] { return std::string("w"); }, 0s, o), "w");
  EXPECT_EQ(waiter.stats().lease_waits.load(), 1u);
  EXPECT_EQ(waiter.stats().loads.load(), 1u);
  EXPECT_THROW(get_or_set(holder, "x", []() -> std::string { throw std::runtime_error("no"); }, 0s, {}),
               std::runtime_error);
  EXPECT_EQ(holder.stats().loads.load(), 1u);  // a load that threw is a load
  EXPECT_EQ(holder.stats().lease_waits.load(), 0u);
  EXPECT_EQ(get_or_set(holder, "k", [] { return std::string("h"); }, 0s, o), "w");  // cached
  EXPECT_EQ(holder.stats().loads.load(), 1u);
  EXPECT_EQ(get_or_set(holder, "slow", [] {
              std::this_thread::sleep_for(30ms);
              return std::string("s");
            }, 0s, {}), "s");
  EXPECT_EQ(holder.stats().loads.load(), 2u);
  EXPECT_GE(holder.stats().load_time_us.load(), 30000u);  // a lower bound: at least the sleep
  EXPECT_EQ(holder.stats().errors[static_cast<size_t>(ErrorKind::kConditionFailed)].load(), 0u);
  EXPECT_EQ(waiter.stats().errors[static_cast<size_t>(ErrorKind::kConditionFailed)].load(), 0u);
}
