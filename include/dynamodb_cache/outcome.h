// Outcome<T>: what an asynchronous operation hands to its completion callback (the result
// or the error), for every asynchronous call of the library: the DynamoDB client's, the
// backends' and Cache<T>'s. It is the one type the Backend contract (backend.h) and Pending<T>
// (async.h) take from the client's asynchronous API, so it has a header of its own: what they
// declare does not depend on the client. Thread-safety: a value type; an Outcome is handed
// from the completing thread to its receiver, not shared.
#pragma once

#include <exception>
#include <optional>
#include <utility>
#include <variant>

#include "dynamodb_cache/errors.h"

namespace dynamodb_cache::detail {

// The error accessors of Outcome<T> and Outcome<void>, over Derived::error_ref() (the held
// error, or a null one when ok()).
template <class Derived>
class OutcomeErrors {
 public:
  // The error's kind without a rethrow by the caller: std::nullopt when ok(), or when the
  // error is not one of errors.h (an exception a callback of the caller's own threw).
  std::optional<ErrorKind> kind() const noexcept {
    const Error* e = error_as<Error>();
    return e ? std::optional<ErrorKind>(e->kind()) : std::nullopt;
  }
  // Whether the same call may succeed if made again (Error::retryable); false when ok().
  bool retryable() const noexcept {
    const Error* e = error_as<Error>();
    return e && e->retryable();
  }
  // The error as an E (Error or a class of errors.h: ThrottlingError, ResourceNotFoundError...),
  // or nullptr when ok() or the error is not an E. Valid while the Outcome lives and keeps it:
  // the pointer is to the exception object the Outcome owns (a rethrow hands over that object,
  // not a copy, in GCC's and Clang's runtimes: the Itanium C++ ABI). Costs one internal
  // rethrow.
  template <class E>
  const E* error_as() const noexcept {
    const std::exception_ptr& error = static_cast<const Derived&>(*this).error_ref();
    if (!error) return nullptr;
    try {
      std::rethrow_exception(error);
    } catch (const E& e) {
      return &e;
    } catch (...) {
      return nullptr;
    }
  }
};

}  // namespace dynamodb_cache::detail

// The type lives in namespace dynamodb, where it was first declared (its mangled name is part
// of the shared library's ABI); dynamodb_cache::Outcome names the same type.
namespace dynamodb_cache::dynamodb {

// What an asynchronous operation hands to its callback: the result, or the error (an
// exception of errors.h, exactly what the synchronous call would have thrown).
template <class T>
class Outcome : public dynamodb_cache::detail::OutcomeErrors<Outcome<T>> {
 public:
  Outcome(T value) : v_(std::move(value)) {}
  Outcome(std::exception_ptr error) : v_(std::move(error)) {}
  bool ok() const noexcept { return v_.index() == 0; }
  // The result; rethrows the error when there is one.
  T& value() & {
    if (!ok()) std::rethrow_exception(std::get<1>(v_));
    return std::get<0>(v_);
  }
  T&& value() && { return std::move(value()); }
  // nullptr when ok(). The rvalue form moves the error out: hand an error on with it, so that
  // no reference to it stays behind on the completing thread.
  std::exception_ptr error() const& noexcept { return ok() ? nullptr : std::get<1>(v_); }
  std::exception_ptr error() && noexcept { return ok() ? nullptr : std::move(std::get<1>(v_)); }

 private:
  friend class dynamodb_cache::detail::OutcomeErrors<Outcome>;
  const std::exception_ptr& error_ref() const noexcept {
    static const std::exception_ptr none;
    return ok() ? none : std::get<1>(v_);
  }
  std::variant<T, std::exception_ptr> v_;
};

// An operation without a result: success or the error.
template <>
class Outcome<void> : public dynamodb_cache::detail::OutcomeErrors<Outcome<void>> {
 public:
  Outcome() = default;
  Outcome(std::exception_ptr error) : error_(std::move(error)) {}
  bool ok() const noexcept { return !error_; }
  // Rethrows the error when there is one.
  void value() const {
    if (error_) std::rethrow_exception(error_);
  }
  std::exception_ptr error() const& noexcept { return error_; }
  std::exception_ptr error() && noexcept { return std::move(error_); }

 private:
  friend class dynamodb_cache::detail::OutcomeErrors<Outcome>;
  const std::exception_ptr& error_ref() const noexcept { return error_; }
  std::exception_ptr error_;
};

}  // namespace dynamodb_cache::dynamodb

namespace dynamodb_cache {
using dynamodb::Outcome;
}  // namespace dynamodb_cache
