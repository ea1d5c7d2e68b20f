// LayeredBackend: several backends read in order and written together, e.g. a
// MemoryBackend over a DynamodbBackend (a per-process copy in front of the shared table).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "dynamodb_cache/backend.h"

namespace dynamodb_cache {

// Reads layers in order (fastest first); a hit in a lower layer is written back into the
// layers above it with the remaining TTL. Writes and erases go to every layer, lowest
// (most durable) first, so a failure there leaves the upper layers untouched.
// Atomic operations are decided by the lowest layer alone (the one shared between
// processes): add() then writes the value into the layers above; touch() re-times the
// layers above, or erases the key from them when the lowest layer had no live entry;
// increment() erases the key from the layers above. A counter read from a lower layer is
// not copied up either: upper layers never hold a counter that other processes may
// change. Thread-safe if its layers are.
class LayeredBackend final : public Backend {
 public:
  // REQUIRES: at least one layer, none null.
  explicit LayeredBackend(std::vector<std::shared_ptr<Backend>> layers);
  ~LayeredBackend() override;
  std::optional<Hit> get_entry(std::string_view key) override;
  void set(std::string_view key, std::string_view value, Ttl ttl) override;
  void erase(std::string_view key) override;
  void clear(const std::function<void(uint64_t)>& progress = nullptr) override;
  std::vector<std::optional<Hit>> get_many(const std::vector<std::string>& keys) override;
  void set_many(const std::vector<std::pair<std::string, std::string>>& entries, Ttl ttl) override;
  // Upper layers answer inline; a miss goes down, and a lower hit is written back above.
  void get_entry_async(std::string key, Done<std::optional<Hit>> done) override;
  // Lowest layer first, as set(): the upper ones only once it succeeded.
  void set_async(std::string key, std::string value, Ttl ttl, Done<void> done) override;
  void erase_async(std::string key, Done<void> done) override;
  // Layer by layer as get_many (each layer's get_many_async), and lowest first as set_many.
  void get_many_async(std::vector<std::string> keys, Done<std::vector<std::optional<Hit>>> done) override;
  void set_many_async(std::vector<std::pair<std::string, std::string>> entries, Ttl ttl,
                      Done<void> done) override;
  // Lowest layer first, as clear(); `progress` goes to each layer.
  void clear_async(Done<void> done, std::function<void(uint64_t)> progress = nullptr) override;
  void erase_many(const std::vector<std::string>& keys) override;
  bool contains(std::string_view key) override;
  bool touch(std::string_view key, Ttl ttl) override;
  bool add(std::string_view key, std::string_view value, Ttl ttl) override;
  int64_t increment(std::string_view key, int64_t delta, Ttl ttl) override;

 private:
  struct Impl;  // src/cache/layered_backend.cc
  std::unique_ptr<Impl> impl_;
};

}  // namespace dynamodb_cache
