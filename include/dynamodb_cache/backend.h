// The byte-level cache contract every backend keeps (Backend), with Hit and Ttl. The
// backends: memory_backend.h (in-process, sharded LRU), dynamodb_backend.h (a DynamoDB table)
// and layered_backend.h (layers in order, e.g. memory over DynamoDB). Cache<T, Codec>
// (cache.h) puts typed values on top of any of them.
#pragma once

#include <chrono>
#include <cmath>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "dynamodb_cache/async.h"
#include "dynamodb_cache/outcome.h"
#include "dynamodb_cache/stats.h"

namespace dynamodb_cache {

using SystemClock = std::chrono::system_clock;
// Time-to-live of an entry; zero means "never expires".
using Ttl = std::chrono::milliseconds;

// A cache hit: the stored bytes and how long they have left to live. A counter
// (increment()) reads as its decimal text, e.g. "42".
struct Hit {
  std::string value;
  std::optional<Ttl> ttl_left;  // nullopt: never expires
  bool counter = false;         // a counter's decimal text (LayeredBackend does not copy it up)
};

// Keys: 1 to max_bytes (default 2048, DynamoDB's limit for a string hash key) bytes of valid
// UTF-8. Throws InvalidArgumentError otherwise.
void validate_key(std::string_view key, std::size_t max_bytes = 2048);

// Throws the InvalidArgumentError of an out-of-range ttl (to_ttl below).
[[noreturn]] void throw_bad_ttl(double seconds);

// The longest TTL a write accepts: 10,000 years (zero means "never expires"). Longer TTLs
// are rejected, never wrapped or clamped on write. An entry stored with a longer TTL (the
// Python package can write an `expire` of 1e16, 1e300 or inf) reads back as live, its
// ttl_left clamped to kMaxTtl.
inline constexpr Ttl kMaxTtl = std::chrono::duration_cast<Ttl>(std::chrono::years(10000));

// Throws InvalidArgumentError unless 0 <= ttl <= kMaxTtl.
void validate_ttl(Ttl ttl);

// Any std::chrono duration as a Ttl, rounded up to whole milliseconds (so a short TTL never
// becomes zero, "never"). Throws InvalidArgumentError for a negative, NaN or too long
// duration instead of overflowing in the conversion.
template <class Rep, class Period>
Ttl to_ttl(std::chrono::duration<Rep, Period> ttl) {
  const double seconds = std::chrono::duration<double>(ttl).count();
  if (!(seconds >= 0)) throw_bad_ttl(seconds);
  if (seconds > std::chrono::duration<double>(kMaxTtl).count()) throw_bad_ttl(seconds);
  if constexpr (std::chrono::treat_as_floating_point_v<Rep>)
    return Ttl(static_cast<Ttl::rep>(std::ceil(seconds * 1000)));
  else
    return std::chrono::ceil<Ttl>(ttl);
}

// TTL jitter (TypedOptions::ttl_jitter in cache.h): a fraction of the TTL, 0 <= jitter < 1.
// Throws InvalidArgumentError for a negative, NaN or >= 1 jitter.
void validate_ttl_jitter(double jitter);

// `ttl` spread by `jitter`: drawn uniformly from [ttl * (1 - jitter), ttl * (1 + jitter)],
// in whole milliseconds, so that entries written together do not expire together. Zero
// ("never expires") stays zero, and a nonzero TTL stays at least 1 ms (never zero, never
// negative) and at most kMaxTtl. jitter == 0 returns `ttl` exactly. REQUIRES: valid jitter
// and ttl. Thread-safe.
Ttl jitter_ttl(Ttl ttl, double jitter);

// set_many's entries under a TTL jitter (TypedOptions::ttl_jitter in cache.h): the last value
// of each key, in groups of at most 25 (a BatchWriteItem's worth: no extra DynamoDB request),
// each group to be written with a TTL drawn for it, so a batch does not expire at once.
// Public because Cache<T> (a header template) calls it.
std::vector<std::vector<std::pair<std::string, std::string>>> ttl_jitter_groups(
    std::vector<std::pair<std::string, std::string>> entries);

// The contract every backend keeps. Thread-safety: every implementation here may be used
// from any number of threads at once.
class Backend {
 public:
  virtual ~Backend() = default;
  // The live entry for `key`, or nullopt (missing or expired). REQUIRES: valid key.
  virtual std::optional<Hit> get_entry(std::string_view key) = 0;
  // Stores `value` under `key`; ttl zero = never expires. Negative ttl: InvalidArgumentError.
  virtual void set(std::string_view key, std::string_view value, Ttl ttl) = 0;
  // Removes `key` if present; absent keys are not an error.
  virtual void erase(std::string_view key) = 0;
  // Removes every entry. `progress`, if given, is called with the running count of erased
  // entries (DynamoDB: after each batch, from the scanning threads, one call at a time;
  // a namespace clear erases nothing itself and does not call it).
  virtual void clear(const std::function<void(uint64_t)>& progress = nullptr) = 0;

