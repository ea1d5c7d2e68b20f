// Zipf-distributed key choice for `dynamodb-cache bench --zipf S` (private to the CLI).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <random>
#include <stdexcept>
#include <vector>

namespace dynamodb_cache::cli {

// Draws keys 0..n-1 with P(rank r) proportional to 1 / r^s (r = 1..n), exactly: the CDF is
// precomputed (8 bytes a key: 800 KB for 100,000 keys) and each draw is one binary search.
// Rank r is key permutation()[r - 1], a fixed shuffle (the same in every process, seeded by
// n alone), so the hottest keys are spread over the key space instead of being keys 0, 1, ...
// REQUIRES: n >= 1, s > 0 (else std::invalid_argument). Immutable after construction:
// thread-safe for concurrent draws with separate generators.
class ZipfKeys {
 public:
  ZipfKeys(uint64_t n, double s) : cdf_(n), keys_(n) {
    if (n == 0 || !(s > 0)) throw std::invalid_argument("ZipfKeys: needs n >= 1 and s > 0");
    double sum = 0;
    for (uint64_t r = 0; r < n; ++r) cdf_[r] = sum += std::pow(static_cast<double>(r + 1), -s);
    for (double& c : cdf_) c /= sum;
    cdf_.back() = 1.0;  // no draw falls past the end through rounding
    for (uint64_t i = 0; i < n; ++i) keys_[i] = i;
    // Fisher-Yates with a fixed generator, written out: std::shuffle's steps are the
    // library's choice, and every process must agree on the ranks.
    std::mt19937_64 rng(n * 0x9E3779B97F4A7C15ull + 1);
    for (uint64_t i = n - 1; i > 0; --i) std::swap(keys_[i], keys_[rng() % (i + 1)]);
  }
  // The 0-based rank of one draw (0 is the hottest).
  template <class Urbg>
  uint64_t rank(Urbg& rng) const {
    const double u = std::uniform_real_distribution<double>(0, 1)(rng);
    return static_cast<uint64_t>(std::upper_bound(cdf_.begin(), cdf_.end(), u) - cdf_.begin());
  }
  // The key of one draw.
  template <class Urbg>
  uint64_t operator()(Urbg& rng) const {
    return keys_[std::min<uint64_t>(rank(rng), keys_.size() - 1)];
  }
  // The key at 0-based rank r.
  uint64_t key_of_rank(uint64_t r) const { return keys_.at(r); }
  // P(rank r), 0-based.
  double probability(uint64_t r) const { return cdf_.at(r) - (r ? cdf_[r - 1] : 0.0); }

 private:
  std::vector<double> cdf_;
  std::vector<uint64_t> keys_;
};

}  // namespace dynamodb_cache::cli
