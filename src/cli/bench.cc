// `dynamodb-cache bench`: a load generator for the cache's DynamoDB path (see bench/README.md).
//
// C worker threads each keep one request in flight through one shared DynamodbBackend
// (key check, item encoding, signing, HTTP, decoding, liveness): what an application pays per
// cache operation. Latencies go into per-thread log-linear histograms (fixed memory, <1%
// error), merged at the end.
//
// --processes N forks N such processes (before any client or thread exists), each with a
// backend of its own; they report to the parent through files, which prints one report.
// --check records every operation and checks every read against the acknowledged writes
// (bench_check.h).
#include <signal.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <bit>
#include <cinttypes>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <future>
#include <iostream>
#include <map>
#include <mutex>
#include <random>
#include <thread>

#include "cli/bench_check.h"
#include "cli/common.h"
#include "cli/zipf.h"
#include "util/text.h"

namespace dynamodb_cache::cli {

namespace {

// Log-linear histogram of nanoseconds: exact below 128, then 64 buckets per power of two.
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
  int hedge_floor_ms = 5;  // ClientOptions::hedge.floor
  int processes = 1;
  double zipf = 0;            // > 0: gets draw keys from Zipf(zipf); 0: uniformly
  bool zipf_sets = false;     // sets (and erases) from the Zipf distribution too
  bool layered = false;       // a MemoryBackend over the DynamodbBackend (LayeredBackend)
  bool near_cache = false;    // a CoherentNearCache over a publishing DynamodbBackend
  double memory_max_age = 0;  // LayeredOptions::upper_max_age, seconds; 0: the whole TTL
  double max_staleness = -1;  // the checker's bound, seconds; < 0: the mode's (Mode::bound_s)
  bool check = false;
  double erase_ratio = -1;  // share of writes that erase; < 0: 0.2 with --check, else 0
  int64_t pause_one_ms = 0;
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

// The backend a bench mode runs against, and what it adds to the report. One small factory
// per mode (make_mode); each process makes its own.
struct Mode {
  std::string name;
  std::shared_ptr<Backend> backend;
  // Gets answered from process memory (no request) and not; read units not counted in the
  // GlobalOptions::stats the DynamodbBackend counts in (a feed's). Null: no memory layer.
  struct Stats {
    uint64_t memory_hits = 0, memory_misses = 0;
    double extra_read_units = 0;
  };
  std::function<Stats()> stats;
  // The staleness bound, seconds, the mode promises (the checker's default bound).
  double bound_s = 0;
};

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

// What one process measured (its timed phase), in a form the parent can read back from a
// file: `Counters` is trivially copyable and written as bytes (parent and children are one
// binary), the rest length-prefixed.
struct ProcessResult {
  struct Counters {
    uint64_t ops = 0, misses = 0, gets = 0, errors = 0, retries = 0, hedged = 0, hedge_wins = 0;
    uint64_t connections = 0, tls_handshakes = 0, tls_resumptions = 0, batched_socket_calls = 0, batches = 0;
    uint64_t get_batches = 0, batched_keys = 0, memory_hits = 0, memory_misses = 0;
    double wall = 0, cpu = 0, peak_rss_mb = 0, read_units = 0;
    bool has_memory = false;
  } n;
  Histogram hist;
  std::map<std::string, uint64_t> errors;
  std::string first_error, endpoint, mode;
  double bound_s = 0;
  std::vector<check::Op> records;

