// Byte-level cache backends: in-process memory (sharded LRU), DynamoDB, and a layered
// combination. Cache<T, Codec> (cache.h) puts typed values on top of any of them.
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

#include "dynamodb_cache/dynamodb.h"
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
  // client's I/O threads (see dynamodb::Callback: do not block in `done`), and
  // LayeredBackend answers upper-layer hits inline, without a loop hop.
  template <class T>
  using Done = std::function<void(dynamodb::Outcome<T>)>;
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

  // This backend's statistics (stats.h). DynamodbBackend counts everything there;
  // MemoryBackend and LayeredBackend count hits, misses, sets and erases.
  virtual CacheStats& stats() const { return *stats_; }

 protected:
  std::shared_ptr<CacheStats> stats_ = std::make_shared<CacheStats>();
};

// ---- memory ----

struct MemoryOptions {
  // Bounds over all shards; the least recently used entries go first. Each shard holds an
  // equal share. Defaults: 100,000 entries, 64 MiB of keys plus values.
  std::size_t max_entries = 100000;
  std::size_t max_bytes = 64u << 20;
  // Number of independently locked shards (rounded up to a power of two). Default 16.
  std::size_t shards = 16;
  // Clock for expiry; default steady_clock (immune to wall-clock jumps).
  std::function<std::chrono::steady_clock::time_point()> now;
};

// An in-process LRU cache with per-entry TTL, one mutex per shard. Per instance: two
// MemoryBackends share nothing. Thread-safe.
class MemoryBackend final : public Backend {
 public:
  explicit MemoryBackend(MemoryOptions options = {});
  ~MemoryBackend() override;
  std::optional<Hit> get_entry(std::string_view key) override;
  void set(std::string_view key, std::string_view value, Ttl ttl) override;
  void erase(std::string_view key) override;
  void clear(const std::function<void(uint64_t)>& progress = nullptr) override;
  bool contains(std::string_view key) override;
  bool touch(std::string_view key, Ttl ttl) override;
  bool add(std::string_view key, std::string_view value, Ttl ttl) override;
  int64_t increment(std::string_view key, int64_t delta, Ttl ttl) override;

  // Hits, misses, sets and erases are counted per shard under its lock (no shared counter
  // on the hot path) and summed into the CacheStats on each call.
  CacheStats& stats() const override;

  std::size_t size() const;        // live and not-yet-evicted expired entries
  std::size_t bytes() const;       // keys plus values held
  uint64_t evictions() const;      // entries dropped to stay within bounds

  struct Shard;

 private:
  Shard& shard_for(std::string_view key) const;
  // Runs f(shard, live entry or nullptr, expiry for ttl) under the key's shard lock: the
  // frame of touch, add and increment.
  template <class F>
  auto locked(std::string_view key, Ttl ttl, F&& f);
  MemoryOptions options_;
  std::vector<std::unique_ptr<Shard>> shards_;
};

// ---- layered ----

// Reads layers in order (fastest first); a hit in a lower layer is written back into the
// layers above it with the remaining TTL. Writes and erases go to every layer, lowest
// (most durable) first, so a failure there leaves the upper layers untouched.
// Atomic operations are decided by the lowest layer alone (the one shared between
// processes): add() then writes the value into the layers above; touch() re-times the
// layers above, or erases the key from them when the lowest layer had no live entry;
// increment() erases the key from the layers above. A counter read from a lower layer is
// not copied up either: upper layers never hold a counter that other processes may
// change. Thread-safe if its layers are.
class LayeredBackend final : public Backend {
 public:
  // REQUIRES: at least one layer, none null.
  explicit LayeredBackend(std::vector<std::shared_ptr<Backend>> layers);
  std::optional<Hit> get_entry(std::string_view key) override;
  void set(std::string_view key, std::string_view value, Ttl ttl) override;
  void erase(std::string_view key) override;
  void clear(const std::function<void(uint64_t)>& progress = nullptr) override;
  std::vector<std::optional<Hit>> get_many(const std::vector<std::string>& keys) override;
  void set_many(const std::vector<std::pair<std::string, std::string>>& entries, Ttl ttl) override;
  // Upper layers answer inline; a miss goes down, and a lower hit is written back above.
  void get_entry_async(std::string key, Done<std::optional<Hit>> done) override;
  // Lowest layer first, as set(): the upper ones only once it succeeded.
  void set_async(std::string key, std::string value, Ttl ttl, Done<void> done) override;
  void erase_async(std::string key, Done<void> done) override;
  // Layer by layer as get_many (each layer's get_many_async), and lowest first as set_many.
  void get_many_async(std::vector<std::string> keys, Done<std::vector<std::optional<Hit>>> done) override;
  void set_many_async(std::vector<std::pair<std::string, std::string>> entries, Ttl ttl, Done<void> done) override;
  // Lowest layer first, as clear(); `progress` goes to each layer.
  void clear_async(Done<void> done, std::function<void(uint64_t)> progress = nullptr) override;
  void erase_many(const std::vector<std::string>& keys) override;
  bool contains(std::string_view key) override;
  bool touch(std::string_view key, Ttl ttl) override;
  bool add(std::string_view key, std::string_view value, Ttl ttl) override;
  int64_t increment(std::string_view key, int64_t delta, Ttl ttl) override;

