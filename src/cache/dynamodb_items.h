// DynamodbBackend's item functions, for the code beside it that writes and reads the same
// items (get_or_set.cc). Private.
#pragma once

#include <atomic>
#include <optional>
#include <string>
#include <string_view>

#include "dynamodb_cache/backend.h"
#include "dynamodb_cache/errors.h"

namespace dynamodb_cache::detail {

// Runs one conditional write: true if it was made, false if its condition failed (an
// answer, not a fault); any other error propagates.
template <class F>
bool conditional(F&& write) {
  try {
    write();
    return true;
  } catch (const ServiceError& e) {
    if (e.kind() == ErrorKind::kConditionFailed) return false;
    throw;
  }
}

// `fmt` of a get_or_set lease item (get_or_set.cc); reading one as a value is a CodecError.
inline constexpr int kLeaseFormat = 5;

// The primary key of the item that holds `key`: b.stored_key(key, prefix), the one mapping of
// user keys to stored keys (namespace, long-key digest). `prefix`: b.key_prefix(), resolved
// once per operation. Items derived from a key (chunks, leases) take their keys from this.
dynamodb::Item stored_key_item(const DynamodbBackend& b, std::string_view key, std::string_view prefix);

// The item for `value` under `key` (stored under b.stored_key(key, prefix)). When it would not
// fit in one item: with `chunk_to`, the value is written as chunks there (chunked.h) and the
// head is returned; without, InvalidArgumentError. Throws InvalidArgumentError for a bad key,
// ttl or value size.
dynamodb::Item build_item(const DynamodbBackend& b, std::string_view key, std::string_view prefix,
                          std::string_view value, Ttl ttl, dynamodb::Client* chunk_to);

// True unless `item` holds another key's entry: an item stored under a digest keeps the whole
// key in full_key (a SHA-256 collision, or a tampered item, reads as a miss). Check it before
// read_entry, so a foreign item's chunks are never fetched.
bool holds_key(const dynamodb::Item& item, std::string_view key);

// The hit an item stands for, nullopt when expired (DynamodbBackend::read_item), reading a
// chunked value's chunks from `client`; throws chunked::ChunksGone when they are gone.
std::optional<Hit> read_entry(const DynamodbOptions& options, dynamodb::Client& client, const dynamodb::Item& item);

// Thrown by read_answer without a client, for a chunked head: its chunks take more requests.
struct NeedsChunks {};

// What a GetItem answer's `body`, asked for `key`, stands for: a miss without an item or for
// another key's item (holds_key), else read_entry's hit. The items of the usual layouts are
// read without building an Item (wire::decode_get_item_fields), the rest with
// decode_get_item: the same answers and errors either way. Adds the capacity the answer
// reports to `read_units`. `chunks_from`: where read_entry reads a chunked value's chunks;
// null: NeedsChunks is thrown instead (decided after the liveness and counter checks).
std::optional<Hit> read_answer(const DynamodbOptions& options, dynamodb::Client* chunks_from,
                               const std::string& body, std::string_view key,
                               std::atomic<double>& read_units);

}  // namespace dynamodb_cache::detail
