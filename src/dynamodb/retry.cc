#include "dynamodb/retry.h"

#include <algorithm>
#include <thread>

namespace dynamodb_cache::dynamodb {

namespace {
class RealSleeper final : public Sleeper {
 public:
  void sleep(std::chrono::microseconds d) override { std::this_thread::sleep_for(d); }
};
}  // namespace

std::shared_ptr<Sleeper> real_sleeper() {
  static auto s = std::make_shared<RealSleeper>();
  return s;
}

namespace detail {

bool RetryQuota::acquire(int cost) {
  int cur = tokens_.load(std::memory_order_relaxed);
  while (cur >= cost)
    if (tokens_.compare_exchange_weak(cur, cur - cost, std::memory_order_relaxed)) return true;
  return false;
}

void RetryQuota::release(int n) {
  int cur = tokens_.load(std::memory_order_relaxed);
  while (cur < capacity_) {
    int next = std::min(capacity_, cur + n);
    if (tokens_.compare_exchange_weak(cur, next, std::memory_order_relaxed)) return;
  }
}

Backoff::Backoff(const RetryOptions& o)
    : base_(o.base_delay),
      throttling_base_(o.throttling_base_delay),
      max_(o.max_delay),
      rng_(o.jitter_seed ? *o.jitter_seed : std::random_device{}()) {}

std::chrono::microseconds Backoff::delay(int retry, bool throttled) {
  auto base = throttled ? throttling_base_ : base_;
  // base * 2^(retry-1), saturating at max_ well before overflow.
  auto cap = base;
  for (int i = 1; i < retry && cap < max_; ++i) cap *= 2;
  cap = std::min(cap, max_);
  if (cap.count() <= 0) return std::chrono::microseconds(0);
  std::uniform_int_distribution<int64_t> dist(0, cap.count());
  std::lock_guard lock(mu_);
  return std::chrono::microseconds(dist(rng_));
}

}  // namespace detail
}  // namespace dynamodb_cache::dynamodb
