// The time by which the credential fetches of one call must end (private): the DynamoDB
// client sets it around CredentialsProvider::get_into to its operation deadline, and the
// providers that wait (a credential_process, an HTTP fetch from STS, SSO or a metadata
// service, a wait for another thread's fetch) stop there instead of at their own, longer
// timeouts. Per thread: a fetch made by a provider on the same thread sees it.
#pragma once

#include <chrono>
#include <optional>
#include <string>

namespace dynamodb_cache::aws::detail {

struct FetchDeadline {
  std::chrono::steady_clock::time_point at;
  const char* what;  // names it in messages: "the operation deadline (...)"; static storage
};

inline std::optional<FetchDeadline>& current_fetch_deadline() {
  thread_local std::optional<FetchDeadline> d;
  return d;
}

// Sets this thread's fetch deadline for the object's life (the earlier one when nested).
class ScopedFetchDeadline {
 public:
  ScopedFetchDeadline(std::chrono::steady_clock::time_point at, const char* what)
      : saved_(current_fetch_deadline()) {
    if (!saved_ || at < saved_->at) current_fetch_deadline() = FetchDeadline{at, what};
  }
  ~ScopedFetchDeadline() { current_fetch_deadline() = saved_; }
  ScopedFetchDeadline(const ScopedFetchDeadline&) = delete;
  ScopedFetchDeadline& operator=(const ScopedFetchDeadline&) = delete;

 private:
  std::optional<FetchDeadline> saved_;
};

// How long a wait of `own` may last under this thread's fetch deadline (never negative),
// and whether the deadline is what limits it.
struct BoundedWait {
  std::chrono::milliseconds wait;
  bool by_deadline;
};
inline BoundedWait bounded_wait(std::chrono::milliseconds own) {
  const auto& d = current_fetch_deadline();
  if (!d) return {own, false};
  auto left = std::chrono::duration_cast<std::chrono::milliseconds>(d->at - std::chrono::steady_clock::now());
  if (left < std::chrono::milliseconds(0)) left = std::chrono::milliseconds(0);
  if (left < own) return {left, true};
  return {own, false};
}

// "stopped at the operation deadline (...)" for messages; empty without a deadline.
inline std::string deadline_text() {
  const auto& d = current_fetch_deadline();
  return d ? std::string("stopped at ") + d->what : std::string();
}

}  // namespace dynamodb_cache::aws::detail
