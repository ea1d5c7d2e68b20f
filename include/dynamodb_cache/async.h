// Pending<T>: the result of an asynchronous cache operation, as a C++20 awaitable and a
// blocking get(). Works with any coroutine framework: `co_await cache.get_async(key)` suspends
// the coroutine, and the operation's completion resumes it.
#pragma once

#include <atomic>
#include <condition_variable>
#include <coroutine>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <utility>

#include "dynamodb_cache/outcome.h"
// Not needed here since Outcome has a header of its own; kept for code that included only this
// header and used the client.
#include "dynamodb_cache/dynamodb.h"

namespace dynamodb_cache {

// Made with the operation already started. Await it once, or get() it once, not both.
// The awaiting coroutine is resumed on the thread that completes the operation: one of the
// DynamoDB client's I/O threads (keep the code after co_await short and non-blocking, or
// hand it to your framework's executor), or, when the answer came inline (a memory hit, an
// invalid key), the awaiting thread itself, without suspending. Thread-safe.
template <class T>
class [[nodiscard]] Pending {
 public:
  // A Pending and the callback that completes it (call it exactly once).
  static std::pair<Pending, std::function<void(Outcome<T>)>> make() {
    auto st = std::make_shared<State>();
    return {Pending(st), [st](Outcome<T> o) { st->complete(std::move(o)); }};
  }

  bool await_ready() const noexcept { return st_->claimed.load(std::memory_order_acquire); }
  // False (no suspension) when the result arrived meanwhile.
  bool await_suspend(std::coroutine_handle<> h) {
    st_->waiter = h;
    return !st_->claimed.exchange(true, std::memory_order_acq_rel);
  }
  // The result; rethrows the operation's error.
  T await_resume() { return std::move(*st_->out).value(); }

  // Blocks until the operation completes; then as await_resume().
  T get() {
    {
      std::unique_lock lock(st_->mu);
      st_->cv.wait(lock, [&] { return st_->out.has_value(); });
    }
    return await_resume();
  }

 private:
  struct State {
    std::mutex mu;
    std::condition_variable cv;
    std::optional<Outcome<T>> out;
    std::coroutine_handle<> waiter;
    // The first of completion and suspension to arrive sets it; the second finds it set and
    // so knows the other already happened (and resumes, or does not suspend).
    std::atomic<bool> claimed{false};
    void complete(Outcome<T> o) {
      {
        std::lock_guard lock(mu);
        out.emplace(std::move(o));
      }
      cv.notify_all();
      if (claimed.exchange(true, std::memory_order_acq_rel) && waiter) waiter.resume();
    }
  };
  explicit Pending(std::shared_ptr<State> st) : st_(std::move(st)) {}
  std::shared_ptr<State> st_;
};

}  // namespace dynamodb_cache