  // Result i answers keys[i]. The default calls get_entry per key; DynamoDB batches.
  virtual std::vector<std::optional<Hit>> get_many(const std::vector<std::string>& keys);
  // Stores all pairs with one ttl. The default calls set per pair; DynamoDB batches.
  virtual void set_many(const std::vector<std::pair<std::string, std::string>>& entries, Ttl ttl);
  // Removes every key listed (absent ones are fine). The default calls erase per key;
  // DynamoDB sends BatchWriteItem deletes of 25, retrying leftovers.
  virtual void erase_many(const std::vector<std::string>& keys);
  // True when `key` has a live entry. The default is get_entry; DynamoDB reads the item
  // without its value.
  virtual bool contains(std::string_view key);

  // Atomic operations. Atomic per key within a process for MemoryBackend, across processes
  // and machines for DynamodbBackend (one conditional request each in the common case).
  //
  // Gives a live entry a new TTL counted from now (zero = never) without rewriting its
  // value. Returns false, changing nothing, if `key` has no live entry. DynamodbBackend
  // throws WrongTypeError for a value stored in chunks (past one item; its chunks carry their
  // own expiry, which one request cannot move): set it again with the new TTL.
  virtual bool touch(std::string_view key, Ttl ttl) = 0;
  // Stores `value` only if `key` has no live entry (absent or expired). Returns whether it
  // wrote; of many concurrent add()s of one absent key exactly one returns true.
  virtual bool add(std::string_view key, std::string_view value, Ttl ttl) = 0;
  // Adds `delta` to the counter under `key` and returns the new value. A missing or expired
  // key starts at 0 and lives for `ttl` (zero = never); a live counter keeps its expiry (as
  // Redis INCR). Throws WrongTypeError if `key` holds a value written by set()/add() (the
  // value is left alone), InvalidArgumentError if the result would leave int64_t (nothing
  // is changed).
  virtual int64_t increment(std::string_view key, int64_t delta, Ttl ttl) = 0;
  // increment(key, -delta, ttl). delta == INT64_MIN: InvalidArgumentError.
  int64_t decrement(std::string_view key, int64_t delta, Ttl ttl);

  std::optional<std::string> get(std::string_view key) {
    auto h = get_entry(key);
    if (!h) return std::nullopt;
    return std::move(h->value);
  }

  // ---- asynchronous forms ----
  // Each calls `done` exactly once with the result or the error the synchronous call would
  // give. The defaults run the synchronous call and complete inline, on the calling thread
  // (right for MemoryBackend, which never waits on I/O); DynamodbBackend completes on its
  // client's I/O threads (see dynamodb::Callback in dynamodb.h: do not block in `done`), and
  // LayeredBackend answers upper-layer hits inline, without a loop hop.
  template <class T>
  using Done = std::function<void(Outcome<T>)>;
  virtual void get_entry_async(std::string key, Done<std::optional<Hit>> done);
  virtual void set_async(std::string key, std::string value, Ttl ttl, Done<void> done);
  virtual void erase_async(std::string key, Done<void> done);
  // Result i answers keys[i]. The sub-requests are issued at once, concurrently.
  virtual void get_many_async(std::vector<std::string> keys, Done<std::vector<std::optional<Hit>>> done);
  virtual void set_many_async(std::vector<std::pair<std::string, std::string>> entries, Ttl ttl, Done<void> done);
  // clear(progress), completing `done` once. `progress` as for clear(), but called where the
  // backend completes (DynamoDB: its I/O threads; do not block in it). The default runs
  // clear() inline.
  virtual void clear_async(Done<void> done, std::function<void(uint64_t)> progress = nullptr);
  // The other operations. The defaults run the blocking call through run_blocking():
  // MemoryBackend inline; DynamodbBackend on a helper thread (never the caller's thread nor
  // an I/O thread), completing `done` there; LayeredBackend where its lowest layer runs them.
  virtual void contains_async(std::string key, Done<bool> done);
  virtual void touch_async(std::string key, Ttl ttl, Done<bool> done);
  virtual void add_async(std::string key, std::string value, Ttl ttl, Done<bool> done);
  virtual void increment_async(std::string key, int64_t delta, Ttl ttl, Done<int64_t> done);
  void decrement_async(std::string key, int64_t delta, Ttl ttl, Done<int64_t> done);
  virtual void erase_many_async(std::vector<std::string> keys, Done<void> done);

