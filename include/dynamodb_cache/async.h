// Pending<T>: the result of an asynchronous cache operation, as a C++20 awaitable and a
// blocking get(). Works with any coroutine framework: `co_await cache.get_async(key)` suspends
// the coroutine, and the operation's completion resumes it (on the thread that completed it,
// or on an executor of yours: Pending::via).
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

// True on one of the library's own I/O threads (a DynamoDB client's event loops), where
// completion callbacks run and awaiting coroutines resume. Thread-safe.
bool on_io_thread() noexcept;
// What Pending::get() does first, and what a blocking helper of yours can do too: on an I/O
// thread, throws InvalidArgumentError naming `what`, since waiting there for an asynchronous
// result would wait for the loop that has to complete it, forever. Elsewhere, nothing.
void check_may_block(const char* what);

// Made with the operation already started. Await it once, or get() it once, not both.
// The awaiting coroutine is resumed on the thread that completes the operation: one of the
// DynamoDB client's I/O threads (keep the code after co_await short and non-blocking, or
// hand it to your framework's executor), or, when the answer came inline (a memory hit, an
// invalid key), the awaiting thread itself, without suspending. To resume elsewhere, await
// `pending.via(executor)` instead: the completion then hands the coroutine to `executor`
// (any callable taking a std::function<void()>, e.g. your thread pool's post) and never
// resumes it on the I/O thread. get() on an I/O thread (in a completion callback, or after a
// co_await resumed there) throws InvalidArgumentError at once instead of waiting forever.
// Thread-safe.
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

  // The same result, awaited through `executor`: the coroutine is resumed by
  // executor(std::function<void()>) (from the completing thread), never on an I/O thread
  // directly. When the result is already there, co_await does not suspend at all.
  template <class Executor>
  Pending via(Executor executor) && {
    st_->resume_via = [executor = std::move(executor)](std::coroutine_handle<> h) mutable {
      executor(std::function<void()>([h] { h.resume(); }));
    };
    return std::move(*this);
  }

  // Blocks until the operation completes; then as await_resume(). On one of the library's
  // I/O threads: InvalidArgumentError at once (see above).
  T get() {
    check_may_block("Pending::get()");
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
    std::function<void(std::coroutine_handle<>)> resume_via;  // empty: resume inline
    // The first of completion and suspension to arrive sets it; the second finds it set and
    // so knows the other already happened (and resumes, or does not suspend).
    std::atomic<bool> claimed{false};
    void complete(Outcome<T> o) {
      {
        std::lock_guard lock(mu);
        out.emplace(std::move(o));
      }
      cv.notify_all();
      if (!claimed.exchange(true, std::memory_order_acq_rel) || !waiter) return;
      if (resume_via)
        resume_via(waiter);
      else
        waiter.resume();
    }
  };
  explicit Pending(std::shared_ptr<State> st) : st_(std::move(st)) {}
  std::shared_ptr<State> st_;
};

namespace detail {
// A Pending<T> for the operation `start(done)` starts, given the callback that completes it.
template <class T, class Start>
Pending<T> start_pending(Start&& start) {
  auto [p, done] = Pending<T>::make();
  std::forward<Start>(start)(std::move(done));
  return std::move(p);
}
}  // namespace detail

}  // namespace dynamodb_cache
