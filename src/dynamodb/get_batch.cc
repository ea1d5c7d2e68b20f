#include "dynamodb/get_batch.h"

#include <algorithm>
#include <charconv>
#include <cstring>

#include "dynamodb/wire_doc.h"
#include "dynamodb/wire_scan.h"
#include "util/json_writer.h"

namespace dynamodb_cache::dynamodb::wire {

namespace dom = simdjson::dom;
using detail::malformed;

namespace {

void append_identity(std::string& out, std::string_view name, std::string_view value) {
  char buf[48];  // two sizes of at most 20 digits, each with its ':'
  auto sized = [&](char* at, size_t n) {
    at = std::to_chars(at, buf + sizeof buf, n).ptr;
    *at = ':';
    return at + 1;
  };
  char* const name_end = sized(buf, name.size());
  out.reserve(out.size() + sizeof buf + name.size() + value.size());
  out.append(buf, name_end);
  out += name;
  char* const value_end = sized(buf, value.size());
  out.append(buf, value_end);
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

BatchableGet batchable_get(std::string_view table, std::string_view key_name, std::string_view key,
                           bool consistent, ReturnConsumedCapacity rcc) {
  BatchableGet out;
  out.table.assign(table);
  out.consistent = consistent;
  if (rcc != ReturnConsumedCapacity::kNone) out.capacity = rcc == ReturnConsumedCapacity::kTotal ? "TOTAL" : "INDEXES";
  out.key.emplace_back(std::string(key_name), std::string(key));
  append_identity(out.identity, key_name, key);
  return out;
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

namespace {

// The text of the items of `table` in a BatchGetItem answer, read from `body`, which simdjson
// has parsed as JSON: each of Responses[table]'s elements as written, in order (the tree
// simdjson makes keeps no positions in the text). False, with `out` undefined, when the path
// there is written with escapes (the caller serialises the parsed items instead).
class ItemTexts {
 public:
  ItemTexts(std::string_view body, std::string_view table) : p_(body.data()), end_(body.data() + body.size()), table_(table) {}

  bool read(std::vector<std::string_view>& out) {
    out.clear();
    if (!open('{')) return false;
    std::string_view key;
    while (next_key(key)) {
      if (key.data() == nullptr) return false;
      if (key != "Responses") {
        skip_value();
        continue;
      }
      if (!open('{')) return false;
      while (next_key(key)) {
        if (key.data() == nullptr) return false;
        if (key != table_) {
          skip_value();
          continue;
        }
        if (!open('[')) return false;
        for (bool first = true; p_ < end_ && at() != ']'; first = false) {
          if (!first) ++p_;  // ','
          ws();
          const char* from = p_;
          skip_value();
          const char* to = p_;  // skip_value also passes the whitespace after the value
          while (to > from && detail::json_space(to[-1])) --to;
          out.emplace_back(from, static_cast<size_t>(to - from));
          ws();
        }
        return true;
      }
      return true;  // no items of the table
    }
    return true;
  }

 private:
  void ws() {
    while (p_ < end_ && detail::json_space(*p_)) ++p_;
  }
  char at() {
    ws();
    return p_ < end_ ? *p_ : '\0';
  }
  bool open(char c) {
    if (at() != c) return false;
    ++p_;
    first_ = true;
    return true;
  }
  // Past the string starting at p_ ('"'); its raw text between the quotes.
  std::string_view string() {
    const char* from = ++p_;
    for (;;) {
      const auto* q = static_cast<const char*>(std::memchr(p_, '"', static_cast<size_t>(end_ - p_)));
      if (!q) {
        p_ = end_;
        return std::string_view(from, static_cast<size_t>(p_ - from));
      }
      size_t slashes = 0;
      while (q - slashes > from && q[-1 - static_cast<ptrdiff_t>(slashes)] == '\\') ++slashes;
      p_ = q + 1;
      if (slashes % 2 == 0) return std::string_view(from, static_cast<size_t>(q - from));
    }
  }
  // The next member's key (p_ then at its value), or false at the object's end; a key with
  // escapes as a null view.
  bool next_key(std::string_view& key) {
    if (!first_ && at() == ',') ++p_;
    first_ = false;
    if (at() != '"') return false;
    key = string();
    if (key.find('\\') != std::string_view::npos) key = std::string_view();
    if (at() == ':') ++p_;
    return true;
  }
  void skip_value() {
    ws();
    int depth = 0;
    do {
      if (p_ >= end_) return;
      const char c = *p_;
      if (c == '"') {
        string();
        continue;
      }
      if (c == '{' || c == '[') ++depth;
      else if (c == '}' || c == ']') --depth;
      ++p_;
    } while (depth > 0 || (p_ < end_ && *p_ != ',' && *p_ != '}' && *p_ != ']'));
  }

  const char* p_;
  const char* end_;
  std::string_view table_;
  bool first_ = true;
};

// The index of the key whose identity is `identity`, or npos: open addressing over a table
// of at least twice the keys (a power of two), kept per thread for its capacity, so that
// reading an answer allocates nothing per key. The first of two equal identities is found.
// One alive per thread at a time (split_batch_get's).
class KeyIndex {
 public:
  explicit KeyIndex(std::span<const BatchableGet* const> keys) : keys_(keys) {
    size_t n = 4;
    while (n < 2 * keys.size()) n *= 2;
    slots_.assign(n, kEmpty);
    for (size_t i = 0; i < keys.size(); ++i) {
      size_t at = slot(keys[i]->identity);
      while (slots_[at] != kEmpty && keys[slots_[at]]->identity != keys[i]->identity) at = (at + 1) & (n - 1);
      if (slots_[at] == kEmpty) slots_[at] = i;
    }
  }
  size_t find(std::string_view identity) const {
    for (size_t at = slot(identity);; at = (at + 1) & (slots_.size() - 1)) {
      if (slots_[at] == kEmpty) return std::string_view::npos;
      if (keys_[slots_[at]]->identity == identity) return slots_[at];
    }
  }

 private:
  static constexpr size_t kEmpty = ~size_t{0};
  size_t slot(std::string_view identity) const {
    return std::hash<std::string_view>{}(identity) & (slots_.size() - 1);
  }
  std::span<const BatchableGet* const> keys_;
  std::vector<size_t>& slots_ = storage();
  static std::vector<size_t>& storage() {
    thread_local std::vector<size_t> slots;
    return slots;
  }
};

// split_batch_get by a Scanner (wire_scan.h): true with `out` (its items and unprocessed
// sized by the caller, empty) as the simdjson reading below gives it; false, with `out`
// undefined, where the scanner declines, where that reading would find the answer malformed,
// and for an answer with UnprocessedKeys (rare: throttling), which that reading handles.
bool scan_batch_get(std::string_view body, std::string_view table, std::span<const std::string> key_names,
                    const KeyIndex& index, BatchGetAnswer& out) {
  constexpr size_t kMaxKeyNames = 2;  // a DynamoDB key has a partition key and a sort key
  if (key_names.size() > kMaxKeyNames) return false;
  detail::Scanner s(body);
  bool responses = false, unprocessed = false, consumed = false;
  std::string identity;
  const bool read = s.object([&](std::string_view member) {
    if (member == "Responses") {
      if (responses) return false;  // the simdjson reading takes the first of two
      responses = true;
      bool ours = false;
      return s.object([&](std::string_view name) {
        if (name != table) return s.value(2);
        if (ours) return false;
        ours = true;
        return s.array([&] {
          const char* const from = s.here();
          std::string_view key[kMaxKeyNames];
          bool found[kMaxKeyNames] = {};
          const bool item = s.object([&](std::string_view attribute) {
            size_t i = 0;
            while (i < key_names.size() && key_names[i] != attribute) ++i;
            if (i == key_names.size()) return s.value(4);
            if (found[i]) return false;
            found[i] = true;
            std::string_view type;  // {"S":"..."} exactly, or the answer is malformed
            return s.take('{') && s.string(type) && type == "S" && s.take(':') && s.string(key[i]) && s.take('}');
          });
          if (!item) return false;
          identity.clear();
          for (size_t i = 0; i < key_names.size(); ++i) {
            if (!found[i]) return false;  // an item without its key: malformed
            append_identity(identity, key_names[i], key[i]);
          }
          if (size_t at = index.find(identity); at != std::string_view::npos)
            out.items[at] = std::string_view(from, static_cast<size_t>(s.pos() - from));
          return true;
        });
      });
    }
    if (member == "UnprocessedKeys") {
      if (unprocessed) return false;
      unprocessed = true;
      return s.take('{') && s.take('}');  // none; any: read by simdjson
    }
    if (member == "ConsumedCapacity") {
      if (consumed) return false;
      consumed = true;
      if (!s.next_is('[')) return s.value(1);  // not a list: no capacity, as the simdjson reading has it
      return s.array([&] {
        if (!s.next_is('{')) return s.value(2);
        std::string_view name;
        double units = 0;
        bool named = false, counted = false, seen_name = false, seen_units = false;
        const bool entry = s.object([&](std::string_view field) {
          if (field == "TableName") {
            if (seen_name) return false;
            seen_name = true;
            if (!s.next_is('"')) return s.value(3);
            named = true;
            return s.string(name);
          }
          if (field == "CapacityUnits") {
            if (seen_units) return false;
            seen_units = true;
            if (!s.next_is_number()) return s.value(3);
            counted = true;
            return s.number(units);
          }
          return s.value(3);
        });
        if (entry && named && counted && name == table) out.capacity_units += units;
        return entry;
      });
    }
    return s.value(1);
  });
  return read && s.at_end();
}

}  // namespace

BatchGetAnswer split_batch_get(const std::string& body, std::string_view table,
                               std::span<const std::string> key_names, std::span<const BatchableGet* const> keys) {
  BatchGetAnswer out;
  out.items.resize(keys.size());
  out.unprocessed.resize(keys.size());
  const KeyIndex index(keys);
  if (scan_batch_get(body, table, key_names, index, out)) return out;
  out.items.assign(keys.size(), std::string_view());
  out.capacity_units = 0;
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
    thread_local std::vector<std::string_view> texts;
    const bool as_written = of_table.error() == simdjson::SUCCESS && ItemTexts(body, table).read(texts) &&
                            texts.size() == items.size();
    size_t n = 0;
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
        if (size_t at = index.find(identity); at != std::string_view::npos) {
          if (as_written) {
            out.items[at] = texts[n];
          } else {
            out.serialised.push_back(simdjson::minify(item));
            out.items[at] = out.serialised.back();
          }
        }
        ++n;
      }
  }
  dom::array asked;
  if (doc["UnprocessedKeys"][table]["Keys"].get(asked) == simdjson::SUCCESS) {
    std::vector<std::pair<std::string, std::string>> key;
    std::string identity;
    for (auto k : asked) {
      if (!read_key(k, key, identity))
        malformed("BatchGetItem UnprocessedKeys holds a key that was not asked for");
      if (size_t at = index.find(identity); at != std::string_view::npos) out.unprocessed[at] = 1;
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

void get_item_answer(std::string& out, std::string_view item_json, std::string_view table,
                     std::string_view capacity, double units) {
  out.clear();
  out.reserve(80 + table.size() + item_json.size());
  out += '{';
  if (!item_json.empty()) {
    out += "\"Item\":";
    out += item_json;
  }
  if (!capacity.empty()) {
    if (!item_json.empty()) out += ',';
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
}

}  // namespace dynamodb_cache::dynamodb::wire
