#include <gtest/gtest.h>

#include <random>

#include "dynamodb/wire.h"
#include "dynamodb_cache/errors.h"

using namespace dynamodb_cache;
using namespace dynamodb_cache::dynamodb;

TEST(Wire, EncodesEveryAttributeType) {
  AttributeValue::Map m{{"s", AttributeValue::S("x")}, {"n", AttributeValue::N(42)}};
  std::string out;
  wire::append_attribute_value(out, AttributeValue::S("he\"llo"));
  EXPECT_EQ(out, R"({"S":"he\"llo"})");
  out.clear();
  wire::append_attribute_value(out, AttributeValue::B(std::string("\x00\x01\xff", 3)));
  EXPECT_EQ(out, R"({"B":"AAH/"})");
  out.clear();
  wire::append_attribute_value(out, AttributeValue::M(m));
  EXPECT_EQ(out, R"({"M":{"n":{"N":"42"},"s":{"S":"x"}}})");
  out.clear();
  wire::append_attribute_value(
      out, AttributeValue::L({AttributeValue::Bool(true), AttributeValue::Null(), AttributeValue::SS({"a", "b"}),
                              AttributeValue::NS({"1", "2.5"}), AttributeValue::BS({"hi"})}));
  EXPECT_EQ(out, R"({"L":[{"BOOL":true},{"NULL":true},{"SS":["a","b"]},{"NS":["1","2.5"]},{"BS":["aGk="]}]})");
}

TEST(Wire, DecodeRoundTripsEveryType) {
  Item item{{"s", AttributeValue::S("ü")},
            {"n", AttributeValue::N("-1.5e3")},
            {"b", AttributeValue::B(std::string("\0bin", 4))},
            {"t", AttributeValue::Bool(false)},
            {"z", AttributeValue::Null()},
            {"m", AttributeValue::M({{"x", AttributeValue::L({AttributeValue::N(1)})}})},
            {"ss", AttributeValue::SS({"a"})},
            {"ns", AttributeValue::NS({"7"})},
            {"bs", AttributeValue::BS({std::string("\xff", 1)})}};
  PutItemRequest put;
  put.table_name = "t";
  put.item = item;
  std::string body = wire::encode(put);
  // A GetItem answer has the same item shape under "Item".
  std::string resp = "{\"Item\":" + body.substr(body.find("\"Item\":") + 7);
  resp = resp.substr(0, resp.size() - 1);  // drop the request's closing brace
  auto got = wire::decode_get_item(resp + "}");
  ASSERT_TRUE(got.item);
  EXPECT_EQ(*got.item, item);
}

