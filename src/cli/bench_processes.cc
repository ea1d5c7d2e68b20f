// `dynamodb-cache bench --processes N`: forks N processes (before any client or thread
// exists), each with a backend of its own; they report to the parent through files, which
// merges them into one report.
#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <thread>

#include "cli/bench.h"
#include "util/text.h"

namespace dynamodb_cache::cli::bench {

namespace {

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

}  // namespace

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

}  // namespace dynamodb_cache::cli::bench
