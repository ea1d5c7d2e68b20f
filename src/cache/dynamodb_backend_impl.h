// DynamodbBackend's implementation (private). The public class (dynamodb_backend.h) forwards
// every call to one DynamodbBackend::Impl, which is declared here and defined in four files,
// one concern each:
//
//   dynamodb_backend.cc   construction, the accounting every operation shares (stats, latency,
//                         fail_open), helper threads, and the item functions that need a
//                         client (chunked values): build_item, read_entry, read_answer
//   dynamodb_sync.cc      the blocking operations (get, set, erase, add, touch, increment,
//                         contains, the batches)
//   dynamodb_async.cc     the asynchronous operations, on the client's event loops
//   dynamodb_clear.cc     clear, blocking and asynchronous: a namespace's generation, or the
//                         whole table by parallel Scan
//
// Below it: item_layout.h (item <-> entry, liveness, compression: pure), stored_keys.h (user
// key -> stored key, namespace generations), chunked.h (values past one item), and the
// dynamodb::Client. Nothing below calls back up except through the callbacks it is handed.
//
// Thread-safety: an Impl is used from any number of threads at once, and from the client's
// I/O threads (asynchronous completions) and helper threads; its state is the client's
// (thread-safe), the options (read-only after construction), the stats (relaxed atomics),
// StoredKeys key_map (its own mutex) and Helpers (its mutex).
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <type_traits>
#include <utility>
#include <vector>

#include "cache/batch_entries.h"
#include "cache/item_layout.h"
#include "cache/outcome_of.h"
#include "cache/stored_keys.h"
#include "dynamodb_cache/dynamodb_backend.h"
#include "dynamodb_cache/errors.h"

