// An event loop on one thread (private): epoll for sockets, a timer heap for timeouts,
// deadlines and retry backoff, and a queue of tasks posted from any thread.
//
// Thread-safety: post(), stop() and in_loop() from any thread; everything else only on the
// loop's own thread (in a task, a timer or an I/O handler).
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <mutex>
#include <queue>
#include <thread>
#include <unordered_map>
#include <vector>

namespace dynamodb_cache::io {

using Clock = std::chrono::steady_clock;

// Receives readiness for one file descriptor; `events` are EPOLLIN/EPOLLOUT/EPOLLERR/...
class IoHandler {
 public:
  virtual void on_io(uint32_t events) = 0;

 protected:
  ~IoHandler() = default;
};

class EventLoop {
 public:
  using Task = std::function<void()>;

  // Starts the loop's thread. Throws std::system_error if epoll or the thread cannot be made.
  EventLoop();
  // Stops (see stop()) and joins. Never from the loop's own thread.
  ~EventLoop();
  EventLoop(const EventLoop&) = delete;
  EventLoop& operator=(const EventLoop&) = delete;

  // Runs `task` on the loop thread, after the tasks posted before it. Thread-safe.
  void post(Task task);
  // The loop ends after running every task posted before this call. Thread-safe.
  void stop();
  // stop(), then waits for the loop's thread to end. Never from the loop's own thread.
  void join();
  bool in_loop() const { return std::this_thread::get_id() == thread_.get_id(); }

  // Loop thread only. Runs `task` once at `when` (or at once if past); returns an id for
  // cancel_timer. Ids are never 0.
  uint64_t add_timer(Clock::time_point when, Task task);
  // Loop thread only. A timer that already ran or was cancelled: nothing.
  void cancel_timer(uint64_t id);
  // Loop thread only. Level-triggered interest in `fd`; `h` must stay valid until unwatch.
  void watch(int fd, uint32_t events, IoHandler* h);
  void modify(int fd, uint32_t events, IoHandler* h);
  void unwatch(int fd);
  // Loop thread only. `hook` runs before each wait for events (after the due timers): work
  // deferred to the end of an iteration, such as a batch of system calls. It returns true
  // when it left work that must run again without waiting. Its owner removes it before it
  // goes, or outlives the loop's thread. Returns an id for remove_before_wait.
  uint64_t add_before_wait(std::function<bool()> hook);
  void remove_before_wait(uint64_t id);

 private:
  void run();
  void wake();

  int epfd_ = -1;
  int wakefd_ = -1;
  std::mutex mu_;
  std::vector<Task> posted_;  // guarded by mu_
  bool stopping_ = false;     // guarded by mu_
  struct Due {
    Clock::time_point when;
    uint64_t id;
    bool operator>(const Due& o) const { return when != o.when ? when > o.when : id > o.id; }
  };
  std::priority_queue<Due, std::vector<Due>, std::greater<Due>> heap_;  // loop thread
  std::unordered_map<uint64_t, Task> timers_;  // live timers; cancelled ones stay in heap_ until due
  uint64_t next_timer_ = 1;
  std::vector<std::pair<uint64_t, std::function<bool()>>> before_wait_;  // loop thread
  std::thread thread_;  // last: starts once the members above exist
};

}  // namespace dynamodb_cache::io
