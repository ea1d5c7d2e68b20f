#include "cache/background_pool.h"

#include <algorithm>
#include <thread>

namespace dynamodb_cache::detail {

namespace {
// The owner of the task this pool thread runs (nullptr elsewhere).
thread_local const void* running_here = nullptr;
}  // namespace

BackgroundPool& BackgroundPool::instance() {
  static BackgroundPool* pool = new BackgroundPool;  // never destroyed: see the header
  return *pool;
}

bool BackgroundPool::submit(const void* owner, std::function<void()> task) {
  std::unique_lock lock(mu_);
  if (queue_.size() >= kQueue || draining_.count(owner)) return false;
  queue_.push_back({owner, std::move(task)});
  // Threads start when work finds none idle, up to kThreads: a process that never refreshes
  // holds none.
  if (threads_ < kThreads && idle_threads_ < queue_.size()) {
    ++threads_;
    std::thread([this] { run(); }).detach();
  }
  lock.unlock();
  work_.notify_one();
  return true;
}

void BackgroundPool::run() {
  std::unique_lock lock(mu_);
  for (;;) {
    ++idle_threads_;
    work_.wait(lock, [&] { return !queue_.empty(); });
    --idle_threads_;
    Task t = std::move(queue_.front());
    queue_.pop_front();
    ++running_[t.owner];
    lock.unlock();
    running_here = t.owner;
    try {
      t.fn();
    } catch (...) {
    }
    t.fn = nullptr;  // what it holds goes before its owner may (and may be its owner: drain)
    lock.lock();
    running_here = nullptr;
    if (--running_[t.owner] == 0) running_.erase(t.owner);
    idle_.notify_all();
  }
}

void BackgroundPool::drain(const void* owner) {
  std::deque<Task> dropped;  // destroyed outside the lock
  std::unique_lock lock(mu_);
  ++draining_[owner];
  for (auto it = queue_.begin(); it != queue_.end();) {
    if (it->owner == owner) {
      dropped.push_back(std::move(*it));
      it = queue_.erase(it);
    } else {
      ++it;
    }
  }
  // From one of `owner`'s own tasks (it held the last reference to its backend, whose
  // destructor drains): that task is not waited for, or it would wait for itself.
  const std::size_t self = running_here == owner ? 1 : 0;
  idle_.wait(lock, [&] {
    auto it = running_.find(owner);
    return it == running_.end() || it->second <= self;
  });
  if (--draining_[owner] == 0) draining_.erase(owner);
}

std::size_t BackgroundPool::pending(const void* owner) {
  std::lock_guard lock(mu_);
  auto r = running_.find(owner);
  std::size_t n = r == running_.end() ? 0 : r->second;
  return n + static_cast<std::size_t>(std::count_if(queue_.begin(), queue_.end(),
                                                    [&](const Task& t) { return t.owner == owner; }));
}

}  // namespace dynamodb_cache::detail
