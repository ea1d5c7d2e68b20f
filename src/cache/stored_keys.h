// Stored keys (private to DynamodbBackend): the one mapping from a user key to the `key`
// attribute its item is stored under, and the namespace generation that mapping depends on.
//
//   [NS:GEN:]key                        usually;
//   [NS:GEN:]#sha256:HEX(SHA-256(key))  with long_keys, for a key too long for DynamoDB or
//                                       beginning with "#sha256:" (full_key then holds it).
//
// A namespace's generation GEN lives in the item "NS:generation" (attribute `generation`, N):
// clear() of a namespace increments it (one UpdateItem), after which every key maps to new
// items. This class keeps the generation this process last read, and makes (but does not
// send: it has no client) the requests that read and increment it.
//
// Thread-safety: safe from any number of threads (the generation is under a mutex).
#pragma once

#include <chrono>
#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>

#include "dynamodb_cache/dynamodb_backend.h"

namespace dynamodb_cache::detail {

class StoredKeys {
 public:
  // Throws InvalidArgumentError for a bad namespace name or a negative namespace_refresh.
  explicit StoredKeys(const DynamodbOptions& o);

  // The stored key of `key` under `prefix` (a key_prefix: "NS:GEN:" or ""). Validates `key`:
  // InvalidArgumentError when it is empty, not UTF-8, or too long (with the prefix, and
  // without long_keys).
  std::string stored_key(std::string_view key, std::string_view prefix) const;
  // True when stored_key(key, prefix) is a digest (the item then holds full_key).
  bool is_digest(std::string_view key, std::string_view prefix) const;

  bool has_namespace() const { return !ns_.empty(); }
  // The namespace's generation item key, "NS:generation".
  std::string generation_key() const;
  // The key prefix when it needs no request: "" without a namespace (no clock read, no
  // lock), "NS:GEN:" with a generation read less than namespace_refresh ago; else nullopt.
  std::optional<std::string> known_prefix() const {
    if (ns_.empty()) return std::string();  // inline: every operation asks
    return known_generation();
  }
  // The consistent GetItem of the generation (no capacity asked).
  dynamodb::GetItemRequest generation_request(const std::string& table) const;
  // What the generation GetItem's answer (asked at `asked`) tells this process: the prefix.
  std::string generation_read(const std::optional<dynamodb::Item>& item,
                              std::chrono::steady_clock::time_point asked);
  // The UpdateItem that increments the generation (a namespace clear), returning the new one.
  dynamodb::UpdateItemRequest next_generation(const std::string& table) const;
  // Takes in the new generation next_generation's answer holds (known at once to this
  // process) and returns it. ProtocolError when the answer has none.
  int64_t generation_cleared(const std::optional<dynamodb::Item>& attributes);

 private:
  std::string prefix_of(int64_t generation) const;
  // known_prefix() in a namespace.
  std::optional<std::string> known_generation() const;
  const std::string ns_;
  const std::chrono::milliseconds refresh_;
  const bool long_keys_;
  mutable std::mutex mu_;  // guards the three below
  int64_t generation_ = 0;
  bool known_ = false;
  std::chrono::steady_clock::time_point read_at_;
};

}  // namespace dynamodb_cache::detail
