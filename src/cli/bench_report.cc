// `dynamodb-cache bench`: what a process measured, carried to the parent in a file, merged,
// and printed (text, or one JSON object with --json), with --check's verdict.
#include <algorithm>
#include <cinttypes>
#include <cstdio>
#include <fstream>
#include <string_view>

#include "cli/bench.h"
#include "util/text.h"

namespace dynamodb_cache::cli::bench {

void ProcessResult::merge(const ProcessResult& r) {
  for (auto [mine, theirs] : {std::pair{&n.ops, r.n.ops},
                              {&n.misses, r.n.misses},
                              {&n.gets, r.n.gets},
                              {&n.errors, r.n.errors},
                              {&n.retries, r.n.retries},
                              {&n.hedged, r.n.hedged},
                              {&n.hedge_wins, r.n.hedge_wins},
                              {&n.connections, r.n.connections},
                              {&n.tls_handshakes, r.n.tls_handshakes},
                              {&n.tls_resumptions, r.n.tls_resumptions},
                              {&n.batched_socket_calls, r.n.batched_socket_calls},
                              {&n.batches, r.n.batches},
                              {&n.get_batches, r.n.get_batches},
                              {&n.batched_keys, r.n.batched_keys},
                              {&n.memory_hits, r.n.memory_hits},
                              {&n.memory_misses, r.n.memory_misses}})
    *mine += theirs;
  n.cpu += r.n.cpu;
  n.read_units += r.n.read_units;
  n.wall = std::max(n.wall, r.n.wall);
  n.peak_rss_mb = std::max(n.peak_rss_mb, r.n.peak_rss_mb);
  n.has_memory = r.n.has_memory;
  hist.merge(r.hist);
  for (auto& [k, c] : r.errors) errors[k] += c;
  if (first_error.empty()) first_error = r.first_error;
  endpoint = r.endpoint;
  mode = r.mode;
  bound_s = r.bound_s;
  records.insert(records.end(), r.records.begin(), r.records.end());
}

void ProcessResult::write(const std::string& path) const {
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  auto raw = [&](const void* p, size_t size) {
    f.write(static_cast<const char*>(p), static_cast<std::streamsize>(size));
  };
  auto str = [&](const std::string& s) {
    const uint64_t len = s.size();
    raw(&len, sizeof len);
    raw(s.data(), s.size());
  };
  raw(&n, sizeof n);
  raw(&hist, sizeof hist);
  const uint64_t kinds = errors.size();
  raw(&kinds, sizeof kinds);
  for (auto& [k, c] : errors) {
    str(k);
    raw(&c, sizeof c);
  }
  str(first_error), str(endpoint), str(mode);
  raw(&bound_s, sizeof bound_s);
  const uint64_t count = records.size();
  raw(&count, sizeof count);
  raw(records.data(), records.size() * sizeof(check::Op));
  f.flush();
  if (!f) throw ConfigError("bench: cannot write the process report " + path);
}

ProcessResult ProcessResult::read(const std::string& path) {
  ProcessResult r;
  std::ifstream f(path, std::ios::binary);
  auto raw = [&](void* p, size_t size) { f.read(static_cast<char*>(p), static_cast<std::streamsize>(size)); };
  auto str = [&](std::string& s) {
    uint64_t len = 0;
    raw(&len, sizeof len);
    if (!f || len > (1u << 20)) throw ConfigError("bench: a process report is damaged: " + path);
    s.resize(len);
    raw(s.data(), len);
  };
  raw(&r.n, sizeof r.n);
  raw(&r.hist, sizeof r.hist);
  uint64_t kinds = 0;
  raw(&kinds, sizeof kinds);
  for (uint64_t i = 0; f && i < kinds && i < 64; ++i) {
    std::string k;
    uint64_t c = 0;
    str(k);
    raw(&c, sizeof c);
    r.errors[k] = c;
  }
  str(r.first_error), str(r.endpoint), str(r.mode);
  raw(&r.bound_s, sizeof r.bound_s);
  uint64_t count = 0;
  raw(&count, sizeof count);
  if (!f || count > (uint64_t{1} << 32)) throw ConfigError("bench: a process report is damaged: " + path);
  r.records.resize(count);
  raw(r.records.data(), count * sizeof(check::Op));
  if (!f) throw ConfigError("bench: a process report is damaged: " + path);
  return r;
}

int print_report(const BenchOptions& o, const ProcessResult& r) {
  const auto& n = r.n;
  const auto& h = r.hist;
  const double us = 1e-3;
  const double ops_per_sec = n.wall > 0 ? static_cast<double>(n.ops) / n.wall : 0;
  const double cpu_us_per_op = n.ops ? n.cpu * 1e6 / static_cast<double>(n.ops) : 0;
  const double gets_per_sec = n.wall > 0 ? static_cast<double>(n.gets) / n.wall : 0;
  const double rcu_per_1000 = n.gets ? n.read_units * 1000 / static_cast<double>(n.gets) : 0;
  const double hit_ratio =
      n.memory_hits + n.memory_misses
          ? static_cast<double>(n.memory_hits) / static_cast<double>(n.memory_hits + n.memory_misses)
          : 0;
  const double bound_s = o.max_staleness >= 0 ? o.max_staleness : r.bound_s;
  check::Report report;
  if (o.check)
    report = check::check_history(r.records, check::kPrepared, static_cast<int64_t>(bound_s * 1e9));
  const int64_t origin =
      r.records.empty() ? 0 : std::min_element(r.records.begin(), r.records.end(), [](auto& a, auto& b) {
                                return a.start < b.start;
                              })->start;
  auto ms = [&](int64_t t) { return static_cast<double>(t - origin) / 1e6; };

  if (o.json) {
    std::printf(
        "{\"op\":\"%s\",\"mode\":\"%s\",\"processes\":%d,\"concurrency\":%d,\"value_size\":%zu,\"ops\":"
        "%" PRIu64 ",\"gets\":%" PRIu64
        ",\"seconds\":%.3f,"
        "\"ops_per_sec\":%.1f,\"gets_per_sec\":%.1f,\"read_units\":%.1f,\"rcu_per_1000_gets\":%.2f,",
        o.op.c_str(), r.mode.c_str(), o.processes, o.concurrency, o.value_size, n.ops, n.gets, n.wall,
        ops_per_sec, gets_per_sec, n.read_units, rcu_per_1000);
    if (n.has_memory) std::printf("\"near_hit_ratio\":%.4f,", hit_ratio);
    if (o.check)
      std::printf("\"max_staleness_s\":%.3f,\"checked_reads\":%" PRIu64 ",\"staleness_violations\":%" PRIu64
                  ",\"unwritten_reads\":%" PRIu64 ",",
                  bound_s, report.reads, report.stale, report.unwritten);
    std::printf(
        "\"p50_us\":%.1f,\"p90_us\":%.1f,\"p99_us\":%.1f,\"p999_us\":%.1f,"
        "\"max_us\":%.1f,\"errors\":%" PRIu64 ",\"errors_by_kind\":{",
        h.percentile(50) * us, h.percentile(90) * us, h.percentile(99) * us, h.percentile(99.9) * us,
        static_cast<double>(h.max()) * us, n.errors);
    bool first = true;
    for (auto& [k, c] : r.errors) {
      std::printf("%s\"%s\":%" PRIu64, first ? "" : ",", k.c_str(), c);
      first = false;
    }
    std::printf("},\"misses\":%" PRIu64 ",\"retries\":%" PRIu64
                ",\"cpu_us_per_op\":%.2f,\"peak_rss_mb\":%.2f,"
                "\"connections\":%" PRIu64 ",\"tls_handshakes\":%" PRIu64 ",\"tls_resumptions\":%" PRIu64
                ",\"batched_socket_calls\":%" PRIu64 ",\"batches\":%" PRIu64 ",\"get_batches\":%" PRIu64
                ",\"batched_keys\":%" PRIu64 ",\"hedged\":%" PRIu64 ",\"hedge_wins\":%" PRIu64 "}\n",
                n.misses, n.retries, cpu_us_per_op, n.peak_rss_mb, n.connections, n.tls_handshakes,
                n.tls_resumptions, n.batched_socket_calls, n.batches, n.get_batches, n.batched_keys, n.hedged,
                n.hedge_wins);
  } else {
    std::printf("op=%s mode=%s processes=%d concurrency=%d threads=%d value_size=%zu endpoint=%s\n",
                o.op.c_str(), r.mode.c_str(), o.processes, o.concurrency, o.threads, o.value_size,
                r.endpoint.c_str());
    std::printf("ops            %" PRIu64 " in %.2f s (%" PRIu64 " misses)\n", n.ops, n.wall, n.misses);
    std::printf("throughput     %.0f ops/s (%.0f gets/s)\n", ops_per_sec, gets_per_sec);
    std::printf("read units     %.1f (%.2f per 1,000 gets)\n", n.read_units, rcu_per_1000);
    if (n.has_memory) std::printf("memory hits    %.2f%% of gets\n", hit_ratio * 100);
    std::printf("latency (us)   p50 %.1f  p90 %.1f  p99 %.1f  p99.9 %.1f  max %.1f\n", h.percentile(50) * us,
                h.percentile(90) * us, h.percentile(99) * us, h.percentile(99.9) * us,
                static_cast<double>(h.max()) * us);
    std::printf("errors         %" PRIu64, n.errors);
    for (auto& [k, c] : r.errors) std::printf("  %s=%" PRIu64, k.c_str(), c);
    std::printf("\nretries        %" PRIu64 "\n", n.retries);
    if (o.hedge)
      std::printf("hedged         %" PRIu64 " second copies (%.2f%% of ops), %" PRIu64 " answered first\n",
                  n.hedged, n.ops ? 100.0 * static_cast<double>(n.hedged) / static_cast<double>(n.ops) : 0.0,
                  n.hedge_wins);
    std::printf("client cpu     %.1f us/op\n", cpu_us_per_op);
    std::printf("peak memory    %.1f MB\n", n.peak_rss_mb);
    std::printf("connections    %" PRIu64 " (TLS handshakes %" PRIu64 ", of which resumed %" PRIu64 ")\n",
                n.connections, n.tls_handshakes, n.tls_resumptions);
    if (o.threads > 0)
      std::printf("socket calls   %" PRIu64 " batched into %" PRIu64 " system calls (io_uring%s)\n",
                  n.batched_socket_calls, n.batches, n.batches ? "" : " not in use");
    if (n.get_batches)
      std::printf("get batches    %" PRIu64 " BatchGetItems carrying %" PRIu64 " keys\n", n.get_batches,
                  n.batched_keys);
    if (o.check)
      std::printf("check          %" PRIu64 " reads, %" PRIu64 " staler than %.3f s, %" PRIu64
                  " of unwritten values\n",
                  report.reads, report.stale, bound_s, report.unwritten);
    if (!r.first_error.empty())
      std::printf("first error    %s\n", util::printable(r.first_error, 2048).c_str());
  }
  // The first violations, on stderr: what the report's counts are made of.
  for (const auto& v : report.first)
    std::fprintf(
        stderr, "bench: %s read of %s in [%.3f, %.3f] ms answered %s%s\n", v.rule,
        key_name(v.read.key).c_str(), ms(v.read.start), ms(v.read.end), check::describe(v.read.value).c_str(),
        std::string_view(v.rule) == "unwritten"
            ? ""
            : (", replaced by " +
               (v.replaced_by == check::kAbsent ? std::string("an erase") : check::describe(v.replaced_by)) +
               " acknowledged at " + std::to_string(ms(v.replaced_at)) + " ms")
                  .c_str());
  if (report.stale || report.unwritten) return kService;
  return n.errors ? kService : kOk;
}

}  // namespace dynamodb_cache::cli::bench
