#include "dynamodb/wire.h"

#include <simdjson.h>

#include <stdexcept>

#include "dynamodb_cache/errors.h"
#include "util/crypto.h"
#include "util/json_writer.h"
#include "util/text.h"

namespace dynamodb_cache::dynamodb::wire {

using util::JsonWriter;
namespace dom = simdjson::dom;

// ---------------- encoding ----------------

namespace {

void write_value(JsonWriter& w, const AttributeValue& v);

void write_item(JsonWriter& w, const Item& item) {
  w.begin_object();
  for (const auto& [k, v] : item) {
    w.key(k);
    write_value(w, v);
  }
  w.end_object();
}

void write_value(JsonWriter& w, const AttributeValue& v) {
  w.begin_object();
  switch (v.type) {
    case AttrType::kNull: w.key("NULL"); w.boolean(true); break;
    case AttrType::kS: w.field("S", v.scalar); break;
    case AttrType::kN: w.field("N", v.scalar); break;
    case AttrType::kB: w.key("B"); w.base64(v.scalar); break;
    case AttrType::kBool: w.key("BOOL"); w.boolean(v.boolean); break;
    case AttrType::kM: w.key("M"); write_item(w, v.map); break;
    case AttrType::kL:
      w.key("L");
      w.begin_array();
      for (const auto& e : v.list) write_value(w, e);
      w.end_array();
      break;
    case AttrType::kSS:
    case AttrType::kNS:
    case AttrType::kBS:
      w.key(v.type == AttrType::kSS ? "SS" : v.type == AttrType::kNS ? "NS" : "BS");
      w.begin_array();
      for (const auto& e : v.set) {
        if (v.type == AttrType::kBS) w.base64(e); else w.string(e);
      }
      w.end_array();
      break;
  }
  w.end_object();
}

void write_names(JsonWriter& w, const Names& names) {
  if (names.empty()) return;
  w.key("ExpressionAttributeNames");
  w.begin_object();
  for (const auto& [k, v] : names) w.field(k, v);
  w.end_object();
}

void write_values(JsonWriter& w, const Values& values) {
  if (values.empty()) return;
  w.key("ExpressionAttributeValues");
  write_item(w, values);
}

void write_opt(JsonWriter& w, const char* k, const std::string& v) {
  if (!v.empty()) w.field(k, v);
}

void write_rcc(JsonWriter& w, ReturnConsumedCapacity r) {
  if (r == ReturnConsumedCapacity::kNone) return;
  w.field("ReturnConsumedCapacity", r == ReturnConsumedCapacity::kTotal ? "TOTAL" : "INDEXES");
}

void write_return_values(JsonWriter& w, ReturnValues r) {
  static constexpr const char* kNames[] = {"NONE", "ALL_OLD", "UPDATED_OLD", "ALL_NEW", "UPDATED_NEW"};
  if (r != ReturnValues::kNone) w.field("ReturnValues", kNames[static_cast<int>(r)]);
}

size_t item_size_hint(const Item& item) {
  size_t n = 64;
  for (const auto& [k, v] : item) n += k.size() + v.scalar.size() * 4 / 3 + 16;
  return n;
}

}  // namespace

void append_attribute_value(std::string& out, const AttributeValue& v) {
  JsonWriter w(out);
  write_value(w, v);
}

std::string encode(const GetItemRequest& r) {
  std::string out;
  out.reserve(96 + r.table_name.size() + item_size_hint(r.key));
  JsonWriter w(out);
  w.begin_object();
  w.field("TableName", r.table_name);
  w.key("Key");
  write_item(w, r.key);
  if (r.consistent_read) { w.key("ConsistentRead"); w.boolean(true); }
  write_opt(w, "ProjectionExpression", r.projection_expression);
  write_names(w, r.names);
  write_rcc(w, r.return_consumed_capacity);
  w.end_object();
  return out;
}

std::string encode_get_item(std::string_view table, std::string_view key_name, std::string_view key,
                            bool consistent_read, ReturnConsumedCapacity rcc) {
  // encode(GetItemRequest)'s bytes, the fixed parts appended whole (a cache get's request:
  // JsonWriter's key-by-key writing cost more than the rest of the encoding).
  std::string out;
  out.reserve(96 + table.size() + key_name.size() + key.size());
  auto quoted = [&out](std::string_view s) { JsonWriter(out).string(s); };
  out += "{\"TableName\":";
  quoted(table);
  out += ",\"Key\":{";
  quoted(key_name);
  out += ":{\"S\":";
  quoted(key);
  out += "}}";
  if (consistent_read) out += ",\"ConsistentRead\":true";
  if (rcc != ReturnConsumedCapacity::kNone)
    out += rcc == ReturnConsumedCapacity::kTotal ? ",\"ReturnConsumedCapacity\":\"TOTAL\""
                                                 : ",\"ReturnConsumedCapacity\":\"INDEXES\"";
  out += '}';
  return out;
}

namespace {
// One of PutItem/DeleteItem/UpdateItem: the table, the item or key (`what`), the update
// expression if any, then the shared conditional-write fields.
std::string encode_write(const std::string& table, const char* what, const Item& item,
                         const std::string& update_expression, const ConditionalWrite& c) {
  std::string out;
  out.reserve(128 + table.size() + item_size_hint(item));
  JsonWriter w(out);
  w.begin_object();
  w.field("TableName", table);
  w.key(what);
  write_item(w, item);
  write_opt(w, "UpdateExpression", update_expression);
  write_opt(w, "ConditionExpression", c.condition_expression);
  write_names(w, c.names);
  write_values(w, c.values);
  write_return_values(w, c.return_values);
  write_rcc(w, c.return_consumed_capacity);
  w.end_object();
  return out;
}
}  // namespace

std::string encode(const PutItemRequest& r) { return encode_write(r.table_name, "Item", r.item, {}, r); }
std::string encode(const DeleteItemRequest& r) { return encode_write(r.table_name, "Key", r.key, {}, r); }
std::string encode(const UpdateItemRequest& r) {
  return encode_write(r.table_name, "Key", r.key, r.update_expression, r);
}

std::string encode(const BatchGetItemRequest& r) {
  std::string out;
  JsonWriter w(out);
  w.begin_object();
  w.key("RequestItems");
  w.begin_object();
  for (const auto& [table, ka] : r.request_items) {
    w.key(table);
    w.begin_object();
    w.key("Keys");
    w.begin_array();
    for (const auto& k : ka.keys) write_item(w, k);
    w.end_array();
    if (ka.consistent_read) { w.key("ConsistentRead"); w.boolean(true); }
    write_opt(w, "ProjectionExpression", ka.projection_expression);
    write_names(w, ka.names);
    w.end_object();
  }
  w.end_object();
  write_rcc(w, r.return_consumed_capacity);
  w.end_object();
  return out;
}

std::string encode(const BatchWriteItemRequest& r) {
  std::string out;
  JsonWriter w(out);
  w.begin_object();
  w.key("RequestItems");
  w.begin_object();
  for (const auto& [table, writes] : r.request_items) {
    w.key(table);
    w.begin_array();
    for (const auto& wr : writes) {
      w.begin_object();
      if (wr.put_item) {
        w.key("PutRequest");
        w.begin_object();
        w.key("Item");
        write_item(w, *wr.put_item);
        w.end_object();
      } else if (wr.delete_key) {
        w.key("DeleteRequest");
        w.begin_object();
        w.key("Key");
        write_item(w, *wr.delete_key);
        w.end_object();
      } else {
        throw InvalidArgumentError("BatchWriteItem: a WriteRequest has neither put_item nor delete_key");
      }
      w.end_object();
    }
    w.end_array();
  }
  w.end_object();
  write_rcc(w, r.return_consumed_capacity);
  w.end_object();
  return out;
}

namespace {
void write_page_common(JsonWriter& w, const PageRequest& r) {
  w.field("TableName", r.table_name);
  write_opt(w, "IndexName", r.index_name);
  write_opt(w, "FilterExpression", r.filter_expression);
  write_opt(w, "ProjectionExpression", r.projection_expression);
  write_names(w, r.names);
  write_values(w, r.values);
  if (r.limit) { w.key("Limit"); w.integer(*r.limit); }
  if (r.exclusive_start_key) { w.key("ExclusiveStartKey"); write_item(w, *r.exclusive_start_key); }
  if (r.consistent_read) { w.key("ConsistentRead"); w.boolean(true); }
  write_rcc(w, r.return_consumed_capacity);
}
}  // namespace

std::string encode(const QueryRequest& r) {
  std::string out;
  JsonWriter w(out);
  w.begin_object();
  write_page_common(w, r);
  write_opt(w, "KeyConditionExpression", r.key_condition_expression);
  if (!r.scan_index_forward) { w.key("ScanIndexForward"); w.boolean(false); }
  w.end_object();
  return out;
}

std::string encode(const ScanRequest& r) {
  std::string out;
  JsonWriter w(out);
  w.begin_object();
  write_page_common(w, r);
  if (r.segment) { w.key("Segment"); w.integer(*r.segment); }
  if (r.total_segments) { w.key("TotalSegments"); w.integer(*r.total_segments); }
  w.end_object();
  return out;
}

std::string encode(const CreateTableRequest& r) {
  std::string out;
  JsonWriter w(out);
  w.begin_object();
  w.field("TableName", r.table_name);
  w.key("AttributeDefinitions");
  w.begin_array();
  for (const auto& a : r.attribute_definitions) {
    w.begin_object();
    w.field("AttributeName", a.name);
    w.field("AttributeType", a.type);
    w.end_object();
  }
  w.end_array();
  w.key("KeySchema");
  w.begin_array();
  for (const auto& k : r.key_schema) {
    w.begin_object();
    w.field("AttributeName", k.name);
    w.field("KeyType", k.key_type == KeyType::kHash ? "HASH" : "RANGE");
    w.end_object();
  }
  w.end_array();
  if (r.billing_mode == BillingMode::kPayPerRequest) {
    w.field("BillingMode", "PAY_PER_REQUEST");
  } else {
    w.field("BillingMode", "PROVISIONED");
    w.key("ProvisionedThroughput");
    w.begin_object();
    w.key("ReadCapacityUnits");
    w.integer(r.read_capacity_units);
    w.key("WriteCapacityUnits");
    w.integer(r.write_capacity_units);
    w.end_object();
  }
  w.end_object();
  return out;
}

std::string encode_table_name(const std::string& table) {
  std::string out;
  JsonWriter w(out);
  w.begin_object();
  w.field("TableName", table);
  w.end_object();
  return out;
}

std::string encode_update_ttl(const std::string& table, const std::string& attribute, bool enabled) {
  std::string out;
  JsonWriter w(out);
  w.begin_object();
  w.field("TableName", table);
  w.key("TimeToLiveSpecification");
  w.begin_object();
  w.field("AttributeName", attribute);
  w.key("Enabled");
  w.boolean(enabled);
  w.end_object();
  w.end_object();
  return out;
}

// ---------------- decoding ----------------

namespace {

[[noreturn]] void malformed(const std::string& what) {
  throw ProtocolError("malformed DynamoDB response: " + what, false);
}

// One simdjson parser per thread. It keeps the capacity of the largest document it parsed, so
// after a large answer (up to HttpOptions::max_response_bytes) a fresh one replaces it once
// that document is decoded: a thread does not keep ~10x a past answer's size for good.
dom::parser& thread_parser() {
  thread_local dom::parser parser;
  return parser;
}
void shrink_thread_parser() {
  constexpr size_t kKeep = 1 << 20;  // bytes of document capacity kept between answers
  if (thread_parser().capacity() > kKeep) thread_parser() = dom::parser();
}

// A parsed document; valid until it goes out of scope, then gives back an oversized parser.
struct Doc : dom::element {
  ~Doc() { shrink_thread_parser(); }
};

// The document of `body`, an object; the caller gives back an oversized parser when done
// with it (shrink_thread_parser), except when this throws.
dom::element parse_object(const std::string& body) {
  dom::element doc;
  auto err = thread_parser().parse(body).get(doc);
  if (err) {
    shrink_thread_parser();
    malformed(std::string("invalid JSON (") + simdjson::error_message(err) + ")");
  }
  if (!doc.is_object()) {
    shrink_thread_parser();
    malformed("top level is not an object");
  }
  return doc;
}

Doc parse(const std::string& body) {
  return Doc{parse_object(body)};  // guaranteed elision: no copy whose destructor would shrink the parser
}

std::string_view str(dom::element e, const char* what) {
  std::string_view v;
  if (e.get(v) != simdjson::SUCCESS) malformed(std::string(what) + " is not a string");
  return v;
}
// A field lookup (obj["Name"]) that may have failed: a missing field, or a non-object, is
// malformed too (converting the failed lookup to an element would throw simdjson_error).
std::string_view str(simdjson::simdjson_result<dom::element> e, const char* what) {
  std::string_view v;
  if (e.get(v) != simdjson::SUCCESS) malformed(std::string(what) + " is missing or not a string");
  return v;
}

std::string decode_b64(std::string_view text) {
  auto bytes = util::base64_decode(text);
  if (!bytes) malformed("invalid base64 in a binary attribute");
  return std::move(*bytes);
}

AttributeValue to_value(dom::element e);

Item to_item(dom::element e) {
  dom::object obj;
  if (e.get(obj) != simdjson::SUCCESS) malformed("item is not an object");
  Item item;
  for (auto field : obj) item.emplace(std::string(field.key), to_value(field.value));
  return item;
}

AttributeValue to_value(dom::element e) {
  dom::object obj;
  if (e.get(obj) != simdjson::SUCCESS) malformed("attribute value is not an object");
  auto it = obj.begin();
  if (it == obj.end()) malformed("empty attribute value");
  std::string_view t = (*it).key;
  dom::element v = (*it).value;
  AttributeValue a;
  auto set_of = [&](AttrType type, bool binary) {
    a.type = type;
    dom::array arr;
    if (v.get(arr) != simdjson::SUCCESS) malformed("set is not an array");
    for (auto x : arr) {
      auto s = str(x, "set member");
      a.set.push_back(binary ? decode_b64(s) : std::string(s));
    }
  };
  if (t == "S") {
    a.type = AttrType::kS;
    a.scalar = std::string(str(v, "S"));
  } else if (t == "N") {
    a.type = AttrType::kN;
    a.scalar = std::string(str(v, "N"));
  } else if (t == "B") {
    a.type = AttrType::kB;
    a.scalar = decode_b64(str(v, "B"));
  } else if (t == "BOOL") {
    a.type = AttrType::kBool;
    if (v.get(a.boolean) != simdjson::SUCCESS) malformed("BOOL is not a boolean");
  } else if (t == "NULL") {
    a.type = AttrType::kNull;
  } else if (t == "M") {
    a.type = AttrType::kM;
    a.map = to_item(v);
  } else if (t == "L") {
    a.type = AttrType::kL;
    dom::array arr;
    if (v.get(arr) != simdjson::SUCCESS) malformed("L is not an array");
    for (auto x : arr) a.list.push_back(to_value(x));
  } else if (t == "SS") {
    set_of(AttrType::kSS, false);
  } else if (t == "NS") {
    set_of(AttrType::kNS, false);
  } else if (t == "BS") {
    set_of(AttrType::kBS, true);
  } else {
    malformed("unknown attribute type '" + util::printable(t, 40) + "'");
  }
  return a;
}

double num(dom::element e) {
  double d = 0;
  if (e.get(d) == simdjson::SUCCESS) return d;
  int64_t i = 0;
  if (e.get(i) == simdjson::SUCCESS) return static_cast<double>(i);
  return 0;
}

// ConsumedCapacity.CapacityUnits; 0 when absent.
double capacity_units(dom::element e) {
  dom::element x;
  return e["CapacityUnits"].get(x) == simdjson::SUCCESS ? num(x) : 0;
}

ConsumedCapacity to_capacity(dom::element e) {
  ConsumedCapacity c;
  std::string_view t;
  if (e["TableName"].get(t) == simdjson::SUCCESS) c.table_name = std::string(t);
  dom::element x;
  c.capacity_units = capacity_units(e);
  if (e["ReadCapacityUnits"].get(x) == simdjson::SUCCESS) c.read_capacity_units = num(x);
  if (e["WriteCapacityUnits"].get(x) == simdjson::SUCCESS) c.write_capacity_units = num(x);
  return c;
}

std::optional<ConsumedCapacity> opt_capacity(dom::element doc) {
  dom::element e;
  if (doc["ConsumedCapacity"].get(e) != simdjson::SUCCESS) return std::nullopt;
  return to_capacity(e);
}

std::vector<ConsumedCapacity> capacity_list(dom::element doc) {
  std::vector<ConsumedCapacity> out;
  dom::array arr;
  if (doc["ConsumedCapacity"].get(arr) == simdjson::SUCCESS)
    for (auto e : arr) out.push_back(to_capacity(e));
  return out;
}

std::vector<WriteRequest> to_writes(dom::element e) {
  std::vector<WriteRequest> out;
  dom::array arr;
  if (e.get(arr) != simdjson::SUCCESS) malformed("write requests are not an array");
  for (auto wr : arr) {
    WriteRequest w;
    dom::element x;
    if (wr["PutRequest"]["Item"].get(x) == simdjson::SUCCESS) w.put_item = to_item(x);
    else if (wr["DeleteRequest"]["Key"].get(x) == simdjson::SUCCESS) w.delete_key = to_item(x);
    else malformed("write request with neither PutRequest nor DeleteRequest");
    out.push_back(std::move(w));
  }
  return out;
}

KeysAndAttributes to_keys_and_attributes(dom::element e) {
  KeysAndAttributes ka;
  dom::array keys;
  if (e["Keys"].get(keys) != simdjson::SUCCESS) malformed("UnprocessedKeys entry without Keys");
  for (auto k : keys) ka.keys.push_back(to_item(k));
  bool cr = false;
  if (e["ConsistentRead"].get(cr) == simdjson::SUCCESS) ka.consistent_read = cr;
  std::string_view pe;
  if (e["ProjectionExpression"].get(pe) == simdjson::SUCCESS) ka.projection_expression = std::string(pe);
  dom::object names;
  if (e["ExpressionAttributeNames"].get(names) == simdjson::SUCCESS)
    for (auto f : names) ka.names.emplace(std::string(f.key), std::string(str(f.value, "name")));
  return ka;
}

}  // namespace

GetItemResult decode_get_item(const std::string& body) {
  auto doc = parse(body);
  GetItemResult r;
  dom::element item;
  if (doc["Item"].get(item) == simdjson::SUCCESS) r.item = to_item(item);
  r.consumed = opt_capacity(doc);
  return r;
}

GetItemFields::~GetItemFields() { shrink_thread_parser(); }

void decode_get_item_fields(const std::string& body, std::span<const std::string_view> names,
                            GetItemFields& out) {
  if (names.size() > kMaxFields) throw std::logic_error("decode_get_item_fields: more than kMaxFields names");
  for (auto& f : out.fields) f.present = false;
  dom::element doc = parse_object(body);  // out's destructor gives back an oversized parser
  out.kind = GetItemFields::kNoItem;
  dom::element ce;
  out.capacity_units = doc["ConsumedCapacity"].get(ce) == simdjson::SUCCESS ? capacity_units(ce) : 0;
  dom::element item;
  if (doc["Item"].get(item) != simdjson::SUCCESS) return;
  out.kind = GetItemFields::kOther;
  dom::object obj;
  if (item.get(obj) != simdjson::SUCCESS) return;
  // The attributes as to_item/to_value read them: each value's first member is its type.
  for (auto attribute : obj) {
    size_t i = 0;
    while (i < names.size() && names[i] != attribute.key) ++i;
    if (i == names.size() || out.fields[i].present) return;
    Field& f = out.fields[i];
    dom::object av;
    if (attribute.value.get(av) != simdjson::SUCCESS) return;
    auto it = av.begin();
    if (it == av.end()) return;
    std::string_view type = (*it).key;
    std::string_view text;
    if ((*it).value.get(text) != simdjson::SUCCESS) return;
    if (type == "S") {
      f.type = AttrType::kS;
      f.text = text;
    } else if (type == "N") {
      f.type = AttrType::kN;
      f.text = text;
    } else if (type == "B") {
      f.type = AttrType::kB;
      f.bytes = decode_b64(text);
    } else {
      return;
    }
    f.present = true;
  }
  out.kind = GetItemFields::kItem;
}

WriteResult decode_write(const std::string& body) {
  auto doc = parse(body);
  WriteResult r;
  dom::element attrs;
  if (doc["Attributes"].get(attrs) == simdjson::SUCCESS) r.attributes = to_item(attrs);
  r.consumed = opt_capacity(doc);
  return r;
}

BatchGetItemResult decode_batch_get(const std::string& body) {
  auto doc = parse(body);
  BatchGetItemResult r;
  dom::object responses;
  if (doc["Responses"].get(responses) == simdjson::SUCCESS) {
    for (auto f : responses) {
      dom::array items;
      if (f.value.get(items) != simdjson::SUCCESS) malformed("Responses entry is not an array");
      auto& out = r.responses[std::string(f.key)];
      for (auto i : items) out.push_back(to_item(i));
    }
  }
  dom::object unprocessed;
  if (doc["UnprocessedKeys"].get(unprocessed) == simdjson::SUCCESS)
    for (auto f : unprocessed) r.unprocessed_keys.emplace(std::string(f.key), to_keys_and_attributes(f.value));
  r.consumed = capacity_list(doc);
  return r;
}

BatchWriteItemResult decode_batch_write(const std::string& body) {
  auto doc = parse(body);
  BatchWriteItemResult r;
  dom::object unprocessed;
  if (doc["UnprocessedItems"].get(unprocessed) == simdjson::SUCCESS)
    for (auto f : unprocessed) r.unprocessed_items.emplace(std::string(f.key), to_writes(f.value));
  r.consumed = capacity_list(doc);
  return r;
}

PageResult decode_page(const std::string& body) {
  auto doc = parse(body);
  PageResult r;
  dom::array items;
  if (doc["Items"].get(items) == simdjson::SUCCESS)
    for (auto i : items) r.items.push_back(to_item(i));
  int64_t n = 0;
  if (doc["Count"].get(n) == simdjson::SUCCESS) r.count = n;
  if (doc["ScannedCount"].get(n) == simdjson::SUCCESS) r.scanned_count = n;
  dom::element lek;
  if (doc["LastEvaluatedKey"].get(lek) == simdjson::SUCCESS) r.last_evaluated_key = to_item(lek);
  r.consumed = opt_capacity(doc);
  return r;
}

TableDescription decode_table(const std::string& body, const char* wrapper) {
  auto doc = parse(body);
  dom::element t;
  if (doc[wrapper].get(t) != simdjson::SUCCESS) malformed(std::string("no ") + wrapper);
  TableDescription d;
  std::string_view s;
  if (t["TableName"].get(s) == simdjson::SUCCESS) d.table_name = std::string(s);
  if (t["TableStatus"].get(s) == simdjson::SUCCESS) d.table_status = std::string(s);
  dom::array arr;
  if (t["AttributeDefinitions"].get(arr) == simdjson::SUCCESS)
    for (auto a : arr)
      d.attribute_definitions.push_back({std::string(str(a["AttributeName"], "AttributeName")),
                                         std::string(str(a["AttributeType"], "AttributeType"))});
  if (t["KeySchema"].get(arr) == simdjson::SUCCESS)
    for (auto k : arr)
      d.key_schema.push_back({std::string(str(k["AttributeName"], "AttributeName")),
                              str(k["KeyType"], "KeyType") == "RANGE" ? KeyType::kRange : KeyType::kHash});
  if (t["BillingModeSummary"]["BillingMode"].get(s) == simdjson::SUCCESS && s == "PAY_PER_REQUEST")
    d.billing_mode = BillingMode::kPayPerRequest;
  int64_t n = 0;
  if (t["ProvisionedThroughput"]["ReadCapacityUnits"].get(n) == simdjson::SUCCESS) d.read_capacity_units = n;
  if (t["ProvisionedThroughput"]["WriteCapacityUnits"].get(n) == simdjson::SUCCESS) d.write_capacity_units = n;
  if (t["ItemCount"].get(n) == simdjson::SUCCESS) d.item_count = n;
  if (t["TableSizeBytes"].get(n) == simdjson::SUCCESS) d.table_size_bytes = n;
  return d;
}

TimeToLiveDescription decode_ttl(const std::string& body, bool update) {
  auto doc = parse(body);
  TimeToLiveDescription d;
  std::string_view s;
  if (update) {
    dom::element spec;
    if (doc["TimeToLiveSpecification"].get(spec) != simdjson::SUCCESS) malformed("no TimeToLiveSpecification");
    bool enabled = false;
    if (spec["Enabled"].get(enabled) != simdjson::SUCCESS) malformed("TimeToLiveSpecification.Enabled");
    d.status = enabled ? "ENABLING" : "DISABLING";
    if (spec["AttributeName"].get(s) == simdjson::SUCCESS) d.attribute_name = std::string(s);
    return d;
  }
  dom::element desc;
  if (doc["TimeToLiveDescription"].get(desc) != simdjson::SUCCESS) malformed("no TimeToLiveDescription");
  if (desc["TimeToLiveStatus"].get(s) == simdjson::SUCCESS) d.status = std::string(s);
  if (desc["AttributeName"].get(s) == simdjson::SUCCESS) d.attribute_name = std::string(s);
  return d;
}

ErrorBody decode_error(const std::string& body) {
  ErrorBody e;
  dom::element parsed;
  auto err = thread_parser().parse(body).get(parsed);
  Doc doc{parsed};
  if (err != simdjson::SUCCESS || !doc.is_object()) return e;
  std::string_view s;
  if (doc["__type"].get(s) == simdjson::SUCCESS) {
    auto hash = s.rfind('#');
    e.name = std::string(hash == std::string_view::npos ? s : s.substr(hash + 1));
  } else if (doc["code"].get(s) == simdjson::SUCCESS) {
    e.name = std::string(s);
  }
  if (doc["message"].get(s) == simdjson::SUCCESS || doc["Message"].get(s) == simdjson::SUCCESS)
    e.message = std::string(s);
  return e;
}

}  // namespace dynamodb_cache::dynamodb::wire