namespace dynamodb_cache {

namespace detail {

// Error kind of an exception from the library, or nullopt for anything else.
inline std::optional<ErrorKind> kind_of(const std::exception_ptr& e) {
  try {
    std::rethrow_exception(e);
  } catch (const Error& x) {
    return x.kind();
  } catch (...) {
  }
  return std::nullopt;
}

// Runs one conditional write: true if it was made, false if its condition failed (an
// answer, not a fault); any other error propagates.
template <class F>
bool conditional(F&& write) {
  try {
    write();
    return true;
  } catch (const ServiceError& e) {
    if (e.kind() == ErrorKind::kConditionFailed) return false;
    throw;
  }
}

// Exactly-once writes (README, "Exactly-once writes"). Each such write carries a random token in
// its item (attr::kVersion, or a chunked head's write id) and is sent with
// resend_if_unknown = false: when its answer is lost, the client does not send it again, and a
// strongly consistent read of the item tells whether it was applied (the token is there) or
// not. A write applied twice, or reported failed although it was applied, is thus never seen.

// How one such write ended.
enum class Written { kYes, kConditionFailed, kUnknown };

// Runs one exactly-once write; on kUnknown, `unknown` holds its UnknownOutcomeError. Any other
// error propagates.
template <class F>
Written write_once(F&& write, std::exception_ptr& unknown) {
  try {
    write();
    return Written::kYes;
  } catch (const UnknownOutcomeError&) {
    unknown = std::current_exception();
    return Written::kUnknown;
  } catch (const ServiceError& e) {
    if (e.kind() == ErrorKind::kConditionFailed) return Written::kConditionFailed;
    throw;
  }
}

// The strongly consistent `read` of an item after a write whose outcome is unknown (`unknown`,
// its UnknownOutcomeError). When the read fails too, the outcome stays unknown: throws an
// UnknownOutcomeError naming both causes. (Without `unknown`, the read's own error.)
template <class Read>
std::optional<dynamodb::Item> read_back(const std::exception_ptr& unknown, Read&& read) {
  try {
    return read();
  } catch (const Error& e) {
    if (!unknown) throw;
    try {
      std::rethrow_exception(unknown);
    } catch (const UnknownOutcomeError& u) {
      throw UnknownOutcomeError(std::string(u.what()) + "; reading the item back failed too: " + e.what());
    }
  }
}

// Rounds of "outcome unknown, read back, not applied, send again" an exactly-once write makes
// before it reports UnknownOutcomeError: each is an attempt lost on the way.
inline constexpr int kMaxUnknownRounds = 3;

// The request of a strongly consistent read of the item stored under `stored`.
dynamodb::GetItemRequest consistent_get(const std::string& table, const std::string& stored);

// Gives `item` (about to be written) a fresh token, unless it is a chunked head (its write id
// is one).
void add_write_token(dynamodb::Item& item);

// Whether `seen`, read back, is the item `written` wrote: the same token.
bool same_write(const std::optional<dynamodb::Item>& seen, const dynamodb::Item& written);

using layout::kLeaseFormat;
using layout::NeedsChunks;

// The item for `value` under `key`, stored under `stored` (StoredKeys::stored_key; `digest`:
// StoredKeys::is_digest). When it would not fit in one item: with `chunk_to`, the value is
// written as chunks there (chunked.h) and the head is returned; without, InvalidArgumentError.
// `grace`: get_or_set's stale_if_error (layout::add_grace; chunks live as long as the head).
// Throws InvalidArgumentError for a bad ttl or value size.
dynamodb::Item build_item(const DynamodbOptions& o, std::string stored, std::string_view key, bool digest,
                          std::string_view value, Ttl ttl, dynamodb::Client* chunk_to, Ttl grace = Ttl(0));

// layout::holds_key of an Item.
bool holds_key(const dynamodb::Item& item, std::string_view key);

// The hit an item stands for at o.now(), nullopt when expired (DynamodbBackend::read_item),
// reading a chunked value's chunks from `client`; throws chunked::ChunksGone when they are gone.
// `stale`: the stale entry instead (layout::decode_entry's `stale`).
std::optional<Hit> read_entry(const DynamodbOptions& o, dynamodb::Client& client, const dynamodb::Item& item,
                              bool stale = false);

// layout::decode_answer at o.now(), reading a chunked value's chunks from `chunks_from`;
// null: NeedsChunks is thrown instead.
std::optional<Hit> read_answer(const DynamodbOptions& o, dynamodb::Client* chunks_from,
                               const std::string& body, std::string_view key,
                               std::atomic<double>& read_units);

// Completes `done` once all of `left` sub-operations have completed, with the first error
// if any failed (null: all succeeded). Each sub-operation calls one() exactly once, from any
// thread; what they wrote before is visible to `done` (the mutex orders it).
struct Join {
  std::mutex mu;
  size_t left;
  std::exception_ptr error;
  std::function<void(std::exception_ptr)> done;
  void one(std::exception_ptr e);
};
std::shared_ptr<Join> join(size_t n, std::function<void(std::exception_ptr)> done);

// The distinct keys of a batch, in order of first appearance: `first[j]` is the index in
// `keys` of the j-th distinct key, and keys[i] is answered by distinct key `slot[i]`. One
// batch asks each key once (BatchGetItem refuses a key twice).
struct Distinct {
  std::vector<size_t> first;
  std::vector<size_t> slot;
};
Distinct distinct(const std::vector<std::string>& keys);

}  // namespace detail

namespace ddb = dynamodb;

struct DynamodbBackend::Impl {
  // Validates the options (InvalidArgumentError).
  Impl(std::shared_ptr<ddb::Client> client, DynamodbOptions options, std::shared_ptr<CacheStats> stats);
  // Waits for the helper threads, then destroys the client (which completes what is pending
  // with CancelledError) while the options and stats those completions read still exist.
  ~Impl();

  // ---- state ----
  std::shared_ptr<ddb::Client> client;
  DynamodbOptions options;  // validated; `now` set
  std::shared_ptr<CacheStats> stats_owner;
  CacheStats& stats;
  detail::StoredKeys key_map;  // user key -> stored key, the namespace generation
  // The helper threads running (offload): the destructor waits for them.
  struct Helpers {
    std::mutex mu;
    std::condition_variable idle;
    size_t running = 0;
    bool closing = false;  // the destructor began: no new helper threads
  };
  std::shared_ptr<Helpers> helpers = std::make_shared<Helpers>();

