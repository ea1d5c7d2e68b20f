// The strict JSON reader of the answers read on every get (dynamodb/wire_scan.h): what it
// accepts and declines, and that the decoders built on it read every body exactly as their
// simdjson readings do. A body becomes one the reader declines, with the same meaning, by a
// first member whose name is written with an escape ({"\u0078":0,...}): no decoder reads a
// member named "x", so both readings must agree.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "dynamodb/get_batch.h"
#include "dynamodb/wire.h"
#include "dynamodb/wire_scan.h"
#include "dynamodb_cache/errors.h"

using namespace dynamodb_cache;
using namespace dynamodb_cache::dynamodb;
using wire::detail::Scanner;

namespace {

bool reads_string(const std::string& text, std::string_view* out = nullptr) {
  Scanner s(text);
  std::string_view v;
  if (!s.string(v)) return false;
  if (out) *out = v;
  return true;
}

bool reads_value(const std::string& text) {
  Scanner s(text);
  return s.value() && s.at_end();
}

std::string forced_to_simdjson(const std::string& body) {
  const auto open = body.find('{');
  return body.substr(0, open + 1) + R"("\u0078":0,)" + body.substr(open + 1);
}

}  // namespace

TEST(Scanner, StringsOfEveryLengthEndAtTheirQuoteWhereverTheBlocksEnd) {
  for (size_t n = 0; n < 100; ++n)
    for (const std::string& after : std::vector<std::string>{"", ",\"next\":1}", std::string(64, ' ')}) {
      const std::string text(n, 'a');
      std::string_view v;  // a view into the text read, which must outlive it
      const std::string whole = "\"" + text + "\"" + after;
      ASSERT_TRUE(reads_string(whole, &v)) << n;
      EXPECT_EQ(v, text);
      EXPECT_FALSE(reads_string("\"" + text)) << n;  // no closing quote
      // An escape, a control character or a byte that is not UTF-8 anywhere in it: declined.
      for (size_t at = 0; at < n; at += 7) {
        for (char bad : {'\\', '\n', '\t', '\x01', '\x1f'}) {
          std::string t = text;
          t[at] = bad;
          EXPECT_FALSE(reads_string("\"" + t + "\"" + after)) << n << " " << at << " " << int(bad);
        }
        std::string t = text;
        t[at] = '\x80';
        EXPECT_FALSE(reads_string("\"" + t + "\"" + after)) << n << " " << at;
        t = text;
        t.replace(at, 1, "\xc3\xa9");  // é
        const std::string accented = "\"" + t + "\"" + after;
        ASSERT_TRUE(reads_string(accented, &v)) << n << " " << at;
        EXPECT_EQ(v, t);
      }
    }
}

TEST(Scanner, StringsAreUtf8) {
  EXPECT_TRUE(reads_string("\"\xf0\x9f\x98\x80 \xe2\x82\xac\""));
  for (const char* bad : {"\"\xc0\x80\"", "\"\xed\xa0\x80\"", "\"\xf4\x90\x80\x80\"", "\"\xe2\x82\"", "\"\xff\""})
    EXPECT_FALSE(reads_string(bad)) << bad;
  // DEL (0x7f) is not a control character to JSON.
  EXPECT_TRUE(reads_string("\"a\x7f\""));
}

TEST(Scanner, NumbersAsJsonWritesThem) {
  for (const char* good : {"0", "0.5", "1", "10", "1e2", "1E-2", "2.5e+3", "123456789012345678", "0.000001"}) {
    Scanner s(good);
    double d = -1;
    EXPECT_TRUE(s.number(d) && s.at_end()) << good;
    EXPECT_EQ(d, std::stod(good)) << good;
  }
  for (const char* bad : {"01", "-1", "1.", ".5", "1e", "1e+", "+1", "1x", "1234567890123456789", "1e400", "0x10", ""}) {
    Scanner s(bad);
    double d;
    EXPECT_FALSE(s.number(d) && s.at_end()) << bad;
  }
}

