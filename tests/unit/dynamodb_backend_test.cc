// The DynamoDB backend's item layout, liveness rule and value formats, over a scripted
// transport (the real service is exercised by the integration tests).
#include <gtest/gtest.h>

#include <array>

#include "dynamodb/wire.h"
#include "dynamodb_cache/backend.h"
#include "dynamodb_cache/errors.h"
#include "fake_transport.h"
#include "util/crypto.h"

using namespace dynamodb_cache;
using namespace dynamodb_cache::dynamodb;
using namespace std::chrono_literals;
using testing_support::ddb_response;
using testing_support::FakeTransport;

namespace {

constexpr int64_t kNow = 1700000000;

struct Fixture {
  std::shared_ptr<FakeTransport> transport;
  std::shared_ptr<Client> client;
  double now_s = kNow + 0.25;
  explicit Fixture(FakeTransport::Handler h = [](const http::Request&, int) { return ddb_response(200, "{}"); }) {
    transport = std::make_shared<FakeTransport>(std::move(h));
    ClientOptions o;
    o.region = "us-east-1";
    o.endpoint = "http://127.0.0.1:9";
    o.credentials = aws::make_static_provider({"a", "b", "", std::nullopt, ""});
    o.transport = transport;
    client = std::make_shared<Client>(o);
  }
  DynamodbBackend backend(DynamodbOptions o = {}) {
    o.now = [this] {
      return SystemClock::time_point(std::chrono::duration_cast<SystemClock::duration>(std::chrono::duration<double>(now_s)));
    };
    return DynamodbBackend(client, o);
  }
};

std::string json_doc(size_t size) {
  std::string s = "{\"items\":[";
  for (int i = 0; s.size() < size - 64; ++i)
    s += "{\"id\":" + std::to_string(i) + ",\"name\":\"user-" + std::to_string(i) + "\",\"active\":true},";
  s.back() = ']';
  return s + "}";
}

}  // namespace

TEST(DynamodbBackend, ItemLayoutMatchesThePythonPackagePlusTtlAndMarker) {
  Fixture f;
  auto b = f.backend();
  auto item = b.make_item("my_db_credential", "payload", 3600s);
  EXPECT_EQ(item.at("key"), AttributeValue::S("my_db_credential"));
  EXPECT_EQ(item.at("value"), AttributeValue::B("payload"));
  EXPECT_EQ(item.at("expire"), AttributeValue::N(3600));
  EXPECT_EQ(item.at("update_ts"), AttributeValue::N(kNow));
  EXPECT_EQ(item.at("expire_at"), AttributeValue::N(kNow + 3600));
  EXPECT_EQ(item.at("fmt"), AttributeValue::N(1));
  EXPECT_EQ(item.size(), 6u);
  auto forever = b.make_item("k", "v", 0s);
  EXPECT_EQ(forever.at("expire"), AttributeValue::N(0));
  EXPECT_EQ(forever.count("expire_at"), 0u);
  EXPECT_EQ(b.make_item("k", "v", 1ms).at("expire"), AttributeValue::N(1));  // never rounds to "forever"
}

TEST(DynamodbBackend, PythonCompatWritesBase64TextWithoutMarker) {
  Fixture f;
  DynamodbOptions o;
  o.python_compat = true;
  auto b = f.backend(o);
  auto item = b.make_item("k", std::string(5000, 'a'), 60s);  // no compression in this mode
  EXPECT_EQ(item.at("value"), AttributeValue::B(util::base64_encode(std::string(5000, 'a'))));
  EXPECT_EQ(item.count("fmt"), 0u);
  EXPECT_EQ(item.count("expire_at"), 0u);
  EXPECT_EQ(b.read_item(item)->value, std::string(5000, 'a'));
}

TEST(DynamodbBackend, ReadsItemsThePythonPackageWrote) {
  Fixture f;
  auto b = f.backend();
  Item py{{"key", AttributeValue::S("k")},
          {"value", AttributeValue::B(util::base64_encode("{\"host\": \"www.db.com\"}"))},
          {"expire", AttributeValue::N(0)},
          {"update_ts", AttributeValue::N(kNow - 100000)}};
  auto h = b.read_item(py);
  ASSERT_TRUE(h);
  EXPECT_EQ(h->value, "{\"host\": \"www.db.com\"}");
  EXPECT_FALSE(h->ttl_left);
  py["value"] = AttributeValue::B("raw bytes!");  // neither marker nor base64
  EXPECT_THROW(b.read_item(py), CodecError);
}

