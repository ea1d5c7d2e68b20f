// The process-wide registry of loads in progress behind get_or_set (get_or_set.h). Private;
// tests use it to see who is waiting.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <unordered_map>

#include "dynamodb_cache/errors.h"
#include "dynamodb_cache/get_or_set.h"
#include "util/text.h"

namespace dynamodb_cache::detail {

// Calls `load` (a loader of get_or_set or get_or_set_many): counted in stats.loads, with its
// duration in stats.load_time_us, also when it throws.
template <class Load>
auto timed_load(CacheStats& stats, Load&& load) -> decltype(load()) {
  struct Timed {
    CacheStats& s;
    std::chrono::steady_clock::time_point start = std::chrono::steady_clock::now();
    ~Timed() {
      auto us =
          std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() - start);
      s.loads.fetch_add(1, std::memory_order_relaxed);
      s.load_time_us.fetch_add(static_cast<uint64_t>(us.count()), std::memory_order_relaxed);
    }
  } timed{stats};
  return load();
}

// How a load ends when its loader said the source has no value for the key (Flight carries a
// value or an error, not "none"): callers whose loader may say so (get_or_set_many, get_or_set
// with a Loaded loader) answer std::nullopt; a get_or_set that shared the load and must return
// a value gets this error. Also thrown inside a call whose load (or negative entry, under
// GetOrSetOptions::cache_misses_for) says "missing".
class NoValueLoaded final : public InvalidArgumentError {
 public:
  explicit NoValueLoaded(std::string_view key)
      : InvalidArgumentError(
            std::string("get_or_set: the loader of a load this call shared had no value for key '")
                .append(util::printable(key))
                .append("' (or a miss remembered by cache_misses_for said so), and this caller's loader "
                        "must return one; nothing was cached")) {}
};

// One load of one key; the leader finishes it, followers wait for it. Thread-safe.
class Flight {
 public:
  // Blocks until finished; returns the value or rethrows the leader's exception. Called by
  // the leader's own thread (its loader asking for its own key), InvalidArgumentError at once:
  // it would wait for itself forever.
  GetOrSetResult wait();
  void finish(GetOrSetResult result);
  void fail(std::exception_ptr error);
  // Hands the flight to the thread that will load: a refresh ahead of expiry is led by a pool
  // thread, not by the caller that started it (who may ask for the key again meanwhile).
  // std::thread::id(): nobody's, while the refresh waits in the pool's queue.
  void lead_from(std::thread::id thread) { leader_.store(thread); }

 private:
  friend class FlightRegistry;
  std::mutex mu_;
  std::condition_variable cv_;
  bool done_ = false;
  GetOrSetResult result_;
  std::exception_ptr error_;
  std::size_t waiters_ = 0;
  std::atomic<std::thread::id> leader_;  // set by FlightRegistry::join, then by lead_from
};

// Flights by (owner, key): the owner is the Backend object. Sharded, one mutex per shard.
// Thread-safe.
class FlightRegistry {
 public:
  struct Joined {
    std::shared_ptr<Flight> flight;
    bool leader = false;
  };
  // The flight in progress for (owner, key), or a new one whose leader the caller becomes.
  Joined join(const void* owner, std::string_view key);
  // Removes the leader's flight (before finishing it, so that later callers start anew and
  // read what the leader stored).
  void leave(const void* owner, std::string_view key, const std::shared_ptr<Flight>& flight);
  // Flights finished in the shard of (owner, key) so far: a caller that saw a miss and then
  // became leader re-reads when this moved meanwhile (a flight ended between its read and its
  // join, so the value may be there now).
  uint64_t finished(const void* owner, std::string_view key);
  // Callers waiting on the flight of (owner, key); 0 when none is in progress.
  std::size_t waiters(const void* owner, std::string_view key);

  static FlightRegistry& instance();
  // The id of (owner, key) in the registry's maps (and the outages' of get_or_set.cc).
  static std::string id(const void* owner, std::string_view key);

 private:
  struct Shard {
    std::mutex mu;
    std::unordered_map<std::string, std::shared_ptr<Flight>> flights;
    uint64_t finished = 0;
  };
  static constexpr std::size_t kShards = 32;
  Shard& shard(const std::string& id);
  Shard shards_[kShards];
};

}  // namespace dynamodb_cache::detail
