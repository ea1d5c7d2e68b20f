// credential_process: a command that prints credentials as JSON.
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <thread>

#include "aws/fetch_deadline.h"
#include "aws/parsers.h"
#include "aws/providers.h"

extern char** environ;

namespace dynamodb_cache::aws {
namespace {

using Clock = std::chrono::steady_clock;

// Closes a file descriptor on scope exit.
struct Fd {
  int fd = -1;
  ~Fd() {
    if (fd >= 0) ::close(fd);
  }
};

class ProcessProvider final : public CredentialsProvider {
 public:
  ProcessProvider(std::string command, std::string name, std::chrono::milliseconds timeout)
      : command_(std::move(command)), name_(std::move(name)), timeout_(timeout) {}

  Credentials get() override { return detail::parse_process_credentials(run(), name_); }

 private:
  // Runs the command; returns its standard output. Throws CredentialsError on a spawn
  // failure, a timeout (its own, or the caller's fetch deadline when that comes first), too
  // much output, or a non-zero exit. The command runs in a process group of its own: one
  // that fails is killed with every process it started (a child left behind could hold
  // credentials, or our pipe open), not only /bin/sh.
  std::string run() {
    const auto limit = detail::bounded_wait(timeout_);
    if (limit.by_deadline && limit.wait.count() == 0)  // not started only to be killed
      throw CredentialsError(name_ + ": the command was not run: " + detail::deadline_text(), true);
    int p[2];
    if (::pipe2(p, O_CLOEXEC) != 0) throw CredentialsError(name_ + ": pipe: " + std::strerror(errno), true);
    Fd read_end{p[0]}, write_end{p[1]};
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, write_end.fd, STDOUT_FILENO);  // dup2 clears CLOEXEC
    // Its standard error reaches a person at a terminal (the AWS CLI shows it too); anywhere
    // else (a service's log) it is dropped, since we cannot know it holds no secret.
    const bool to_terminal = ::isatty(STDERR_FILENO) == 1;
    if (!to_terminal) posix_spawn_file_actions_addopen(&fa, STDERR_FILENO, "/dev/null", O_WRONLY, 0);
    posix_spawnattr_t attr;
    posix_spawnattr_init(&attr);
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP);
    posix_spawnattr_setpgroup(&attr, 0);  // its own group, whose id is its pid
    const char* argv[] = {"/bin/sh", "-c", command_.c_str(), nullptr};
    pid_t pid = -1;
    int rc = ::posix_spawn(&pid, "/bin/sh", &fa, &attr, const_cast<char* const*>(argv), environ);
    posix_spawnattr_destroy(&attr);
    posix_spawn_file_actions_destroy(&fa);
    if (rc != 0) throw CredentialsError(name_ + ": cannot start /bin/sh: " + std::strerror(rc), false);
    ::close(write_end.fd);
    write_end.fd = -1;

    const auto deadline = Clock::now() + limit.wait;
    std::string out;
    const char* failure = nullptr;
    char buf[8192];
    for (;;) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
      if (left <= 0) {
        failure = "timed out";
        break;
      }
      pollfd pfd{read_end.fd, POLLIN, 0};
      int n = ::poll(&pfd, 1, static_cast<int>(std::min<long long>(left, 1000)));
      if (n < 0 && errno == EINTR) continue;
      if (n == 0) continue;
      ssize_t got = ::read(read_end.fd, buf, sizeof buf);
      if (got < 0 && (errno == EINTR || errno == EAGAIN)) continue;
      if (got <= 0) break;  // EOF (or an error: what was read is all there is)
      out.append(buf, static_cast<size_t>(got));
      if (out.size() > detail::kMaxCredentialsAnswerBytes) {
        failure = "printed more than 1 MiB";
        break;
      }
    }
    int status = 0;
    if (failure == nullptr) {
      // Output closed: the process is exiting; wait for it within what is left of the timeout.
      while (::waitpid(pid, &status, WNOHANG) == 0) {
        if (Clock::now() >= deadline) {
          failure = "timed out";
          break;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
      }
    }
    if (failure != nullptr) {
      ::kill(-pid, SIGKILL);  // the whole group: what it started dies with it
      while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
      }
      std::string why = failure;
      if (why == "timed out")
        why = limit.by_deadline ? "did not finish in time: " + detail::deadline_text()
                                : "timed out after " + std::to_string(timeout_.count()) + " ms";
      throw CredentialsError(name_ + ": the command " + why + "; it was killed with the processes it started",
                             true);
    }
    // The output may hold secrets, so it is never quoted.
    const std::string hint = to_terminal ? "" : " (its standard error was dropped: run it by hand to see why)";
    if (WIFSIGNALED(status))
      throw CredentialsError(name_ + ": the command was killed by signal " + std::to_string(WTERMSIG(status)) + hint,
                             true);
    if (WEXITSTATUS(status) != 0)
      throw CredentialsError(
          name_ + ": the command exited with status " + std::to_string(WEXITSTATUS(status)) + hint, false);
    return out;
  }

  std::string command_;
  std::string name_;
  std::chrono::milliseconds timeout_;
};

}  // namespace

std::shared_ptr<CredentialsProvider> make_process_provider(std::string command, std::string name,
                                                           std::chrono::milliseconds timeout) {
  if (command.empty()) throw ConfigError(name + ": the command is empty");
  return std::make_shared<ProcessProvider>(std::move(command), std::move(name), timeout);
}

}  // namespace dynamodb_cache::aws
