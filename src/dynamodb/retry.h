// Retry policy pieces (private): settings resolution, the quota bucket, the jittered backoff,
// and the adaptive mode's client-side rate limiter.
#pragma once

#include <atomic>
#include <chrono>
#include <mutex>
#include <optional>
#include <random>

#include "dynamodb_cache/dynamodb.h"

namespace dynamodb_cache::dynamodb::detail {

// `r` with max_attempts (> 0) and mode settled as the AWS CLI settles them: explicit value,
// AWS_MAX_ATTEMPTS / AWS_RETRY_MODE, the profile's max_attempts / retry_mode (config file),
// the mode's default. mode stays kUnset when nothing names one. Throws ConfigError for a
// value that is not a positive integer or not a known mode, naming where it came from.
RetryOptions resolve_retry(RetryOptions r, const aws::ProfileOptions& profile);

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

// Exponential backoff, full jitter except in legacy mode (botocore's DynamoDB policy has
// none). Thread-safe (the generator is behind a mutex; it is only used on retries).
class Backoff {
 public:
  explicit Backoff(const RetryOptions& o);
  // Delay before retry number `retry` (1-based).
  std::chrono::microseconds delay(int retry, bool throttled);

 private:
  std::chrono::microseconds base_, throttling_base_, max_;
  bool jitter_;
  std::mutex mu_;
  std::mt19937_64 rng_;
};

// The adaptive retry mode's client-side rate limiter, as the AWS SDKs build it (botocore's
// ClientRateLimiter, the SDK "adaptive retry" design): a token bucket that is off until the
// first throttling answer; each throttle cuts the fill rate to beta (0.7) times the measured
// send rate, and each success raises it along a CUBIC curve back towards (and past) the
// rate at the last throttle, never above twice the measured rate. Times are seconds on a
// monotonic clock. Thread-safe (one mutex; no sleeping under it).
class ClientRateLimiter {
 public:
  // Takes one send token. Returns how long the caller must wait before sending (zero while
  // the limiter is off or tokens are left); the token is reserved either way.
  std::chrono::microseconds acquire(double now);
  // Records the outcome of one attempt.
  void update(bool throttled, double now);
  double fill_rate() const;
  bool enabled() const;

 private:
  void refill(double now);
  void update_measured_rate(double now);
  void set_fill_rate(double rate, double now);

  static constexpr double kMinFillRate = 0.5, kMinCapacity = 1, kSmooth = 0.8, kBeta = 0.7,
                          kScale = 0.4;
  mutable std::mutex mu_;
  bool enabled_ = false;
  double fill_rate_ = 0, max_capacity_ = 0, capacity_ = 0;
  std::optional<double> last_refill_;
  double measured_rate_ = 0, last_rate_bucket_ = 0, request_count_ = 0;
  double last_max_rate_ = 0, last_throttle_ = 0, time_window_ = 0;
  bool bucket_started_ = false;
};

}  // namespace dynamodb_cache::dynamodb::detail
