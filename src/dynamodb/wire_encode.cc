// The JSON requests the client sends (wire.h): encoding only; wire.cc decodes the answers.
#include <string>

#include "dynamodb/wire.h"
#include "util/crypto.h"
#include "util/json_writer.h"

namespace dynamodb_cache::dynamodb::wire {

using util::JsonWriter;

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
    case AttrType::kNull:
      w.key("NULL");
      w.boolean(true);
      break;
    case AttrType::kS:
      w.field("S", v.scalar);
      break;
    case AttrType::kN:
      w.field("N", v.scalar);
      break;
    case AttrType::kB:
      w.key("B");
      w.base64(v.scalar);
      break;
    case AttrType::kBool:
      w.key("BOOL");
      w.boolean(v.boolean);
      break;
    case AttrType::kM:
      w.key("M");
      write_item(w, v.map);
      break;
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
        if (v.type == AttrType::kBS)
          w.base64(e);
        else
          w.string(e);
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
  if (r.consistent_read) {
    w.key("ConsistentRead");
    w.boolean(true);
  }
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
    if (ka.consistent_read) {
      w.key("ConsistentRead");
      w.boolean(true);
    }
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
  if (r.limit) {
    w.key("Limit");
    w.integer(*r.limit);
  }
  if (r.exclusive_start_key) {
    w.key("ExclusiveStartKey");
    write_item(w, *r.exclusive_start_key);
  }
  if (r.consistent_read) {
    w.key("ConsistentRead");
    w.boolean(true);
  }
  write_rcc(w, r.return_consumed_capacity);
}
}  // namespace

std::string encode(const QueryRequest& r) {
  std::string out;
  JsonWriter w(out);
  w.begin_object();
  write_page_common(w, r);
  write_opt(w, "KeyConditionExpression", r.key_condition_expression);
  if (!r.scan_index_forward) {
    w.key("ScanIndexForward");
    w.boolean(false);
  }
  w.end_object();
  return out;
}

std::string encode(const ScanRequest& r) {
  std::string out;
  JsonWriter w(out);
  w.begin_object();
  write_page_common(w, r);
  if (r.segment) {
    w.key("Segment");
    w.integer(*r.segment);
  }
  if (r.total_segments) {
    w.key("TotalSegments");
    w.integer(*r.total_segments);
  }
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

}  // namespace dynamodb_cache::dynamodb::wire
