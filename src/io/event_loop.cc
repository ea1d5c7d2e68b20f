#include "io/event_loop.h"

#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <string>
#include <system_error>

#include "dynamodb_cache/async.h"
#include "dynamodb_cache/errors.h"

namespace dynamodb_cache {

namespace {
// Set for the life of an event loop's thread (EventLoop::run).
thread_local bool t_on_io_thread = false;
}  // namespace

bool on_io_thread() noexcept { return t_on_io_thread; }

void check_may_block(const char* what) {
  if (!t_on_io_thread) return;
  throw InvalidArgumentError(
      std::string(what) +
      " called on one of the library's I/O threads (in a completion callback, or in a "
      "coroutine resumed there): it would wait for that thread itself, forever. co_await "
      "the result, pass a callback, or await it with .via(your_executor)");
}

namespace io {

EventLoop::EventLoop() {
  epfd_ = ::epoll_create1(EPOLL_CLOEXEC);
  if (epfd_ < 0) throw std::system_error(errno, std::generic_category(), "epoll_create1");
  wakefd_ = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (wakefd_ < 0) {
    ::close(epfd_);
    throw std::system_error(errno, std::generic_category(), "eventfd");
  }
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.ptr = nullptr;  // the wake-up descriptor
  ::epoll_ctl(epfd_, EPOLL_CTL_ADD, wakefd_, &ev);
  thread_ = std::thread([this] { run(); });
}

EventLoop::~EventLoop() {
  join();
  ::close(wakefd_);
  ::close(epfd_);
}

void EventLoop::post(Task task) {
  bool first;
  {
    std::lock_guard lock(mu_);
    first = posted_.empty();
    posted_.push_back(std::move(task));
  }
  if (first) wake();  // otherwise a wake-up is already pending
}

void EventLoop::stop() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  wake();
}

void EventLoop::join() {
  stop();
  if (thread_.joinable()) thread_.join();
}

void EventLoop::wake() {
  uint64_t one = 1;
  [[maybe_unused]] ssize_t n = ::write(wakefd_, &one, sizeof one);
}

uint64_t EventLoop::add_timer(Clock::time_point when, Task task) {
  uint64_t id = next_timer_++;
  timers_.emplace(id, std::move(task));
  heap_.push({when, id});
  return id;
}

void EventLoop::cancel_timer(uint64_t id) { timers_.erase(id); }

void EventLoop::watch(int fd, uint32_t events, IoHandler* h) {
  epoll_event ev{};
  ev.events = events;
  ev.data.ptr = h;
  ::epoll_ctl(epfd_, EPOLL_CTL_ADD, fd, &ev);
}

void EventLoop::modify(int fd, uint32_t events, IoHandler* h) {
  epoll_event ev{};
  ev.events = events;
  ev.data.ptr = h;
  ::epoll_ctl(epfd_, EPOLL_CTL_MOD, fd, &ev);
}

void EventLoop::unwatch(int fd) { ::epoll_ctl(epfd_, EPOLL_CTL_DEL, fd, nullptr); }

uint64_t EventLoop::add_before_wait(std::function<bool()> hook) {
  uint64_t id = next_timer_++;
  before_wait_.emplace_back(id, std::move(hook));
  return id;
}

void EventLoop::remove_before_wait(uint64_t id) {
  std::erase_if(before_wait_, [id](const auto& h) { return h.first == id; });
}

void EventLoop::run() {
  t_on_io_thread = true;
  // Up to one event per request in flight at 256 in flight: one epoll_wait per iteration.
  constexpr int kMaxEvents = 256;
  epoll_event events[kMaxEvents];
  std::vector<Task> tasks;
  for (;;) {
    // Timers first: those due run now; the next one bounds the wait.
    int timeout_ms = -1;
    while (!heap_.empty()) {
      Due d = heap_.top();
      auto it = timers_.find(d.id);
      if (it == timers_.end()) {  // cancelled
        heap_.pop();
        continue;
      }
      auto now = Clock::now();
      if (d.when > now) {
        auto ms = std::chrono::ceil<std::chrono::milliseconds>(d.when - now).count();
        timeout_ms = static_cast<int>(std::min<int64_t>(ms, 60'000));
        break;
      }
      heap_.pop();
      Task t = std::move(it->second);
      timers_.erase(it);
      t();
    }
    for (size_t i = 0; i < before_wait_.size(); ++i) {
      auto hook = before_wait_[i].second;  // a copy: a hook may add another (inline, no allocation)
      if (hook()) timeout_ms = 0;
    }
    // A timer a hook added (a retry's backoff started by an answer the hook received) bounds
    // the wait too. The top may be a cancelled timer: waking early for it is harmless.
    if (timeout_ms != 0 && !heap_.empty()) {
      auto ms = std::chrono::ceil<std::chrono::milliseconds>(heap_.top().when - Clock::now()).count();
      ms = std::clamp<int64_t>(ms, 0, 60'000);
      if (timeout_ms < 0 || ms < timeout_ms) timeout_ms = static_cast<int>(ms);
    }
    {
      std::lock_guard lock(mu_);
      if (!posted_.empty()) timeout_ms = 0;
    }
    int n = ::epoll_wait(epfd_, events, kMaxEvents, timeout_ms);
    if (n < 0 && errno != EINTR) throw std::system_error(errno, std::generic_category(), "epoll_wait");
    for (int i = 0; i < n; ++i) {
      if (events[i].data.ptr == nullptr) {
        uint64_t v;
        [[maybe_unused]] ssize_t r = ::read(wakefd_, &v, sizeof v);
        continue;
      }
      static_cast<IoHandler*>(events[i].data.ptr)->on_io(events[i].events);
    }
    bool stopping;
    {
      std::lock_guard lock(mu_);
      tasks.swap(posted_);
      stopping = stopping_;
    }
    for (auto& t : tasks) t();
    tasks.clear();
    if (stopping) {
      std::lock_guard lock(mu_);
      if (posted_.empty()) return;  // tasks posted by the ones just run still run first
    }
  }
}

}  // namespace io
}  // namespace dynamodb_cache
