// DynamodbBackend's item functions, for the code beside it that writes and reads the same
// items (get_or_set.cc). Private.
#pragma once

#include <optional>
#include <string_view>

#include "dynamodb_cache/backend.h"

namespace dynamodb_cache::detail {

// `fmt` of a get_or_set lease item (get_or_set.cc); reading one as a value is a CodecError.
inline constexpr int kLeaseFormat = 5;

// The primary key of the item that holds `key`. (The one place user keys become stored keys.)
dynamodb::Item stored_key_item(const DynamodbOptions& options, std::string_view key);

// The item for `value` under `key`. When it would not fit in one item: with `chunk_to`, the
// value is written as chunks there (chunked.h) and the head is returned; without,
// InvalidArgumentError. Throws InvalidArgumentError for a bad key, ttl or value size.
dynamodb::Item build_item(const DynamodbOptions& options, std::string_view key, std::string_view value, Ttl ttl,
                          dynamodb::Client* chunk_to);

// The hit an item stands for, nullopt when expired (DynamodbBackend::read_item), reading a
// chunked value's chunks from `client`; throws chunked::ChunksGone when they are gone.
std::optional<Hit> read_entry(const DynamodbOptions& options, dynamodb::Client& client, const dynamodb::Item& item);

}  // namespace dynamodb_cache::detail
