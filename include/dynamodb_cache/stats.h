// Per-cache statistics: counters, consumed capacity and latency percentiles per operation,
// readable from the API (CacheStats::snapshot) and printable as JSON; and the logging hook.
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>

#include "dynamodb_cache/errors.h"
#include "dynamodb_cache/log.h"

namespace dynamodb_cache {

// The operations timed separately.
enum class Op {
  kGet,
  kGetMany,
  kContains,
  kSet,
  kSetMany,
  kAdd,
  kTouch,
  kIncrement,
  kErase,
  kEraseMany,
  kClear
};
inline constexpr std::size_t kOpCount = 11;
const char* to_string(Op op) noexcept;

// A latency histogram that threads record into without locks: log-linear buckets, four per
// power of two of microseconds from 1 us to about 18 minutes (relaxed atomic counters), so a
// percentile is exact to within 19% (it reports its bucket's upper bound). Thread-safe.
class LatencyHistogram {
 public:
  static constexpr int kBuckets = 4 * 30 + 1;
  void record(std::chrono::nanoseconds d) noexcept;
  uint64_t count() const noexcept;
  // The p-th percentile (0 < p <= 100) in microseconds; 0 when nothing was recorded.
  double percentile_us(double p) const noexcept;

 private:
  std::array<std::atomic<uint64_t>, kBuckets> buckets_{};
};

inline constexpr std::size_t kErrorKindCount = static_cast<std::size_t>(ErrorKind::kUnknownOutcome) + 1;

// Counters since the backend was made; all relaxed atomics, incremented by the backend
// (and by get_or_set for loads, lease waits, stale values and refresh failures). Thread-safe.
struct CacheStats {
  std::atomic<uint64_t> hits{0}, misses{0};                         // entries found / not found by reads
  std::atomic<uint64_t> sets{0}, erases{0};                         // entries written / erased
  std::atomic<uint64_t> loads{0}, load_time_us{0}, lease_waits{0};  // get_or_set
  std::atomic<uint64_t> stale_served{0};  // get_or_set's callers answered stale (stale_if_error)
  // get_or_set's reloads ahead of expiry (refresh_ahead) that failed on the pool: logged,
  // never thrown at the caller that started them
  std::atomic<uint64_t> refresh_failures{0};
  std::atomic<uint64_t> fail_open{0};      // errors turned into misses or dropped writes
  std::atomic<uint64_t> throttles{0};      // throttling errors that reached the cache
  std::atomic<uint64_t> decode_errors{0};  // values read as misses: TypedOptions::decode_error_is_miss
  std::atomic<uint64_t> bytes_read{0}, bytes_written{0};                // value bytes (before compression)
  std::atomic<double> read_capacity_units{0}, write_capacity_units{0};  // ReturnConsumedCapacity
  std::array<std::atomic<uint64_t>, kErrorKindCount> errors{};          // by ErrorKind
  std::array<LatencyHistogram, kOpCount> latency;                       // by Op
  // Retries are made by the dynamodb::Client, which several caches may share; the JSON
  // reports its count (ClientStats::retries) when to_json() is given it.

  void count_error(ErrorKind kind) noexcept;
  // {"hits":..,"misses":..,...,"errors":{"transport":1},"latency_us":{"get":{"count":..,
  // "p50":..,"p90":..,"p99":..,"max":..}},...}; operations never called are left out.
  std::string to_json(const uint64_t* client_retries = nullptr) const;
};

}  // namespace dynamodb_cache
