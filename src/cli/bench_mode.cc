// `dynamodb-cache bench`: the backend each mode runs against (dynamodb, --layered,
// --near-cache) and what it adds to the report.
#include <algorithm>
#include <chrono>
#include <memory>
#include <vector>

#include "cli/bench.h"

namespace dynamodb_cache::cli::bench {

Mode make_mode(const GlobalOptions& g, const BenchOptions& o,
               const std::shared_ptr<dynamodb::Client>& client) {
  DynamodbOptions dopts = backend_options(g);
  if (o.near_cache) {
    // Every process of the run writes through a near cache, so every write publishes. The
    // feed's reads count in the table's stats (GlobalOptions::stats), with the gets' own.
    dopts.publish_invalidations = true;
    NearCacheOptions no;
    const double bound = o.max_staleness >= 0 ? o.max_staleness : 1.0;
    no.max_staleness = std::chrono::milliseconds(static_cast<int64_t>(bound * 1000));
    no.max_entries = static_cast<size_t>(o.keys + o.keys / 4 + 1024);
    auto near = std::make_shared<CoherentNearCache>(std::make_shared<DynamodbBackend>(client, dopts), no);
    return Mode{"near-cache", near,
                [near] {
                  const NearCacheStats s = near->near_stats();
                  return Mode::Stats{s.memory_hits, s.memory_misses, 0};
                },
                bound};
  }
  auto dynamodb = std::make_shared<DynamodbBackend>(client, dopts);
  // Eventually consistent reads see a write within about a second (DESIGN.md).
  const double read_bound = g.consistent_read ? 0.0 : 1.0;
  if (!o.layered) return Mode{"dynamodb", dynamodb, nullptr, read_bound};
  MemoryOptions mo;
  // The whole key space fits, so misses are not evictions: each of the LRU's shards holds an
  // equal share of max_entries and keys do not spread evenly over them, hence 25% more.
  mo.max_entries = static_cast<size_t>(o.keys + o.keys / 4 + 1024);
  mo.max_bytes = mo.max_entries * (o.value_size + 64) + (1u << 20);
  auto memory = std::make_shared<MemoryBackend>(mo);
  LayeredOptions lo;
  lo.upper_max_age = std::chrono::milliseconds(static_cast<int64_t>(o.memory_max_age * 1000));
  auto layered =
      std::make_shared<LayeredBackend>(std::vector<std::shared_ptr<Backend>>{memory, dynamodb}, lo);
  // A memory copy is served until it ages out, whatever other processes wrote since.
  const double ttl = o.ttl > 0 ? static_cast<double>(o.ttl) : 1e9;  // 0: never expires
  const double copy_life = o.memory_max_age > 0 ? std::min(o.memory_max_age, ttl) : ttl;
  return Mode{"layered", layered,
              [memory] {
                const CacheStats& s = memory->stats();
                return Mode::Stats{s.hits.load(), s.misses.load(), 0};
              },
              copy_life + read_bound};
}

}  // namespace dynamodb_cache::cli::bench
