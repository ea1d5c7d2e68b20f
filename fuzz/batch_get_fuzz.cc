// libFuzzer target: a BatchGetItem answer split by key (wire::split_batch_get, whose scanner
// finds each item's text in the body) against a plain simdjson DOM reading of the same body.
// Input: byte 0 picks the table, the key attribute names (one, or two) and whether the keys
// asked are also taken from the body (so that every item there is asked for); the rest is the
// answer body. Contract checked: split_batch_get returns or throws ProtocolError (any other
// exception escapes and libFuzzer reports it as a crash); it throws exactly when the body is
// not a JSON object, Responses is not an object, Responses[table] is not an array of objects
// each holding the S key attributes, or UnprocessedKeys[table].Keys holds a key that is not
// S attributes; and otherwise, for each key asked, its item is the text of the last element
// of Responses[table] with that key (parsed, equal to that DOM element, member for member) or
// empty when there is none, it is unprocessed exactly when UnprocessedKeys[table].Keys holds
// it, and the capacity is the sum of ConsumedCapacity's entries for the table.
#include <simdjson.h>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <initializer_list>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "dynamodb/get_batch.h"
#include "dynamodb/wire.h"
#include "dynamodb_cache/errors.h"

namespace ddb = dynamodb_cache::dynamodb;
namespace wire = dynamodb_cache::dynamodb::wire;
namespace dom = simdjson::dom;