TEST(DynamodbBackend, LivenessIsThePythonRule) {
  Fixture f;
  auto b = f.backend();
  Item item = b.make_item("k", "v", 10s);  // update_ts = kNow, now = kNow + 0.25
  f.now_s = kNow + 9.5;
  auto h = b.read_item(item);
  ASSERT_TRUE(h);
  EXPECT_EQ(h->ttl_left, Ttl(500));
  f.now_s = kNow + 10;  // now - update_ts == expire: expired
  EXPECT_FALSE(b.read_item(item));
  f.now_s = kNow + 1e6;
  EXPECT_TRUE(b.read_item(b.make_item("k", "v", 0s)));
}

TEST(DynamodbBackend, CompressesLargeCompressibleValues) {
  Fixture f;
  auto b = f.backend();
  std::string doc = json_doc(10 * 1024);
  auto item = b.make_item("doc", doc, 0s);
  EXPECT_EQ(item.at("fmt"), AttributeValue::N(2));
  EXPECT_LT(item.at("value").scalar.size(), doc.size() / 3);
  EXPECT_EQ(b.read_item(item)->value, doc);

  std::string noise;
  uint32_t x = 1;
  for (int i = 0; i < 4096; ++i) noise.push_back(static_cast<char>((x = x * 1664525u + 1013904223u) >> 24));
  auto raw = b.make_item("noise", noise, 0s);
  EXPECT_EQ(raw.at("fmt"), AttributeValue::N(1));  // compression would not help
  EXPECT_EQ(b.read_item(raw)->value, noise);
}

TEST(DynamodbBackend, CorruptOrUnknownValuesAreCodecErrors) {
  Fixture f;
  auto b = f.backend();
  auto item = b.make_item("doc", json_doc(4096), 0s);
  item["value"].scalar[5] ^= 0x55;
  item["value"].scalar.resize(item["value"].scalar.size() / 2);
  EXPECT_THROW(b.read_item(item), CodecError);
  auto future = b.make_item("k", "v", 0s);
  future["fmt"] = AttributeValue::N(9);
  EXPECT_THROW(b.read_item(future), CodecError);
  auto no_value = b.make_item("k", "v", 0s);
  no_value.erase("value");
  EXPECT_THROW(b.read_item(no_value), CodecError);
}

TEST(DynamodbBackend, OversizedValuesAndBadKeysAreRejectedBeforeAnyRequest) {
  Fixture f;
  auto b = f.backend();
  std::string big(401 * 1024, 'x');
  big[0] = 'y';
  DynamodbOptions o;
  o.compress_min_bytes = 0;
  auto plain = f.backend(o);
  EXPECT_THROW(plain.make_item("k", big, 0s), InvalidArgumentError);  // set() would chunk it
  EXPECT_NO_THROW(plain.make_item("k", std::string(400 * 1024 - 100, 'x'), 0s));
  EXPECT_THROW(b.set("", "v", 0s), InvalidArgumentError);
  EXPECT_THROW(b.get("\xc3"), InvalidArgumentError);
  EXPECT_THROW(b.set("k", "v", -5s), InvalidArgumentError);
  EXPECT_EQ(f.transport->calls(), 0);
}

