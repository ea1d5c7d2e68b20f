// Stored keys (private to DynamodbBackend): the one mapping from a user key to the `key`
// attribute its item is stored under, and the namespace generation that mapping depends on.
//
//   [NS:GEN:]key                        usually;
//   [NS:GEN:]#sha256:HEX(SHA-256(key))  with long_keys, for a key too long for DynamoDB or
//                                       beginning with "#sha256:" (full_key then holds it).
//
// A namespace's generation GEN lives in the item "NS:generation" (attribute `generation`, N),
// an integer from 0 to kMaxGeneration. It never takes a value the namespace used before, so
// values stored under an older generation are never read again:
//   - a namespace without that item (its first use, or the item was deleted) starts at the
//     wall clock's microseconds since the epoch (a conditional UpdateItem creating the item);
//   - clear() moves it to max(GEN + 1, the clock's microseconds), conditioned on the GEN it
//     saw (any writer's change in between: read again, try again). Past kMaxGeneration (only
//     a hand-written value gets there) it starts afresh from the clock instead.
// A time-based start is what keeps a deleted item from bringing back what a clear hid: the
// clock has moved past every generation the namespace had. Earlier versions started at 0 and
// added 1 per clear; their generations are valid here and ours there, so both can share a
// namespace (values a never-cleared namespace held under generation 0 are not seen once it
// is started this way: a one-time clear).
// A generation item holding anything else (not an integer, negative, past kMaxGeneration, or
// no `generation` at all: a key outside namespaces stored under its name) is a CodecError
// naming the item for every operation but clear(), which replaces it with a new generation
// (an item without `generation` is refused: it is someone's value).
// This class keeps the generation this process last read, and makes (but does not send: it
// has no client) the requests that read and move it.
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

// The largest generation: 18 digits, so that GEN + 1 never overflows (the clock's
// microseconds reach it in the year 33658).
inline constexpr int64_t kMaxGeneration = 999'999'999'999'999'999;

class StoredKeys {
 public:
  // Throws InvalidArgumentError for a bad namespace name or a negative namespace_refresh.
  explicit StoredKeys(const DynamodbOptions& o);

  // The stored key of `key` under `prefix` (a key_prefix: "NS:GEN:" or ""). Validates `key`:
  // InvalidArgumentError when it is empty, not UTF-8, or too long (with the prefix, and
  // without long_keys), or when it would be stored as an invalidation feed item (outside
  // namespaces, beginning with feed::kFeedPrefix, "__dc#feed#": reserved).
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
  // The consistent GetItem of the generation item (no capacity asked).
  dynamodb::GetItemRequest generation_request(const std::string& table) const;
  // What the generation GetItem's answer (asked at `asked`) tells this process: the prefix,
  // or nullopt when there is no generation item (the namespace is started with move()).
  // CodecError naming the item when it holds no valid generation.
  std::optional<std::string> generation_read(const std::optional<dynamodb::Item>& item,
                                             std::chrono::steady_clock::time_point asked);
  // The generation item as this process last knew it (whatever its age; nullopt: not known),
  // what a clear's first attempt moves from.
  std::optional<dynamodb::Item> last_seen() const;
  // The conditional UpdateItem (UPDATED_NEW) that moves the generation from `seen`, the
  // generation item as read (nullopt: none), to `next`: the namespace's start, or a clear.
  // Its condition fails when the item changed since it was seen. CodecError for an item
  // without `generation` (not a generation item).
  struct Move {
    dynamodb::UpdateItemRequest request;
    int64_t next;
  };
  Move move(const std::string& table, const std::optional<dynamodb::Item>& seen,
            SystemClock::time_point now) const;
  // Takes in the generation a Move's answer holds (known at once to this process) and
  // returns it. ProtocolError when the answer does not hold move.next.
  int64_t moved(const Move& move, const std::optional<dynamodb::Item>& attributes);
  std::string prefix_of(int64_t generation) const;
  // Forgets the generation read last, so that the next operation reads it again (a near cache
  // saw another process clear the namespace).
  void forget_generation();

 private:
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
