// `dynamodb-cache bench`: a load generator for the cache's DynamoDB path (see bench/README.md).
// This file: one process's workload.
//
// C worker threads each keep one request in flight through one shared DynamodbBackend
// (key check, item encoding, signing, HTTP, decoding, liveness): what an application pays per
// cache operation. Latencies go into per-thread log-linear histograms (fixed memory, <1%
// error), merged at the end. --check records every operation, for bench_report.cc to check
// every read against the acknowledged writes (bench_check.h).
#include "cli/bench.h"

#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cinttypes>
#include <cstdio>
#include <future>
#include <iostream>
#include <map>
#include <mutex>
#include <random>
#include <thread>

#include "cli/zipf.h"

namespace dynamodb_cache::cli::bench {

std::string key_name(uint64_t i) {
  std::string digits = std::to_string(i);
  std::string k = "bench-";
  if (digits.size() < 8) k.append(8 - digits.size(), '0');
  return k + digits;
}

namespace {

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
  uint64_t gets = 0;
  std::string first_error;
  std::vector<check::Op> records;  // --check: every timed operation
};

int64_t monotonic_ns(std::chrono::steady_clock::time_point t) {
  // steady_clock is CLOCK_MONOTONIC on Linux: one clock for every process of the machine.
  return std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch()).count();
}

// What the processes run: the choice of each operation (kind, key, value written).
// Thread-safe (the sequence of written values is atomic; each caller has its own rng).
class Workload {
 public:
  struct Next {
    check::Kind kind = check::Kind::kGet;
    uint64_t key = 0;
    uint64_t id = check::kAbsent;  // --check: the value id a set writes
    std::string value;             // --check: the value a set writes (else the shared one)
  };
  Workload(const BenchOptions& o, std::string run, uint64_t process)
      : o_(o),
        run_(std::move(run)),
        process_(process),
        erase_ratio_(o.erase_ratio >= 0 ? o.erase_ratio : (o.check ? 0.2 : 0.0)),
        zipf_(o.zipf > 0 ? std::make_unique<ZipfKeys>(o.keys, o.zipf) : nullptr) {}
  // `warm_up`: an untimed operation. Under --check those only read: the checker must know
  // every value written.
  template <class Rng>
  Next next(Rng& rng, bool warm_up = false) const {
    Next n;
    const bool read = o_.op == "get" || (warm_up && o_.check) ||
                      (o_.op == "mixed" && std::uniform_real_distribution<double>(0, 1)(rng) < o_.read_ratio);
    if (!read)
      n.kind = erase_ratio_ > 0 && std::uniform_real_distribution<double>(0, 1)(rng) < erase_ratio_
                   ? check::Kind::kErase
                   : check::Kind::kSet;
    n.key = zipf_ && (read || o_.zipf_sets) ? (*zipf_)(rng) : rng() % o_.keys;
    if (o_.check && n.kind == check::Kind::kSet) {
      n.id = check::value_id(process_, seq_.fetch_add(1, std::memory_order_relaxed) + 1);
      n.value = check::encode_value(run_, n.id, o_.value_size);
    }
    return n;
  }
  const std::string& run() const { return run_; }
  uint64_t process() const { return process_; }

 private:
  const BenchOptions& o_;
  const std::string run_;
  const uint64_t process_;
  const double erase_ratio_;
  const std::unique_ptr<ZipfKeys> zipf_;
  mutable std::atomic<uint64_t> seq_{0};
};

// Accounts one finished timed operation in `w`: latency, errors, misses, and its record
// under --check. `hit`: a get's answer (null when it failed or for writes).
void account(Worker& w, const BenchOptions& o, const Workload& wl, const Workload::Next& n, int64_t start,
             int64_t end, std::exception_ptr error, const std::optional<Hit>* hit) {
  if (error) {
    try {
      std::rethrow_exception(error);
    } catch (const Error& e) {
      if (w.errors[to_string(e.kind())]++ == 0 && w.first_error.empty()) w.first_error = e.what();
    } catch (...) {
      ++w.errors["other"];
    }
  }
  if (n.kind == check::Kind::kGet) {
    ++w.gets;
    if (hit && !*hit) ++w.misses;
  }
  w.hist.add(static_cast<uint64_t>(end - start));
  ++w.done;
  if (o.check) {
    uint64_t value = n.kind == check::Kind::kSet ? n.id : check::kAbsent;
    if (n.kind == check::Kind::kGet && hit && *hit) value = check::decode_value(wl.run(), (*hit)->value);
    w.records.push_back(check::Op{n.key, n.kind, !error, start, end, value});
  }
}