  // ---- shared by every operation (dynamodb_backend.cc) ----
  // The client, each call asking for (track_capacity) and counting the consumed capacity.
  struct Metered {
    ddb::Client& c;
    CacheStats& s;
    bool track;
    ddb::ReturnConsumedCapacity rcc() const;
    ddb::GetItemResult get_item(ddb::GetItemRequest r);
    ddb::WriteResult put_item(ddb::PutItemRequest r);
    ddb::WriteResult update_item(ddb::UpdateItemRequest r);
    std::vector<ddb::Item> batch_get_all(const std::string& table, std::vector<ddb::Item> keys,
                                         bool consistent);
    void batch_write_all(const std::string& table, std::vector<ddb::WriteRequest> writes);
    void scan_all(ddb::ScanRequest r, const std::function<bool(ddb::PageResult&)>& on_page);
  };
  Metered wire() { return Metered{*client, stats, options.track_capacity}; }
  ddb::ReturnConsumedCapacity capacity_request() const;
  void add_read_units(const std::optional<ddb::ConsumedCapacity>& c) const;
  void add_write_units(const std::optional<ddb::ConsumedCapacity>& c) const;

  // "NS:GEN:" for the namespace's current generation (as namespace_refresh allows), or "";
  // a consistent GetItem when the generation must be read again.
  std::string key_prefix();
  // The GetItem of a cache read of the item stored under `stored`.
  std::string get_request(std::string_view stored, bool consistent) const;
  // The DeleteItem of an erase of the item stored under `stored` (unconditional: what
  // chunked::delete_replacing takes).
  ddb::DeleteItemRequest erase_request(std::string stored) const;
  // layout::item_head for `key` under the current key_prefix() at options.now(): what
  // touch and increment write.
  ddb::Item head_for(std::string_view key, Ttl ttl, bool expire_at);
  // build_item for `key` under `prefix`.
  ddb::Item item_for(std::string_view key, std::string_view prefix, std::string_view value, Ttl ttl,
                     ddb::Client* chunk_to) const;

  // Accounting. An operation's latency goes to stats.latency[op], from `start`.
  void record_latency(Op op, std::chrono::steady_clock::time_point start) const;
  // Whether `e`, an error of operation `op` on `key`, is answered as a miss instead: only when
  // `may_fail_open` (reads and sets), fail_open is on and `e` is not the caller's
  // InvalidArgumentError. Such an error is counted (its kind and fail_open) and logged here;
  // any other is left for the caller to count as it escapes.
  bool fails_open(const Error& e, const char* op, std::string_view key, bool may_fail_open) const;
  // A read's answer: a hit (and its value bytes) or a miss.
  void count_read(const std::optional<Hit>& hit) const;
  // Entries written, with their value bytes.
  void count_write(uint64_t entries, uint64_t bytes) const;
  // Logs at `level` through options.log; a failing hook is ignored.
  void emit(LogLevel level, const std::string& message) const;

  // One blocking operation: its latency recorded and an escaping error's kind counted.
  template <class F>
  auto measured(Op op, F&& f) -> decltype(f()) {
    struct Timer {
      const Impl& impl;
      Op op;
      std::chrono::steady_clock::time_point start = std::chrono::steady_clock::now();
      ~Timer() { impl.record_latency(op, start); }
    } timer{*this, op};
    try {
      return f();
    } catch (const Error& e) {
      stats.count_error(e.kind());
      throw;
    }
  }
  // A blocking read or set under fail_open: f(), or `miss` when it failed and fails_open.
  template <class T, class F>
  T failing_open(const char* op, std::string_view key, T miss, F&& f) {
    if (!options.fail_open) return f();
    try {
      return f();
    } catch (const Error& e) {
      if (!fails_open(e, op, key, true)) throw;
      return miss;
    }
  }
  // An asynchronous operation's outcome with what measured() and failing_open() do: the
  // latency since `start`, an error's kind counted, and, for reads and sets (`miss` given),
  // an error answered with `miss` when fails_open.
  template <class T>
  Outcome<T> settle(Op op, const char* name, std::string_view key,
                    std::chrono::steady_clock::time_point start, Outcome<T> r,
                    std::optional<Outcome<T>> miss) const {
    record_latency(op, start);
    if (r.ok()) return r;
    bool miss_instead = false;
    try {
      std::rethrow_exception(r.error());
    } catch (const Error& e) {
      miss_instead = fails_open(e, name, key, miss.has_value());
      if (!miss_instead) stats.count_error(e.kind());
    } catch (...) {  // not the library's: not counted, never a miss
    }
    if (!miss_instead) return r;
    return std::move(*miss);
  }

