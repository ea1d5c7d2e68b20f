#include "dynamodb/get_batch.h"

#include <algorithm>
#include <charconv>

#include "dynamodb/wire_doc.h"
#include "util/json_writer.h"

namespace dynamodb_cache::dynamodb::wire {

namespace dom = simdjson::dom;
using detail::malformed;

namespace {

void append_identity(std::string& out, std::string_view name, std::string_view value) {
  out += std::to_string(name.size());
  out += ':';
  out += name;
  out += std::to_string(value.size());
  out += ':';
  out += value;
}

// The S value of attribute value `v` ({"S":"..."}), or false.
bool string_value(dom::element v, std::string_view& out) {
  dom::object typed;
  if (v.get(typed) != simdjson::SUCCESS || typed.size() != 1) return false;
  auto field = *typed.begin();
  return field.key == "S" && field.value.get(out) == simdjson::SUCCESS;
}

// A key object of S attributes -> the sorted attributes and their identity; false otherwise.
bool read_key(dom::element e, std::vector<std::pair<std::string, std::string>>& key, std::string& identity) {
  dom::object obj;
  if (e.get(obj) != simdjson::SUCCESS || obj.size() == 0) return false;
  key.clear();
  for (auto f : obj) {
    std::string_view s;
    if (!string_value(f.value, s)) return false;
    key.emplace_back(std::string(f.key), std::string(s));
  }
  std::sort(key.begin(), key.end());
  identity.clear();
  for (size_t i = 0; i < key.size(); ++i) {
    if (i > 0 && key[i].first == key[i - 1].first) return false;  // a name twice
    append_identity(identity, key[i].first, key[i].second);
  }
  return true;
}

}  // namespace

bool parse_batchable_get(const std::string& body, BatchableGet& out) {
  try {
    auto doc = detail::parse(body);
    dom::object obj;
    if (doc.get(obj) != simdjson::SUCCESS) return false;
    bool has_table = false, has_key = false;
    out.consistent = false;
    out.capacity.clear();
    for (auto f : obj) {
      std::string_view s;
      if (f.key == "TableName" && f.value.get(s) == simdjson::SUCCESS) {
        out.table.assign(s);
        has_table = true;
      } else if (f.key == "Key") {
        if (!read_key(f.value, out.key, out.identity)) return false;
        has_key = true;
      } else if (f.key == "ConsistentRead" && f.value.get(out.consistent) == simdjson::SUCCESS) {
      } else if (f.key == "ReturnConsumedCapacity" && f.value.get(s) == simdjson::SUCCESS &&
                 (s == "TOTAL" || s == "INDEXES" || s == "NONE")) {
        if (s != "NONE") out.capacity.assign(s);
      } else {
        return false;
      }
    }
    return has_table && has_key;
  } catch (const std::exception&) {  // not JSON: DynamoDB says what is wrong with it
    return false;
  }
}

std::string encode_batch_get(std::string_view table, bool consistent, std::string_view capacity,
                             std::span<const BatchableGet* const> keys) {
  std::string out;
  size_t size = 96 + table.size();
  for (const auto* k : keys) size += k->identity.size() + 16 * k->key.size();
  out.reserve(size);
  util::JsonWriter w(out);
  w.begin_object();
  w.key("RequestItems");
  w.begin_object();
  w.key(table);
  w.begin_object();
  w.key("Keys");
  w.begin_array();
  for (const auto* k : keys) {
    w.begin_object();
    for (const auto& [name, value] : k->key) {
      w.key(name);
      w.begin_object();
      w.field("S", value);
      w.end_object();
    }
    w.end_object();
  }
  w.end_array();
  if (consistent) {
    w.key("ConsistentRead");
    w.boolean(true);
  }
  w.end_object();
  w.end_object();
  if (!capacity.empty()) w.field("ReturnConsumedCapacity", capacity);
  w.end_object();
  return out;
}

BatchGetAnswer split_batch_get(const std::string& body, std::string_view table,
                               std::span<const std::string> key_names) {
  BatchGetAnswer out;
  auto doc = detail::parse(body);
  auto responses = doc["Responses"];
  if (responses.error() == simdjson::SUCCESS) {
    dom::object by_table;
    if (responses.get(by_table) != simdjson::SUCCESS) malformed("BatchGetItem Responses is not an object");
    auto of_table = by_table[table];
    dom::array items;
    if (of_table.error() == simdjson::SUCCESS && of_table.get(items) != simdjson::SUCCESS)
      malformed("BatchGetItem Responses entry is not an array");
    std::string identity;
    if (of_table.error() == simdjson::SUCCESS)
      for (auto item : items) {
        dom::object obj;
        if (item.get(obj) != simdjson::SUCCESS) malformed("BatchGetItem Responses entry is not an object");
        identity.clear();
        for (const auto& name : key_names) {
          dom::element v;
          std::string_view s;
          if (obj[name].get(v) != simdjson::SUCCESS || !string_value(v, s))
            malformed("BatchGetItem answer holds an item without its string key attribute");
          append_identity(identity, name, s);
        }
        out.items.insert_or_assign(identity, simdjson::minify(item));
      }
  }
  dom::array keys;
  if (doc["UnprocessedKeys"][table]["Keys"].get(keys) == simdjson::SUCCESS) {
    std::vector<std::pair<std::string, std::string>> key;
    std::string identity;
    for (auto k : keys) {
      if (!read_key(k, key, identity))
        malformed("BatchGetItem UnprocessedKeys holds a key that was not asked for");
      out.unprocessed.insert(identity);
    }
  }
  dom::array consumed;
  if (doc["ConsumedCapacity"].get(consumed) == simdjson::SUCCESS)
    for (auto c : consumed) {
      std::string_view name;
      double units = 0;
      if (c["TableName"].get(name) == simdjson::SUCCESS && name == table &&
          c["CapacityUnits"].get(units) == simdjson::SUCCESS)
        out.capacity_units += units;
    }
  return out;
}

std::string get_item_answer(const std::string* item_json, std::string_view table, std::string_view capacity,
                            double units) {
  std::string out;
  out.reserve(80 + table.size() + (item_json ? item_json->size() : 0));
  out += '{';
  if (item_json) {
    out += "\"Item\":";
    out += *item_json;
  }
  if (!capacity.empty()) {
    if (item_json) out += ',';
    out += "\"ConsumedCapacity\":{";
    util::JsonWriter w(out);
    w.field("TableName", table);
    out += ",\"CapacityUnits\":";
    char buf[32];
    auto [end, ec] = std::to_chars(buf, buf + sizeof buf, units);
    out.append(buf, ec == std::errc() ? end : buf);
    out += '}';
  }
  out += '}';
  return out;
}

}  // namespace dynamodb_cache::dynamodb::wire