// The asynchronous run: `concurrency` chains of operations, each completion (on a loop
// thread, or inline when the backend answers from memory) recording its latency and issuing
// the chain's next operation. `timed` is called between the untimed warm-up and the timed
// operations; `done` is set when the last chain ends; returns then. Workers are per loop
// thread (assigned on first use).
template <class OnTimed>
void run_async(const BenchOptions& o, const Workload& wl, Backend& backend, const std::string& value, Ttl ttl,
               uint64_t total_ops, std::vector<Worker>& workers, std::atomic<uint64_t>& next,
               std::atomic<uint64_t>& finished, OnTimed timed) {
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
  for (int i = 0; i < o.concurrency; ++i)
    c.rngs.emplace_back(static_cast<std::minstd_rand::result_type>(
        static_cast<uint64_t>(i) + 1 + wl.process() * 1000003));  // processes differ
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
  const size_t chains = static_cast<size_t>(o.concurrency);
  // Per chain: when its operation under way started, what it is, and whether its issuer is
  // still inside the backend call (kIssuing), so that a completion made inline (a memory
  // hit) hands the next step back to the issuer's loop instead of recursing (kInline).
  enum : int { kIdle, kIssuing, kInline };
  std::vector<std::chrono::steady_clock::time_point> started(chains), resume(chains);
  std::vector<Workload::Next> current(chains);
  std::vector<std::atomic<int>> state(chains);
  std::function<void(size_t, std::chrono::steady_clock::time_point)> step;
  // A completion: records it (when timed) and issues the chain's next operation. Callbacks
  // capture only &record and the chain: they fit std::function's inline buffer, so the
  // benchmark's own bookkeeping allocates nothing per operation (without --check).
  const std::function<void(size_t, std::exception_ptr, const std::optional<Hit>*)> record =
      [&](size_t chain, std::exception_ptr error, const std::optional<Hit>* hit) {
        // One clock read per operation: this end is also the next operation's start.
        const auto now = std::chrono::steady_clock::now();
        if (c.timed) {
          account(worker(), o, wl, current[chain], monotonic_ns(started[chain]), monotonic_ns(now), error,
                  hit);
          finished.fetch_add(1, std::memory_order_relaxed);
        }
        int issuing = kIssuing;
        resume[chain] = now;
        if (state[chain].compare_exchange_strong(issuing, kInline)) return;  // the issuer goes on
        step(chain, now);
      };
  step = [&](size_t chain, std::chrono::steady_clock::time_point now) {
    for (;;) {
      auto& rng = c.rngs[chain];
      if (!c.timed) {
        if (c.warm_next.fetch_add(1) >= o.warmup) {
          if (c.active.fetch_sub(1) == 1) c.warm.set_value();
          return;
        }
      } else if (total_ops ? next.fetch_add(1, std::memory_order_relaxed) >= total_ops : now >= c.deadline) {
        if (c.active.fetch_sub(1) == 1) c.done.set_value();
        return;
      }
      Workload::Next& n = current[chain];
      n = wl.next(rng, !c.timed);
      std::string key = key_name(n.key);
      started[chain] = now;
      const auto* rec = &record;
      state[chain].store(kIssuing);
      if (n.kind == check::Kind::kGet)
        backend.get_entry_async(std::move(key), [rec, chain](dynamodb::Outcome<std::optional<Hit>> r) {
          (*rec)(chain, r.error(), r.ok() ? &r.value() : nullptr);
        });
      else if (n.kind == check::Kind::kSet)
        backend.set_async(std::move(key), n.value.empty() ? value : n.value, ttl,
                          [rec, chain](dynamodb::Outcome<void> r) { (*rec)(chain, r.error(), nullptr); });
      else
        backend.erase_async(std::move(key),
                            [rec, chain](dynamodb::Outcome<void> r) { (*rec)(chain, r.error(), nullptr); });
      if (state[chain].exchange(kIdle) != kInline) return;  // the completion issues the next step
      now = resume[chain];
    }
  };
  // Warm-up (untimed): connections, credentials, the allocator.
  c.active = o.concurrency;
  for (size_t i = 0; i < chains; ++i) step(i, std::chrono::steady_clock::now());
  c.warm.get_future().wait();
  timed();
  c.deadline = std::chrono::steady_clock::now() +
               std::chrono::duration_cast<std::chrono::steady_clock::duration>(
                   std::chrono::duration<double>(o.duration > 0 ? o.duration : 1e9));
  c.timed = true;
  c.active = o.concurrency;
  for (size_t i = 0; i < chains; ++i) step(i, std::chrono::steady_clock::now());
  c.done.get_future().wait();  // the chains run on the loops; `c` must live until the last ends
}

