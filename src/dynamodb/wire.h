// DynamoDB JSON 1.0 wire codec (private): typed requests -> JSON bodies, JSON responses ->
// typed results, error bodies -> (name, message). Pure functions; thread-safe (the parser is
// per thread).
#pragma once

#include <array>
#include <span>
#include <string>
#include <string_view>

#include "dynamodb_cache/dynamodb.h"

namespace dynamodb_cache::dynamodb::wire {

// JSON of one AttributeValue, e.g. {"S":"x"}; appended to out.
void append_attribute_value(std::string& out, const AttributeValue& v);

std::string encode(const GetItemRequest& r);
// encode(r) of a GetItemRequest with only table_name, consistent_read, return_consumed_capacity
// and one string key attribute set (the same bytes), without building the request.
std::string encode_get_item(std::string_view table, std::string_view key_name, std::string_view key,
                            bool consistent_read, ReturnConsumedCapacity rcc);
std::string encode(const PutItemRequest& r);
std::string encode(const DeleteItemRequest& r);
std::string encode(const UpdateItemRequest& r);
std::string encode(const BatchGetItemRequest& r);
std::string encode(const BatchWriteItemRequest& r);
std::string encode(const QueryRequest& r);
std::string encode(const ScanRequest& r);
std::string encode(const CreateTableRequest& r);
std::string encode_table_name(const std::string& table);
std::string encode_update_ttl(const std::string& table, const std::string& attribute, bool enabled);

// Decoders throw ProtocolError (not retryable) on malformed input. `body` should have
// spare capacity of 64 bytes for the parser (it copies otherwise).
GetItemResult decode_get_item(const std::string& body);
WriteResult decode_write(const std::string& body);
BatchGetItemResult decode_batch_get(const std::string& body);
BatchWriteItemResult decode_batch_write(const std::string& body);
PageResult decode_page(const std::string& body);
TableDescription decode_table(const std::string& body, const char* wrapper);  // "Table" / "TableDescription"
TimeToLiveDescription decode_ttl(const std::string& body, bool update);

// ---- a GetItem answer read without building an Item ----

// One attribute of a GetItemFields. S and N: `text`, a view into this thread's parser; B:
// `bytes`, decoded.
struct Field {
  bool present = false;
  AttrType type = AttrType::kNull;  // kS, kN or kB when present
  std::string_view text;
  std::string bytes;
  // What AttributeValue::scalar would hold.
  std::string_view scalar() const { return type == AttrType::kB ? std::string_view(bytes) : text; }
};
inline constexpr size_t kMaxFields = 9;

// A GetItem answer decoded by decode_get_item_fields. Its views stay valid while it and the
// body it read live, provided this thread decodes no other answer meanwhile (they point into
// the body, or into the parser, which is per thread);
// destroying it gives back an oversized parser, as the other decoders do. Not copyable.
struct GetItemFields {
  enum Kind {
    kNoItem,  // the answer has no Item
    kItem,    // fields[i] is the attribute names[i] (present or not); there are no others
    kOther,   // anything else: decode the body with decode_get_item instead
  };
  Kind kind = kNoItem;
  std::array<Field, kMaxFields> fields;
  double capacity_units = 0;  // ConsumedCapacity.CapacityUnits; 0 when absent

  GetItemFields() = default;
  GetItemFields(const GetItemFields&) = delete;
  GetItemFields& operator=(const GetItemFields&) = delete;
  ~GetItemFields();
};

// Decodes a GetItem answer into `out` for the attributes `names` (at most kMaxFields), without
// building an Item: for an item of only those attributes, each S, N or B, named once, out is
// what decode_get_item would have given. Anything else (another attribute, another type, a
// name twice, an Item that is not an object) is kOther, which decode_get_item then reads, or
// rejects with its error. Throws decode_get_item's ProtocolError for a body that is not a
// JSON object and for invalid base64 (which decode_get_item would refuse just the same).
void decode_get_item_fields(const std::string& body, std::span<const std::string_view> names,
                            GetItemFields& out);

struct ErrorBody {
  std::string name;     // after '#', e.g. "ResourceNotFoundException"; empty if unknown
  std::string message;
};
// Never throws: an unparseable body gives empty fields.
ErrorBody decode_error(const std::string& body);

// The table a request body names: its TableName, or the one table of a batch's RequestItems;
// "" when it names none or several. Never throws.
std::string request_table(const std::string& body);

}  // namespace dynamodb_cache::dynamodb::wire
