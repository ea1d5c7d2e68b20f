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
  // Such an item's liveness is judged by update_ts + expire, as the Python package does.
  EXPECT_EQ(layout::liveness(item, kNowS).seen.update_ts, std::to_string(layout::whole_seconds_of(kNow)));
  EXPECT_FALSE(layout::liveness(item, kNowS + 10).live);
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

TEST(ItemLayout, LiveRuleAfterAReadConditionsOnWhatItSaw) {
  layout::LiveRule ours{kNowS, std::nullopt};
  EXPECT_EQ(ours.live(),
            "attribute_exists(#k) AND (#x = :z OR #s > :now OR (attribute_not_exists(#s) AND #t > :now))");
  EXPECT_EQ(
      ours.not_live(),
      "attribute_not_exists(#k) OR ((#x < :z OR #x > :z) AND (#s <= :now OR (attribute_not_exists(#s) AND "
      "#t <= :now)))");
  ddb::Values v;
  ours.add_values(v, ours.live());
  EXPECT_EQ(v.size(), 2u);  // :z and :now; DynamoDB refuses unused values

  // The Python package's item: expire 30, no expire_at, written 10 s ago: live.
  layout::LiveRule python{kNowS, layout::LiveInputs{"30", std::nullopt, "1699999990", std::nullopt}};
  EXPECT_EQ(
      python.live(),
      "attribute_exists(#k) AND #x = :sx AND (attribute_not_exists(#t) OR NOT attribute_type(#t, :num)) AND "
      "#u = :su AND (attribute_not_exists(#s) OR NOT attribute_type(#s, :num))");
  EXPECT_EQ(python.not_live(), ours.not_live());  // judged live: only the sound one-request form
  v.clear();
  python.add_values(v, python.live());
  EXPECT_EQ(v, (ddb::Values{{":sx", ddb::AttributeValue::N("30")},
                            {":num", ddb::AttributeValue::S("N")},
                            {":su", ddb::AttributeValue::N("1699999990")}}));

  // expire without update_ts (written by another tool): expired, and conditioned as such.
  layout::LiveRule no_ts{kNowS, layout::LiveInputs{"60", std::nullopt, std::nullopt, std::nullopt}};
  EXPECT_FALSE(layout::liveness(*no_ts.seen, kNowS).live);
  EXPECT_EQ(
      no_ts.not_live(),
      "attribute_not_exists(#k) OR (#x = :sx AND (attribute_not_exists(#t) OR NOT attribute_type(#t, :num)) "
      "AND (attribute_not_exists(#u) OR NOT attribute_type(#u, :num)) AND (attribute_not_exists(#s) OR NOT "
      "attribute_type(#s, :num)))");
  EXPECT_EQ(no_ts.live(), ours.live());
}

TEST(ItemLayout, LivenessReadsExpireAtFirstAndMissingAttributesAsAbsent) {
  auto item_of = [](std::initializer_list<std::pair<const char*, ddb::AttributeValue>> attrs) {
    ddb::Item item;
    item.emplace("key", ddb::AttributeValue::S("k"));
    for (const auto& [n, v] : attrs) item.emplace(n, v);
    return item;
  };
  const int64_t now = static_cast<int64_t>(kNowS);
  // No expire, or one that is no number: never expires, whatever update_ts says.
  EXPECT_TRUE(layout::liveness(item_of({{"update_ts", ddb::AttributeValue::N(1)}}), kNowS).live);
  EXPECT_TRUE(layout::liveness(item_of({{"expire", ddb::AttributeValue::S("60")}}), kNowS).live);
  // expire without update_ts: update_ts counts as 0, so expired (a miss, and add/incr replace it).
  EXPECT_FALSE(layout::liveness(item_of({{"expire", ddb::AttributeValue::N(60)}}), kNowS).live);
  // With expire_at, it decides (the rule DynamoDB conditions can state).
  auto l = layout::liveness(
      item_of({{"expire", ddb::AttributeValue::N(60)}, {"expire_at", ddb::AttributeValue::N(now + 30)}}),
      kNowS);
  EXPECT_TRUE(l.live);
  EXPECT_EQ(l.left, Ttl(30s));
  EXPECT_FALSE(layout::liveness(item_of({{"expire", ddb::AttributeValue::N(60)},
                                         {"update_ts", ddb::AttributeValue::N(now)},
                                         {"expire_at", ddb::AttributeValue::N(now - 1)}}),
                                kNowS)
                   .live);
  EXPECT_THROW(layout::liveness(item_of({{"expire", ddb::AttributeValue::N("x")}}), kNowS), CodecError);
}