// The value every key is prepared with.
std::string prepared_value(const BenchOptions& o, const std::string& run) {
  return o.check ? check::encode_value(run, check::kPrepared, o.value_size) : make_value(o.value_size, 42);
}

// Reads every key once (--zipf: untimed, so that memory layers start warm), in batches
// spread over --concurrency threads.
void read_every_key(const BenchOptions& o, Backend& backend) {
  std::atomic<uint64_t> next{0};
  std::vector<std::thread> ts;
  for (int t = 0; t < o.concurrency; ++t)
    ts.emplace_back([&] {
      for (uint64_t first; (first = next.fetch_add(100)) < o.keys;) {
        std::vector<std::string> keys;
        for (uint64_t k = first; k < std::min(o.keys, first + 100); ++k) keys.push_back(key_name(k));
        try {
          backend.get_many(keys);
        } catch (const Error&) {  // a warm-up read lost is a colder start, not a failed run
        }
      }
    });
  for (auto& t : ts) t.join();
}

}  // namespace

void prepare_keys(const GlobalOptions& g, const BenchOptions& o, Backend& backend, const std::string& run) {
  const std::string value = prepared_value(o, run);
  const auto ttl = std::chrono::seconds(o.ttl);
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
            << " in table '" << g.table << "'" << (ns.empty() ? "" : " (namespace '" + g.key_namespace + "')")
            << (o.ttl > 0 ? "; they stay until their TTL (" + std::to_string(o.ttl) + " s) ends"
                          : std::string("; they never expire"))
            << (ns.empty() ? ", or run `dynamodb-cache --table " + g.table +
                                 " clear --yes` (which deletes every item in the table)"
                           : ", or run `dynamodb-cache --table " + g.table + ns + " clear --yes`")
            << "\n";
}