 private:
  void get_from(size_t layer, std::string key, Done<std::optional<Hit>> done);
  void set_from(size_t layer, std::string key, std::string value, Ttl ttl, bool erase, Done<void> done);
  void clear_from(size_t layer, Done<void> done, std::function<void(uint64_t)> progress);
  struct Many;
  void take_layer(size_t layer, Many& m, std::vector<std::optional<Hit>>& got);
  void many_from(size_t layer, std::shared_ptr<Many> m, Done<std::vector<std::optional<Hit>>> done);
  void set_many_from(size_t layer, std::shared_ptr<const std::vector<std::pair<std::string, std::string>>> entries,
                     Ttl ttl, Done<void> done);
  Backend& lowest() { return *layers_.back(); }
  std::vector<std::shared_ptr<Backend>> layers_;
};

// ---- DynamoDB ----

// The largest value DynamodbBackend stores or reads back: 64 MiB of the caller's bytes,
// before compression. set() rejects longer values (InvalidArgumentError); a stored value
// whose compressed frame declares more is a CodecError.
inline constexpr std::size_t kMaxValueBytes = std::size_t{64} << 20;

// Item layout, compatible with the Python package dynamodb_cache 0.1.1:
//   key (S, hash key) | value (B) | expire (N, TTL seconds, 0 = never) | update_ts (N, epoch s)
// plus, from this library:
//   expire_at (N, epoch seconds; only when expire > 0) for DynamoDB's native TTL deletion,
//   fmt (N) marking how `value` holds the bytes: 1 = raw, 2 = zstd-compressed; values past
//   one item are chunked (src/cache/chunked.h: fmt 3 head, 4 chunk; 5 a get_or_set lease).
// An item without `fmt` was written the Python package's way: PynamoDB 5 stores `value` as
// the base64 text of the bytes, so it is decoded once more.
// A counter (increment()) is an item with `counter` (N) in place of `value` and `fmt`, and
// the same key/expire/update_ts/expire_at; the Python package cannot read counters.
// Live while expire == 0 or now - update_ts < expire (the Python rule); DynamoDB returns
// expired items until its lazy TTL sweep, so they are filtered here.
struct DynamodbOptions {
  std::string table = "dynamodb-cache";
  // Strongly consistent reads (2x the read units). Default false, as the Python package.
  bool consistent_read = false;
  // Write items the Python package can read: value as base64 text, no fmt, no compression.
  bool python_compat = false;
  // Values at least this long are zstd-compressed when that saves space; 0 turns it off.
  // Default 1024 bytes: smaller values rarely save a whole write unit.
  std::size_t compress_min_bytes = 1024;
  int compress_level = 3;
  // Wall clock for update_ts and liveness; default system_clock.
  std::function<SystemClock::time_point()> now;

  // Namespace: empty (the default) for none. A name of 1-64 characters [A-Za-z0-9_.-].
  // Items are then stored under "NS:GEN:key" (readable in the table), and clear() clears
  // only this namespace with one UpdateItem that increments GEN, kept in the item
  // "NS:generation" (attribute `generation`, N); no Scan, whatever the namespace holds.
  // Items of older generations are never read again and age out through native TTL
  // (items written with TTL zero stay until a full clear() without namespace).
  std::string key_namespace;
  // How long a process uses the generation it last read before reading it again (one
  // consistent GetItem). A clear() made by this backend is seen at once; one made by
  // another process is seen within this time, during which this process still reads and
  // writes the old generation. Zero: read it before every operation (a second request per
  // operation, clears seen at once everywhere). Default 1 s.
  std::chrono::milliseconds namespace_refresh{1000};