TEST(Scanner, ValuesLiteralsAndDepth) {
  for (const char* good : {"true", "false", "null", "[]", "{}", R"({"a":[1,{"b":null}],"c":"d"})", " [ 1 , 2 ] "})
    EXPECT_TRUE(reads_value(good)) << good;
  for (const char* bad : {"tru", "truex", "nul", "[1,]", "{\"a\":1,}", "{\"a\"}", "{a:1}", "[1 2]", "\"a\" x", "[", "}"})
    EXPECT_FALSE(reads_value(bad)) << bad;
  const auto nested = [](int n) { return std::string(static_cast<size_t>(n), '[') + std::string(static_cast<size_t>(n), ']'); };
  EXPECT_TRUE(reads_value(nested(Scanner::kMaxDepth)));
  EXPECT_FALSE(reads_value(nested(Scanner::kMaxDepth + 1)));  // left to simdjson
}

// decode_get_item_fields, read by the scanner and forced to simdjson: the same kind, fields,
// capacity, or the same error.
TEST(Scanner, GetItemAnswersReadAsSimdjsonReadsThem) {
  static const std::vector<std::string_view> names = {"key", "value", "expire", "update_ts"};
  struct Read {
    bool threw = false;
    std::string what;
    wire::GetItemFields::Kind kind = wire::GetItemFields::kNoItem;
    std::vector<std::string> fields;
    double units = 0;
  };
  const auto read = [&](const std::string& body) {
    Read r;
    wire::GetItemFields f;
    try {
      wire::decode_get_item_fields(body, names, f);
    } catch (const ProtocolError& e) {
      r.threw = true;
      r.what = e.what();
      return r;
    }
    r.kind = f.kind;
    r.units = f.capacity_units;
    if (f.kind == wire::GetItemFields::kItem)
      for (size_t i = 0; i < names.size(); ++i)
        r.fields.push_back(f.fields[i].present ? std::to_string(int(f.fields[i].type)) + ":" + std::string(f.fields[i].scalar())
                                               : "-");
    return r;
  };
  const std::string b64(1780, 'Q');
  for (const std::string& body : std::vector<std::string>{
           R"({"Item":{"key":{"S":"k"},"value":{"B":")" + b64 + R"("},"expire":{"N":"3600"},"update_ts":{"N":"1700000000"}}})",
           R"({"Item":{"key":{"S":"k"}},"ConsumedCapacity":{"TableName":"t","CapacityUnits":0.5}})",
           R"( { "Item" : { "key" : { "S" : "k é" } } , "ConsumedCapacity" : { "CapacityUnits" : 1E0 } } )",
           R"({"ConsumedCapacity":{"CapacityUnits":"1"}})",
           R"({"ConsumedCapacity":{"Table":{"CapacityUnits":2},"CapacityUnits":3}})",
           R"({"ConsumedCapacity":[{"CapacityUnits":3}]})",
           R"({"ConsumedCapacity":{"CapacityUnits":-1}})",
           R"({"ConsumedCapacity":{"CapacityUnits":3,"CapacityUnits":4}})",
           R"({"Item":{"key":{"S":"a\"b"}}})",
           R"({"Item":{"key":{"S":"a"},"key":{"S":"b"}}})",
           R"({"Item":{"other":{"S":"a"}}})",
           R"({"Item":{"key":{"BOOL":true}}})",
           R"({"Item":{"key":{"S":"a","N":"1"}}})",
           R"({"Item":{"value":{"B":"YQ=="}}})",
           R"({"Item":{"value":{"B":"YQ\u003d="}}})",
           R"({"Item":{"value":{"B":"YQ\"=="}}})",
           R"({"Item":{"value":{"B":"Y Q=="}}})",
           "{\"Item\":{\"value\":{\"B\":\"YQ\n==\"}}}",
           "{\"Item\":{\"key\":{\"S\":\"a\x01\"}}}",
           "{\"Item\":{\"key\":{\"S\":\"a\xff\"}}}",
           R"({"Item":{"key":{"S":"k"}},"Item":{}})",
           R"({"Item":{},"Other":[[[[{"a":[true,false,null,1.5e3]}]]]]})",
           R"({"Item":{}} x)",
           R"({"Item":{},})",
           R"({"Item":{"key":{"S":"k"}})",
       }) {
    SCOPED_TRACE(body.substr(0, 200));
    const Read scanned = read(body), dom = read(forced_to_simdjson(body));
    EXPECT_EQ(scanned.threw, dom.threw);
    EXPECT_EQ(scanned.what, dom.what);
    EXPECT_EQ(scanned.kind, dom.kind);
    EXPECT_EQ(scanned.fields, dom.fields);
    EXPECT_EQ(scanned.units, dom.units);
  }
}

