#include "dynamodb/wire.h"

#include <simdjson.h>

#include <stdexcept>

#include "dynamodb/wire_doc.h"
#include "dynamodb/wire_scan.h"
#include "dynamodb_cache/errors.h"
#include "util/crypto.h"
#include "util/text.h"

namespace dynamodb_cache::dynamodb::wire {

namespace dom = simdjson::dom;

// ---------------- decoding ----------------

namespace detail {

void malformed(const std::string& what) {
  throw ProtocolError("malformed DynamoDB response: " + what, false);
}

dom::parser& thread_parser() {
  thread_local dom::parser parser;
  return parser;
}
void shrink_thread_parser() {
  constexpr size_t kKeep = 1 << 20;  // bytes of document capacity kept between answers
  if (thread_parser().capacity() > kKeep) thread_parser() = dom::parser();
}

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

}  // namespace detail

using detail::Doc;
using detail::malformed;
using detail::parse;
using detail::parse_object;
using detail::shrink_thread_parser;
using detail::thread_parser;

namespace {

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

namespace {

// The field of `out` for attribute `name`, or null when `name` is not among `names` or was
// already read (the answer is then kOther).
Field* field_named(std::span<const std::string_view> names, GetItemFields& out, std::string_view name) {
  size_t i = 0;
  while (i < names.size() && names[i] != name) ++i;
  return i == names.size() || out.fields[i].present ? nullptr : &out.fields[i];
}

// `f` from an attribute value's type and (unescaped) text. False for a type other than S, N
// and B (kOther), and for a B that is not base64 (which decode_get_item refuses).
bool read_field(Field& f, std::string_view type, std::string_view text) {
  if (type == "S" || type == "N") {
    f.type = type == "S" ? AttrType::kS : AttrType::kN;
    f.text = text;
  } else if (type == "B") {
    auto bytes = util::base64_decode(text);
    if (!bytes) return false;
    f.type = AttrType::kB;
    f.bytes = std::move(*bytes);
  } else {
    return false;
  }
  f.present = true;
  return true;
}

// decode_get_item_fields by a Scanner (wire_scan.h): true with `out` as the simdjson reading
// gives it, for an answer of kind kNoItem or kItem; false (out's fields undefined) for
// anything else, and wherever the scanner declines. The text views point into `body`.
bool scan_get_item_fields(std::string_view body, std::span<const std::string_view> names,
                          GetItemFields& out) {
  detail::Scanner s(body);
  bool item = false, capacity = false;
  double units = 0;
  const bool read = s.object([&](std::string_view member) {
    if (member == "Item") {
      if (item) return false;  // the simdjson reading takes the first of two
      item = true;
      return s.object([&](std::string_view name) {
        Field* f = field_named(names, out, name);
        std::string_view type, text;
        // One member, of a string: anything else is kOther (or malformed).
        // A B's text is base64, which read_field refuses unless every byte of it is plain.
        return f != nullptr && s.take('{') && s.string(type) && s.take(':') &&
               (type == "B" ? s.unchecked_string(text) : s.string(text)) && s.take('}') && read_field(*f, type, text);
      });
    }
    if (member == "ConsumedCapacity") {
      if (capacity) return false;
      capacity = true;
      if (!s.next_is('{')) return s.value(1);  // no CapacityUnits in it: 0
      bool seen = false;
      return s.object([&](std::string_view field) {
        if (field != "CapacityUnits") return s.value(2);
        if (seen) return false;
        seen = true;
        return s.next_is_number() ? s.number(units) : s.value(2);  // not a number: 0, as capacity_units() has it
      });
    }
    return s.value(1);
  });
  if (!read || !s.at_end()) return false;
  out.kind = item ? GetItemFields::kItem : GetItemFields::kNoItem;
  out.capacity_units = units;
  return true;
}

}  // namespace

void decode_get_item_fields(const std::string& body, std::span<const std::string_view> names,
                            GetItemFields& out) {
  if (names.size() > kMaxFields) throw std::logic_error("decode_get_item_fields: more than kMaxFields names");
  for (auto& f : out.fields) f.present = false;
  if (scan_get_item_fields(body, names, out)) return;
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
    Field* f = field_named(names, out, attribute.key);
    if (f == nullptr) return;
    dom::object av;
    if (attribute.value.get(av) != simdjson::SUCCESS) return;
    auto it = av.begin();
    if (it == av.end()) return;
    std::string_view type = (*it).key;
    std::string_view text;
    if ((*it).value.get(text) != simdjson::SUCCESS) return;
    if (!read_field(*f, type, text)) {
      if (type == "B") decode_b64(text);  // throws its ProtocolError
      return;
    }
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

std::string request_table(const std::string& body) {
  dom::element parsed;
  if (thread_parser().parse(body).get(parsed) != simdjson::SUCCESS) return {};
  dom::object doc;
  if (parsed.get(doc) != simdjson::SUCCESS) return {};
  std::string_view s;
  if (doc["TableName"].get(s) == simdjson::SUCCESS) return std::string(s);
  dom::object items;
  if (doc["RequestItems"].get(items) != simdjson::SUCCESS || items.size() != 1) return {};
  return std::string((*items.begin()).key);
}

}  // namespace dynamodb_cache::dynamodb::wire
