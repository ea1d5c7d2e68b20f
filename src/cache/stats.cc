#include "dynamodb_cache/stats.h"

#include <bit>
#include <cmath>
#include <cstdio>

#include "util/json_writer.h"

namespace dynamodb_cache {

const char* to_string(Op op) noexcept {
  static constexpr const char* kNames[kOpCount] = {"get",      "get_many",   "contains", "set",
                                                   "set_many", "add",        "touch",    "increment",
                                                   "erase",    "erase_many", "clear"};
  auto i = static_cast<std::size_t>(op);
  return i < kOpCount ? kNames[i] : "unknown";
}

namespace {
// Bucket of a duration in microseconds: 0 for < 1 us, then four per power of two.
int bucket_of(uint64_t us) {
  if (us == 0) return 0;
  int octave = std::bit_width(us) - 1;  // 2^octave <= us < 2^(octave+1)
  int sub =
      octave >= 2 ? static_cast<int>((us >> (octave - 2)) & 3) : static_cast<int>((us << (2 - octave)) & 3);
  int b = 1 + octave * 4 + sub;
  return std::min(b, LatencyHistogram::kBuckets - 1);
}
// The upper bound of bucket b in microseconds.
double bucket_upper_us(int b) {
  if (b == 0) return 1;
  int octave = (b - 1) / 4, sub = (b - 1) % 4;
  return std::ldexp(1.0 + (sub + 1) / 4.0, octave);
}
}  // namespace

void LatencyHistogram::record(std::chrono::nanoseconds d) noexcept {
  uint64_t us = d.count() <= 0 ? 0 : static_cast<uint64_t>(d.count() / 1000);
  buckets_[static_cast<size_t>(bucket_of(us))].fetch_add(1, std::memory_order_relaxed);
}

uint64_t LatencyHistogram::count() const noexcept {
  uint64_t n = 0;
  for (const auto& b : buckets_) n += b.load(std::memory_order_relaxed);
  return n;
}

double LatencyHistogram::percentile_us(double p) const noexcept {
  std::array<uint64_t, kBuckets> snap;
  uint64_t total = 0;
  for (int i = 0; i < kBuckets; ++i)
    total += snap[static_cast<size_t>(i)] = buckets_[static_cast<size_t>(i)].load(std::memory_order_relaxed);
  if (total == 0) return 0;
  auto rank = static_cast<uint64_t>(std::ceil(p / 100.0 * static_cast<double>(total)));
  if (rank == 0) rank = 1;
  uint64_t seen = 0;
  for (int i = 0; i < kBuckets; ++i) {
    seen += snap[static_cast<size_t>(i)];
    if (seen >= rank) return bucket_upper_us(i);
  }
  return bucket_upper_us(kBuckets - 1);
}

void CacheStats::count_error(ErrorKind kind) noexcept {
  auto i = static_cast<std::size_t>(kind);
  if (i < errors.size()) errors[i].fetch_add(1, std::memory_order_relaxed);
  if (kind == ErrorKind::kThrottling) throttles.fetch_add(1, std::memory_order_relaxed);
}

std::string CacheStats::to_json(const uint64_t* client_retries) const {
  std::string out;
  util::JsonWriter w(out);
  auto num = [&](const char* k, uint64_t v) {
    w.key(k);
    w.integer(static_cast<long long>(v));
  };
  auto real = [&](const char* k, double v) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.1f", v);
    w.key(k);
    w.raw(buf);
  };
  w.begin_object();
  num("hits", hits.load());
  num("misses", misses.load());
  num("sets", sets.load());
  num("erases", erases.load());
  num("loads", loads.load());
  num("load_time_us", load_time_us.load());
  num("lease_waits", lease_waits.load());
  num("stale_served", stale_served.load());
  num("refresh_failures", refresh_failures.load());
  num("fail_open", fail_open.load());
  num("throttles", throttles.load());
  num("decode_errors", decode_errors.load());
  if (client_retries) num("retries", *client_retries);
  num("bytes_read", bytes_read.load());
  num("bytes_written", bytes_written.load());
  real("read_capacity_units", read_capacity_units.load());
  real("write_capacity_units", write_capacity_units.load());
  w.key("errors");
  w.begin_object();
  for (std::size_t i = 0; i < errors.size(); ++i)
    if (uint64_t n = errors[i].load()) num(to_string(static_cast<ErrorKind>(i)), n);
  w.end_object();
  w.key("latency_us");
  w.begin_object();
  for (std::size_t i = 0; i < kOpCount; ++i) {
    const auto& h = latency[i];
    uint64_t n = h.count();
    if (!n) continue;
    w.key(to_string(static_cast<Op>(i)));
    w.begin_object();
    num("count", n);
    real("p50", h.percentile_us(50));
    real("p90", h.percentile_us(90));
    real("p99", h.percentile_us(99));
    real("max", h.percentile_us(100));
    w.end_object();
  }
  w.end_object();
  w.end_object();
  return out;
}

}  // namespace dynamodb_cache