  // Keys longer than DynamoDB's 2048 bytes (counting the namespace prefix), up to
  // kMaxLongKeyBytes. Off (the default): such keys are an InvalidArgumentError. On: they
  // are stored under "[NS:GEN:]#sha256:" + the hex SHA-256 of the key, with the whole key in
  // the attribute `full_key` (S), which every read compares with the key asked for (a
  // mismatch is a miss). Keys that begin with "#sha256:" are stored that way at any
  // length, so no short key can take a digest's place.
  bool long_keys = false;

  // Fail open: a read that fails (any error but InvalidArgumentError) is a miss, and a
  // failed set()/set_many() is dropped, each counted in stats().fail_open and reported to
  // `log` at warning level, instead of throwing. add/touch/increment, erases and clears still
  // throw: no made-up answer would be safe there. Default false.
  bool fail_open = false;
  // The logging hook (stats.h): fail-open events (warning), clears (info). Default none.
  LogHook log;
  // Ask DynamoDB for the capacity each request consumed (ReturnConsumedCapacity TOTAL),
  // summed into stats(). Default true.
  bool track_capacity = true;
  // Where to count; null (the default): a CacheStats of this backend's own. Sharing one
  // between backends sums them.
  std::shared_ptr<CacheStats> stats;

  // Segments of the parallel Scan a full clear() (no namespace) runs, one thread each:
  // 1 to 64. Default 4; 1 scans sequentially.
  int clear_segments = 4;
};

// The longest key long_keys accepts: 64 KiB (the item holds it in full_key).
inline constexpr std::size_t kMaxLongKeyBytes = 64 * 1024;

// Attribute names of the layout above.
namespace attr {
inline const std::string kKey = "key";
inline const std::string kValue = "value";
inline const std::string kExpire = "expire";
inline const std::string kUpdateTs = "update_ts";
inline const std::string kExpireAt = "expire_at";
inline const std::string kFormat = "fmt";
inline const std::string kCounter = "counter";
inline const std::string kFullKey = "full_key";
inline const std::string kGeneration = "generation";
}  // namespace attr

// Thread-safe (the client is).
class DynamodbBackend final : public Backend {
 public:
  DynamodbBackend(std::shared_ptr<dynamodb::Client> client, DynamodbOptions options = {});
  std::optional<Hit> get_entry(std::string_view key) override;
  void set(std::string_view key, std::string_view value, Ttl ttl) override;
  void erase(std::string_view key) override;
  void clear(const std::function<void(uint64_t)>& progress = nullptr) override;
  std::vector<std::optional<Hit>> get_many(const std::vector<std::string>& keys) override;
  void set_many(const std::vector<std::pair<std::string, std::string>>& entries, Ttl ttl) override;
  void erase_many(const std::vector<std::string>& keys) override;
  bool contains(std::string_view key) override;
  bool touch(std::string_view key, Ttl ttl) override;
  bool add(std::string_view key, std::string_view value, Ttl ttl) override;
  int64_t increment(std::string_view key, int64_t delta, Ttl ttl) override;

  // One GetItem / PutItem / DeleteItem on the client's I/O threads, accounted in stats()
  // and under fail_open as the synchronous calls are (a namespace generation to re-read is
  // one GetItem more, on the loop too). What takes several dependent round trips (a value in
  // chunks, replacing a never-expiring chunked value) runs the synchronous code on a helper
  // thread instead, which then calls `done`. get_many_async and set_many_async check every
  // key first, as get_many and set_many do, then issue one request per distinct key, all at
  // once (bounded by the client's max_in_flight), and complete when the last one has; each
  // counts in stats() as one get_many / set_many.
  // Pending operations use this backend: it must outlive them, unless it holds the last
  // reference to its client (the destructor waits for helper threads, then destroys the
  // client, which completes the rest with CancelledError). Never destroy it inside `done`.
  ~DynamodbBackend() override;
  void get_entry_async(std::string key, Done<std::optional<Hit>> done) override;
  void set_async(std::string key, std::string value, Ttl ttl, Done<void> done) override;
  void erase_async(std::string key, Done<void> done) override;
  void get_many_async(std::vector<std::string> keys, Done<std::vector<std::optional<Hit>>> done) override;
  void set_many_async(std::vector<std::pair<std::string, std::string>> entries, Ttl ttl, Done<void> done) override;
  // A namespace: one UpdateItem of the generation on the loop. The whole table: the
  // parallel Scan of clear(), its clear_segments segments issued at once on the loop, each
  // page's keys deleted by concurrent BatchWriteItems of 25 before the segment's next page
  // is read (leftovers UnprocessedItems are sent again after backoff by batch_write_all on a
  // helper thread). The first error stops every segment after its current page; `done` is
  // called once, when every segment has stopped, with that error.
  void clear_async(Done<void> done, std::function<void(uint64_t)> progress = nullptr) override;

