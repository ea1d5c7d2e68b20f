// Shared pieces of the dynamodb-cache command line (private).
#pragma once

#include <CLI/CLI.hpp>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>

#include "dynamodb_cache/dynamodb_cache.h"

namespace dynamodb_cache::cli {

struct GlobalOptions {
  std::string table;
  std::string region;
  std::string endpoint;
  std::string profile;
  bool consistent_read = false;
  bool python_compat = false;
  // --publish-invalidations: DynamodbOptions::publish_invalidations (near caches can trust
  // this process's writes).
  bool publish_invalidations = false;
  // Attempts per DynamoDB call; 0: AWS_MAX_ATTEMPTS, profile max_attempts, the retry mode's,
  // else 5. The library's default (10) suits a long-running service; a command line answers
  // sooner.
  int max_attempts = 0;
  // Deadline of each DynamoDB call, retries and backoff included; seconds.
  double timeout_s = 30;
  // ClientOptions::io_threads and max_in_flight (bench --threads); 0: the library's defaults.
  int io_threads = 0;
  size_t max_in_flight = 0;
  // ClientOptions::batch_gets (bench --batch-gets); -1: the library's default.
  int batch_gets = -1;
  // ClientOptions::hedge (bench --hedge, --hedge-percentile).
  dynamodb::HedgeOptions hedge;
  // --namespace: DynamodbOptions::key_namespace (empty: none).
  std::string key_namespace;
  // --stats: the command's stats as JSON on stderr afterwards; every backend counts here.
  bool print_stats = false;
  std::shared_ptr<CacheStats> stats = std::make_shared<CacheStats>();
  // The clients make_client made for this command: --stats reports their retries.
  mutable std::vector<std::shared_ptr<dynamodb::Client>> clients;
};

// Exit codes: 0 success, 1 a miss (get), 2 usage or invalid input, 3 configuration or
// credentials, 4 a DynamoDB error answer, 5 network (transport, timeout), 6 a value or
// response that cannot be decoded, 7 get-or-run's command failed (nothing cached), 8 a write
// whose outcome is unknown (UnknownOutcomeError: it may or may not have been applied), 9 what
// the command printed could not all be written to standard output.
enum Exit : int {
  kOk = 0,
  kMiss = 1,
  kUsage = 2,
  kConfig = 3,
  kService = 4,
  kNetwork = 5,
  kData = 6,
  kCommand = 7,
  kUnknownOutcome = 8,
  kOutput = 9
};

// Standard output could not be written (exit kOutput).
struct OutputError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// A client from the global options; `transport` null: the library's default.
std::shared_ptr<dynamodb::Client> make_client(const GlobalOptions& g,
                                              std::shared_ptr<http::Transport> transport = nullptr);
DynamodbOptions backend_options(const GlobalOptions& g);

// All of standard input (binary-safe), at most `max_bytes` (an endless stream is refused, not
// held in memory); InvalidArgumentError naming the limit (`limit_said` says what it is) past
// it, or if it cannot be read. Without arguments: at most the largest value, kMaxValueBytes.
std::string read_stdin(size_t max_bytes, const std::string& limit_said);
std::string read_stdin();

// Writes `bytes` to standard output and flushes it; OutputError when not all of them could
// be written (a full disk, a closed descriptor, a reader gone with SIGPIPE ignored).
void write_stdout(std::string_view bytes);
// Flushes standard output: "" if everything printed (by write_stdout, std::cout or printf)
// was written, else why not, for an error line.
std::string stdout_failure();
// Opens /dev/null in place of any of descriptors 0-2 that is closed, the wrong way round, so
// that using it still fails (main calls it first).
void keep_standard_fds_open();

// The one parser of integer arguments, for Option::transform: decimal digits with an optional
// sign, from `min` to `max` (`max_text`, when given, says the maximum in messages); anything
// else ("0x10", "1e3", " 5", 99999999999999999999) is a one-line usage error that quotes at
// most 40 bytes of it. It hands CLI11 the plain decimal form: CLI11 alone reads 010 as octal
// (8), accepts hex and clamps what is out of range to the type's limits.
CLI::Validator whole_number(int64_t min, int64_t max, const std::string& max_text = {});
// The parser of numbers with a fraction (seconds, a ratio), for Option::transform: digits
// with an optional fractional part ("2", "2.5"), from `min` to `max`; no sign, exponent, hex,
// inf or nan.
CLI::Validator decimal_number(double min, double max);

// Adds `--ttl SECONDS` to `cmd`: whole seconds, 0 (never expires) to the library's kMaxTtl
// (whole_number), so no value wraps around.
CLI::Option* add_ttl_option(CLI::App* cmd, int64_t& ttl_seconds, const std::string& what);

// Registers add, incr, decr, touch, mget and mset (cache_commands.cc). `run` as below.
void add_cache_commands(CLI::App& app, GlobalOptions& g, std::function<int()>& run);

// Registers the `bench` subcommand (bench_command.cc). `run` is set to the function to call
// when the subcommand was chosen.
void add_bench_command(CLI::App& app, GlobalOptions& g, std::function<int()>& run);
// Registers `get-or-run` (get_or_run.cc), likewise.
void add_get_or_run_command(CLI::App& app, GlobalOptions& g, std::function<int()>& run);

}  // namespace dynamodb_cache::cli
