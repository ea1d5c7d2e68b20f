// LayeredBackend: several backends read in order and written together, e.g. a
// MemoryBackend over a DynamodbBackend (a per-process copy in front of the shared table).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include "dynamodb_cache/backend.h"

namespace dynamodb_cache {

struct LayeredOptions {
  // The longest any layer above the lowest (a memory layer over DynamoDB) keeps a copy of a
  // value, whatever the value's TTL: copies are kept for min(TTL, upper_max_age), and values
  // that never expire for upper_max_age. Zero (the default): for the whole TTL. A memory
  // layer does not hear of writes by other processes: until its copy ends it may serve a
  // value another process has since overwritten or erased; this bounds how long.
  Ttl upper_max_age{0};
};

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
  // REQUIRES: at least one layer, none null (else InvalidArgumentError). make_layered()
  // below builds one from its layers without a braced list.
  explicit LayeredBackend(std::vector<std::shared_ptr<Backend>> layers, LayeredOptions options = {});
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
  // Writes `value` into every layer above the lowest (as a read-through would after a hit
  // below), for `ttl` capped by upper_max_age. get_or_set uses it after loading through the
  // lowest layer.
  void fill_upper(std::string_view key, std::string_view value, Ttl ttl);
  // The layers, fastest first.
  const std::vector<std::shared_ptr<Backend>>& layers() const;
  // Blocking work of the default asynchronous forms runs where the lowest layer runs it.
  void run_blocking(std::function<void(std::exception_ptr)> work) override;
  using Backend::clear_async, Backend::erase_async, Backend::get_entry_async, Backend::get_many_async,
      Backend::set_async, Backend::set_many_async;  // their Pending forms

 private:
  struct Impl;  // src/cache/layered_backend.cc
  std::unique_ptr<Impl> impl_;
};

// A LayeredBackend over `layers` in order, fastest first, e.g. make_layered(memory, dynamodb).
// Each is a std::shared_ptr to a Backend (MemoryBackend, DynamodbBackend, ...).
template <class... Layers>
requires(sizeof...(Layers) > 0 &&
         (std::is_convertible_v<std::shared_ptr<Layers>, std::shared_ptr<Backend>> &&
          ...)) std::shared_ptr<LayeredBackend> make_layered(std::shared_ptr<Layers>... layers) {
  return std::make_shared<LayeredBackend>(std::vector<std::shared_ptr<Backend>>{std::move(layers)...});
}
// The same with options (e.g. LayeredOptions{.upper_max_age = std::chrono::seconds(5)}).
template <class... Layers>
requires(sizeof...(Layers) > 0 &&
         (std::is_convertible_v<std::shared_ptr<Layers>, std::shared_ptr<Backend>> &&
          ...)) std::shared_ptr<LayeredBackend> make_layered(LayeredOptions options,
                                                             std::shared_ptr<Layers>... layers) {
  return std::make_shared<LayeredBackend>(std::vector<std::shared_ptr<Backend>>{std::move(layers)...},
                                          options);
}

}  // namespace dynamodb_cache