  // Every asynchronous form again without a callback: a Pending (async.h) to co_await or get().
  // (A backend class that overrides some of the callback forms brings these back into scope
  // with `using Backend::NAME;`.)
  Pending<std::optional<Hit>> get_entry_async(std::string key) {
    return detail::start_pending<std::optional<Hit>>(
        [&](auto d) { get_entry_async(std::move(key), std::move(d)); });
  }
  Pending<void> set_async(std::string key, std::string value, Ttl ttl) {
    return detail::start_pending<void>(
        [&](auto d) { set_async(std::move(key), std::move(value), ttl, std::move(d)); });
  }
  Pending<void> erase_async(std::string key) {
    return detail::start_pending<void>([&](auto d) { erase_async(std::move(key), std::move(d)); });
  }
  Pending<std::vector<std::optional<Hit>>> get_many_async(std::vector<std::string> keys) {
    return detail::start_pending<std::vector<std::optional<Hit>>>(
        [&](auto d) { get_many_async(std::move(keys), std::move(d)); });
  }
  Pending<void> set_many_async(std::vector<std::pair<std::string, std::string>> entries, Ttl ttl) {
    return detail::start_pending<void>(
        [&](auto d) { set_many_async(std::move(entries), ttl, std::move(d)); });
  }
  Pending<void> clear_async() {
    return detail::start_pending<void>([&](auto d) { clear_async(std::move(d)); });
  }
  Pending<bool> contains_async(std::string key) {
    return detail::start_pending<bool>([&](auto d) { contains_async(std::move(key), std::move(d)); });
  }
  Pending<bool> touch_async(std::string key, Ttl ttl) {
    return detail::start_pending<bool>([&](auto d) { touch_async(std::move(key), ttl, std::move(d)); });
  }
  Pending<bool> add_async(std::string key, std::string value, Ttl ttl) {
    return detail::start_pending<bool>(
        [&](auto d) { add_async(std::move(key), std::move(value), ttl, std::move(d)); });
  }
  Pending<int64_t> increment_async(std::string key, int64_t delta, Ttl ttl) {
    return detail::start_pending<int64_t>(
        [&](auto d) { increment_async(std::move(key), delta, ttl, std::move(d)); });
  }
  Pending<int64_t> decrement_async(std::string key, int64_t delta, Ttl ttl) {
    return detail::start_pending<int64_t>(
        [&](auto d) { decrement_async(std::move(key), delta, ttl, std::move(d)); });
  }
  Pending<void> erase_many_async(std::vector<std::string> keys) {
    return detail::start_pending<void>([&](auto d) { erase_many_async(std::move(keys), std::move(d)); });
  }

  // Runs blocking work for an asynchronous form, where this backend runs such work: calls
  // `work` exactly once, with nullptr to run it, or with the error that kept it from running
  // (the backend is being destroyed, no thread to be had). `work` must not throw. The default
  // calls work(nullptr) inline; DynamodbBackend on a helper thread of its own (its
  // destructor waits for it); LayeredBackend as its lowest layer.
  virtual void run_blocking(std::function<void(std::exception_ptr)> work);

  // This backend's statistics (stats.h). DynamodbBackend counts everything there;
  // MemoryBackend and LayeredBackend count hits, misses, sets and erases.
  virtual CacheStats& stats() const { return *stats_; }

 protected:
  std::shared_ptr<CacheStats> stats_ = std::make_shared<CacheStats>();
};

}  // namespace dynamodb_cache

// Code written when the three backends were declared here keeps compiling: including this
// header still brings them. New code includes the header of the backend it uses.
#include "dynamodb_cache/dynamodb_backend.h"
#include "dynamodb_cache/layered_backend.h"
#include "dynamodb_cache/memory_backend.h"
