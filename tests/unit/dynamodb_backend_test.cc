// The DynamoDB backend's item layout, liveness rule and value formats, over a scripted
// transport (the real service is exercised by the integration tests).
#include <gtest/gtest.h>

#include <array>
#include <random>
#include <typeinfo>

#include "cache/chunked.h"
#include "cache/dynamodb_backend_impl.h"
#include "dynamodb/wire.h"
#include "dynamodb_cache/backend.h"
#include "dynamodb_cache/errors.h"
#include "fake_transport.h"
#include "util/crypto.h"
#include "util/json_writer.h"

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

// The test hooks are not DynamodbBackend's public API: tests reach them in src/
// (detail::make_item, detail::read_item in cache/dynamodb_backend_impl.h).
template <class B>
concept HasTestHooks = requires(const B& b, const dynamodb::Item& item) {
  b.make_item("k", "v", Ttl(0));
}
|| requires(const B& b, const dynamodb::Item& item) { b.read_item(item); }
|| requires(const B& b) { b.is_digest("k", ""); };
static_assert(!HasTestHooks<DynamodbBackend>);

TEST(DynamodbBackend, ItemLayoutMatchesThePythonPackagePlusTtlAndMarker) {
  Fixture f;
  auto b = f.backend();
  auto item = detail::make_item(b, "my_db_credential", "payload", 3600s);
  EXPECT_EQ(item.at("key"), AttributeValue::S("my_db_credential"));
  EXPECT_EQ(item.at("value"), AttributeValue::B("payload"));
  EXPECT_EQ(item.at("expire"), AttributeValue::N(3600));
  EXPECT_EQ(item.at("update_ts"), AttributeValue::N(kNow));
  EXPECT_EQ(item.at("expire_at"), AttributeValue::N(kNow + 3600));
  EXPECT_EQ(item.at("fmt"), AttributeValue::N(1));
  EXPECT_EQ(item.size(), 6u);
  auto forever = detail::make_item(b, "k", "v", 0s);
  EXPECT_EQ(forever.at("expire"), AttributeValue::N(0));
  EXPECT_EQ(forever.count("expire_at"), 0u);
  EXPECT_EQ(detail::make_item(b, "k", "v", 1ms).at("expire"),
            AttributeValue::N(1));  // never rounds to "forever"
}

TEST(DynamodbBackend, PythonCompatWritesBase64TextWithoutMarker) {
  Fixture f;
  DynamodbOptions o;
  o.python_compat = true;
  auto b = f.backend(o);
  auto item = detail::make_item(b, "k", std::string(5000, 'a'), 60s);  // no compression in this mode
  EXPECT_EQ(item.at("value"), AttributeValue::B(util::base64_encode(std::string(5000, 'a'))));
  EXPECT_EQ(item.count("fmt"), 0u);
  EXPECT_EQ(item.count("expire_at"), 0u);
  EXPECT_EQ(detail::read_item(b, item)->value, std::string(5000, 'a'));
}

TEST(DynamodbBackend, ReadsItemsThePythonPackageWrote) {
  Fixture f;
  auto b = f.backend();
  Item py{{"key", AttributeValue::S("k")},
          {"value", AttributeValue::B(util::base64_encode("{\"host\": \"www.db.com\"}"))},
          {"expire", AttributeValue::N(0)},
          {"update_ts", AttributeValue::N(kNow - 100000)}};
  auto h = detail::read_item(b, py);
  ASSERT_TRUE(h);
  EXPECT_EQ(h->value, "{\"host\": \"www.db.com\"}");
  EXPECT_FALSE(h->ttl_left);
  py["value"] = AttributeValue::B("raw bytes!");  // neither marker nor base64
  EXPECT_THROW(detail::read_item(b, py), CodecError);
}

