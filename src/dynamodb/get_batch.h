// GetItems carried by one BatchGetItem (private): what the client's event loop needs to merge
// the GetItem operations queued in one loop iteration (client_batch.cc) and to hand each its
// own GetItem answer. Pure functions; thread-safe (the parser is per thread, as wire's).
#pragma once

#include <deque>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "dynamodb_cache/dynamodb.h"

namespace dynamodb_cache::dynamodb::wire {

// BatchGetItem's bound on the keys of one request.
inline constexpr size_t kMaxBatchGetKeys = 100;

// A GetItem request body that a BatchGetItem can carry.
struct BatchableGet {
  std::string table;
  bool consistent = false;
  std::string capacity;  // ReturnConsumedCapacity: "", "TOTAL" or "INDEXES"
  // The key's attributes, sorted by name, each an S (what a cache key is; a number or binary
  // key attribute may come back spelt otherwise than it was sent, so those gets go alone).
  std::vector<std::pair<std::string, std::string>> key;
  // `key` as one string, for finding duplicates and matching the answer's items to keys.
  std::string identity;
};

// Fills `out` from a GetItem body and returns true when it holds nothing but TableName, Key
// (S attributes only), ConsistentRead and ReturnConsumedCapacity; false otherwise (a
// projection, other key types, or a body that is not such JSON: it is then sent alone and
// DynamoDB judges it). Never throws.
bool parse_batchable_get(const std::string& body, BatchableGet& out);

// What parse_batchable_get reads from encode_get_item(table, key_name, key, consistent, rcc)'s
// body, made without that body: for a caller that hands its GetItem's key over with it.
BatchableGet batchable_get(std::string_view table, std::string_view key_name, std::string_view key,
                           bool consistent, ReturnConsumedCapacity rcc);

// The BatchGetItem body asking for `keys` (distinct; at most kMaxBatchGetKeys) of one table,
// with one consistency and ReturnConsumedCapacity.
std::string encode_batch_get(std::string_view table, bool consistent, std::string_view capacity,
                             std::span<const BatchableGet* const> keys);

// A BatchGetItem answer for one table, by the keys asked (split_batch_get's `keys`, in order).
struct BatchGetAnswer {
  // keys[i]'s item as JSON text, a view into the body split_batch_get read (valid while that
  // body lives) or into `serialised`; empty: the answer holds no item for keys[i].
  std::vector<std::string_view> items;
  std::vector<char> unprocessed;  // keys[i] is among the table's UnprocessedKeys
  double capacity_units = 0;      // ConsumedCapacity of the table, summed
  // Items re-serialised from the parsed answer: only when the path to them in the text is
  // written with escapes. A deque: the views into it stay valid as it grows.
  std::deque<std::string> serialised;
};

// Reads a BatchGetItem answer's items, unprocessed keys and capacity for `table`, whose key
// attributes are `key_names` (sorted), asked for `keys`; items and unprocessed keys that were
// not asked for are ignored. Throws ProtocolError (not retryable) when the body is malformed,
// or holds an item without a string key attribute of those names.
BatchGetAnswer split_batch_get(const std::string& body, std::string_view table,
                               std::span<const std::string> key_names, std::span<const BatchableGet* const> keys);

// The GetItem answer for one key of a batch, into `out` (replacing what it held; its buffer
// reused): {"Item":item_json} (or {} for an empty `item_json`: no such item), with
// {"ConsumedCapacity":{"TableName":...,"CapacityUnits":units}} when `capacity` is not empty.
void get_item_answer(std::string& out, std::string_view item_json, std::string_view table,
                     std::string_view capacity, double units);

}  // namespace dynamodb_cache::dynamodb::wire