  // The item `set` would write (exposed for tests and capacity estimates).
  dynamodb::Item make_item(std::string_view key, std::string_view value, Ttl ttl) const;
  // The hit an item stands for, or nullopt when expired. Throws CodecError for an item whose
  // value cannot be decoded.
  std::optional<Hit> read_item(const dynamodb::Item& item) const;

  const DynamodbOptions& options() const { return options_; }
  dynamodb::Client& client() { return *client_; }

  // The one mapping from a user key to the `key` attribute its item is stored under:
  //   prefix + key                           usually;
  //   prefix + "#sha256:" + hex(SHA-256(key)) with long_keys, for a key too long for
  //                                          DynamoDB or beginning with "#sha256:".
  // `prefix` is key_prefix(): "NS:GEN:" in a namespace, else empty. Validates `key`.
  // Items derived from a key (chunks) take their keys from this result.
  std::string stored_key(std::string_view key, std::string_view prefix) const;
  std::string stored_key(std::string_view key) const { return stored_key(key, key_prefix()); }
  // "NS:GEN:" for the namespace's current generation (as namespace_refresh allows), or "".
  std::string key_prefix() const;
  // True when stored_key(key, prefix) gave a digest (the item then holds full_key).
  bool is_digest(std::string_view key, std::string_view prefix) const;

 private:
  // key_prefix() when it needs no request (no namespace, or a generation read less than
  // namespace_refresh ago).
  std::optional<std::string> known_prefix() const;
  // Runs the synchronous `f` on a helper thread of its own and completes `done` there.
  template <class T, class F>
  void offload(Done<T> done, F f);
  template <class T>
  dynamodb::Outcome<T> settle(Op op, const char* name, std::string_view key,
                              std::chrono::steady_clock::time_point start, dynamodb::Outcome<T> r,
                              std::optional<dynamodb::Outcome<T>> miss) const;
  std::optional<dynamodb::Item> read_consistent(const std::string& stored) const;
  // get_entry, set and erase without their accounting (stats, fail_open), for a prefix
  // already resolved: what the asynchronous forms run on the loop or offload.
  std::optional<Hit> read_stored(std::string_view key, const std::string& stored);
  void store(std::string_view key, std::string_view prefix, std::string_view value, Ttl ttl);
  void fetch_async(std::string key, const std::string& prefix, Done<std::optional<Hit>> done);
  void put_async(std::string key, const std::string& prefix, std::string value, Ttl ttl, Done<void> done);
  // The namespace's generation item key, "NS:generation".
  std::string generation_key() const;
  // key_prefix()'s consistent read of the generation, and what its answer (read at `asked`)
  // tells this process: the prefix.
  dynamodb::GetItemRequest generation_request() const;
  std::string generation_read(const std::optional<dynamodb::Item>& item,
                              std::chrono::steady_clock::time_point asked) const;
  // key_prefix() for the asynchronous operations: `then` (callable with a
  // dynamodb::Outcome<std::string>) gets it at once when known, inline and without being
  // wrapped in a std::function, else after the generation's GetItem on the loop. Defined and
  // used in dynamodb_backend.cc only.
  template <class Then>
  void prefix_async(Then then);
  // clear() of a namespace: the UpdateItem that increments the generation, and what its
  // answer (the new generation) tells this process.
  dynamodb::UpdateItemRequest next_generation() const;
  void generation_cleared(const std::optional<dynamodb::Item>& attributes);
  // A full clear's Scan of one segment (keys only, generation items left out).
  dynamodb::ScanRequest clear_scan(int segment) const;
  struct ClearRun;
  void clear_segment_async(std::shared_ptr<ClearRun> run, dynamodb::ScanRequest scan);
  void clear_namespace();
  void clear_table(const std::function<void(uint64_t)>& progress);

  // The client, each call asking for (track_capacity) and counting consumed capacity.
  struct Metered;
  Metered wire() const;

  struct Generation;
  struct Helpers;
  std::shared_ptr<dynamodb::Client> client_;
  DynamodbOptions options_;
  std::shared_ptr<Generation> generation_;
  std::shared_ptr<Helpers> helpers_;
};

}  // namespace dynamodb_cache