// get_or_set's stale_if_error: fresh_until decides before expire_at; the Python package's
// rule (now - update_ts < expire) still sees the item expire on time.
TEST(ItemLayout, FreshUntilDecidesAndTheGraceKeepsAStaleEntry) {
  auto o = options();
  ddb::Item item = layout::encode_item(o, "k", "k", false, "v", 60s, kNow);
  layout::add_grace(item, 2500ms);  // rounded up to 3 s
  EXPECT_EQ(item.at("fresh_until"), ddb::AttributeValue::N(1700000060));
  EXPECT_EQ(item.at("expire_at"), ddb::AttributeValue::N(1700000063));
  EXPECT_EQ(item.at("expire"), ddb::AttributeValue::N(60));
  EXPECT_EQ(item.at("update_ts"), ddb::AttributeValue::N(1700000000));

  auto at = [&](double now) { return layout::liveness(item, now); };
  EXPECT_TRUE(at(kNowS + 59).live);
  EXPECT_EQ(at(kNowS + 59).left, Ttl(1s));
  EXPECT_FALSE(at(kNowS + 59).stale);
  EXPECT_FALSE(at(kNowS + 60).live);  // as the Python rule: now - update_ts == expire
  EXPECT_TRUE(at(kNowS + 60).stale);
  EXPECT_TRUE(at(kNowS + 62.9).stale);
  EXPECT_FALSE(at(kNowS + 63).stale);  // past the grace
  // A plain read: a miss while stale; the stale read: the value, only while stale.
  EXPECT_TRUE(layout::decode_entry(item, kNowS + 30, nullptr));
  EXPECT_FALSE(layout::decode_entry(item, kNowS + 30, nullptr, true));
  EXPECT_FALSE(layout::decode_entry(item, kNowS + 61, nullptr));
  auto stale = layout::decode_entry(item, kNowS + 61, nullptr, true);
  ASSERT_TRUE(stale);
  EXPECT_EQ(stale->value, "v");
  EXPECT_EQ(stale->ttl_left, Ttl(2000));  // the grace left, to expire_at
  EXPECT_EQ(layout::decode_entry(item, kNowS + 62.0004, nullptr, true)->ttl_left, Ttl(999));  // rounded down
  EXPECT_FALSE(layout::decode_entry(item, kNowS + 63, nullptr, true));

  // Without a grace (or for an entry that never expires) nothing changes: no item is stale.
  ddb::Item plain = layout::encode_item(o, "k", "k", false, "v", 60s, kNow);
  layout::add_grace(plain, 0ms);
  EXPECT_FALSE(plain.count("fresh_until"));
  EXPECT_FALSE(layout::liveness(plain, kNowS + 61).stale);
  ddb::Item never = layout::encode_item(o, "k", "k", false, "v", 0s, kNow);
  layout::add_grace(never, 5s);
  EXPECT_FALSE(never.count("fresh_until"));
  EXPECT_FALSE(never.count("expire_at"));

  // Conditions after a read name fresh_until too, so a write conditioned on a stale item
  // fails once the item changed.
  layout::LiveRule seen{kNowS + 61, layout::liveness(item, kNowS + 61).seen};
  EXPECT_EQ(seen.not_live(), "attribute_not_exists(#k) OR (#x = :sx AND #t = :st AND #u = :su AND #s = :sf)");
  ddb::Values v;
  seen.add_values(v, seen.not_live());
  EXPECT_EQ(v.at(":sf"), ddb::AttributeValue::N("1700000060"));
  ddb::PutItemRequest r;
  layout::bind_names(r, seen.not_live());
  EXPECT_EQ(r.names.at("#s"), "fresh_until");
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
  // The answer asked last wins, a lower generation too (set back by hand: every process
  // follows it); an answer asked before the one known is older news.
  const auto before = std::chrono::steady_clock::now() - 1s;
  ddb::Item lower;
  lower.emplace("generation", ddb::AttributeValue::N(5));
  EXPECT_EQ(keys.generation_read(lower, before), "app:7:");
  EXPECT_EQ(keys.generation_read(lower, std::chrono::steady_clock::now()), "app:5:");
  EXPECT_EQ(keys.generation_read(std::nullopt, std::chrono::steady_clock::now()),
            std::nullopt);  // none: start it
}

