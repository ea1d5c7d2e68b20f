// get_or_set's backoff for keys whose source is failing (private).
#pragma once

#include <chrono>
#include <cstddef>
#include <mutex>
#include <random>
#include <string>
#include <string_view>
#include <unordered_map>

#include "cache/single_flight.h"
#include "dynamodb_cache/get_or_set.h"
#include "util/random.h"

namespace dynamodb_cache::detail {

// Keys of this process whose load failed while a stale value was there to serve: until the
// backoff passes (1 s, doubling to 30 s, each jittered down by up to half; reset by a load that
// succeeds), and while a load that outlived load_timeout still runs, callers serve the stale
// value without calling the loader. By (backend object, key), as flights; a backend's
// destructor forgets its keys (backend_gone). Thread-safe. Bounded: at kMaxKeys failing keys,
// those whose backoff ended more than kMax ago are forgotten (their next failure starts at
// kFirst again); if none has, a new failure is not remembered (its next caller loads again).
class Outages {
 public:
  static constexpr Ttl kFirst{1000}, kMax{30000};
  static constexpr std::size_t kMaxKeys = 100000;

  static Outages& instance() {
    static Outages* outages = new Outages;  // never destroyed: late loads may end after exit began
    return *outages;
  }
  // Whether a caller with a stale value serves it now instead of loading.
  bool holding(const void* owner, std::string_view key) {
    std::lock_guard lock(mu_);
    auto it = keys_.find(FlightRegistry::id(owner, key));
    return it != keys_.end() &&
           (it->second.loading || std::chrono::steady_clock::now() < it->second.retry_at);
  }
  // A load failed; `loading`: it timed out and still runs (until late()).
  void failed(const void* owner, std::string_view key, bool loading) {
    std::lock_guard lock(mu_);
    std::string id = FlightRegistry::id(owner, key);
    auto it = keys_.find(id);
    if (it == keys_.end()) {
      if (keys_.size() >= kMaxKeys) prune();
      if (keys_.size() >= kMaxKeys) return;
      it = keys_.emplace(std::move(id), State{}).first;
    }
    State& s = it->second;
    s.delay = s.delay.count() == 0 ? kFirst : std::min(kMax, s.delay * 2);
    std::uniform_int_distribution<int64_t> jitter(s.delay.count() / 2, s.delay.count());
    s.retry_at = std::chrono::steady_clock::now() + Ttl(jitter(util::thread_rng()));
    s.loading = loading;
  }
  void succeeded(const void* owner, std::string_view key) {
    std::lock_guard lock(mu_);
    keys_.erase(FlightRegistry::id(owner, key));
  }
  // Every key of `owner` (whose ids begin with its address: FlightRegistry::id).
  void forget(const void* owner) {
    const std::string prefix = FlightRegistry::id(owner, "");
    std::lock_guard lock(mu_);
    std::erase_if(keys_, [&](const auto& kv) { return kv.first.starts_with(prefix); });
  }
  std::size_t size() {
    std::lock_guard lock(mu_);
    return keys_.size();
  }

 private:
  // REQUIRES: mu_ held.
  void prune() {
    const auto now = std::chrono::steady_clock::now();
    std::erase_if(keys_,
                  [&](const auto& kv) { return !kv.second.loading && kv.second.retry_at + kMax < now; });
  }

  struct State {
    std::chrono::steady_clock::time_point retry_at;
    Ttl delay{0};
    bool loading = false;
  };
  std::mutex mu_;
  std::unordered_map<std::string, State> keys_;
};

}  // namespace dynamodb_cache::detail