// split_batch_get likewise: the same items (as JSON), unprocessed keys and capacity, or both
// throw.
TEST(Scanner, BatchGetAnswersReadAsSimdjsonReadsThem) {
  const auto a = wire::batchable_get("t", "key", "a", false, ReturnConsumedCapacity::kNone);
  const auto b = wire::batchable_get("t", "key", "b", false, ReturnConsumedCapacity::kNone);
  const wire::BatchableGet* keys[] = {&a, &b};
  const std::string names[] = {"key"};
  const std::string b64(1780, 'Q');
  for (const std::string& body : std::vector<std::string>{
           R"({"Responses":{"t":[{"key":{"S":"a"},"value":{"B":")" + b64 + R"("}},{"key":{"S":"b"},"n":{"M":{"x":{"L":[{"NULL":true}]}}}}]}})",
           R"({"Responses":{"t":[]},"UnprocessedKeys":{},"ConsumedCapacity":[{"TableName":"t","CapacityUnits":1.5},{"TableName":"u","CapacityUnits":2},{"CapacityUnits":1},{"TableName":"t"},7,{"TableName":"t","CapacityUnits":0.5}]})",
           R"({"Responses":{"u":[{"x":1}],"t":[{"key":{"S":"a"}},{"key":{"S":"a"},"v":{"N":"2"}}]}})",
           R"( { "Responses" : { "t" : [ { "v" : { "S" : "é" } , "key" : { "S" : "b" } } ] } } )",
           R"({"Responses":{"t":[{"key":{"S":"a"}}],"t":[{"key":{"S":"b"}}]}})",
           R"({"Responses":{"t":[{"key":{"S":"a"},"key":{"S":"b"}}]}})",
           R"({"Responses":{"t":[{"key":{"S":"a\u0062"}}]}})",
           R"({"Responses":{"t":[{"key":{"N":"1"}}]}})",
           R"({"Responses":{"t":[{"value":{"S":"x"}}]}})",
           R"({"Responses":{"t":[{"key":{"S":"a"},"v":{"S":"a)" "\x01" R"("}}]}})",
           R"({"Responses":{"t":{}}})",
           R"({"Responses":{"t":[{"key":{"S":"a"}}]},"UnprocessedKeys":{"t":{"Keys":[{"key":{"S":"b"}}]}}})",
           R"({"Responses":{"t":[{"key":{"S":"a"}}]},"ConsumedCapacity":{"TableName":"t","CapacityUnits":1}})",
           R"({"Responses":{"t":[{"key":{"S":"a"}}]}}])",
       }) {
    SCOPED_TRACE(body.substr(0, 200));
    bool threw[2] = {false, false};
    wire::BatchGetAnswer got[2];
    const std::string bodies[2] = {body, forced_to_simdjson(body)};
    for (int i = 0; i < 2; ++i) {
      try {
        got[i] = wire::split_batch_get(bodies[i], "t", names, keys);
      } catch (const ProtocolError&) {
        threw[i] = true;
      }
    }
    ASSERT_EQ(threw[0], threw[1]);
    if (threw[0]) continue;
    ASSERT_EQ(got[0].items.size(), got[1].items.size());
    for (size_t i = 0; i < got[0].items.size(); ++i) {
      std::string ax, ay;
      wire::get_item_answer(ax, got[0].items[i], "t", "", 0);
      wire::get_item_answer(ay, got[1].items[i], "t", "", 0);
      EXPECT_EQ(wire::decode_get_item(ax).item, wire::decode_get_item(ay).item) << i;
    }
    EXPECT_EQ(got[0].unprocessed, got[1].unprocessed);
    EXPECT_EQ(got[0].capacity_units, got[1].capacity_units);
  }
}