ProcessResult run_process(const GlobalOptions& g, const BenchOptions& o, uint64_t process,
                          const std::string& run, bool prepare, const std::function<void()>& ready) {
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
  ga.hedge.floor = std::chrono::milliseconds(o.hedge_floor_ms);
  auto client = make_client(ga, o.threads > 0 ? nullptr : transport);
  const Mode mode = make_mode(ga, o, client);
  Backend& backend = *mode.backend;
  const Workload wl(o, run, process);
  const std::string value = make_value(o.value_size, 42);
  const auto ttl = std::chrono::seconds(o.ttl);

  if (prepare) prepare_keys(g, o, backend, run);
  if (o.zipf > 0) read_every_key(o, backend);

  std::vector<Worker> workers(static_cast<size_t>(o.threads > 0 ? o.threads + 1 : o.concurrency));
  std::atomic<uint64_t> next{0}, finished{0};
  ProcessResult r;
  Mode::Stats mode0;
  double units0 = 0;
  auto mark = [&] {
    if (ready) ready();
    r.n.retries = client->stats().retries.load();
    r.n.hedged = client->stats().hedged.load();
    r.n.hedge_wins = client->stats().hedge_wins.load();
    if (mode.stats) mode0 = mode.stats();
    units0 = g.stats->read_capacity_units.load();
  };
  double cpu0 = 0;
  auto t0 = std::chrono::steady_clock::now();
  // One blocking operation: a get's answer (nullopt for writes). Here, and the deadline too,
  // as the blocking threads below use them until they are joined, after the branch.
  auto issue = [&](const Workload::Next& n) -> std::optional<Hit> {
    const std::string key = key_name(n.key);
    if (n.kind == check::Kind::kGet) return backend.get_entry(key);
    if (n.kind == check::Kind::kSet)
      backend.set(key, n.value.empty() ? value : n.value, ttl);
    else
      backend.erase(key);
    return std::nullopt;
  };
  std::chrono::steady_clock::time_point deadline;
  std::vector<std::thread> threads;
  if (o.threads > 0) {
    run_async(o, wl, backend, value, ttl, total_ops, workers, next, finished, [&] {
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
          std::mt19937_64 rng(1000 + static_cast<uint64_t>(t) + process * 7919);
          for (uint64_t i; (i = next++) < o.warmup;) {
            try {
              issue(wl.next(rng, true));
            } catch (const Error&) {
            }
          }
        });
      for (auto& t : ts) t.join();
    }

    mark();
    cpu0 = cpu_seconds();
    t0 = std::chrono::steady_clock::now();
    deadline = t0 + std::chrono::duration_cast<std::chrono::steady_clock::duration>(
                        std::chrono::duration<double>(o.duration > 0 ? o.duration : 1e9));
    for (int t = 0; t < o.concurrency; ++t)
      threads.emplace_back([&, t] {
        Worker& w = workers[static_cast<size_t>(t)];
        std::mt19937_64 rng(static_cast<uint64_t>(t) + 1 + process * 104729);
        for (;;) {
          if (total_ops ? next.fetch_add(1, std::memory_order_relaxed) >= total_ops
                        : std::chrono::steady_clock::now() >= deadline)
            break;
          const Workload::Next n = wl.next(rng);
          std::optional<Hit> hit;
          std::exception_ptr error;
          const auto s = std::chrono::steady_clock::now();
          try {
            hit = issue(n);
          } catch (const Error&) {
            error = std::current_exception();
          }
          account(w, o, wl, n, monotonic_ns(s), monotonic_ns(std::chrono::steady_clock::now()), error,
                  error || n.kind != check::Kind::kGet ? nullptr : &hit);
          finished.fetch_add(1, std::memory_order_relaxed);
        }
      });
  }
  // A live progress line on a terminal (one process only: N would overwrite each other).
  std::thread progress;
  std::atomic<bool> progress_stop{false};
  if (isatty(STDERR_FILENO) && !o.json && o.processes == 1) {
    progress = std::thread([&] {
      while (!progress_stop.load()) {
        std::this_thread::sleep_for(std::chrono::milliseconds(200));
        double el = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        uint64_t d = finished.load();
        double frac = total_ops ? static_cast<double>(d) / static_cast<double>(total_ops) : el / o.duration;
        frac = std::min(1.0, frac);
        int bar = static_cast<int>(frac * 30);
        std::fprintf(stderr, "\r[%-30s] %3.0f%% %10" PRIu64 " ops %10.0f ops/s",
                     std::string(static_cast<size_t>(bar), '#').c_str(), frac * 100, d,
                     el > 0 ? static_cast<double>(d) / el : 0.0);
        std::fflush(stderr);
      }
      std::fprintf(stderr, "\r%72s\r", "");
    });
  }
  for (auto& t : threads) t.join();
  r.n.wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  r.n.cpu = cpu_seconds() - cpu0;
  progress_stop = true;
  if (progress.joinable()) progress.join();

  for (auto& w : workers) {
    r.hist.merge(w.hist);
    r.n.ops += w.done;
    r.n.misses += w.misses;
    r.n.gets += w.gets;
    for (auto& [k, c] : w.errors) {
      r.errors[k] += c;
      r.n.errors += c;
    }
    if (r.first_error.empty()) r.first_error = w.first_error;
    r.records.insert(r.records.end(), w.records.begin(), w.records.end());
  }
  // Second copies of gets sent (ClientOptions::hedge), and gets they answered.
  r.n.retries = client->stats().retries.load() - r.n.retries;
  r.n.hedged = client->stats().hedged.load() - r.n.hedged;
  r.n.hedge_wins = client->stats().hedge_wins.load() - r.n.hedge_wins;
  r.n.read_units = g.stats->read_capacity_units.load() - units0;
  if (mode.stats) {
    const Mode::Stats m = mode.stats();
    r.n.has_memory = true;
    r.n.memory_hits = m.memory_hits - mode0.memory_hits;
    r.n.memory_misses = m.memory_misses - mode0.memory_misses;
    r.n.read_units += m.extra_read_units - mode0.extra_read_units;
  }
  r.n.peak_rss_mb = peak_rss_mb();
  const http::TransportStats ts = o.threads > 0 ? client->io_stats() : transport->stats();
  r.n.connections = ts.connections, r.n.tls_handshakes = ts.tls_handshakes,
  r.n.tls_resumptions = ts.tls_resumptions;
  r.n.batched_socket_calls = ts.batched_socket_calls, r.n.batches = ts.batches;
  r.n.get_batches = client->stats().batches.load(), r.n.batched_keys = client->stats().batched_keys.load();
  r.endpoint = client->endpoint();
  r.mode = mode.name;
  r.bound_s = mode.bound_s;
  return r;
}

}  // namespace dynamodb_cache::cli::bench
