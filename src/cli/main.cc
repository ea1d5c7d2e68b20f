// dynamodb-cache: the command-line face of the library.
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <sstream>

#include "cli/common.h"
#include "dynamodb_cache/version.h"
#include "util/text.h"
#include "util/warn.h"

namespace dynamodb_cache::cli {

std::shared_ptr<dynamodb::Client> make_client(const GlobalOptions& g,
                                              std::shared_ptr<http::Transport> transport) {
  dynamodb::ClientOptions o;
  o.transport = std::move(transport);
  o.region = g.region;
  o.endpoint = g.endpoint;
  o.profile.profile = g.profile;
  o.retry.max_attempts = g.max_attempts;
  o.retry.default_max_attempts = 5;
  o.operation_timeout = std::chrono::milliseconds(static_cast<int64_t>(g.timeout_s * 1000));
  if (g.io_threads > 0) o.io_threads = g.io_threads;
  if (g.max_in_flight > 0) o.max_in_flight = g.max_in_flight;
  if (g.batch_gets >= 0) o.batch_gets = g.batch_gets != 0;
  o.hedge = g.hedge;
  auto client = std::make_shared<dynamodb::Client>(o);
  g.clients.push_back(client);
  return client;
}

DynamodbOptions backend_options(const GlobalOptions& g) {
  DynamodbOptions o;
  o.table = g.table;
  o.consistent_read = g.consistent_read;
  o.python_compat = g.python_compat;
  o.publish_invalidations = g.publish_invalidations;
  o.key_namespace = g.key_namespace;
  o.stats = g.stats;
  return o;
}

namespace {

int exit_code(const Error& e) {
  switch (e.kind()) {
    case ErrorKind::kInvalidArgument:
      return kUsage;
    case ErrorKind::kConfig:
    case ErrorKind::kCredentials:
      return kConfig;
    case ErrorKind::kTransport:
    case ErrorKind::kTimeout:
      return kNetwork;
    case ErrorKind::kCodec:
    case ErrorKind::kWrongType:
    case ErrorKind::kProtocol:
      return kData;
    case ErrorKind::kUnknownOutcome:
      return kUnknownOutcome;
    default:
      return kService;
  }
}

// One line of printable text, whatever the message holds (the library's messages already
// are; this is the last guard before the terminal).
std::string one_line(const std::string& s) { return util::printable(s, 2048); }

// Edits (insertions, deletions, substitutions) that turn a into b.
size_t edit_distance(std::string_view a, std::string_view b) {
  std::vector<size_t> row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    size_t diag = row[0];
    row[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      size_t up = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diag + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diag = up;
    }
  }
  return row[b.size()];
}

// The option named by `arg` ("--ttl", "--ttl=5", "-h") in `cmd` or, as options fall through,
// its parents; nullptr when none knows it.
const CLI::Option* option_of(const CLI::App* cmd, const std::string& arg) {
  const std::string name = arg.substr(0, arg.find('='));
  for (; cmd; cmd = cmd->get_parent())
    if (const CLI::Option* o = cmd->get_option_no_throw(name)) return o;
  return nullptr;
}

// What the command line gets wrong that CLI11 would report badly, as the aws CLI and
// redis-cli would say it: a mistyped command (with the nearest one), and get-or-run's
// COMMAND not after `--`, or no KEY before it. "" when nothing. Options may come before or
// after the command (they fall through to the top level).
std::string usage_problem(const CLI::App& app, int argc, char** argv) {
  const CLI::App* cmd = nullptr;
  int positionals = 0;  // after the command, before `--`
  bool dashes = false;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--") {
      dashes = true;
      break;
    }
    if (a == "-h" || a == "--help" || a == "--version") return {};  // CLI11 answers these
    if (a.size() > 1 && a[0] == '-') {
      const CLI::Option* o = option_of(cmd ? cmd : &app, a);
      if (o && o->get_items_expected_max() > 0 && a.find('=') == std::string::npos) ++i;  // its value
      continue;
    }
    if (cmd) {
      ++positionals;
      continue;
    }
    for (const CLI::App* s : app.get_subcommands({}))
      if (s->get_name() == a) cmd = s;
    if (cmd) continue;
    std::string best;
    size_t best_d = 3;  // suggest only what is at most 2 edits away
    for (const CLI::App* s : app.get_subcommands({}))
      if (size_t d = edit_distance(a, s->get_name()); d < best_d) best_d = d, best = s->get_name();
    return "unknown command '" + a + "'" + (best.empty() ? std::string() : "; did you mean '" + best + "'?");
  }
  if (cmd && cmd->get_name() == "get-or-run") {
    if (!dashes)
      return "get-or-run: put the command after --, as in: dynamodb-cache get-or-run KEY -- COMMAND [ARG...]";
    if (positionals == 0) return "get-or-run: KEY is missing before --";
    if (positionals > 1) return "get-or-run: one KEY before --; the command and its arguments go after --";
  }
  return {};
}