namespace {

using Key = std::vector<std::pair<std::string, std::string>>;  // sorted by name

// The S value of {"S":"..."} (the only member), or nullopt.
std::optional<std::string> s_value(dom::element v) {
  dom::object typed;
  if (v.get(typed) != simdjson::SUCCESS || typed.size() != 1) return std::nullopt;
  auto field = *typed.begin();
  std::string_view s;
  if (field.key != "S" || field.value.get(s) != simdjson::SUCCESS) return std::nullopt;
  return std::string(s);
}

// A key object of S attributes with distinct names, sorted; nullopt otherwise.
std::optional<Key> key_of(dom::element e) {
  dom::object obj;
  if (e.get(obj) != simdjson::SUCCESS || obj.size() == 0) return std::nullopt;
  Key key;
  for (auto f : obj) {
    auto s = s_value(f.value);
    if (!s) return std::nullopt;
    key.emplace_back(std::string(f.key), std::move(*s));
  }
  std::sort(key.begin(), key.end());
  for (size_t i = 1; i < key.size(); ++i)
    if (key[i].first == key[i - 1].first) return std::nullopt;
  return key;
}

// An item's key_names attributes (all S), or nullopt.
std::optional<Key> item_key(dom::object item, const std::vector<std::string>& key_names) {
  Key key;
  for (const auto& name : key_names) {
    dom::element v;
    if (item[name].get(v) != simdjson::SUCCESS) return std::nullopt;
    auto s = s_value(v);
    if (!s) return std::nullopt;
    key.emplace_back(name, std::move(*s));
  }
  return key;
}

// What split_batch_get should make of the body, read straight off simdjson's DOM.
struct Expected {
  bool malformed = false;
  std::vector<std::pair<Key, std::string>> items;  // (key, minified item), in order
  std::vector<Key> unprocessed;
  double capacity = 0;
};

Expected expect(dom::parser& parser, const std::string& body, const std::string& table,
                const std::vector<std::string>& key_names) {
  Expected e;
  dom::object doc;
  if (parser.parse(body).get(doc) != simdjson::SUCCESS) {
    e.malformed = true;
    return e;
  }
  dom::element responses;
  if (doc["Responses"].get(responses) == simdjson::SUCCESS) {
    dom::object by_table;
    if (responses.get(by_table) != simdjson::SUCCESS) {
      e.malformed = true;
      return e;
    }
    dom::element of_table;
    if (by_table[table].get(of_table) == simdjson::SUCCESS) {
      dom::array items;
      if (of_table.get(items) != simdjson::SUCCESS) {
        e.malformed = true;
        return e;
      }
      for (auto item : items) {
        dom::object obj;
        std::optional<Key> key;
        if (item.get(obj) != simdjson::SUCCESS || !(key = item_key(obj, key_names))) {
          e.malformed = true;
          return e;
        }
        e.items.emplace_back(std::move(*key), simdjson::minify(item));
      }
    }
  }
  dom::array asked;
  if (doc["UnprocessedKeys"][table]["Keys"].get(asked) == simdjson::SUCCESS)
    for (auto k : asked) {
      auto key = key_of(k);
      if (!key) {
        e.malformed = true;
        return e;
      }
      e.unprocessed.push_back(std::move(*key));
    }
  dom::array consumed;
  if (doc["ConsumedCapacity"].get(consumed) == simdjson::SUCCESS)
    for (auto c : consumed) {
      std::string_view name;
      double units = 0;
      if (c["TableName"].get(name) == simdjson::SUCCESS && name == table &&
          c["CapacityUnits"].get(units) == simdjson::SUCCESS)
        e.capacity += units;
    }
  return e;
}

// The BatchableGet of a GetItem for `key` (as the client makes it from a GetItem's body).
std::optional<wire::BatchableGet> batchable(const std::string& table, const Key& key) {
  ddb::GetItemRequest r;
  r.table_name = table;
  for (const auto& [name, value] : key) r.key[name] = ddb::AttributeValue::S(value);
  wire::BatchableGet g;
  if (!wire::parse_batchable_get(wire::encode(r), g)) return std::nullopt;
  return g;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  static const char* const kTables[] = {"t", "Cache-Table_1.x", "t\"\\", ""};
  const std::string table = kTables[data[0] & 3];
  const bool composite = data[0] & 4;
  const bool ask_all = data[0] & 8;
  const std::vector<std::string> key_names =
      composite ? std::vector<std::string>{"pk", "sk"} : std::vector<std::string>{"key"};
  std::string body;
  body.reserve(size + simdjson::SIMDJSON_PADDING);
  body.assign(reinterpret_cast<const char*>(data) + 1, size - 1);

  static dom::parser parser;  // not the library's thread parser: a reading of its own
  const Expected e = expect(parser, body, table, key_names);

  // The keys asked: a few fixed ones, then (ask_all) every key the body holds; distinct.
  std::vector<Key> wanted;
  if (composite)
    for (auto [pk, sk] : std::initializer_list<std::pair<const char*, const char*>>{{"a", "1"}, {"b", "2"}, {"a", ""}})
      wanted.push_back({{"pk", pk}, {"sk", sk}});
  else
    for (const char* v : {"a", "b", "k1", ""}) wanted.push_back({{"key", v}});
  if (ask_all && !e.malformed) {
    for (const auto& item : e.items) wanted.push_back(item.first);
    for (const auto& k : e.unprocessed) wanted.push_back(k);
  }
  std::vector<wire::BatchableGet> gets;
  for (const auto& k : wanted) {
    if (gets.size() == wire::kMaxBatchGetKeys) break;
    if (std::any_of(gets.begin(), gets.end(), [&](const auto& g) { return g.key == k; })) continue;
    auto g = batchable(table, k);
    if (!g || g->key != k) std::abort();  // a key of S attributes is always batchable
    gets.push_back(std::move(*g));
  }
  std::vector<const wire::BatchableGet*> keys;
  for (const auto& g : gets) keys.push_back(&g);

  wire::BatchGetAnswer got;
  try {
    got = wire::split_batch_get(body, table, key_names, keys);
  } catch (const dynamodb_cache::ProtocolError&) {
    if (!e.malformed) std::abort();  // a body the DOM reads fine, refused
    return 0;
  }
  if (e.malformed) std::abort();  // a malformed body accepted
  if (got.items.size() != keys.size() || got.unprocessed.size() != keys.size()) std::abort();

  static dom::parser item_parser;
  for (size_t i = 0; i < keys.size(); ++i) {
    // The last element of Responses[table] with this key (a later one replaces an earlier).
    const std::string* want = nullptr;
    for (const auto& [key, text] : e.items)
      if (key == keys[i]->key) want = &text;
    if (!want) {
      if (!got.items[i].empty()) std::abort();  // an item the DOM does not see for this key
      continue;
    }
    if (got.items[i].empty()) std::abort();  // the DOM's item missed
    dom::element item;
    const std::string text(got.items[i]);  // a copy: parse pads it
    if (item_parser.parse(text).get(item) != simdjson::SUCCESS) std::abort();  // not one JSON value
    if (simdjson::minify(item) != *want) std::abort();  // another item, or not all of it
  }
  for (size_t i = 0; i < keys.size(); ++i) {
    const bool unprocessed = std::find(e.unprocessed.begin(), e.unprocessed.end(), keys[i]->key) != e.unprocessed.end();
    if (got.unprocessed[i] != (unprocessed ? 1 : 0)) std::abort();
  }
  if (!(got.capacity_units == e.capacity || (std::isnan(got.capacity_units) && std::isnan(e.capacity))))
    std::abort();
  return 0;
}
