#pragma once
// Private: turning a call's result or exception into an Outcome, for the asynchronous forms.

#include <exception>
#include <optional>
#include <type_traits>
#include <utility>

#include "dynamodb_cache/backend.h"
#include "dynamodb_cache/dynamodb.h"

namespace dynamodb_cache::detail {

// `f()` as an outcome: its value, or what it threw. The Outcome is made after the handler's
// statement has ended, so that no temporary sharing the exception's reference-counted
// message outlives it on this thread while the outcome reaches another (see async.h).
template <class T, class F>
dynamodb::Outcome<T> outcome_of(F&& f) {
  std::optional<dynamodb::Outcome<T>> out;
  try {
    if constexpr (std::is_void_v<T>) {
      f();
      out.emplace();
    } else {
      out.emplace(f());
    }
  } catch (...) {
    out.emplace(std::current_exception());
  }
  return std::move(*out);
}

// Runs `f(b)` through b.run_blocking and completes `done` with its outcome, or with the error
// that kept it from running: Backend's default asynchronous forms, CoherentNearCache's.
template <class T, class F>
void blocking(Backend& b, Backend::Done<T> done, F f) {
  b.run_blocking([&b, done = std::move(done), f = std::move(f)](std::exception_ptr refused) mutable {
    if (refused) return done(std::move(refused));
    done(outcome_of<T>([&] { return f(b); }));
  });
}

}  // namespace dynamodb_cache::detail
