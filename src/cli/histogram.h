// The latency histogram of `dynamodb-cache bench` (private to the CLI).
#pragma once

#include <algorithm>
#include <array>
#include <bit>
#include <cmath>
#include <cstdint>

namespace dynamodb_cache::cli::bench {

// Log-linear histogram of nanoseconds: exact below 128, then 64 buckets per power of two.
// Fixed memory, trivially copyable (a process report carries it as bytes); not thread-safe:
// one per thread, merged afterwards.
class Histogram {
 public:
  static constexpr int kBuckets = 128 + 57 * 64;
  void add(uint64_t ns) {
    ++counts_[index(ns)];
    ++n_;
    if (ns > max_) max_ = ns;
  }
  void merge(const Histogram& o) {
    for (int i = 0; i < kBuckets; ++i) counts_[i] += o.counts_[i];
    n_ += o.n_;
    max_ = std::max(max_, o.max_);
  }
  uint64_t count() const { return n_; }
  uint64_t max() const { return max_; }
  // The smallest bucket value v with at least p% of samples <= v.
  uint64_t percentile(double p) const {
    if (n_ == 0) return 0;
    uint64_t want = static_cast<uint64_t>(std::ceil(p / 100.0 * static_cast<double>(n_)));
    if (want == 0) want = 1;
    uint64_t seen = 0;
    for (int i = 0; i < kBuckets; ++i) {
      seen += counts_[i];
      if (seen >= want) return std::min(upper(i), max_);
    }
    return max_;
  }

 private:
  static int index(uint64_t v) {
    if (v < 128) return static_cast<int>(v);
    int msb = 63 - std::countl_zero(v);
    int shift = msb - 6;
    return 128 + (msb - 7) * 64 + static_cast<int>((v >> shift) - 64);
  }
  static uint64_t upper(int i) {
    if (i < 128) return static_cast<uint64_t>(i);
    int msb = (i - 128) / 64 + 7, sub = (i - 128) % 64 + 64;
    int shift = msb - 6;
    return ((static_cast<uint64_t>(sub) + 1) << shift) - 1;
  }
  std::array<uint64_t, kBuckets> counts_{};
  uint64_t n_ = 0, max_ = 0;
};

}  // namespace dynamodb_cache::cli::bench
