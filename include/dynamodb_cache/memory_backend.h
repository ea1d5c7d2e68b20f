// MemoryBackend: an in-process LRU cache with per-entry TTL, for a layer over DynamoDB
// (layered_backend.h) or a process-local cache of its own.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string_view>

#include "dynamodb_cache/backend.h"

namespace dynamodb_cache {

struct MemoryOptions {
  // Bounds over all shards; the least recently used entries go first. Each shard holds an
  // equal share. Defaults: 100,000 entries, 64 MiB of keys plus values. A bound of 0 stores
  // nothing (every get misses): a memory layer turned off by configuration, without
  // changing the program's layers.
  std::size_t max_entries = 100000;
  std::size_t max_bytes = 64u << 20;
  // Number of independently locked shards (rounded up to a power of two). Default 16.
  std::size_t shards = 16;
  // Keys up to this many bytes (default 2048, DynamoDB's limit, so a program that moves to a
  // table fails early, not later). A memory layer over a DynamodbBackend with long_keys takes
  // up to kMaxLongKeyBytes (64 KiB; make_cache sets this for you).
  std::size_t max_key_bytes = 2048;
  // Clock for expiry; default steady_clock (immune to wall-clock jumps).
  std::function<std::chrono::steady_clock::time_point()> now{};
};

// An in-process LRU cache with per-entry TTL, one mutex per shard. Per instance: two
// MemoryBackends share nothing. Thread-safe.
class MemoryBackend final : public Backend {
 public:
  explicit MemoryBackend(MemoryOptions options = {});
  ~MemoryBackend() override;
  std::optional<Hit> get_entry(std::string_view key) override;
  void set(std::string_view key, std::string_view value, Ttl ttl) override;
  void erase(std::string_view key) override;
  void clear(const std::function<void(uint64_t)>& progress = nullptr) override;
  bool contains(std::string_view key) override;
  bool touch(std::string_view key, Ttl ttl) override;
  bool add(std::string_view key, std::string_view value, Ttl ttl) override;
  int64_t increment(std::string_view key, int64_t delta, Ttl ttl) override;

  // Hits, misses, sets and erases are counted per shard under its lock (no shared counter
  // on the hot path) and summed into the CacheStats on each call.
  CacheStats& stats() const override;

  std::size_t size() const;    // live and not-yet-evicted expired entries
  std::size_t bytes() const;   // keys plus values held
  uint64_t evictions() const;  // entries dropped to stay within bounds

 private:
  struct Impl;  // src/cache/memory_backend.cc
  std::unique_ptr<Impl> impl_;
};

}  // namespace dynamodb_cache
