// CoherentNearCache: a memory layer over a DynamodbBackend that the whole fleet can trust.
// Gets are answered from this process's memory at memory speed, and never with a value that a
// write made through this library (any process, any machine, publishing its invalidations:
// DynamodbOptions::publish_invalidations) replaced more than `max_staleness` before the get
// began. README, "A near cache the fleet can trust": the promise, the cost, the fail-safe,
// and what it cannot cover (writers that do not publish).
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "dynamodb_cache/backend.h"
#include "dynamodb_cache/dynamodb_backend.h"

namespace dynamodb_cache {

namespace detail {
struct NearCacheAccess;
}  // namespace detail

struct NearCacheOptions {
  // The bound: a write that has returned to its caller is never answered over from memory by
  // a get that begins more than this later. 100 ms to 1 hour; else InvalidArgumentError.
  // The feed is polled about every 0.45 x max_staleness (README: the cost model).
  Ttl max_staleness{1000};
  // Memory bound, in entries (1 or more; memory is split in up to 16 shards of
  // max_entries / shards each). Past it the least recently used entry goes, unless it is hot.
  std::size_t max_entries = 100000;
  // A key answered from memory at least this many times since it entered is kept with
  // priority: when it is the one to evict, the new entry is not kept instead and its count is
  // halved (so a key no longer read leaves after a few such fills). 0 turns priority off.
  // Default 16.
  uint32_t hot_threshold = 16;
  // The hottest keys NearCacheStats reports (a space-saving top-K over gets): 0 to 1000.
  // Default 16.
  std::size_t top_k = 16;
};

// A snapshot of one CoherentNearCache's counters.
struct NearCacheStats {
  uint64_t memory_hits = 0;    // gets answered from memory
  uint64_t memory_misses = 0;  // gets that went to DynamoDB (not in memory, or memory not answering)
  uint64_t stopped = 0;        // times memory stopped answering (could not confirm it was fresh)
  uint64_t feed_polls = 0, feed_poll_failures = 0;
  // Capacity the feed consumed: reads by this cache's poller, writes by its table's publishes.
  double feed_read_units = 0, feed_write_units = 0;
  // now - the time up to which memory is confirmed fresh (steady clock); memory answers while
  // this is below max_staleness.
  std::chrono::milliseconds feed_lag{0};
  // The hottest keys by gets, most first, at most NearCacheOptions::top_k (approximate counts:
  // space-saving, an overestimate by at most the smallest count kept).
  std::vector<std::pair<std::string, uint64_t>> hottest;
};

// Thread-safe: every operation may be called from any number of threads at once. One poller
// thread per object reads the feed; the destructor stops it. Writes go through to the table
// (which publishes them) and evict the key from this memory at once, so a process sees its
// own writes immediately. Reads that miss memory read DynamoDB strongly consistently (the
// table's consistent_read does not matter) and fill memory unless an invalidation of the key
// arrived meanwhile. Only get_entry (and get, get_many, contains, which is a get when memory
// does not answer) use memory; everything else is the table's. Memory holds live values only (no misses),
// each until its own TTL at most.
class CoherentNearCache final : public Backend {
 public:
  // `table` must have been made with DynamodbOptions::publish_invalidations = true, and
  // `options` must be valid; else InvalidArgumentError. Starts the poller (makes no request
  // before it runs).
  explicit CoherentNearCache(std::shared_ptr<DynamodbBackend> table, NearCacheOptions options = {});
  ~CoherentNearCache() override;  // stops the poller
  CoherentNearCache(const CoherentNearCache&) = delete;
  CoherentNearCache& operator=(const CoherentNearCache&) = delete;

  NearCacheStats near_stats() const;
  const NearCacheOptions& near_options() const;
  DynamodbBackend& table();

  std::optional<Hit> get_entry(std::string_view key) override;
  void set(std::string_view key, std::string_view value, Ttl ttl) override;
  void erase(std::string_view key) override;
  void clear(const std::function<void(uint64_t)>& progress = nullptr) override;
  std::vector<std::optional<Hit>> get_many(const std::vector<std::string>& keys) override;
  void set_many(const std::vector<std::pair<std::string, std::string>>& entries, Ttl ttl) override;
  void erase_many(const std::vector<std::string>& keys) override;
  bool contains(std::string_view key) override;
  bool touch(std::string_view key, Ttl ttl) override;
  bool add(std::string_view key, std::string_view value, Ttl ttl) override;
  int64_t increment(std::string_view key, int64_t delta, Ttl ttl) override;
  // Asynchronous forms: a get that memory answers completes inline, on the calling thread;
  // everything else runs the blocking call through run_blocking, on a helper thread of the
  // table's (DynamodbBackend::run_blocking), which completes `done`.
  void get_entry_async(std::string key, Done<std::optional<Hit>> done) override;
  void set_async(std::string key, std::string value, Ttl ttl, Done<void> done) override;
  void erase_async(std::string key, Done<void> done) override;
  void get_many_async(std::vector<std::string> keys, Done<std::vector<std::optional<Hit>>> done) override;
  void set_many_async(std::vector<std::pair<std::string, std::string>> entries, Ttl ttl,
                      Done<void> done) override;
  void clear_async(Done<void> done, std::function<void(uint64_t)> progress = nullptr) override;
  using Backend::clear_async, Backend::erase_async, Backend::get_entry_async, Backend::get_many_async,
      Backend::set_async, Backend::set_many_async;  // their Pending forms
  void run_blocking(std::function<void(std::exception_ptr)> work) override;
  CacheStats& stats() const override;

 private:
  struct Impl;                            // src/cache/near_cache.cc
  friend struct detail::NearCacheAccess;  // tests' hooks (src/cache/near_cache.h)
  std::unique_ptr<Impl> impl_;
};

}  // namespace dynamodb_cache
