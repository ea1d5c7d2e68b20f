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
  // failure, a timeout, too much output, or a non-zero exit.
  std::string run() {
    int p[2];
    if (::pipe2(p, O_CLOEXEC) != 0) throw CredentialsError(name_ + ": pipe: " + std::strerror(errno), true);
    Fd read_end{p[0]}, write_end{p[1]};
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, write_end.fd, STDOUT_FILENO);  // dup2 clears CLOEXEC
    const char* argv[] = {"/bin/sh", "-c", command_.c_str(), nullptr};
    pid_t pid = -1;
    int rc = ::posix_spawn(&pid, "/bin/sh", &fa, nullptr, const_cast<char* const*>(argv), environ);
    posix_spawn_file_actions_destroy(&fa);
    if (rc != 0) throw CredentialsError(name_ + ": cannot start /bin/sh: " + std::strerror(rc), false);
    ::close(write_end.fd);
    write_end.fd = -1;

    const auto deadline = Clock::now() + timeout_;
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
      ::kill(pid, SIGKILL);
      while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
      }
      throw CredentialsError(name_ + ": the command " + failure +
                                 (std::string(failure) == "timed out"
                                      ? " after " + std::to_string(timeout_.count()) + " ms"
                                      : std::string()),
                             true);
    }
    // Its standard error went to ours; the output may hold secrets, so it is never quoted.
    if (WIFSIGNALED(status))
      throw CredentialsError(name_ + ": the command was killed by signal " + std::to_string(WTERMSIG(status)), true);
    if (WEXITSTATUS(status) != 0)
      throw CredentialsError(name_ + ": the command exited with status " + std::to_string(WEXITSTATUS(status)),
                             false);
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