  // Runs the blocking `f` on a helper thread of its own and completes `done` there with its
  // result; CancelledError at once when the backend is being destroyed.
  template <class T, class F>
  void offload(Done<T> done, F f) {
    bool closing = false;
    {
      std::lock_guard lock(helpers->mu);
      closing = helpers->closing;
      if (!closing) ++helpers->running;
    }
    if (closing)
      return done(
          std::make_exception_ptr(CancelledError("DynamoDB backend destroyed with the operation pending")));
    auto finished = [h = helpers] {
      std::lock_guard lock(h->mu);
      if (--h->running == 0) h->idle.notify_all();
    };
    std::exception_ptr failed;
    try {
      std::thread([done, f = std::move(f), finished]() mutable {
        auto out = detail::outcome_of<T>(f);
        done(std::move(out));
        done = nullptr;  // the caller's state goes before the destructor may proceed
        finished();
      }).detach();
      return;
    } catch (...) {  // no thread to be had (std::system_error)
      failed = std::current_exception();
    }
    finished();
    done(std::move(failed));
  }

  // ---- the invalidation feed (DynamodbOptions::publish_invalidations; dynamodb_backend.cc) ----
  // Write units this backend's publishes consumed (also counted in stats).
  std::atomic<double> feed_write_units{0};
  // The feed hash (feed.h) of `key` in this backend's namespace.
  uint64_t feed_hash(std::string_view key) const;
  // Publishes `hashes` to the feed: one UpdateItem per shard they fall in (`every_shard`: each
  // to every shard, for the clear markers), each sent again into the current slot when its
  // answer took longer than feed::kPublishDeadline (feed::kPublishTries in all). Throws an
  // Error saying the write was made but its invalidation not published.
  void publish(const std::vector<uint64_t>& hashes, bool every_shard);
  // publish() when publish_invalidations, its errors ignored: after a write that failed (or
  // was dropped by fail_open) and may have landed, whose own error or silence says more.
  void publish_quietly(const std::vector<uint64_t>& hashes, bool every_shard) noexcept {
    if (!options.publish_invalidations) return;
    try {
      publish(hashes, every_shard);
    } catch (...) {
    }
  }
  // get_or_set's store of `key` (LeaseTable), published when publish_invalidations.
  void published_store(std::string_view key);
  // Runs `write` and, with publish_invalidations, publishes hashes() after it: when it
  // returned (unless it returned false: an add or touch that changed nothing, a set dropped
  // by fail_open, which publish_quietly then), or, best
  // effort, when it threw anything but InvalidArgumentError (it may have landed).
  template <class H, class F>
  auto publishing(H&& hashes, bool every_shard, F&& write) -> decltype(write()) {
    using R = decltype(write());
    if (!options.publish_invalidations) return write();
    auto after_error = [&] { publish_quietly(hashes(), every_shard); };
    try {
      if constexpr (std::is_void_v<R>) {
        write();
      } else {
        R r = write();
        if constexpr (std::is_same_v<R, bool>) {
          if (!r) return r;
        }
        publish(hashes(), every_shard);
        return r;
      }
    } catch (const InvalidArgumentError&) {
      throw;
    } catch (...) {
      after_error();
      throw;
    }
    if constexpr (std::is_void_v<R>) publish(hashes(), every_shard);
  }
  // The feed hashes of `keys`.
  std::vector<uint64_t> feed_hashes(const std::vector<std::string>& keys) const;

