// DynamoDB JSON 1.0 wire codec (private): typed requests -> JSON bodies, JSON responses ->
// typed results, error bodies -> (name, message). Pure functions; thread-safe (the parser is
// per thread).
#pragma once

#include <string>
#include <string_view>

#include "dynamodb_cache/dynamodb.h"

namespace dynamodb_cache::dynamodb::wire {

// JSON of one AttributeValue, e.g. {"S":"x"}; appended to out.
void append_attribute_value(std::string& out, const AttributeValue& v);

std::string encode(const GetItemRequest& r);
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

struct ErrorBody {
  std::string name;     // after '#', e.g. "ResourceNotFoundException"; empty if unknown
  std::string message;
};
// Never throws: an unparseable body gives empty fields.
ErrorBody decode_error(const std::string& body);

}  // namespace dynamodb_cache::dynamodb::wire
