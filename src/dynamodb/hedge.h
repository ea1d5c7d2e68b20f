// Hedged reads' per-I/O-thread state (private; ClientOptions::hedge): the recent GetItem
// latencies whose percentile says when a GetItem is late, and the token bucket that caps the
// second copies at a share of the gets.
//
// Thread-safety: none; one per I/O thread, used on that loop only.
#pragma once

#include <array>
#include <chrono>
#include <cstddef>
#include <optional>

#include "dynamodb_cache/dynamodb.h"

namespace dynamodb_cache::dynamodb::detail {

class HedgeGate {
 public:
  // Latencies kept: the percentile is that of the last kWindow answers.
  static constexpr size_t kWindow = 512;
  // The bucket holds at most this many hedges: a quiet spell does not buy a burst.
  static constexpr double kBurst = 10;

  explicit HedgeGate(const HedgeOptions& o) : o_(o) {}

  // A hedgeable GetItem's first copy is being sent: earns max_extra tokens. Returns how long
  // after sending to hedge it (max(floor, the percentile)), or nullopt: hedging is off, or
  // too few latencies are known yet.
  std::optional<std::chrono::microseconds> on_send();
  // A hedgeable GetItem's copy was answered with success after `latency`.
  void record(std::chrono::microseconds latency);
  // Takes one hedge's token; false when the budget is spent.
  bool take();

 private:
  HedgeOptions o_;
  std::array<int64_t, kWindow> lat_{};  // microseconds, a ring
  size_t count_ = 0;                    // latencies recorded, all time
  size_t since_ = 0;                    // recorded since the percentile was computed
  int64_t pct_us_ = 0;                  // the percentile, as computed last
  bool pct_known_ = false;
  double tokens_ = 0;
};

}  // namespace dynamodb_cache::dynamodb::detail
