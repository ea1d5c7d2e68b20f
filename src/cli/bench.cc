// `dynamodb-cache bench`: a load generator for the cache's DynamoDB path (see bench/README.md).
//
// C worker threads each keep one request in flight through one shared DynamodbBackend
// (key check, item encoding, signing, HTTP, decoding, liveness): what an application pays per
// cache operation. Latencies go into per-thread log-linear histograms (fixed memory, <1%
// error), merged at the end.
#include <sys/resource.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <bit>
#include <cinttypes>
#include <cmath>
#include <cstdio>
#include <future>
#include <iostream>
#include <map>
#include <mutex>
#include <random>
#include <thread>

#include "cli/common.h"
#include "util/text.h"

namespace dynamodb_cache::cli {

namespace {

// Log-linear histogram of nanoseconds: exact below 128, then 64 buckets per power of two.
class Histogram {
 public:
  static constexpr int kBuckets = 128 + 57 * 64;
  void add(uint64_t ns) { ++counts_[index(ns)]; ++n_; if (ns > max_) max_ = ns; }
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

struct BenchOptions {
  std::string op = "get";
  double read_ratio = 0.9;
  uint64_t ops = 0;
  double duration = 0;
  int concurrency = 1;
  int threads = 0;  // > 0: asynchronous, on this many loop threads
  size_t value_size = 1000;
  uint64_t keys = 1000;
  uint64_t warmup = 200;
  bool prepare = false;
  bool json = false;
  int64_t ttl = 3600;
  std::string batch_gets;  // "on", "off"; empty: the library's default
  bool hedge = false;      // ClientOptions::hedge.enabled
  double hedge_percentile = 95;
};

double cpu_seconds() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return static_cast<double>(u.ru_utime.tv_sec + u.ru_stime.tv_sec) +
         static_cast<double>(u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1e6;
}

double peak_rss_mb() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return static_cast<double>(u.ru_maxrss) / 1024.0;  // ru_maxrss is in KiB on Linux
}

// "bench-00000042": at least 8 digits.
std::string key_name(uint64_t i) {
  std::string digits = std::to_string(i);
  std::string k = "bench-";
  if (digits.size() < 8) k.append(8 - digits.size(), '0');
  return k + digits;
}

// A JSON document of about `size` bytes, like the canned endpoint's: {"v":"<letters>"}.
std::string make_value(size_t size, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::string v = "{\"v\":\"";
  while (v.size() + 2 < size) v.push_back(static_cast<char>('a' + rng() % 26 + (rng() % 2 ? 'A' - 'a' : 0)));
  v += "\"}";
  return v;
}

struct Worker {
  Histogram hist;
  std::map<std::string, uint64_t> errors;  // by kind
  uint64_t done = 0;
  uint64_t misses = 0;
  std::string first_error;
};

// The asynchronous run: `concurrency` chains of operations, each completion (on a loop
// thread) recording its latency and issuing the chain's next operation. `timed` is called
// between the untimed warm-up and the timed operations; `done` is set when the last chain
// ends; returns then. Workers are per loop thread (assigned on first use).
template <class OnTimed>
void run_async(const BenchOptions& o, DynamodbBackend& backend, const std::string& value, Ttl ttl, uint64_t total_ops,
               std::vector<Worker>& workers, std::atomic<uint64_t>& next, std::atomic<uint64_t>& finished,
               OnTimed timed) {
  struct Chains {
    std::mutex mu;
    size_t assigned = 0;
    // One small generator per chain (8 bytes of state, not mt19937_64's 2.5 KB: 256 chains
    // would add 640 KB to the peak RSS measured, and its refills showed in the profile).
    std::vector<std::minstd_rand> rngs;
    std::atomic<int> active{0};
    std::atomic<uint64_t> warm_next{0};
    std::promise<void> warm, done;
    std::chrono::steady_clock::time_point deadline;
    bool timed = false;
  } c;
  c.rngs.reserve(static_cast<size_t>(o.concurrency));
  for (int i = 0; i < o.concurrency; ++i) c.rngs.emplace_back(static_cast<std::minstd_rand::result_type>(i) + 1);
  auto worker = [&]() -> Worker& {
    thread_local Worker* w = nullptr;
    thread_local const void* owner = nullptr;
    if (!w || owner != &c) {
      std::lock_guard lock(c.mu);
      w = &workers[std::min(c.assigned++, workers.size() - 1)];
      owner = &c;
    }
    return *w;
  };
  // When each chain's operation under way started.
  std::vector<std::chrono::steady_clock::time_point> started(static_cast<size_t>(o.concurrency));
  std::function<void(size_t, std::chrono::steady_clock::time_point)> step;
  // A completion: records it (when timed) and issues the chain's next operation. Callbacks
  // capture only &record and the chain: they fit std::function's inline buffer, so the
  // benchmark's own bookkeeping allocates nothing per operation.
  const std::function<void(size_t, std::exception_ptr, bool)> record = [&](size_t chain, std::exception_ptr error,
                                                                           bool miss) {
    // One clock read per operation: this end is also the next operation's start.
    const auto now = std::chrono::steady_clock::now();
    if (c.timed) {
      Worker& w = worker();
      if (error) {
        try {
          std::rethrow_exception(error);
        } catch (const Error& e) {
          if (w.errors[to_string(e.kind())]++ == 0 && w.first_error.empty()) w.first_error = e.what();
        } catch (...) {
          ++w.errors["other"];
        }
      }
      if (miss) ++w.misses;
      w.hist.add(static_cast<uint64_t>((now - started[chain]).count()));
      ++w.done;
      finished.fetch_add(1, std::memory_order_relaxed);
    }
    step(chain, now);
  };
  step = [&](size_t chain, std::chrono::steady_clock::time_point now) {
    auto& rng = c.rngs[chain];
    if (!c.timed) {
      if (c.warm_next.fetch_add(1) >= o.warmup) {
        if (c.active.fetch_sub(1) == 1) c.warm.set_value();
        return;
      }
    } else if (total_ops ? next.fetch_add(1, std::memory_order_relaxed) >= total_ops
                         : now >= c.deadline) {
      if (c.active.fetch_sub(1) == 1) c.done.set_value();
      return;
    }
    const bool read = o.op == "get" || (o.op == "mixed" && std::uniform_real_distribution<double>(0, 1)(rng) < o.read_ratio);
    std::string key = key_name(rng() % o.keys);
    started[chain] = now;
    const auto* rec = &record;
    if (read)
      backend.get_entry_async(std::move(key), [rec, chain](dynamodb::Outcome<std::optional<Hit>> r) {
        (*rec)(chain, r.error(), r.ok() && !r.value());
      });
    else
      backend.set_async(std::move(key), value, ttl,
                        [rec, chain](dynamodb::Outcome<void> r) { (*rec)(chain, r.error(), false); });
  };
  // Warm-up (untimed): connections, credentials, the allocator.
  c.active = o.concurrency;
  for (int i = 0; i < o.concurrency; ++i) step(static_cast<size_t>(i), std::chrono::steady_clock::now());
  c.warm.get_future().wait();
  timed();
  c.deadline = std::chrono::steady_clock::now() +
               std::chrono::duration_cast<std::chrono::steady_clock::duration>(
                   std::chrono::duration<double>(o.duration > 0 ? o.duration : 1e9));
  c.timed = true;
  c.active = o.concurrency;
  for (int i = 0; i < o.concurrency; ++i) step(static_cast<size_t>(i), std::chrono::steady_clock::now());
  c.done.get_future().wait();  // the chains run on the loops; `c` must live until the last ends
}

int run_bench(const GlobalOptions& g, const BenchOptions& o) {
  if (o.op != "get" && o.op != "set" && o.op != "mixed") throw InvalidArgumentError("--op must be get, set or mixed");
  if (o.concurrency < 1) throw InvalidArgumentError("--concurrency must be at least 1");
  if (o.keys < 1) throw InvalidArgumentError("--keys must be at least 1");
  const uint64_t total_ops = o.ops ? o.ops : (o.duration > 0 ? 0 : 10000);

  http::HttpOptions http_options;
  http_options.max_idle_connections = static_cast<size_t>(o.concurrency) + 4;  // one per worker
  aws::ProfileOptions profile;
  profile.profile = g.profile;
  http_options = aws::resolve_http_options(profile, http_options);  // AWS_CA_BUNDLE, ca_bundle
  auto transport = http::make_default_transport(http_options);
  GlobalOptions ga = g;
  if (o.threads > 0) {  // the client's own engines (a transport given to it would be called blocking)
    ga.io_threads = o.threads;
    ga.max_in_flight = static_cast<size_t>(o.concurrency);
  }
  if (!o.batch_gets.empty()) ga.batch_gets = o.batch_gets == "on";
  ga.hedge.enabled = o.hedge;
  ga.hedge.percentile = o.hedge_percentile;
  auto client = make_client(ga, o.threads > 0 ? nullptr : transport);
  DynamodbBackend backend(client, backend_options(g));
  const std::string value = make_value(o.value_size, 42);
  const auto ttl = std::chrono::seconds(o.ttl);

  if (o.prepare) {
    std::vector<std::pair<std::string, std::string>> entries;
    for (uint64_t i = 0; i < o.keys; ++i) {
      entries.emplace_back(key_name(i), value);
      if (entries.size() == 500 || i + 1 == o.keys) {
        backend.set_many(entries, ttl);
        entries.clear();
      }
    }
    // The keys stay after the run: say which, for how long, and how to remove them.
    std::string ns = g.key_namespace.empty() ? std::string() : " --namespace " + g.key_namespace;
    std::cerr << "bench: --prepare wrote keys " << key_name(0) << " to " << key_name(o.keys - 1)
              << " in table '" << g.table << "'"
              << (ns.empty() ? "" : " (namespace '" + g.key_namespace + "')")
              << (o.ttl > 0 ? "; they stay until their TTL (" + std::to_string(o.ttl) + " s) ends"
                            : std::string("; they never expire"))
              << (ns.empty() ? ", or run `dynamodb-cache --table " + g.table +
                                   " clear --yes` (which deletes every item in the table)"
                             : ", or run `dynamodb-cache --table " + g.table + ns + " clear --yes`")
              << "\n";
  }

  // One operation; returns false on a miss.
  auto one = [&](bool read, uint64_t k) -> bool {
    std::string key = key_name(k);
    if (read) return backend.get_entry(key).has_value();
    backend.set(key, value, ttl);
    return true;
  };
  auto is_read = [&](std::mt19937_64& rng) {
    if (o.op == "get") return true;
    if (o.op == "set") return false;
    return std::uniform_real_distribution<double>(0, 1)(rng) < o.read_ratio;
  };

  std::vector<Worker> workers(static_cast<size_t>(o.threads > 0 ? o.threads + 1 : o.concurrency));
  std::atomic<uint64_t> next{0}, finished{0};
  std::atomic<bool> stop{false};
  uint64_t retries0 = 0, hedged0 = 0, wins0 = 0;
  auto mark = [&] {
    retries0 = client->stats().retries.load();
    hedged0 = client->stats().hedged.load();
    wins0 = client->stats().hedge_wins.load();
  };
  double cpu0 = 0;
  auto t0 = std::chrono::steady_clock::now();
  std::vector<std::thread> threads;
  if (o.threads > 0) {
    run_async(o, backend, value, ttl, total_ops, workers, next, finished, [&] {
      mark();
      cpu0 = cpu_seconds();
      t0 = std::chrono::steady_clock::now();
    });
  } else {
    // Warm-up: connections, the credential cache, the allocator. Untimed.
    {
      std::vector<std::thread> ts;
      std::atomic<uint64_t> next{0};
      for (int t = 0; t < o.concurrency; ++t)
        ts.emplace_back([&, t] {
          std::mt19937_64 rng(1000 + static_cast<uint64_t>(t));
          for (uint64_t i; (i = next++) < o.warmup;) {
            try { one(is_read(rng), rng() % o.keys); } catch (const Error&) {}
          }
        });
      for (auto& t : ts) t.join();
    }

    mark();
    cpu0 = cpu_seconds();
    t0 = std::chrono::steady_clock::now();
    const auto deadline = t0 + std::chrono::duration_cast<std::chrono::steady_clock::duration>(
                                    std::chrono::duration<double>(o.duration > 0 ? o.duration : 1e9));
    for (int t = 0; t < o.concurrency; ++t)
      threads.emplace_back([&, t] {
        Worker& w = workers[static_cast<size_t>(t)];
        std::mt19937_64 rng(static_cast<uint64_t>(t) + 1);
        for (;;) {
          if (total_ops ? next.fetch_add(1, std::memory_order_relaxed) >= total_ops
                        : std::chrono::steady_clock::now() >= deadline || stop.load(std::memory_order_relaxed))
            break;
          bool read = is_read(rng);
          uint64_t k = rng() % o.keys;
          auto s = std::chrono::steady_clock::now();
          try {
            if (!one(read, k)) ++w.misses;
          } catch (const Error& e) {
            if (w.errors[to_string(e.kind())]++ == 0 && w.first_error.empty()) w.first_error = e.what();
          }
          w.hist.add(static_cast<uint64_t>((std::chrono::steady_clock::now() - s).count()));
          ++w.done;
          finished.fetch_add(1, std::memory_order_relaxed);
        }
      });
  }
  // A live progress line on a terminal.
  std::thread progress;
  std::atomic<bool> progress_stop{false};
  if (isatty(STDERR_FILENO) && !o.json) {
    progress = std::thread([&] {
      while (!progress_stop.load()) {
        std::this_thread::sleep_for(std::chrono::milliseconds(200));
        double el = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        uint64_t d = finished.load();
        double frac = total_ops ? static_cast<double>(d) / static_cast<double>(total_ops) : el / o.duration;
        frac = std::min(1.0, frac);
        int bar = static_cast<int>(frac * 30);
        std::fprintf(stderr, "\r[%-30s] %3.0f%% %10" PRIu64 " ops %10.0f ops/s", std::string(static_cast<size_t>(bar), '#').c_str(),
                     frac * 100, d, el > 0 ? static_cast<double>(d) / el : 0.0);
        std::fflush(stderr);
      }
      std::fprintf(stderr, "\r%72s\r", "");
    });
  }
  for (auto& t : threads) t.join();
  const double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  const double cpu = cpu_seconds() - cpu0;
  progress_stop = true;
  if (progress.joinable()) progress.join();

  Histogram h;
  std::map<std::string, uint64_t> errors;
  uint64_t ops = 0, misses = 0, error_total = 0;
  std::string first_error;
  for (auto& w : workers) {
    h.merge(w.hist);
    ops += w.done;
    misses += w.misses;
    for (auto& [k, n] : w.errors) { errors[k] += n; error_total += n; }
    if (first_error.empty()) first_error = w.first_error;
  }
  const uint64_t retries = client->stats().retries.load() - retries0;
  // Second copies of gets sent (ClientOptions::hedge), and gets they answered.
  const uint64_t hedged = client->stats().hedged.load() - hedged0;
  const uint64_t hedge_wins = client->stats().hedge_wins.load() - wins0;
  const double us = 1e-3;
  const double ops_per_sec = wall > 0 ? static_cast<double>(ops) / wall : 0;
  const double cpu_us_per_op = ops ? cpu * 1e6 / static_cast<double>(ops) : 0;

  if (o.json) {
    std::printf("{\"op\":\"%s\",\"concurrency\":%d,\"value_size\":%zu,\"ops\":%" PRIu64 ",\"seconds\":%.3f,"
                "\"ops_per_sec\":%.1f,\"p50_us\":%.1f,\"p90_us\":%.1f,\"p99_us\":%.1f,\"p999_us\":%.1f,"
                "\"max_us\":%.1f,\"errors\":%" PRIu64 ",\"errors_by_kind\":{",
                o.op.c_str(), o.concurrency, o.value_size, ops, wall, ops_per_sec, h.percentile(50) * us,
                h.percentile(90) * us, h.percentile(99) * us, h.percentile(99.9) * us, static_cast<double>(h.max()) * us,
                error_total);
    bool first = true;
    for (auto& [k, n] : errors) {
      std::printf("%s\"%s\":%" PRIu64, first ? "" : ",", k.c_str(), n);
      first = false;
    }
    const http::TransportStats ts = o.threads > 0 ? client->io_stats() : transport->stats();
    std::printf("},\"misses\":%" PRIu64 ",\"retries\":%" PRIu64
                ",\"cpu_us_per_op\":%.2f,\"peak_rss_mb\":%.2f,"
                "\"connections\":%" PRIu64 ",\"tls_handshakes\":%" PRIu64 ",\"tls_resumptions\":%" PRIu64
                ",\"batched_socket_calls\":%" PRIu64 ",\"batches\":%" PRIu64 ",\"get_batches\":%" PRIu64
                ",\"batched_keys\":%" PRIu64 ",\"hedged\":%" PRIu64 ",\"hedge_wins\":%" PRIu64 "}\n",
                misses, retries, cpu_us_per_op, peak_rss_mb(), ts.connections, ts.tls_handshakes,
                ts.tls_resumptions, ts.batched_socket_calls, ts.batches, client->stats().batches.load(),
                client->stats().batched_keys.load(), hedged, hedge_wins);
  } else {
    std::printf("op=%s concurrency=%d threads=%d value_size=%zu endpoint=%s\n", o.op.c_str(), o.concurrency,
                o.threads, o.value_size, client->endpoint().c_str());
    std::printf("ops            %" PRIu64 " in %.2f s (%" PRIu64 " misses)\n", ops, wall, misses);
    std::printf("throughput     %.0f ops/s\n", ops_per_sec);
    std::printf("latency (us)   p50 %.1f  p90 %.1f  p99 %.1f  p99.9 %.1f  max %.1f\n", h.percentile(50) * us,
                h.percentile(90) * us, h.percentile(99) * us, h.percentile(99.9) * us, static_cast<double>(h.max()) * us);
    std::printf("errors         %" PRIu64, error_total);
    for (auto& [k, n] : errors) std::printf("  %s=%" PRIu64, k.c_str(), n);
    std::printf("\nretries        %" PRIu64 "\n", retries);
    if (o.hedge)
      std::printf("hedged         %" PRIu64 " second copies (%.2f%% of ops), %" PRIu64 " answered first\n",
                  hedged, ops ? 100.0 * static_cast<double>(hedged) / static_cast<double>(ops) : 0.0,
                  hedge_wins);
    std::printf("client cpu     %.1f us/op\n", cpu_us_per_op);
    std::printf("peak memory    %.1f MB\n", peak_rss_mb());
    const http::TransportStats ts = o.threads > 0 ? client->io_stats() : transport->stats();
    std::printf("connections    %" PRIu64 " (TLS handshakes %" PRIu64 ", of which resumed %" PRIu64 ")\n",
                ts.connections, ts.tls_handshakes, ts.tls_resumptions);
    if (o.threads > 0)
      std::printf("socket calls   %" PRIu64 " batched into %" PRIu64 " system calls (io_uring%s)\n",
                  ts.batched_socket_calls, ts.batches, ts.batches ? "" : " not in use");
    if (const uint64_t n = client->stats().batches.load())
      std::printf("get batches    %" PRIu64 " BatchGetItems carrying %" PRIu64 " keys\n", n,
                  client->stats().batched_keys.load());
    if (!first_error.empty()) std::printf("first error    %s\n", util::printable(first_error, 2048).c_str());
  }
  return error_total ? kService : kOk;
}

}  // namespace

void add_bench_command(CLI::App& app, GlobalOptions& g, std::function<int()>& run) {
  static BenchOptions o;
  auto* b = app.add_subcommand("bench", "Load generator: ops/s, latency percentiles, client CPU and memory");
  b->add_option("--op", o.op, "get, set or mixed")->check(CLI::IsMember({"get", "set", "mixed"}))->capture_default_str();
  b->add_option("--read-ratio", o.read_ratio, "Share of gets in --op mixed")
      ->transform(decimal_number(0, 1))
      ->capture_default_str();
  auto* ops = b->add_option("--ops", o.ops, "Operations to time (default 10000)")
                  ->transform(whole_number(1, INT64_MAX));
  b->add_option("--duration", o.duration, "Seconds to run instead of --ops")
      ->transform(decimal_number(0.001, 1e6))
      ->excludes(ops);
  b->add_option("--concurrency", o.concurrency, "Requests in flight")
      ->transform(whole_number(1, 1024))
      ->capture_default_str();
  b->add_option("--threads", o.threads,
                "Asynchronous: the requests in flight spread over this many event-loop threads "
                "(default: one blocking thread per request)")
      ->transform(whole_number(1, 64));
  b->add_option("--batch-gets", o.batch_gets,
                "Asynchronous: merge the gets queued on a loop into BatchGetItems "
                "(dynamodb::ClientOptions::batch_gets; default: the library's)")
      ->check(CLI::IsMember({"on", "off"}));
  b->add_flag("--hedge", o.hedge,
              "Asynchronous gets: send a late GetItem once more, the first answer wins "
              "(dynamodb::ClientOptions::hedge; at most 5% more gets)");
  b->add_option("--hedge-percentile", o.hedge_percentile,
                "With --hedge: a get is late past this percentile of recent get latencies")
      ->transform(decimal_number(1, 100))
      ->capture_default_str();
  b->add_option("--value-size", o.value_size, "Bytes per value for set")
      ->transform(whole_number(2, 400 * 1024))
      ->capture_default_str();
  b->add_option("--keys", o.keys, "Size of the key space")
      ->transform(whole_number(1, INT64_MAX))
      ->capture_default_str();
  b->add_option("--warmup", o.warmup, "Untimed operations first")
      ->transform(whole_number(0, INT64_MAX))
      ->capture_default_str();
  add_ttl_option(b, o.ttl, "TTL of written values, seconds");
  b->add_flag("--prepare", o.prepare,
              "Write the whole key space (keys bench-00000000...) first, so gets hit; the keys stay in the "
              "table until --ttl ends");
  b->add_flag("--json", o.json, "One JSON object on stdout instead of the report");
  b->callback([&] { run = [&] { return run_bench(g, o); }; });
}

}  // namespace dynamodb_cache::cli
