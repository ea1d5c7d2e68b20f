#include "dynamodb/retry.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <thread>

#include "aws/config.h"
#include "dynamodb_cache/errors.h"

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

namespace {

int parse_attempts(const std::string& v, const std::string& where) {
  int n = 0;
  auto [ptr, ec] = std::from_chars(v.data(), v.data() + v.size(), n);
  if (ec != std::errc() || ptr != v.data() + v.size() || n < 1)
    throw ConfigError(where + " must be an integer >= 1, not '" + v + "'");
  return n;
}

RetryMode parse_mode(const std::string& v, const std::string& where) {
  if (v == "legacy") return RetryMode::kLegacy;
  if (v == "standard") return RetryMode::kStandard;
  if (v == "adaptive") return RetryMode::kAdaptive;
  throw ConfigError(where + " must be legacy, standard or adaptive, not '" + v + "'");
}

}  // namespace

RetryOptions resolve_retry(RetryOptions r, const aws::ProfileOptions& profile) {
  if (r.max_attempts < 0) throw InvalidArgumentError("retry.max_attempts must be >= 1 (0: from the environment)");
  if (r.max_attempts == 0)
    if (auto v = aws::detail::env("AWS_MAX_ATTEMPTS")) r.max_attempts = parse_attempts(*v, "AWS_MAX_ATTEMPTS");
  if (r.mode == RetryMode::kUnset)
    if (auto v = aws::detail::env("AWS_RETRY_MODE")) r.mode = parse_mode(*v, "AWS_RETRY_MODE");
  if (r.max_attempts == 0 || r.mode == RetryMode::kUnset) {
    auto p = aws::detail::resolve_profile(profile);
    if (auto sec = aws::detail::config_section(p)) {
      const std::string where = "max_attempts of profile '" + p.name + "' in " + p.config_file;
      if (auto it = sec->find("max_attempts"); r.max_attempts == 0 && it != sec->end())
        r.max_attempts = parse_attempts(it->second, where);
      if (auto it = sec->find("retry_mode"); r.mode == RetryMode::kUnset && it != sec->end())
        r.mode = parse_mode(it->second, "retry_mode of profile '" + p.name + "' in " + p.config_file);
    }
  }
  if (r.max_attempts == 0) {
    switch (r.mode) {
      case RetryMode::kStandard:
      case RetryMode::kAdaptive: r.max_attempts = 3; break;
      case RetryMode::kLegacy: r.max_attempts = 10; break;
      case RetryMode::kUnset: r.max_attempts = r.default_max_attempts; break;
    }
  }
  if (r.max_attempts < 1) throw InvalidArgumentError("retry.default_max_attempts must be >= 1");
  return r;
}

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
      jitter_(o.mode != RetryMode::kLegacy),
      rng_(o.jitter_seed ? *o.jitter_seed : std::random_device{}()) {
  using std::chrono::milliseconds;
  if (o.mode == RetryMode::kStandard || o.mode == RetryMode::kAdaptive) {
    base_ = throttling_base_ = milliseconds(1000);
    max_ = milliseconds(20000);
  } else if (o.mode == RetryMode::kLegacy) {
    base_ = throttling_base_ = milliseconds(50);
    max_ = milliseconds(20000);
  }
}

std::chrono::microseconds Backoff::delay(int retry, bool throttled) {
  auto base = throttled ? throttling_base_ : base_;
  // base * 2^(retry-1), saturating at max_ well before overflow.
  auto cap = base;
  for (int i = 1; i < retry && cap < max_; ++i) cap *= 2;
  cap = std::min(cap, max_);
  if (cap.count() <= 0) return std::chrono::microseconds(0);
  if (!jitter_) return cap;
  std::uniform_int_distribution<int64_t> dist(0, cap.count());
  std::lock_guard lock(mu_);
  return std::chrono::microseconds(dist(rng_));
}

std::chrono::microseconds ClientRateLimiter::acquire(double now) {
  std::lock_guard lock(mu_);
  if (!enabled_) return std::chrono::microseconds(0);
  refill(now);
  capacity_ -= 1;
  if (capacity_ >= 0) return std::chrono::microseconds(0);
  return std::chrono::microseconds(static_cast<int64_t>(std::ceil(-capacity_ / fill_rate_ * 1e6)));
}

void ClientRateLimiter::update(bool throttled, double now) {
  std::lock_guard lock(mu_);
  update_measured_rate(now);
  double rate;
  if (throttled) {
    double rate_to_use = enabled_ ? std::min(measured_rate_, fill_rate_) : measured_rate_;
    last_max_rate_ = rate_to_use;
    time_window_ = std::cbrt(last_max_rate_ * (1 - kBeta) / kScale);
    last_throttle_ = now;
    rate = rate_to_use * kBeta;
    enabled_ = true;
  } else {
    time_window_ = std::cbrt(last_max_rate_ * (1 - kBeta) / kScale);
    rate = kScale * std::pow(now - last_throttle_ - time_window_, 3) + last_max_rate_;
  }
  set_fill_rate(std::min(rate, 2 * measured_rate_), now);
}

double ClientRateLimiter::fill_rate() const {
  std::lock_guard lock(mu_);
  return fill_rate_;
}

bool ClientRateLimiter::enabled() const {
  std::lock_guard lock(mu_);
  return enabled_;
}

void ClientRateLimiter::refill(double now) {
  if (last_refill_) capacity_ = std::min(max_capacity_, capacity_ + (now - *last_refill_) * fill_rate_);
  last_refill_ = now;
}

// The send rate, smoothed over half-second buckets.
void ClientRateLimiter::update_measured_rate(double now) {
  if (!bucket_started_) {
    bucket_started_ = true;
    last_rate_bucket_ = std::floor(now);
    last_throttle_ = now;
  }
  double bucket = std::floor(now * 2) / 2;
  request_count_ += 1;
  if (bucket > last_rate_bucket_) {
    double current = request_count_ / (bucket - last_rate_bucket_);
    measured_rate_ = current * kSmooth + measured_rate_ * (1 - kSmooth);
    request_count_ = 0;
    last_rate_bucket_ = bucket;
  }
}

void ClientRateLimiter::set_fill_rate(double rate, double now) {
  refill(now);
  fill_rate_ = std::max(rate, kMinFillRate);
  max_capacity_ = std::max(rate, kMinCapacity);
  capacity_ = std::min(capacity_, max_capacity_);
}

}  // namespace detail
}  // namespace dynamodb_cache::dynamodb
