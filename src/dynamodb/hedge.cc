// Hedged reads' per-I/O-thread state (see hedge.h).
#include "dynamodb/hedge.h"

#include <algorithm>
#include <cmath>

namespace dynamodb_cache::dynamodb::detail {

namespace {
// The percentile is recomputed after this many new latencies (a selection over the window
// each time: amortised, a few hundred nanoseconds per answer).
constexpr size_t kRecomputeEvery = 32;
}  // namespace

std::optional<std::chrono::microseconds> HedgeGate::on_send() {
  if (!o_.enabled) return std::nullopt;
  tokens_ = std::min(kBurst, tokens_ + o_.max_extra);
  const size_t known = std::min(count_, kWindow);
  if (known < static_cast<size_t>(o_.min_samples) || known == 0) return std::nullopt;
  if (!pct_known_ || since_ >= kRecomputeEvery) {
    std::array<int64_t, kWindow> copy;
    std::copy_n(lat_.begin(), known, copy.begin());
    // The nearest-rank percentile: the smallest latency at least `percentile` % of the
    // window is not above.
    size_t rank = static_cast<size_t>(std::ceil(o_.percentile / 100.0 * static_cast<double>(known)));
    rank = std::clamp<size_t>(rank, 1, known) - 1;
    std::nth_element(copy.begin(), copy.begin() + static_cast<std::ptrdiff_t>(rank),
                     copy.begin() + static_cast<std::ptrdiff_t>(known));
    pct_us_ = copy[rank];
    pct_known_ = true;
    since_ = 0;
  }
  return std::max<std::chrono::microseconds>(o_.floor, std::chrono::microseconds(pct_us_));
}

void HedgeGate::record(std::chrono::microseconds latency) {
  if (!o_.enabled) return;
  lat_[count_ % kWindow] = latency.count();
  ++count_;
  ++since_;
}

bool HedgeGate::take() {
  if (tokens_ < 1) return false;
  tokens_ -= 1;
  return true;
}

}  // namespace dynamodb_cache::dynamodb::detail
