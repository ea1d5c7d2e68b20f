// dynamodb-cache get-or-run: the table as a fleet-wide memoizer for shell commands.
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <iostream>

#include "cli/common.h"

extern char** environ;

namespace dynamodb_cache::cli {

namespace {

// The command ran but did not exit 0: nothing is cached.
struct CommandFailed {
  std::string what;
};

// Runs `argv` with standard input and error inherited and returns its standard output, at
// most kMaxValueBytes (the largest value): past that the command is killed and this throws
// InvalidArgumentError. Throws CommandFailed when it cannot start or does not exit 0.
std::string run_command(const std::vector<std::string>& argv) {
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) != 0) throw CommandFailed{std::string("cannot make a pipe: ") + std::strerror(errno)};
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, fds[1], STDOUT_FILENO);
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  pid_t pid = 0;
  int rc = posix_spawnp(&pid, args[0], &actions, nullptr, args.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  close(fds[1]);
  if (rc != 0) {
    close(fds[0]);
    throw CommandFailed{"cannot run '" + argv[0] + "': " + std::strerror(rc)};
  }
  std::string out;
  bool too_long = false;
  char buf[65536];
  for (;;) {
    ssize_t n = read(fds[0], buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    if (static_cast<size_t>(n) > kMaxValueBytes - out.size()) {
      too_long = true;
      kill(pid, SIGKILL);
      break;
    }
    out.append(buf, static_cast<size_t>(n));
  }
  close(fds[0]);
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (too_long)
    throw InvalidArgumentError("'" + argv[0] + "' printed more than " + std::to_string(kMaxValueBytes) +
                               " bytes (64 MiB), the largest value; it was stopped and nothing cached");
  if (WIFEXITED(status) && WEXITSTATUS(status) == 0) return out;
  throw CommandFailed{"'" + argv[0] + "' " +
                      (WIFEXITED(status) ? "exited with status " + std::to_string(WEXITSTATUS(status))
                                         : "was killed by signal " + std::to_string(WTERMSIG(status))) +
                      "; nothing cached"};
}

}  // namespace

void add_get_or_run_command(CLI::App& app, GlobalOptions& g, std::function<int()>& run) {
  auto* cmd = app.add_subcommand(
      "get-or-run",
      "Print KEY's cached bytes; on a miss run COMMAND, cache its standard output (if it exits 0)\n"
      "and print it. With --lease, processes asking at once run COMMAND once between them.\n"
      "Exit 7 (nothing cached) when COMMAND cannot start or does not exit 0.");
  static std::string key;
  static std::vector<std::string> command;
  static int64_t ttl = 0;
  static double lease = 0, lease_wait = 60, stale_if_error = 0;
  cmd->add_option("KEY", key, "Cache key")->required();
  add_ttl_option(cmd, ttl, "Seconds to live; 0 = never expires");
  cmd->add_option("--lease", lease,
                  "Seconds a process may hold the fleet-wide lease on KEY while COMMAND runs (0 = no lease; "
                  "longer than COMMAND takes)")
      ->transform(decimal_number(0, 86400));
  cmd->add_option("--lease-wait", lease_wait,
                  "Seconds to wait for another process's COMMAND before running it here")
      ->transform(decimal_number(0, 86400))
      ->capture_default_str();
  cmd->add_option("--stale-if-error", stale_if_error,
                  "Seconds KEY's value is kept past its TTL: when COMMAND then fails, that stale value is "
                  "printed (exit 0, a line on standard error says so)")
      ->transform(decimal_number(0, 86400 * 365));
  cmd->add_option("COMMAND", command, "The command and its arguments, after --")->required()->expected(-1);
  cmd->callback([&] {
    run = [&] {
      auto backend = std::make_shared<DynamodbBackend>(make_client(g), backend_options(g));
      GetOrSetOptions o;
      o.lease = Ttl(static_cast<int64_t>(lease * 1000));
      o.lease_wait = Ttl(static_cast<int64_t>(lease_wait * 1000));
      o.stale_if_error = Ttl(static_cast<int64_t>(stale_if_error * 1000));
      std::string failure;  // why COMMAND failed, when a stale value is printed instead
      GetOrSetResult r;
      try {
        r = get_or_set_entry(
            *backend, key,
            [&failure] {
              try {
                return run_command(command);
              } catch (const CommandFailed& e) {
                failure = e.what;
                throw;
              }
            },
            std::chrono::seconds(ttl), o);
      } catch (const CommandFailed& e) {
        std::cerr << "error: " << e.what << "\n";
        return kCommand;
      }
      if (r.stale)
        std::cerr << "stale: printed the value of '" << key << "' past its TTL (within --stale-if-error): "
                  << (failure.empty() ? std::string("COMMAND failed") : failure) << "\n";
      write_stdout(r.value);
      return kOk;
    };
  });
}

}  // namespace dynamodb_cache::cli
