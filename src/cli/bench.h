// `dynamodb-cache bench` (private to the CLI): what its files, src/cli/bench*.cc, share. Each
// says its own concern at its top.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "cli/bench_check.h"
#include "cli/common.h"
#include "cli/histogram.h"

namespace dynamodb_cache::cli::bench {

// The options of `dynamodb-cache bench`, as parsed (bench_command.cc says what each means).
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

// The backend of the mode `o` asks for (dynamodb, layered or near-cache) over `client`.
Mode make_mode(const GlobalOptions& g, const BenchOptions& o,
               const std::shared_ptr<dynamodb::Client>& client);

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

  // Adds `r`'s: counts add up; the wall time is the longest process's, the memory the
  // largest one's.
  void merge(const ProcessResult& r);
  // The file a process reports through, and its reading back (ConfigError when it cannot be
  // written, or is damaged).
  void write(const std::string& path) const;
  static ProcessResult read(const std::string& path);
};

// "bench-00000042": at least 8 digits.
std::string key_name(uint64_t i);

// --prepare: writes the whole key space.
void prepare_keys(const GlobalOptions& g, const BenchOptions& o, Backend& backend, const std::string& run);

// One process's run: builds its client and backend (after any fork), prepares when asked,
// warms up, calls `ready` (which returns when every process is ready), then times the
// workload. `process`: 1..N, in the values written under --check.
ProcessResult run_process(const GlobalOptions& g, const BenchOptions& o, uint64_t process,
                          const std::string& run, bool prepare, const std::function<void()>& ready);

// --processes N: forks a process to prepare (if asked), then N workers, which wait for one
// another after their warm-up so their timed phases start together; --pause-one stops the
// first for a while in the middle. Returns their merged results, or nothing when a process
// failed (it said why on stderr; `code` is then its exit code).
std::optional<ProcessResult> run_processes(const GlobalOptions& g, const BenchOptions& o,
                                           const std::string& run, int& code);

// Prints the report of `r` (of the options `o`) on stdout, as text or with --json, and the
// first --check violations on stderr; returns the exit code: kService when an operation
// failed or a read broke the --check rules, else kOk.
int print_report(const BenchOptions& o, const ProcessResult& r);

}  // namespace dynamodb_cache::cli::bench
