// `dynamodb-cache bench`: its options, their checks, and the choice of one process or N.
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>

#include "cli/bench.h"

namespace dynamodb_cache::cli {

namespace bench {
namespace {

// A unique tag for this run's values (--check), so a previous run's cannot pass for them.
std::string run_tag() {
  return std::to_string(getpid()) + "-" +
         std::to_string(std::chrono::system_clock::now().time_since_epoch().count() % 1000000000);
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
  return print_report(o, *result);
}

}  // namespace
}  // namespace bench

void add_bench_command(CLI::App& app, GlobalOptions& g, std::function<int()>& run) {
  static bench::BenchOptions o;
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
  b->callback([&] { run = [&] { return bench::run_bench(g, o); }; });
}

}  // namespace dynamodb_cache::cli