TEST(Wire, GetItemRequestShape) {
  GetItemRequest r;
  r.table_name = "cache";
  r.key = {{"key", AttributeValue::S("k")}};
  r.consistent_read = true;
  r.projection_expression = "#v";
  r.names = {{"#v", "value"}};
  r.return_consumed_capacity = ReturnConsumedCapacity::kTotal;
  EXPECT_EQ(wire::encode(r),
            R"({"TableName":"cache","Key":{"key":{"S":"k"}},"ConsistentRead":true,)"
            R"("ProjectionExpression":"#v","ExpressionAttributeNames":{"#v":"value"},"ReturnConsumedCapacity":"TOTAL"})");
}

TEST(Wire, MissingItemIsNotAnError) {
  auto r = wire::decode_get_item(R"({"ConsumedCapacity":{"TableName":"t","CapacityUnits":0.5}})");
  EXPECT_FALSE(r.item);
  ASSERT_TRUE(r.consumed);
  EXPECT_DOUBLE_EQ(r.consumed->capacity_units, 0.5);
}

TEST(Wire, MalformedResponsesAreProtocolErrors) {
  for (std::string bad : std::vector<std::string>{"", "not json", "[1,2]", R"({"Item":{"a":{"X":"1"}}})", R"({"Item":{"a":{"B":"%%%%"}}})",
                          R"({"Item":{"a":{"S":1}}})", R"({"Item":{"a":{}}})", "{\"Item\":{\"a\":{\"S\":\"x\"}}"}) {
    try {
      wire::decode_get_item(bad);
      ADD_FAILURE() << "accepted: " << bad;
    } catch (const ProtocolError& e) {
      EXPECT_FALSE(e.retryable());
    }
  }
}

TEST(Wire, ErrorBodies) {
  auto e = wire::decode_error(R"({"__type":"com.amazonaws.dynamodb.v20120810#ResourceNotFoundException","message":"gone"})");
  EXPECT_EQ(e.name, "ResourceNotFoundException");
  EXPECT_EQ(e.message, "gone");
  e = wire::decode_error(R"({"__type":"com.amazon.coral.service#UnrecognizedClientException","Message":"bad key"})");
  EXPECT_EQ(e.name, "UnrecognizedClientException");
  EXPECT_EQ(e.message, "bad key");
  e = wire::decode_error("<html>502</html>");
  EXPECT_EQ(e.name, "");
}

TEST(Wire, BatchAndPageResults) {
  auto bg = wire::decode_batch_get(
      R"({"Responses":{"t":[{"key":{"S":"a"}}]},"UnprocessedKeys":{"t":{"Keys":[{"key":{"S":"b"}}],"ConsistentRead":true}}})");
  ASSERT_EQ(bg.responses["t"].size(), 1u);
  ASSERT_EQ(bg.unprocessed_keys["t"].keys.size(), 1u);
  EXPECT_TRUE(bg.unprocessed_keys["t"].consistent_read);
  auto bw = wire::decode_batch_write(
      R"({"UnprocessedItems":{"t":[{"PutRequest":{"Item":{"key":{"S":"a"}}}},{"DeleteRequest":{"Key":{"key":{"S":"b"}}}}]}})");
  ASSERT_EQ(bw.unprocessed_items["t"].size(), 2u);
  EXPECT_TRUE(bw.unprocessed_items["t"][0].put_item);
  EXPECT_TRUE(bw.unprocessed_items["t"][1].delete_key);
  auto page = wire::decode_page(R"({"Items":[{"key":{"S":"a"}}],"Count":1,"ScannedCount":3,"LastEvaluatedKey":{"key":{"S":"a"}}})");
  EXPECT_EQ(page.count, 1);
  EXPECT_EQ(page.scanned_count, 3);
  EXPECT_TRUE(page.last_evaluated_key);
}

TEST(Wire, TableDescriptions) {
  auto d = wire::decode_table(
      R"({"Table":{"TableName":"c","TableStatus":"ACTIVE","AttributeDefinitions":[{"AttributeName":"key","AttributeType":"S"}],)"
      R"("KeySchema":[{"AttributeName":"key","KeyType":"HASH"}],"BillingModeSummary":{"BillingMode":"PAY_PER_REQUEST"},"ItemCount":3}})",
      "Table");
  EXPECT_EQ(d.table_status, "ACTIVE");
  EXPECT_EQ(d.billing_mode, BillingMode::kPayPerRequest);
  ASSERT_EQ(d.key_schema.size(), 1u);
  EXPECT_EQ(d.key_schema[0].name, "key");
  EXPECT_EQ(d.item_count, 3);
  CreateTableRequest c;
  c.table_name = "c";
  c.attribute_definitions = {{"key", "S"}};
  c.key_schema = {{"key", KeyType::kHash}};
  c.billing_mode = BillingMode::kProvisioned;
  c.read_capacity_units = 3;
  c.write_capacity_units = 4;
  EXPECT_EQ(wire::encode(c),
            R"({"TableName":"c","AttributeDefinitions":[{"AttributeName":"key","AttributeType":"S"}],)"
            R"("KeySchema":[{"AttributeName":"key","KeyType":"HASH"}],"BillingMode":"PROVISIONED",)"
            R"("ProvisionedThroughput":{"ReadCapacityUnits":3,"WriteCapacityUnits":4}})");
}

// Found by fuzz/wire_decode_fuzz.cc: a key schema or attribute definition entry without its
// name (or not an object) escaped as simdjson_error instead of ProtocolError.
TEST(Wire, TableDescriptionWithoutFieldNamesIsMalformed) {
  for (const char* body :
       {R"({"Table":{"KeySchema":[{"AttribtueName":"key","KeyType":"HASH"}]}})",
        R"({"Table":{"KeySchema":[7]}})",
        R"({"Table":{"AttributeDefinitions":[{"AttributeName":"key"}]}})"})
    EXPECT_THROW(wire::decode_table(body, "Table"), ProtocolError) << body;
}

// Bounded mutation fuzzing: whatever bytes arrive, decoding returns or throws ProtocolError.
// (Run under ASan/UBSan by scripts/test.) 20,000 mutants, a fixed seed: deterministic.
TEST(Wire, MutatedResponsesNeverCrash) {
  const std::vector<std::string> seeds = {
      R"({"Item":{"key":{"S":"k"},"value":{"B":"aGVsbG8="},"expire":{"N":"10"},"update_ts":{"N":"1700000000"},"fmt":{"N":"1"}}})",
      R"({"Item":{"m":{"M":{"l":{"L":[{"BOOL":true},{"NULL":true},{"SS":["a"]},{"NS":["1"]},{"BS":["AA=="]}]}}}},"ConsumedCapacity":{"TableName":"t","CapacityUnits":1}})",
      R"({"Responses":{"t":[{"key":{"S":"a"}}]},"UnprocessedKeys":{"t":{"Keys":[{"key":{"S":"b"}}]}}})",
      R"({"Items":[{"key":{"S":"a"}}],"Count":1,"ScannedCount":1,"LastEvaluatedKey":{"key":{"S":"a"}}})"};
  std::mt19937 rng(2026);
  int rejected = 0;
  for (int i = 0; i < 20000; ++i) {
    std::string s = seeds[rng() % seeds.size()];
    int edits = 1 + static_cast<int>(rng() % 4);
    for (int e = 0; e < edits && !s.empty(); ++e) {
      size_t at = rng() % s.size();
      switch (rng() % 4) {
        case 0: s[at] = static_cast<char>(rng()); break;
        case 1: s.resize(at); break;
        case 2: s.insert(at, 1, "{}[]\":,\\"[rng() % 8]); break;
        default: s.insert(at, s.substr(at / 2, rng() % 16)); break;
      }
    }
    try {
      switch (i % 4) {
        case 0: wire::decode_get_item(s); break;
        case 1: wire::decode_batch_get(s); break;
        case 2: wire::decode_page(s); break;
        default: wire::decode_error(s); break;
      }
    } catch (const ProtocolError&) {
      ++rejected;
    }
  }
  EXPECT_GT(rejected, 1000);  // the mutations did reach the error paths
}
