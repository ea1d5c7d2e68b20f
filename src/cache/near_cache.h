// CoherentNearCache's pure parts and test hooks (private; the class is near_cache.h in include/).
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "dynamodb_cache/dynamodb.h"
#include "dynamodb_cache/near_cache.h"

namespace dynamodb_cache::detail {

// The hottest keys by count, approximately (the space-saving algorithm): at most `capacity`
// counters; an unknown key takes the smallest counter's place and count + 1, so a count is an
// overestimate by at most the count it took over. Not thread-safe (the caller locks).
class TopK {
 public:
  explicit TopK(std::size_t capacity) : capacity_(capacity) {}
  void add(std::string_view key);
  // The `k` largest counts, largest first.
  std::vector<std::pair<std::string, uint64_t>> top(std::size_t k) const;

 private:
  std::size_t capacity_;
  std::unordered_map<std::string, uint64_t> counts_;
};

// Which fills are still allowed after invalidations, for the keys of one memory shard. Each
// invalidation of a hash is recorded with the epoch it was given (a process-wide counter that
// only grows); a fill whose DynamoDB read began at epoch `began` is refused when its hash was
// invalidated after that (epoch > began), or when the log overflowed or was dropped after it
// (floor > began): it may hold the value the invalidation replaced. Bounded: past
// `capacity` hashes, the floor moves to the newest epoch and the hashes are forgotten.
// Not thread-safe (the shard's lock).
class InvalidationLog {
 public:
  explicit InvalidationLog(std::size_t capacity) : capacity_(capacity) {}
  void invalidated(uint64_t hash, uint64_t epoch);
  // Every fill begun before `epoch` is refused.
  void drop_all(uint64_t epoch);
  bool may_fill(uint64_t hash, uint64_t began) const;

 private:
  std::size_t capacity_;
  uint64_t floor_ = 0;
  std::unordered_map<uint64_t, uint64_t> last_;
};

// Test hooks (tests/integration/near_cache_it.cc).
// Its first declaration (a friend in near_cache.h) is public, so it would be exported from
// the shared library: its members are hidden here (the tests link the static library).
struct NearCacheAccess {
  // Called by a get between its DynamoDB read and its fill of memory, with the key.
  [[gnu::visibility("hidden")]] static void before_fill(CoherentNearCache& c,
                                                        std::function<void(std::string_view)> hook);
  // The client the poller reads the feed with (null: the table's again).
  [[gnu::visibility("hidden")]] static void feed_client(CoherentNearCache& c,
                                                        std::shared_ptr<dynamodb::Client> client);
};

}  // namespace dynamodb_cache::detail