// Issue 8 item 5: a compressible value over the read limit used to be written (it compresses
// to a few KB) and then every get said "compressed value is corrupt". One limit now governs both.
TEST(DynamodbBackend, WriteAndReadAgreeOnTheMaximumValueSize) {
  Fixture f;
  auto b = f.backend();
  std::string at_limit(kMaxValueBytes, 'z');
  auto item = b.make_item("big", at_limit, 0s);
  EXPECT_EQ(item.at("fmt"), AttributeValue::N(2));
  auto hit = b.read_item(item);
  ASSERT_TRUE(hit);
  EXPECT_TRUE(hit->value == at_limit);

  std::string over(kMaxValueBytes + 1, 'z');
  try {
    b.set("big", over, 0s);
    ADD_FAILURE() << "a value over the limit was accepted";
  } catch (const InvalidArgumentError& e) {
    std::string m = e.what();
    EXPECT_NE(m.find(std::to_string(kMaxValueBytes + 1) + " bytes"), std::string::npos) << m;
    EXPECT_NE(m.find("at most " + std::to_string(kMaxValueBytes)), std::string::npos) << m;
  }
  EXPECT_EQ(f.transport->calls(), 0);

  // An item from elsewhere whose zstd frame declares more than the limit: the error says so
  // instead of calling it corrupt. (The frame of 1 MiB with its declared size patched.)
  auto src = b.make_item("x", std::string(1 << 20, 'z'), 0s);
  ASSERT_EQ(src.at("fmt"), AttributeValue::N(2));
  std::string& frame = src["value"].scalar;
  auto descriptor = static_cast<unsigned char>(frame[4]);
  ASSERT_EQ(descriptor >> 6, 2) << "expected a 4-byte Frame_Content_Size";
  size_t at = 5 + ((descriptor & 0x20) ? 0 : 1) + std::array<size_t, 4>{0, 1, 2, 4}[descriptor & 3];
  uint32_t declared = static_cast<uint32_t>(kMaxValueBytes) * 2;
  for (int i = 0; i < 4; ++i) frame[at + i] = static_cast<char>(declared >> (8 * i));
  try {
    b.read_item(src);
    ADD_FAILURE() << "an oversized frame was decompressed";
  } catch (const CodecError& e) {
    std::string m = e.what();
    EXPECT_NE(m.find("limit"), std::string::npos) << m;
    EXPECT_EQ(m.find("corrupt"), std::string::npos) << m;
  }
}

// A head that names more than kMaxValueBytes, or is malformed, is refused before any chunk is
// asked for: a table's contents cannot make a reader allocate without bound.
TEST(DynamodbBackend, MalformedChunkedHeadsAreCodecErrorsWithoutRequests) {
  Fixture f;
  auto b = f.backend();
  auto head = [&] {
    auto item = b.make_item("k", "v", 0s);
    item.erase("value");
    item["fmt"] = AttributeValue::N(3);
    item["wid"] = AttributeValue::S(std::string(32, 'a'));
    item["chunks"] = AttributeValue::N(3);
    item["bytes"] = AttributeValue::N(3 * 393216);
    item["crc32"] = AttributeValue::N(0);
    item["cfmt"] = AttributeValue::N(1);
    return item;
  };
  auto too_big = head();
  too_big["bytes"] = AttributeValue::N(static_cast<int64_t>(kMaxValueBytes) + 1);
  auto too_many = head();
  too_many["chunks"] = AttributeValue::N(100000);
  auto bad_wid = head();
  bad_wid["wid"] = AttributeValue::S("../../etc");
  auto no_count = head();
  no_count.erase("chunks");
  auto bad_format = head();
  bad_format["cfmt"] = AttributeValue::N(7);
  for (const auto& item : {too_big, too_many, bad_wid, no_count, bad_format})
    EXPECT_THROW(b.read_item(item), CodecError);
  EXPECT_EQ(f.transport->calls(), 0);
}

TEST(DynamodbBackend, GetFiltersExpiredItemsDynamoDbStillReturns) {
  std::string item_json;
  Fixture f([&](const http::Request&, int) { return ddb_response(200, item_json); });
  auto b = f.backend();
  auto item = b.make_item("k", "v", 5s);
  PutItemRequest p;
  p.item = item;
  std::string put = wire::encode(p);
  item_json = "{\"Item\":" + put.substr(put.find("\"Item\":") + 7);
  EXPECT_EQ(*b.get("k"), "v");
  f.now_s = kNow + 6;
  EXPECT_FALSE(b.get("k"));
  item_json = "{}";
  EXPECT_FALSE(b.get("k"));
  auto reqs = f.transport->requests();
  EXPECT_EQ(reqs[0].body, R"({"TableName":"dynamodb-cache","Key":{"key":{"S":"k"}},"ReturnConsumedCapacity":"TOTAL"})");
}

TEST(DynamodbBackend, ConsistentReadOption) {
  Fixture f([](const http::Request&, int) { return ddb_response(200, "{}"); });
  DynamodbOptions o;
  o.consistent_read = true;
  o.table = "t2";
  auto b = f.backend(o);
  b.get("k");
  EXPECT_EQ(f.transport->requests()[0].body,
            R"({"TableName":"t2","Key":{"key":{"S":"k"}},"ConsistentRead":true,"ReturnConsumedCapacity":"TOTAL"})");
  o.track_capacity = false;
  auto untracked = f.backend(o);
  untracked.get("k");
  EXPECT_EQ(f.transport->requests()[1].body, R"({"TableName":"t2","Key":{"key":{"S":"k"}},"ConsistentRead":true})");
}
