// Retry policy pieces (private): the quota bucket and the jittered backoff.
#pragma once

#include <atomic>
#include <chrono>
#include <mutex>
#include <random>

#include "dynamodb_cache/dynamodb.h"

namespace dynamodb_cache::dynamodb::detail {

// Token bucket shared by all calls of one client. Thread-safe (lock-free).
class RetryQuota {
 public:
  explicit RetryQuota(int capacity) : capacity_(capacity), tokens_(capacity) {}
  // Takes `cost` tokens if that many are left.
  bool acquire(int cost);
  // Returns tokens, never above capacity.
  void release(int n);
  int available() const { return tokens_.load(std::memory_order_relaxed); }

 private:
  const int capacity_;
  std::atomic<int> tokens_;
};

// Full-jitter exponential backoff. Thread-safe (the generator is behind a mutex; it is only
// used on retries).
class Backoff {
 public:
  explicit Backoff(const RetryOptions& o);
  // Delay before retry number `retry` (1-based).
  std::chrono::microseconds delay(int retry, bool throttled);

 private:
  std::chrono::microseconds base_, throttling_base_, max_;
  std::mutex mu_;
  std::mt19937_64 rng_;
};

}  // namespace dynamodb_cache::dynamodb::detail