  // ---- blocking operations (dynamodb_sync.cc) ----
  // `consistent`: a strongly consistent read whatever options.consistent_read says
  // (CoherentNearCache's fills).
  std::optional<Hit> get_entry(std::string_view key, bool consistent = false);
  void set(std::string_view key, std::string_view value, Ttl ttl);
  void erase(std::string_view key);
  std::vector<std::optional<Hit>> get_many(const std::vector<std::string>& keys, bool consistent = false);
  void set_many(const std::vector<std::pair<std::string, std::string>>& entries, Ttl ttl);
  void erase_many(const std::vector<std::string>& keys);
  bool contains(std::string_view key);
  bool touch(std::string_view key, Ttl ttl);
  bool add(std::string_view key, std::string_view value, Ttl ttl);
  int64_t increment(std::string_view key, int64_t delta, Ttl ttl);
  // get_entry and set without their accounting (stats, fail_open), for a prefix already
  // resolved: what the asynchronous forms offload.
  std::optional<Hit> read_stored(std::string_view key, const std::string& stored, bool consistent = false);
  void store(std::string_view key, std::string_view prefix, std::string_view value, Ttl ttl);
  std::optional<ddb::Item> read_consistent(const std::string& stored);

  // ---- asynchronous operations (dynamodb_async.cc) ----
  void get_entry_async(std::string key, Done<std::optional<Hit>> done);
  void set_async(std::string key, std::string value, Ttl ttl, Done<void> done);
  void erase_async(std::string key, Done<void> done);
  void get_many_async(std::vector<std::string> keys, Done<std::vector<std::optional<Hit>>> done);
  void set_many_async(std::vector<std::pair<std::string, std::string>> entries, Ttl ttl, Done<void> done);
  // One GetItem of an asynchronous read, and its start: the answer goes to op->answered, or
  // to op->chunked for a chunked head; then op is deleted.
  struct AsyncGet;
  static void start_get(std::unique_ptr<AsyncGet> op);
  void fetch_async(std::string key, const std::string& prefix, Done<std::optional<Hit>> done);
  void put_async(std::string key, const std::string& prefix, std::string value, Ttl ttl, Done<void> done);
  // key_prefix() for the asynchronous operations: `then` (callable with an
  // Outcome<std::string>) gets it at once when known, inline and without being wrapped in a
  // std::function, else after the generation's GetItem on the loop. Defined and used in
  // dynamodb_async.cc only.
  template <class Then>
  void prefix_async(Then then);

  // ---- clear (dynamodb_clear.cc) ----
  void clear(const std::function<void(uint64_t)>& progress);
  void clear_async(Done<void> done, std::function<void(uint64_t)> progress);
  void clear_namespace();
  void clear_table(const std::function<void(uint64_t)>& progress);
  // Logs the generation a namespace clear moved to (StoredKeys::moved took it in). Its
  // parameters name no detail:: type: Impl's members are exported from the shared library
  // (it is a public class's member), and tests/consumer checks that no src/ type is.
  void generation_cleared(int64_t gen);
  // What a finished full clear counts and logs.
  void table_cleared(uint64_t erased);
  // A full clear's Scan of one segment (keys only, generation items left out).
  ddb::ScanRequest clear_scan(int segment) const;
  struct ClearRun;
  void clear_segment_async(std::shared_ptr<ClearRun> run, ddb::ScanRequest scan);
};

namespace detail {

// DynamodbBackend's Impl, for the library's own code (friend of DynamodbBackend).
struct DynamodbBackendAccess {
  static DynamodbBackend::Impl& impl(const DynamodbBackend& b) { return *b.impl_; }
};

// The item b.set(key, value, ttl) would write (tests; not public: the layout is the README's).
dynamodb::Item make_item(const DynamodbBackend& b, std::string_view key, std::string_view value, Ttl ttl);
// The hit an item of b's table stands for, or nullopt when expired. Throws CodecError for an
// item whose value cannot be decoded.
std::optional<Hit> read_item(const DynamodbBackend& b, const dynamodb::Item& item);

}  // namespace detail

}  // namespace dynamodb_cache