  void merge(const ProcessResult& r) {
    // Counts add up; the wall time is the longest process's, the memory the largest one's.
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

  void write(const std::string& path) const {
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
  static ProcessResult read(const std::string& path) {
    ProcessResult r;
    std::ifstream f(path, std::ios::binary);
    auto raw = [&](void* p, size_t size) {
      f.read(static_cast<char*>(p), static_cast<std::streamsize>(size));
    };
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
};

// The value every key is prepared with.
std::string prepared_value(const BenchOptions& o, const std::string& run) {
  return o.check ? check::encode_value(run, check::kPrepared, o.value_size) : make_value(o.value_size, 42);
}

// --prepare: writes the whole key space.
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

// One process's run: builds its client and backend (after any fork), prepares when asked,
// warms up, calls `ready` (which returns when every process is ready), then times the
// workload. `process`: 1..N, in the values written under --check.
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

// A unique tag for this run's values (--check), so a previous run's cannot pass for them.
std::string run_tag() {
  return std::to_string(getpid()) + "-" +
         std::to_string(std::chrono::system_clock::now().time_since_epoch().count() % 1000000000);
}

// Forks, runs `child` in the new process (exit status 0, else it printed why on stderr and
// exits 1 for a usage error, 4 otherwise) and returns its pid. Call it before this process
// has any thread of its own: a child gets only the calling thread.
pid_t fork_child(const std::function<void()>& child) {
  std::fflush(stdout);
  std::fflush(stderr);
  const pid_t pid = fork();
  if (pid < 0) throw ConfigError(std::string("bench: fork failed: ") + std::strerror(errno));
  if (pid > 0) return pid;
  int code = 0;
  try {
    child();
  } catch (const Error& e) {
    std::fprintf(stderr, "dynamodb-cache bench: %s\n", util::printable(e.what(), 2048).c_str());
    code = e.kind() == ErrorKind::kInvalidArgument ? kUsage : kService;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "dynamodb-cache bench: %s\n", util::printable(e.what(), 2048).c_str());
    code = kService;
  }
  std::fflush(stderr);
  _exit(code);  // not exit(): the parent's atexit handlers and buffers are not this process's
}

// Waits for `pid`; its exit code (128 + signal when killed).
int wait_child(pid_t pid) {
  int status = 0;
  while (waitpid(pid, &status, 0) < 0)
    if (errno != EINTR) return kService;
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

// --processes N: forks a process to prepare (if asked), then N workers, which wait for one
// another after their warm-up so their timed phases start together; --pause-one stops the
// first for a while in the middle. Returns their merged results, or nothing when a process
// failed (it said why on stderr; `code` is then its exit code).
std::optional<ProcessResult> run_processes(const GlobalOptions& g, const BenchOptions& o,
                                           const std::string& run, int& code) {
  if (o.prepare) {
    code = wait_child(fork_child([&] {
      auto client = make_client(g);
      DynamodbBackend backend(client, backend_options(g));
      prepare_keys(g, o, backend, run);
    }));
    if (code != 0) return std::nullopt;
  }
  char dir_template[] = "/tmp/dynamodb-cache-bench.XXXXXX";
  if (!mkdtemp(dir_template))
    throw ConfigError(std::string("bench: cannot make a temporary directory: ") + std::strerror(errno));
  const std::string dir = dir_template;
  int ready[2], go[2];
  if (pipe(ready) != 0 || pipe(go) != 0)
    throw ConfigError(std::string("bench: pipe failed: ") + std::strerror(errno));
  std::vector<pid_t> pids;
  for (int p = 1; p <= o.processes; ++p) {
    const std::string file = dir + "/" + std::to_string(p);
    pids.push_back(fork_child([&, p] {
      close(ready[0]);
      close(go[1]);
      const ProcessResult r = run_process(g, o, static_cast<uint64_t>(p), run, false, [&] {
        char c = 1;
        if (write(ready[1], &c, 1) != 1) throw ConfigError("bench: cannot tell the parent it is ready");
        close(ready[1]);  // so that the parent sees the end of `ready` if another process dies
        while (read(go[0], &c, 1) < 0 && errno == EINTR) {
        }  // returns at EOF: the parent closed it, every process is ready
      });
      r.write(file);
    }));
  }
  close(ready[1]);
  close(go[0]);
  int ready_count = 0;
  for (char c; ready_count < o.processes;) {
    const ssize_t got = read(ready[0], &c, 1);
    if (got == 1)
      ++ready_count;
    else if (got == 0 || errno != EINTR)
      break;  // a process ended before it was ready
  }
  close(ready[0]);
  close(go[1]);  // go: every ready process starts its timed phase
  if (o.pause_one_ms > 0 && ready_count == o.processes) {
    const double half = o.duration > 0 ? o.duration / 2 : 1.0;
    std::this_thread::sleep_for(std::chrono::duration<double>(std::max(0.0, half - o.pause_one_ms / 2000.0)));
    kill(pids[0], SIGSTOP);
    std::this_thread::sleep_for(std::chrono::milliseconds(o.pause_one_ms));
    kill(pids[0], SIGCONT);
  }
  int failed = 0;
  for (pid_t pid : pids)
    if (const int c = wait_child(pid); c != 0) ++failed, code = c;
  ProcessResult all;
  for (int p = 1; p <= o.processes && failed == 0; ++p)
    all.merge(ProcessResult::read(dir + "/" + std::to_string(p)));
  for (int p = 1; p <= o.processes; ++p) unlink((dir + "/" + std::to_string(p)).c_str());
  rmdir(dir.c_str());
  if (failed) {
    std::fprintf(stderr, "dynamodb-cache bench: %d of %d processes failed\n", failed, o.processes);
    return std::nullopt;
  }
  return all;
}

int run_bench(const GlobalOptions& g, const BenchOptions& o) {
  if (o.op != "get" && o.op != "set" && o.op != "mixed")
    throw InvalidArgumentError("--op must be get, set or mixed");
  if (o.concurrency < 1) throw InvalidArgumentError("--concurrency must be at least 1");
  if (o.keys < 1) throw InvalidArgumentError("--keys must be at least 1");
  if (o.pause_one_ms > 0 && o.processes < 2)
    throw InvalidArgumentError("--pause-one needs --processes 2 or more");
  if (o.check && o.keys > UINT32_MAX) throw InvalidArgumentError("--check takes at most 4294967295 --keys");
  if (o.zipf > 0 && o.keys > 100000000) throw InvalidArgumentError("--zipf takes at most 100000000 --keys");
  // --check must know every key's value before the run: it prepares them.
  BenchOptions oo = o;
  if (o.check) oo.prepare = true;
  const std::string run = o.check ? run_tag() : std::string();
  int code = kOk;
  std::optional<ProcessResult> result =
      oo.processes == 1 ? run_process(g, oo, 1, run, oo.prepare, nullptr) : run_processes(g, oo, run, code);
  if (!result) return code;
  const ProcessResult& r = *result;

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

}  // namespace

void add_bench_command(CLI::App& app, GlobalOptions& g, std::function<int()>& run) {
  static BenchOptions o;
  auto* b = app.add_subcommand("bench", "Load generator: ops/s, latency percentiles, client CPU and memory");
  b->add_option("--op", o.op, "get, set or mixed")
      ->check(CLI::IsMember({"get", "set", "mixed"}))
      ->capture_default_str();
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
  b->add_option("--hedge-floor", o.hedge_floor_ms,
                "With --hedge: never send the second copy sooner than this many ms")
      ->transform(whole_number(0, 60000))
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
  b->add_option("--processes", o.processes,
                "Run N cooperating processes (forked), each with its own client, each doing the whole "
                "workload; one report of all")
      ->transform(whole_number(1, 256))
      ->capture_default_str();
  b->add_option("--zipf", o.zipf,
                "Gets draw their keys from a Zipf distribution of this exponent (e.g. 0.99; default: "
                "uniform); each process first reads every key once, untimed")
      ->transform(decimal_number(0.001, 10));
  b->add_flag("--zipf-sets", o.zipf_sets, "With --zipf: sets and erases draw from it too (default: uniform)");
  b->add_flag("--layered", o.layered,
              "Mode: a memory layer over DynamoDB (LayeredBackend), which does not hear of other "
              "processes' writes");
  b->add_flag("--near-cache", o.near_cache,
              "Mode: the coherent near cache (CoherentNearCache, max_staleness from --max-staleness, "
              "default 1 s) over a DynamodbBackend that publishes every write")
      ->excludes("--layered");
  b->add_option("--memory-max-age", o.memory_max_age,
                "With --layered: seconds a memory copy is served (LayeredOptions::upper_max_age; "
                "default: the whole --ttl)")
      ->transform(decimal_number(0.001, 1e9));
  b->add_flag("--check", o.check,
              "Write unique values (implies --prepare), erase a share of keys (--erase-ratio) and check "
              "every read against the acknowledged writes: staleness_violations");
  b->add_option("--erase-ratio", o.erase_ratio,
                "Share of writes that erase (default 0.2 with --check, else 0)")
      ->transform(decimal_number(0, 1));
  b->add_option("--max-staleness", o.max_staleness,
                "Seconds: --check counts a read as stale when it answers a value replaced by a write "
                "acknowledged longer ago (default: the mode's promise: 0 with --consistent-read, 1 for "
                "eventually consistent reads, plus the memory copy's life with --layered); with "
                "--near-cache also its max_staleness (0.1 or more; default 1)")
      ->transform(decimal_number(0, 1e9));
  b->add_option("--pause-one", o.pause_one_ms,
                "Milliseconds to stop one process (SIGSTOP, then SIGCONT) in the middle of the run "
                "(needs --processes 2 or more)")
      ->transform(whole_number(1, 3600000));
  b->callback([&] { run = [&] { return run_bench(g, o); }; });
}

}  // namespace dynamodb_cache::cli