int run_cli(int argc, char** argv) {
  CLI::App app{
      "dynamodb-cache: use an Amazon DynamoDB table as a cache.\n"
      "Credentials, region and endpoint come from the usual AWS environment variables,\n"
      "profiles and instance roles unless given here.",
      "dynamodb-cache"};
  app.require_subcommand(1);
  app.footer(
      "Exit codes: 0 done, 1 a miss (get, touch) or a live key (add), 2 usage or invalid input,\n"
      "3 configuration or credentials, 4 a DynamoDB error, 5 network, 6 an answer or value that\n"
      "cannot be decoded, 7 get-or-run's command failed, 8 a write whose outcome is unknown (its\n"
      "answer was lost; it may have been applied), 9 what it printed could not all be written to\n"
      "standard output (a full disk, a closed descriptor, a reader gone with SIGPIPE ignored).");
  app.set_version_flag("--version", "dynamodb-cache " DYNAMODB_CACHE_VERSION);
  GlobalOptions g;
  const char* env_table = std::getenv("DYNAMODB_CACHE_TABLE");
  g.table = env_table && *env_table ? env_table : "dynamodb-cache";
  app.add_option("--table", g.table, "Table name (default $DYNAMODB_CACHE_TABLE, else dynamodb-cache)")
      ->capture_default_str();
  app.add_option("--region", g.region, "AWS region (default: AWS_REGION, AWS_DEFAULT_REGION, profile)");
  app.add_option("--endpoint", g.endpoint,
                 "DynamoDB endpoint URL (default: AWS_ENDPOINT_URL_DYNAMODB, AWS_ENDPOINT_URL, AWS)");
  app.add_option("--profile", g.profile, "Profile in the AWS shared config files");
  // As in the AWS CLI, it outranks AWS_CA_BUNDLE and ca_bundle, and holds for every call made
  // (DynamoDB, STS, SSO): setting the variable reaches them all.
  app.add_option("--ca-bundle",
                 "CA certificates (PEM) to verify TLS peers with "
                 "(default: AWS_CA_BUNDLE, the profile's ca_bundle, the system's)")
      ->each([](const std::string& v) { setenv("AWS_CA_BUNDLE", v.c_str(), 1); });
  app.add_flag("--consistent-read", g.consistent_read, "Strongly consistent reads");
  app.add_flag("--python-compat", g.python_compat,
               "Write values the way the Python dynamodb_cache package stores them (base64 text)");
  app.add_flag("--publish-invalidations", g.publish_invalidations,
               "Publish every write to the invalidation feed, so that near caches (CoherentNearCache) "
               "of other processes see it within their max_staleness");

  app.add_option("--max-attempts", g.max_attempts,
                 "Attempts per DynamoDB call, retries included (default: AWS_MAX_ATTEMPTS, the profile's "
                 "max_attempts, else 5)")
      ->transform(whole_number(1, 100));
  app.add_option("--timeout", g.timeout_s, "Seconds one DynamoDB call may take, retries and backoff included")
      ->transform(decimal_number(0.001, 86400))
      ->capture_default_str();
  app.add_option(
      "--namespace", g.key_namespace,
      "Keys live in this namespace (stored as NS:GEN:KEY); `clear --yes` clears only it, in one request");
  app.add_flag("--stats", g.print_stats,
               "After the command, print its statistics as one JSON line on stderr");

  std::function<int()> run;

  auto* create = app.add_subcommand("create-table", "Create the cache table (hash key `key`, S)");
  std::string billing = "on-demand";
  int64_t rcu = 5, wcu = 5;
  bool no_wait = false;
  create->add_option("--billing-mode", billing, "on-demand or provisioned")
      ->check(CLI::IsMember({"on-demand", "provisioned"}))
      ->capture_default_str();
  create->add_option("--rcu", rcu, "Read capacity units (provisioned), at least 1")
      ->transform(whole_number(1, INT64_MAX))
      ->capture_default_str();
  create->add_option("--wcu", wcu, "Write capacity units (provisioned), at least 1")
      ->transform(whole_number(1, INT64_MAX))
      ->capture_default_str();
  create->add_flag("--no-wait", no_wait, "Return without waiting for the table to become ACTIVE");
  create->callback([&] {
    run = [&] {
      TableOptions t;
      t.name = g.table;
      t.billing_mode = billing == "provisioned" ? dynamodb::BillingMode::kProvisioned
                                                : dynamodb::BillingMode::kPayPerRequest;
      t.read_capacity_units = rcu;
      t.write_capacity_units = wcu;
      Table(make_client(g), t).create(!no_wait);
      std::cerr << "table '" << g.table << "' " << (no_wait ? "is being created" : "is ready") << "\n";
      return kOk;
    };
  });

  auto* drop = app.add_subcommand("delete-table", "Delete the cache table and everything in it");
  bool drop_no_wait = false;
  drop->add_flag("--no-wait", drop_no_wait, "Return without waiting for the deletion to finish");
  drop->callback([&] {
    run = [&] {
      TableOptions t;
      t.name = g.table;
      Table(make_client(g), t).drop(!drop_no_wait);
      std::cerr << "table '" << g.table << "' deleted\n";
      return kOk;
    };
  });

  auto* set = app.add_subcommand("set", "Store a value (from VALUE, or the bytes of standard input)");
  std::string set_key, set_value;
  int64_t ttl = 0;
  set->add_option("KEY", set_key, "Cache key (1-2048 bytes of UTF-8)")->required();
  auto* value_opt = set->add_option("VALUE", set_value, "The value; omitted: read standard input");
  add_ttl_option(set, ttl, "Seconds to live; 0 = never expires");
  set->callback([&] {
    run = [&] {
      std::string value = value_opt->count() ? set_value : read_stdin();
      DynamodbBackend(make_client(g), backend_options(g)).set(set_key, value, std::chrono::seconds(ttl));
      return kOk;
    };
  });

  auto* get = app.add_subcommand("get", "Print a value's bytes; exit 1 (printing nothing) on a miss");
  std::string get_key;
  get->add_option("KEY", get_key, "Cache key")->required();
  get->callback([&] {
    run = [&] {
      auto v = DynamodbBackend(make_client(g), backend_options(g)).get(get_key);
      if (!v) return kMiss;
      write_stdout(*v);
      return kOk;
    };
  });

  auto* del = app.add_subcommand("delete", "Remove a key (absent keys are fine)");
  std::string del_key;
  del->add_option("KEY", del_key, "Cache key")->required();
  del->callback([&] {
    run = [&] {
      DynamodbBackend(make_client(g), backend_options(g)).erase(del_key);
      return kOk;
    };
  });

  auto* clear = app.add_subcommand(
      "clear", "Delete every item in the table, or with --namespace only that namespace's (needs --yes)");
  bool yes = false;
  clear->add_flag("--yes", yes, "Confirm: really delete everything");
  clear->callback([&] {
    run = [&] {
      if (!yes) {
        if (!g.key_namespace.empty())
          std::cerr << "error: clear empties namespace '" << g.key_namespace << "' of table '" << g.table
                    << "'; pass --yes to confirm\n";
        else
          std::cerr << "error: clear deletes every item in table '" << g.table
                    << "'; pass --yes to confirm\n";
        return kUsage;
      }
      if (!g.key_namespace.empty()) {
        DynamodbBackend(make_client(g), backend_options(g)).clear();
        std::cerr << "cleared namespace '" << g.key_namespace << "' of '" << g.table << "'\n";
        return kOk;
      }
      bool tty = isatty(STDERR_FILENO);
      uint64_t total = 0;
      DynamodbBackend(make_client(g), backend_options(g)).clear([&](uint64_t n) {
        total = n;
        if (tty) std::cerr << "\rdeleted " << n << " items" << std::flush;
      });
      if (tty) std::cerr << "\r";
      std::cerr << "deleted " << total << " items from '" << g.table << "'\n";
      return kOk;
    };
  });

  add_bench_command(app, g, run);
  add_cache_commands(app, g, run);
  add_get_or_run_command(app, g, run);
  // Global options anywhere, as in the aws CLI: after the command too. A command's --help names
  // them (a new user looked for --endpoint in `get --help`); the top-level --help says what each does.
  std::string globals =
      "Global options, before or after the command (dynamodb-cache --help says what each does):\n ";
  std::size_t line_start = globals.size() - 1;
  for (const CLI::Option* o : app.get_options()) {
    if (o->get_name() == "--help" || o->get_name() == "--version") continue;
    if (globals.size() + 1 + o->get_name().size() - line_start > 90) {
      globals += "\n ";
      line_start = globals.size() - 1;
    }
    globals += " " + o->get_name();
  }
  for (CLI::App* s : app.get_subcommands({})) {
    s->fallthrough();
    s->footer(globals + "\n\n" + app.get_footer());
  }

  if (std::string problem = usage_problem(app, argc, argv); !problem.empty()) {
    std::cerr << "error: " << one_line(problem) << " (see --help)\n";
    return kUsage;
  }
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp&) {
    std::cout << app.help();
    return kOk;
  } catch (const CLI::CallForAllHelp&) {
    std::cout << app.help("", CLI::AppFormatMode::All);
    return kOk;
  } catch (const CLI::CallForVersion& e) {
    std::cout << e.what() << "\n";
    return kOk;
  } catch (const CLI::ParseError& e) {
    // Subcommand --help arrives here as CallForHelp from the subcommand's parse.
    if (e.get_exit_code() == 0) {
      std::cout << app.help();
      return kOk;
    }
    std::cerr << "error: " << one_line(e.what()) << " (see --help)\n";
    return kUsage;
  }
  // --stats: the counters after the command, whatever its outcome.
  struct PrintStats {
    const GlobalOptions& g;
    ~PrintStats() {
      if (!g.print_stats) return;
      uint64_t retries = 0;
      for (const auto& c : g.clients) retries += c->stats().retries.load();
      std::cerr << g.stats->to_json(&retries) << "\n";
    }
  } print_stats{g};
  try {
    return run ? run() : kUsage;
  } catch (const OutputError& e) {
    std::cerr << "error: " << e.what() << "\n";
    return kOutput;
  } catch (const ServiceError& e) {  // names the table and how to create it when it is missing
    std::cerr << "error: " << one_line(e.what()) << "\n";
    return exit_code(e);
  } catch (const Error& e) {
    // The kind in words ("invalid argument", "unknown outcome"), not its C++ spelling.
    std::string kind = to_string(e.kind());
    std::replace(kind.begin(), kind.end(), '_', ' ');
    std::cerr << "error: " << kind << ": " << one_line(e.what()) << "\n";
    return exit_code(e);
  } catch (const std::exception& e) {
    std::cerr << "error: " << one_line(e.what()) << "\n";
    return kData;
  }
}

}  // namespace

// As `cat` does, a command whose output was not all written fails, with an error line: a
// script must not take an empty or cut value for the real one. A reader that went away
// (EPIPE) ends the process with SIGPIPE unless SIGPIPE is ignored, as it ends `cat`.
int main(int argc, char** argv) {
  keep_standard_fds_open();
  // The library says nothing itself: its warnings (a server without native TTL, credentials
  // used past their expiration) come here, each said once.
  set_log_hook([](LogLevel level, std::string_view m) {
    if (level >= LogLevel::kWarning) util::warn_once(std::string(m));
  });
  int rc = run_cli(argc, argv);
  if (rc == kOutput) return rc;  // reported
  if (std::string failure = stdout_failure(); !failure.empty()) {
    std::cerr << "error: " << failure << "\n";
    return rc == kOk ? kOutput : rc;
  }
  return rc;
}

}  // namespace dynamodb_cache::cli

int main(int argc, char** argv) { return dynamodb_cache::cli::main(argc, argv); }