TEST(StoredKeys, GenerationsMoveToValuesNeverUsedAndRefuseWhatIsNoGeneration) {
  auto o = options();
  o.key_namespace = "app";
  detail::StoredKeys keys(o);
  const int64_t clock_us = static_cast<int64_t>(kNowS) * 1000000;
  auto gen = [](ddb::AttributeValue v) { return ddb::Item{{"generation", std::move(v)}}; };
  // No item: started at the clock's microseconds, only if still none.
  auto start = keys.move("t", std::nullopt, kNow);
  EXPECT_EQ(start.next, clock_us);
  EXPECT_EQ(start.request.condition_expression, "attribute_not_exists(#k)");
  EXPECT_EQ(start.request.update_expression, "SET #g = :next");
  EXPECT_EQ(start.request.values.at(":next"), ddb::AttributeValue::N(clock_us));
  // A clear: past both the generation seen and the clock, only if it is still the one seen.
  auto clear = keys.move("t", gen(ddb::AttributeValue::N(7)), kNow);
  EXPECT_EQ(clear.next, clock_us);
  EXPECT_EQ(clear.request.condition_expression, "#g = :seen");
  EXPECT_EQ(clear.request.values.at(":seen"), ddb::AttributeValue::N(7));
  EXPECT_EQ(keys.move("t", gen(ddb::AttributeValue::N(clock_us + 5)), kNow).next, clock_us + 6);
  // At the limit, or not a generation: afresh from the clock, replacing exactly what was seen.
  EXPECT_EQ(keys.move("t", gen(ddb::AttributeValue::N(detail::kMaxGeneration)), kNow).next, clock_us);
  auto repair = keys.move("t", gen(ddb::AttributeValue::N("9223372036854775807")), kNow);
  EXPECT_EQ(repair.next, clock_us);
  EXPECT_EQ(repair.request.values.at(":seen"), ddb::AttributeValue::N("9223372036854775807"));
  EXPECT_EQ(keys.move("t", gen(ddb::AttributeValue::S("x")), kNow).next, clock_us);
  // An item without `generation` is someone's value: refused, never overwritten.
  EXPECT_THROW(keys.move("t", ddb::Item{{"key", ddb::AttributeValue::S("app:generation")}}, kNow),
               CodecError);
  // The answer must hold the generation written.
  ddb::Item answer = gen(ddb::AttributeValue::N(clear.next));
  EXPECT_EQ(keys.moved(clear, answer), clock_us);
  EXPECT_EQ(keys.known_prefix(), "app:" + std::to_string(clock_us) + ":");
  EXPECT_THROW(keys.moved(clear, gen(ddb::AttributeValue::N(8))), ProtocolError);
  // Read: out of range or not an integer is a CodecError naming the item.
  for (auto bad : {ddb::AttributeValue::N(-1), ddb::AttributeValue::N("1000000000000000000"),
                   ddb::AttributeValue::N("1.5"), ddb::AttributeValue::S("7")})
    EXPECT_THROW(keys.generation_read(gen(bad), std::chrono::steady_clock::now()), CodecError);
  EXPECT_EQ(keys.generation_read(gen(ddb::AttributeValue::N(detail::kMaxGeneration)),
                                 std::chrono::steady_clock::now()),
            "app:" + std::to_string(detail::kMaxGeneration) + ":");
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