TEST(DynamodbBackend, LivenessIsThePythonRule) {
  Fixture f;
  auto b = f.backend();
  Item item = detail::make_item(b, "k", "v", 10s);  // update_ts = kNow, now = kNow + 0.25
  f.now_s = kNow + 9.5;
  auto h = detail::read_item(b, item);
  ASSERT_TRUE(h);
  EXPECT_EQ(h->ttl_left, Ttl(500));
  f.now_s = kNow + 10;  // now - update_ts == expire: expired
  EXPECT_FALSE(detail::read_item(b, item));
  f.now_s = kNow + 1e6;
  EXPECT_TRUE(detail::read_item(b, detail::make_item(b, "k", "v", 0s)));
}

TEST(DynamodbBackend, CompressesLargeCompressibleValues) {
  Fixture f;
  auto b = f.backend();
  std::string doc = json_doc(10 * 1024);
  auto item = detail::make_item(b, "doc", doc, 0s);
  EXPECT_EQ(item.at("fmt"), AttributeValue::N(2));
  EXPECT_LT(item.at("value").scalar.size(), doc.size() / 3);
  EXPECT_EQ(detail::read_item(b, item)->value, doc);

  std::string noise;
  uint32_t x = 1;
  for (int i = 0; i < 4096; ++i) noise.push_back(static_cast<char>((x = x * 1664525u + 1013904223u) >> 24));
  auto raw = detail::make_item(b, "noise", noise, 0s);
  EXPECT_EQ(raw.at("fmt"), AttributeValue::N(1));  // compression would not help
  EXPECT_EQ(detail::read_item(b, raw)->value, noise);
}

TEST(DynamodbBackend, CorruptOrUnknownValuesAreCodecErrors) {
  Fixture f;
  auto b = f.backend();
  auto item = detail::make_item(b, "doc", json_doc(4096), 0s);
  item["value"].scalar[5] ^= 0x55;
  item["value"].scalar.resize(item["value"].scalar.size() / 2);
  EXPECT_THROW(detail::read_item(b, item), CodecError);
  auto future = detail::make_item(b, "k", "v", 0s);
  future["fmt"] = AttributeValue::N(9);
  EXPECT_THROW(detail::read_item(b, future), CodecError);
  auto no_value = detail::make_item(b, "k", "v", 0s);
  no_value.erase("value");
  EXPECT_THROW(detail::read_item(b, no_value), CodecError);
}

