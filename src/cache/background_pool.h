// The process-wide pool that runs get_or_set's loads nobody waits for (get_or_set.h): a
// refresh ahead of expiry, and a load that outlived load_timeout. Private.
#pragma once

#include <condition_variable>
#include <cstddef>
#include <deque>
#include <functional>
#include <mutex>
#include <unordered_map>

namespace dynamodb_cache::detail {

// A few threads and a bounded queue: a burst of refreshes cannot pile up unbounded work or
// threads (a full queue refuses, and the caller then runs the task itself). Each task names
// its owner, the Backend whose object it uses: that backend's destructor calls drain(this)
// first, so no task outlives what it uses. Thread-safe.
class BackgroundPool {
 public:
  static constexpr std::size_t kThreads = 4;
  static constexpr std::size_t kQueue = 256;

  // The process's pool, made at first use and never destroyed (its threads are detached, so
  // that a loader still running at exit does not hold the exit up).
  static BackgroundPool& instance();

  // Queues `task` to run on a pool thread; false (the task is not taken) when the queue is
  // full or `owner` is being drained. What `task` throws is dropped: it reports its own
  // failures.
  bool submit(const void* owner, std::function<void()> task);
  // Drops `owner`'s queued tasks and waits until none of its tasks runs. A task that never
  // returns (a hung loader) holds this up: the destructor of its backend waits for it.
  // Called from one of `owner`'s own tasks (the task held the last reference to its backend),
  // it waits for the others only.
  void drain(const void* owner);
  // Tasks of `owner` queued or running (tests).
  std::size_t pending(const void* owner);

 private:
  BackgroundPool() = default;
  void run();

  struct Task {
    const void* owner;
    std::function<void()> fn;
  };
  std::mutex mu_;
  std::condition_variable work_, idle_;
  std::deque<Task> queue_;
  std::unordered_map<const void*, std::size_t> running_;   // tasks running, by owner
  std::unordered_map<const void*, std::size_t> draining_;  // drains in progress, by owner
  std::size_t threads_ = 0;                                // started so far, lazily
  std::size_t idle_threads_ = 0;                           // waiting for work
};

// What a Backend of this library calls first in its destructor: drains its tasks from the
// pool (BackgroundPool::drain), then forgets what get_or_set remembers of it (the backoff of
// its failing keys), so that a backend made later at the same address starts clean.
void backend_gone(const void* owner);
// The (backend, key) pairs get_or_set remembers as failing (tests).
std::size_t remembered_outages();

}  // namespace dynamodb_cache::detail
