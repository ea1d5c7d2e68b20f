// The item layout's pure functions (src/cache/item_layout.h), without a client or a backend:
// encode and decode, the Python liveness rule as a test and as condition expressions,
// compression, sizes, and stored keys (src/cache/stored_keys.h).
#include "cache/item_layout.h"

#include <gtest/gtest.h>

#include <chrono>
#include <string>

#include "cache/stored_keys.h"
#include "dynamodb_cache/errors.h"
#include "util/crypto.h"

namespace dynamodb_cache {
namespace {

namespace ddb = dynamodb;
using namespace std::chrono_literals;

const SystemClock::time_point kNow{std::chrono::seconds(1700000000)};
constexpr double kNowS = 1700000000;

DynamodbOptions options() {
  DynamodbOptions o;
  o.table = "t";
  return o;
}

TEST(ItemLayout, EncodeThenDecodeGivesTheValueAndTheTtlLeft) {
  auto o = options();
  ddb::Item item = layout::encode_item(o, "k", "k", false, "payload", 60s, kNow);
  EXPECT_EQ(item.at("key"), ddb::AttributeValue::S("k"));
  EXPECT_EQ(item.at("expire"), ddb::AttributeValue::N(60));
  EXPECT_EQ(item.at("update_ts"), ddb::AttributeValue::N(1700000000));
  EXPECT_EQ(item.at("expire_at"), ddb::AttributeValue::N(1700000060));
  EXPECT_EQ(item.at("fmt"), ddb::AttributeValue::N(layout::kRaw));
  auto hit = layout::decode_entry(item, kNowS + 10, nullptr);
  ASSERT_TRUE(hit);
  EXPECT_EQ(hit->value, "payload");
  EXPECT_EQ(hit->ttl_left, std::chrono::milliseconds(50000));
  EXPECT_FALSE(layout::decode_entry(item, kNowS + 60, nullptr));  // now - update_ts == expire: gone
}

TEST(ItemLayout, LargeValuesAreCompressedOnlyWhenThatSavesSpace) {
  auto o = options();
  const std::string text(5000, 'a');
  ddb::Item z = layout::encode_item(o, "k", "k", false, text, 0s, kNow);
  EXPECT_EQ(z.at("fmt"), ddb::AttributeValue::N(layout::kZstd));
  EXPECT_LT(z.at("value").scalar.size(), text.size());
  EXPECT_FALSE(z.count("expire_at"));  // never expires
  EXPECT_EQ(layout::decode_entry(z, kNowS, nullptr)->value, text);

  std::string noise;  // a linear congruential generator's high bytes: zstd finds nothing to save
  uint32_t x = 1;
  for (int i = 0; i < 5000; ++i) noise.push_back(static_cast<char>((x = x * 1664525u + 1013904223u) >> 24));
  ddb::Item raw = layout::encode_item(o, "k", "k", false, noise, 0s, kNow);
  EXPECT_EQ(raw.at("fmt"), ddb::AttributeValue::N(layout::kRaw));
  EXPECT_EQ(layout::decode_entry(raw, kNowS, nullptr)->value, noise);
}

TEST(ItemLayout, PythonCompatItemsAreBase64WithoutFmtOrExpireAt) {
  auto o = options();
  o.python_compat = true;
  ddb::Item item = layout::encode_item(o, "k", "k", false, "v\x01", 10s, kNow);
  EXPECT_FALSE(item.count("fmt"));
  EXPECT_FALSE(item.count("expire_at"));
  EXPECT_EQ(item.at("value").scalar, util::base64_encode("v\x01"));
  EXPECT_EQ(layout::decode_entry(item, kNowS, nullptr)->value, "v\x01");
  // Such an item's liveness rule needs the expire value it was read with.
  EXPECT_EQ(layout::liveness(item, kNowS).python_expire, "10");
}

TEST(ItemLayout, ItemSizeCountsNamesAndValues) {
  ddb::Item item;
  item.emplace("key", ddb::AttributeValue::S("abc"));
  item.emplace("value", ddb::AttributeValue::B(std::string(10, 'x')));
  EXPECT_EQ(layout::item_bytes(item), 3u + 3 + 5 + 10);
}

TEST(ItemLayout, ValueAndTtlLimitsAreInvalidArguments) {
  auto o = options();
  EXPECT_THROW(layout::encode_item(o, "k", "k", false, "v", -1s, kNow), InvalidArgumentError);
  EXPECT_THROW(layout::check_value_size("k", std::string(kMaxValueBytes + 1, 'a')), InvalidArgumentError);
  EXPECT_NO_THROW(layout::check_value_size("k", std::string(16, 'a')));
}

TEST(ItemLayout, DecodeRefusesWhatIsNoCacheEntry) {
  ddb::Item chunk;
  chunk.emplace("key", ddb::AttributeValue::S("k#chunk:x:0"));
  chunk.emplace("value", ddb::AttributeValue::B("x"));
  chunk.emplace("fmt", ddb::AttributeValue::N(chunked::kChunkFormat));
  EXPECT_THROW(layout::decode_entry(chunk, kNowS, nullptr), CodecError);
  chunk["fmt"] = ddb::AttributeValue::N(layout::kLeaseFormat);
  EXPECT_THROW(layout::decode_entry(chunk, kNowS, nullptr), CodecError);
  chunk["fmt"] = ddb::AttributeValue::N("1.5");
  EXPECT_THROW(layout::decode_entry(chunk, kNowS, nullptr), CodecError);
}

TEST(ItemLayout, ACounterReadsAsItsDecimalText) {
  ddb::Item c = layout::item_head("n", "n", false, 0s, kNow, true);
  c.emplace("counter", ddb::AttributeValue::N(-42));
  auto hit = layout::decode_entry(c, kNowS, nullptr);
  ASSERT_TRUE(hit);
  EXPECT_EQ(hit->value, "-42");
  EXPECT_TRUE(hit->counter);
}

TEST(ItemLayout, AChunkedHeadNeedsAChunkReader) {
  ddb::Item head = layout::item_head("big", "big", false, 0s, kNow, true);
  chunked::Head h;
  h.write_id = std::string(32, 'a');
  h.chunks = 1;
  h.bytes = 3;
  h.crc32 = 0;
  chunked::add_head_attributes(head, h);
  EXPECT_THROW(layout::decode_entry(head, kNowS, nullptr), layout::NeedsChunks);
  auto read = [&](std::string_view stored, const chunked::Head& named) {
    EXPECT_EQ(stored, "big");
    EXPECT_EQ(named.write_id, h.write_id);
    return std::string("abc");
  };
  const layout::ChunkReader reader(read);
  EXPECT_EQ(layout::decode_entry(head, kNowS, &reader)->value, "abc");
}

TEST(ItemLayout, LiveRuleStatesThePythonRuleForTheExpireItSaw) {
  layout::LiveRule ours{kNowS, std::nullopt};
  EXPECT_EQ(ours.live(), "attribute_exists(#k) AND (#x = :z OR #t > :now)");
  EXPECT_EQ(ours.not_live(), "attribute_not_exists(#k) OR (#x <> :z AND #t <= :now)");
  layout::LiveRule python{kNowS, std::string("30")};
  ddb::Values v;
  python.add_values(v);
  EXPECT_EQ(v.at(":pe"), ddb::AttributeValue::N("30"));
  EXPECT_EQ(v.at(":cut"), ddb::AttributeValue::N(layout::decimal(kNowS - 30)));
  EXPECT_NE(python.live().find("#u > :cut"), std::string::npos);
  layout::LiveRule far{kNowS, std::string("1e300")};
  v.clear();
  far.add_values(v);
  EXPECT_EQ(v.at(":cut"), ddb::AttributeValue::N("-1"));  // past every update_ts
}

TEST(ItemLayout, BindNamesBindsOnlyThePlaceholdersUsed) {
  ddb::UpdateItemRequest r;
  layout::bind_names(r, "SET #c = #c + :d");
  EXPECT_EQ(r.names, (ddb::Names{{"#c", "counter"}}));
}

TEST(StoredKeys, NamespaceAndDigestShapeTheStoredKey) {
  auto o = options();
  o.key_namespace = "app";
  o.long_keys = true;
  detail::StoredKeys keys(o);
  EXPECT_EQ(keys.stored_key("user:1", "app:3:"), "app:3:user:1");
  EXPECT_FALSE(keys.is_digest("user:1", "app:3:"));
  const std::string long_key(3000, 'k');
  EXPECT_EQ(keys.stored_key(long_key, "app:3:"), "app:3:#sha256:" + util::hex(util::sha256(long_key)));
  EXPECT_TRUE(keys.is_digest(long_key, "app:3:"));
  ddb::Item head = layout::item_head(keys.stored_key(long_key, "app:3:"), long_key, true, 0s, kNow, true);
  EXPECT_EQ(head.at("full_key"), ddb::AttributeValue::S(long_key));  // the whole key, checked on every read
  EXPECT_TRUE(keys.is_digest("#sha256:short", ""));                  // no short key takes a digest's place
  EXPECT_EQ(keys.generation_key(), "app:generation");
  EXPECT_FALSE(keys.known_prefix());  // not read yet
  ddb::Item gen;
  gen.emplace("generation", ddb::AttributeValue::N(7));
  EXPECT_EQ(keys.generation_read(gen, std::chrono::steady_clock::now()), "app:7:");
  EXPECT_EQ(keys.known_prefix(), "app:7:");
  ddb::Item older;
  older.emplace("generation", ddb::AttributeValue::N(5));
  EXPECT_EQ(keys.generation_read(older, std::chrono::steady_clock::now()), "app:7:");  // never goes back
}

TEST(StoredKeys, BadKeysAndNamespacesAreInvalidArguments) {
  auto o = options();
  detail::StoredKeys plain(o);
  EXPECT_EQ(plain.known_prefix(), "");
  EXPECT_THROW(plain.stored_key("", ""), InvalidArgumentError);
  EXPECT_THROW(plain.stored_key(std::string(2049, 'k'), ""), InvalidArgumentError);
  o.key_namespace = "bad name";
  EXPECT_THROW(detail::StoredKeys{o}, InvalidArgumentError);
}

}  // namespace
}  // namespace dynamodb_cache