TEST(DynamodbBackend, OversizedValuesAndBadKeysAreRejectedBeforeAnyRequest) {
  Fixture f;
  auto b = f.backend();
  std::string big(401 * 1024, 'x');
  big[0] = 'y';
  DynamodbOptions o;
  o.compress_min_bytes = 0;
  auto plain = f.backend(o);
  EXPECT_THROW(detail::make_item(plain, "k", big, 0s), InvalidArgumentError);  // set() would chunk it
  EXPECT_NO_THROW(detail::make_item(plain, "k", std::string(400 * 1024 - 100, 'x'), 0s));
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
  auto item = detail::make_item(b, "big", at_limit, 0s);
  EXPECT_EQ(item.at("fmt"), AttributeValue::N(2));
  auto hit = detail::read_item(b, item);
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
  auto src = detail::make_item(b, "x", std::string(1 << 20, 'z'), 0s);
  ASSERT_EQ(src.at("fmt"), AttributeValue::N(2));
  std::string& frame = src["value"].scalar;
  auto descriptor = static_cast<unsigned char>(frame[4]);
  ASSERT_EQ(descriptor >> 6, 2) << "expected a 4-byte Frame_Content_Size";
  size_t at = 5 + ((descriptor & 0x20) ? 0 : 1) + std::array<size_t, 4>{0, 1, 2, 4}[descriptor & 3];
  uint32_t declared = static_cast<uint32_t>(kMaxValueBytes) * 2;
  for (int i = 0; i < 4; ++i) frame[at + i] = static_cast<char>(declared >> (8 * i));
  try {
    detail::read_item(b, src);
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
    auto item = detail::make_item(b, "k", "v", 0s);
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
    EXPECT_THROW(detail::read_item(b, item), CodecError);
  EXPECT_EQ(f.transport->calls(), 0);
}

TEST(DynamodbBackend, GetFiltersExpiredItemsDynamoDbStillReturns) {
  std::string item_json;
  Fixture f([&](const http::Request&, int) { return ddb_response(200, item_json); });
  auto b = f.backend();
  auto item = detail::make_item(b, "k", "v", 5s);
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

// A cache get's answer decoded without an Item (detail::read_answer over
// wire::decode_get_item_fields) against the generic path it stands in for: decode_get_item,
// holds_key, read_entry. The same hit or miss, the same capacity, the same error type and
// message, on the item layouts (Python package's, fmt 1/2, counters, digests, chunk heads)
// and on broken ones.

namespace {

// The answers' reader (detail::read_answer) against the generic path: a client whose every
// request is answered with an empty object (a BatchGetItem of chunks then finds none), and
// options at a fixed time.
struct Env : Fixture {
  DynamodbOptions options;
  Env() {
    options.table = "t";
    options.now = [] { return SystemClock::time_point(std::chrono::milliseconds(kNow * 1000 + 250)); };
  }
};

struct Result {
  bool threw = false;
  std::string type, what;
  std::optional<Hit> hit;
  double units = 0;
};

template <class F>
Result run(F&& f) {
  Result r;
  try {
    r.hit = f(r.units);
  } catch (const std::exception& e) {
    r.threw = true;
    r.type = typeid(e).name();
    r.what = e.what();
  } catch (const chunked::ChunksGone&) {
    r.threw = true;
    r.type = "ChunksGone";
  }
  return r;
}

Result fast(Env& env, const std::string& body, std::string_view key) {
  return run([&](double& units) {
    std::atomic<double> u{0};
    struct Store {
      std::atomic<double>& from;
      double& to;
      ~Store() { to = from.load(); }
    } store{u, units};
    return detail::read_answer(env.options, env.client.get(), body, key, u);
  });
}

Result generic(Env& env, const std::string& body, std::string_view key) {
  return run([&](double& units) -> std::optional<Hit> {
    auto res = wire::decode_get_item(body);
    if (res.consumed) units = res.consumed->capacity_units;
    if (!res.item || !detail::holds_key(*res.item, key)) return std::nullopt;
    return detail::read_entry(env.options, *env.client, *res.item);
  });
}

// Both paths on `body`; returns the fields decoder's verdict (kItem: the fast path read it).
wire::GetItemFields::Kind expect_same(Env& env, const std::string& body, std::string_view key = "k") {
  SCOPED_TRACE(body.substr(0, 300));
  Result a = fast(env, body, key), b = generic(env, body, key);
  EXPECT_EQ(a.threw, b.threw) << a.what << " | " << b.what;
  EXPECT_EQ(a.type, b.type);
  EXPECT_EQ(a.what, b.what);
  EXPECT_EQ(a.hit.has_value(), b.hit.has_value());
  if (a.hit && b.hit) {
    EXPECT_EQ(a.hit->value, b.hit->value);
    EXPECT_EQ(a.hit->ttl_left, b.hit->ttl_left);
    EXPECT_EQ(a.hit->counter, b.hit->counter);
  }
  if (!a.threw && !b.threw) {
    EXPECT_EQ(a.units, b.units);
  }
  static const std::array<std::string_view, 8> names = {"key",       "value", "expire",  "update_ts",
                                                        "expire_at", "fmt",   "counter", "full_key"};
  wire::GetItemFields f;
  try {
    wire::decode_get_item_fields(body, names, f);
  } catch (const ProtocolError&) {
    return wire::GetItemFields::kOther;
  }
  return f.kind;
}

// {"Item":{...},"ConsumedCapacity":...} of `item`, its attributes in the order given.
std::string body_of(const std::vector<std::pair<std::string, AttributeValue>>& item,
                    const std::string& capacity = R"({"TableName":"t","CapacityUnits":0.5})") {
  std::string s = "{\"Item\":{";
  for (size_t i = 0; i < item.size(); ++i) {
    if (i) s += ',';
    util::JsonWriter(s).string(item[i].first);
    s += ':';
    wire::append_attribute_value(s, item[i].second);
  }
  s += "}";
  if (!capacity.empty()) s += ",\"ConsumedCapacity\":" + capacity;
  return s + "}";
}
std::string item_body(const Item& item) {
  return body_of(std::vector<std::pair<std::string, AttributeValue>>(item.begin(), item.end()));
}

using Attrs = std::vector<std::pair<std::string, AttributeValue>>;

Attrs python_item(const std::string& value, const std::string& expire = "3600",
                  int64_t update_ts = kNow - 10) {
  return {{"key", AttributeValue::S("k")},
          {"value", AttributeValue::B(util::base64_encode(value))},
          {"expire", AttributeValue::N(expire)},
          {"update_ts", AttributeValue::N(update_ts)}};
}

}  // namespace

TEST(GetAnswer, UsualLayoutsTakeTheFastPathWithTheSameAnswer) {
  Env env;
  DynamodbBackend backend(env.client, env.options);
  // The Python package's item (base64 text of the bytes), live, expired, never expiring.
  EXPECT_EQ(expect_same(env, body_of(python_item(std::string(1000, 'x')))), wire::GetItemFields::kItem);
  EXPECT_EQ(expect_same(env, body_of(python_item("v", "5", kNow - 10))), wire::GetItemFields::kItem);
  EXPECT_EQ(expect_same(env, body_of(python_item("v", "0", 0))), wire::GetItemFields::kItem);
  EXPECT_EQ(expect_same(env, body_of(python_item("v", "1e300"))), wire::GetItemFields::kItem);
  EXPECT_EQ(expect_same(env, body_of(python_item(""))), wire::GetItemFields::kItem);
  // Ours: fmt 1, fmt 2 (zstd), with and without a TTL, read back through make_item.
  DynamodbOptions zo = env.options;
  zo.compress_min_bytes = 100;
  DynamodbBackend zb(env.client, zo);
  for (auto ttl : {0s, 1s, 3600s}) {
    EXPECT_EQ(expect_same(env, item_body(detail::make_item(backend, "k", "payload", ttl))),
              wire::GetItemFields::kItem);
    EXPECT_EQ(expect_same(env, item_body(detail::make_item(zb, "k", std::string(5000, 'z'), ttl))),
              wire::GetItemFields::kItem);
  }
  // python_compat: base64 text, no fmt, no expire_at.
  DynamodbOptions po = env.options;
  po.python_compat = true;
  EXPECT_EQ(expect_same(env, item_body(detail::make_item(DynamodbBackend(env.client, po), "k", "abc", 60s))),
            wire::GetItemFields::kItem);
  // Counters: the decimal text, a value beside it wins, a non-integer is refused.
  Attrs counter = {{"key", AttributeValue::S("k")},
                   {"expire", AttributeValue::N(0)},
                   {"update_ts", AttributeValue::N(kNow)},
                   {"counter", AttributeValue::N(-42)}};
  EXPECT_EQ(expect_same(env, body_of(counter)), wire::GetItemFields::kItem);
  for (std::string bad : {"1.5", "", "99999999999999999999", "1e3"}) {
    counter[3].second = AttributeValue::N(bad);
    expect_same(env, body_of(counter));
  }
  counter[3].second = AttributeValue::N(7);
  counter.push_back({"value", AttributeValue::B("raw")});
  counter.push_back({"fmt", AttributeValue::N(1)});
  expect_same(env, body_of(counter));
  // No item, and an empty answer.
  EXPECT_EQ(expect_same(env, R"({"ConsumedCapacity":{"CapacityUnits":1}})"), wire::GetItemFields::kNoItem);
  EXPECT_EQ(expect_same(env, "{}"), wire::GetItemFields::kNoItem);
}

TEST(GetAnswer, DigestKeysCompareFullKey) {
  Env env;
  DynamodbOptions o = env.options;
  o.long_keys = true;
  DynamodbBackend b(env.client, o);
  std::string long_key(3000, 'L');
  Item item = detail::make_item(b, long_key, "v", 60s);
  ASSERT_TRUE(item.count("full_key"));
  EXPECT_EQ(expect_same(env, item_body(item), long_key), wire::GetItemFields::kItem);
  Result r = fast(env, item_body(item), long_key);
  ASSERT_TRUE(r.hit);
  EXPECT_EQ(r.hit->value, "v");
  EXPECT_FALSE(fast(env, item_body(item), std::string(3000, 'M')).hit);  // another key's item: a miss
  expect_same(env, item_body(item), std::string(3000, 'M'));
  item.at("full_key") = AttributeValue::B(long_key);  // the right bytes, the wrong type: still compared
  expect_same(env, item_body(item), long_key);
}

TEST(GetAnswer, LivenessByBothRules) {
  Env env;
  for (int64_t age : {0, 1, 3599, 3600, 3601, 100000}) {
    // The Python rule (no expire_at), and ours (expire_at as written: the rule still reads
    // expire and update_ts).
    Attrs p = python_item("v", "3600", kNow - age);
    expect_same(env, body_of(p));
    p.push_back({"expire_at", AttributeValue::N(kNow - age + 3600)});
    expect_same(env, body_of(p));
  }
  // Fractional, missing, and non-numeric times.
  expect_same(env, body_of(python_item("v", "0.5", kNow)));
  expect_same(env, body_of({{"key", AttributeValue::S("k")},
                            {"value", AttributeValue::B(util::base64_encode("v"))}}));
  expect_same(env, body_of(python_item("v", "abc")));
  expect_same(env, body_of(python_item("v", "1e400")));
  Attrs s_expire = python_item("v");
  s_expire[2].second = AttributeValue::S("3600");  // a string expire: read as absent
  EXPECT_EQ(expect_same(env, body_of(s_expire)), wire::GetItemFields::kItem);
}

TEST(GetAnswer, ValueAndFormatErrorsAreTheSame) {
  Env env;
  Attrs base = {{"key", AttributeValue::S("k")},
                {"expire", AttributeValue::N(0)},
                {"update_ts", AttributeValue::N(kNow)}};
  auto with = [&](Attrs extra) {
    Attrs a = base;
    for (auto& e : extra) a.push_back(e);
    return body_of(a);
  };
  expect_same(env, with({}));                                             // no value
  expect_same(env, with({{"value", AttributeValue::S("text")}}));         // not binary
  expect_same(env, with({{"value", AttributeValue::B("not base64!")}}));  // Python layout, bad text
  for (std::string fmt : {"1", "2", "3", "4", "5", "9", "01", "-1", "1.0", "", "x", "18446744073709551619"})
    expect_same(env, with({{"value", AttributeValue::B("bytes")}, {"fmt", AttributeValue::N(fmt)}}));
  expect_same(env, with({{"value", AttributeValue::B("bytes")}, {"fmt", AttributeValue::S("1")}}));
  expect_same(env, with({{"value", AttributeValue::B("not zstd")}, {"fmt", AttributeValue::N(2)}}));
  expect_same(env, with({{"fmt", AttributeValue::N(3)}}));  // a head without its attributes
  // No key attribute: messages say '?'.
  expect_same(env, body_of({{"value", AttributeValue::B("b")}, {"fmt", AttributeValue::N(7)}}));
}

TEST(GetAnswer, ChunkHeadsAndOtherAttributesTakeTheGenericPath) {
  Env env;
  Attrs head = {{"key", AttributeValue::S("k")},
                {"expire", AttributeValue::N(0)},
                {"update_ts", AttributeValue::N(kNow)},
                {"fmt", AttributeValue::N(3)},
                {"wid", AttributeValue::S(std::string(32, 'a'))},
                {"chunks", AttributeValue::N(2)},
                {"bytes", AttributeValue::N(10)},
                {"crc32", AttributeValue::N(1)},
                {"cfmt", AttributeValue::N(1)}};
  // Its chunks are gone (the fake answers no items): ChunksGone from both.
  EXPECT_EQ(expect_same(env, body_of(head)), wire::GetItemFields::kOther);
  head[5].second = AttributeValue::N("x");
  expect_same(env, body_of(head));
  // Without a client, read_answer stops at a head (after the liveness check).
  std::atomic<double> units{0};
  head[5].second = AttributeValue::N(2);
  EXPECT_THROW(detail::read_answer(env.options, nullptr, body_of(head), "k", units), detail::NeedsChunks);
  head[1].second = AttributeValue::N(5);  // expired: a miss, no chunks needed
  head[2].second = AttributeValue::N(kNow - 100);
  EXPECT_FALSE(detail::read_answer(env.options, nullptr, body_of(head), "k", units));
  // Another attribute, another type, a name twice.
  Attrs p = python_item("v");
  p.push_back({"other", AttributeValue::S("x")});
  EXPECT_EQ(expect_same(env, body_of(p)), wire::GetItemFields::kOther);
  p = python_item("v");
  p[2].second = AttributeValue::M({{"a", AttributeValue::N(1)}});
  EXPECT_EQ(expect_same(env, body_of(p)), wire::GetItemFields::kOther);
  p = python_item("v");
  p[2].second = AttributeValue::Bool(true);
  EXPECT_EQ(expect_same(env, body_of(p)), wire::GetItemFields::kOther);
  p = python_item("v");
  p.push_back({"expire", AttributeValue::N(0)});  // the first one counts, in both
  EXPECT_EQ(expect_same(env, body_of(p)), wire::GetItemFields::kOther);
}

TEST(GetAnswer, MalformedAnswersGiveTheSameErrors) {
  Env env;
  const std::string ok = body_of(python_item("v"));
  for (std::string body : {std::string(""),
                           std::string("["),
                           std::string("[]"),
                           std::string("null"),
                           std::string(R"({"Item":[]})"),
                           std::string(R"({"Item":"x"})"),
                           std::string(R"({"Item":{"key":"k"}})"),
                           std::string(R"({"Item":{"key":{}}})"),
                           std::string(R"({"Item":{"key":{"S":1}}})"),
                           std::string(R"({"Item":{"key":{"X":"k"}}})"),
                           std::string(R"({"Item":{"value":{"B":"abc"}}})"),
                           std::string(R"({"Item":{"value":{"B":"YWJj","S":"x"}}})"),
                           std::string(R"({"Item":{"key":{"S":"k","N":"1"}},"Item":{}})"),
                           std::string(R"({"Item":{"k\u0065y":{"S":"\u006b"},"value":{"B":"dg=="}}})"),
                           std::string(R"({"Item":{"value":{"B":"YQ\/="},"fmt":{"N":"1"}}})"),
                           std::string(R"({"Item":{},"ConsumedCapacity":[1]})"),
                           std::string(R"({"Item":{},"ConsumedCapacity":{"CapacityUnits":"x"}})"),
                           std::string(R"({"Item":{},"ConsumedCapacity":{"CapacityUnits":3}})"),
                           ok.substr(0, ok.size() - 1),
                           ok + "x"})
    expect_same(env, body);
}

// Random items from a pool of attribute values, usual and not, in random orders.
TEST(GetAnswer, RandomItemsAgree) {
  Env env;
  std::mt19937 rng(20261206);
  const std::vector<std::pair<std::string, std::vector<AttributeValue>>> pool = {
      {"key", {AttributeValue::S("k"), AttributeValue::S("other"), AttributeValue::N(1)}},
      {"value",
       {AttributeValue::B(util::base64_encode("hello")), AttributeValue::B(std::string("raw\0bytes", 9)),
        AttributeValue::B(""), AttributeValue::S("s")}},
      {"expire",
       {AttributeValue::N(0), AttributeValue::N(60), AttributeValue::N("-5"), AttributeValue::N("x"),
        AttributeValue::S("1")}},
      {"update_ts", {AttributeValue::N(kNow), AttributeValue::N(kNow - 100), AttributeValue::N("1.5")}},
      {"expire_at", {AttributeValue::N(kNow + 60), AttributeValue::S("x")}},
      {"fmt",
       {AttributeValue::N(1), AttributeValue::N(2), AttributeValue::N(3), AttributeValue::N(4),
        AttributeValue::N(5), AttributeValue::N(6), AttributeValue::N("1.0"), AttributeValue::S("1")}},
      {"counter", {AttributeValue::N(3), AttributeValue::N("3.5"), AttributeValue::S("3")}},
      {"full_key", {AttributeValue::S("k"), AttributeValue::S("j")}},
      {"wid", {AttributeValue::S(std::string(32, 'f'))}},
      {"chunks", {AttributeValue::N(1)}},
      {"zz", {AttributeValue::L({}), AttributeValue::SS({"a"})}},
  };
  int fast_paths = 0;
  for (int i = 0; i < 3000; ++i) {
    Attrs a;
    for (const auto& [name, values] : pool) {
      const unsigned percent = name == "key" || name == "value"                    ? 85
                               : name == "wid" || name == "chunks" || name == "zz" ? 3
                                                                                   : 35;
      if (rng() % 100 < percent) a.push_back({name, values[rng() % values.size()]});
    }
    std::shuffle(a.begin(), a.end(), rng);
    if (expect_same(env, body_of(a, rng() % 2 ? "" : R"({"CapacityUnits":0.5})")) ==
        wire::GetItemFields::kItem)
      ++fast_paths;
    if (HasFailure()) break;
  }
  EXPECT_GT(fast_paths, 1000);
}

TEST(GetAnswer, EncodeGetItemWritesTheRequestsBytes) {
  for (std::string key :
       {std::string("k"), std::string("quote\"back\\slash\n\x01"), std::string("caf\xc3\xa9")})
    for (bool consistent : {false, true})
      for (auto rcc : {ReturnConsumedCapacity::kNone, ReturnConsumedCapacity::kTotal,
                       ReturnConsumedCapacity::kIndexes}) {
        GetItemRequest r;
        r.table_name = "tab\"le";
        r.key = {{"key", AttributeValue::S(key)}};
        r.consistent_read = consistent;
        r.return_consumed_capacity = rcc;
        EXPECT_EQ(wire::encode_get_item(r.table_name, "key", key, consistent, rcc), wire::encode(r));
      }
}

// add() whose condition fails reads the item to judge it; when that read fails, its error is
// what add() throws (no unknown outcome: the write was answered).
TEST(DynamodbBackend, AddWhoseReadAfterAFailedConditionFailsThrowsTheReadsError) {
  Fixture f([](const http::Request& r, int) {
    const std::string* target = nullptr;
    for (auto& h : r.headers)
      if (h.name == "X-Amz-Target") target = &h.value;
    if (target && *target == "DynamoDB_20120810.PutItem")
      return testing_support::ddb_error(400, "ConditionalCheckFailedException");
    return testing_support::ddb_error(400, "AccessDeniedException", "no reads");
  });
  auto b = f.backend();
  try {
    b.add("k", "v", 0s);
    ADD_FAILURE();
  } catch (const ServiceError& e) {
    EXPECT_EQ(e.name(), "AccessDeniedException");
  }
}

// A read whose chunks vanish under it (a writer replaced the value) reads the head again,
// strongly consistently, up to chunked::kChunkedReadTries times; only then is it a miss.
TEST(ChunkedReads, AReadWhoseChunksVanishTriesAgainUpToItsBound) {
  for (int vanish : {0, 1, chunked::kChunkedReadTries - 1, chunked::kChunkedReadTries}) {
    int calls = 0;
    std::vector<bool> consistent;
    auto got = chunked::read_retrying([&](bool reread) -> std::optional<std::string> {
      consistent.push_back(reread);
      if (calls++ < vanish) throw chunked::ChunksGone{};
      return "value";
    });
    EXPECT_EQ(got.has_value(), vanish < chunked::kChunkedReadTries) << vanish;
    EXPECT_EQ(calls, std::min(vanish + 1, chunked::kChunkedReadTries)) << vanish;
    for (size_t i = 0; i < consistent.size(); ++i) {
      EXPECT_EQ(consistent[i], i > 0) << vanish << " " << i;
    }
  }
}
