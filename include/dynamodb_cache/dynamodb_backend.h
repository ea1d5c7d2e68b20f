// DynamodbBackend: cache entries as items of a DynamoDB table, shared by every process and
// machine that uses the table (and readable by the Python package dynamodb_cache 0.1.1).
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "dynamodb_cache/backend.h"
#include "dynamodb_cache/dynamodb.h"
#include "dynamodb_cache/stats.h"

namespace dynamodb_cache {

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
// get_or_set reserves a key with no item before loading it with a placeholder: an entry of
// no bytes with expire 1, update_ts 0 and no expire_at (expired for every reader, never
// deleted by native TTL under a running load), replaced by the load's store or deleted by an
// erase meanwhile, which then makes that store a no-op.
// An item without `fmt` was written the Python package's way: PynamoDB 5 stores `value` as
// the base64 text of the bytes, so it is decoded once more.
// A counter (increment()) is an item with `counter` (N) in place of `value` and `fmt`, and
// the same key/expire/update_ts/expire_at; the Python package cannot read counters.
// Live while expire == 0 or now - update_ts < expire (the Python rule); DynamoDB returns
// expired items until its lazy TTL sweep, so they are filtered here. Where expire_at is
// present it decides instead (now < expire_at: the same, as expire_at = update_ts + expire
// on every item written here, and a rule DynamoDB condition expressions can state); an
// attribute missing or not a number counts as absent, and absent expire or update_ts as 0 (an
// item another tool wrote with expire but no update_ts has expired). get, contains, add,
// touch and increment all judge an item by this one rule.
// get_or_set with GetOrSetOptions::stale_if_error writes one more attribute:
//   fresh_until (N, epoch seconds) = update_ts + expire, with expire_at = fresh_until + the
//   grace period (whole seconds, rounded up), so native TTL keeps the item through the grace.
// Where fresh_until is present (a number) it decides before expire_at: live while
// now < fresh_until. expire and update_ts are those of any item, so the Python package sees
// it expire on time. Past fresh_until and before expire_at the item is stale: a miss for every
// read but get_or_set's, which may serve it when its loader fails. set() and add() replace the
// whole item and touch() removes fresh_until: each ends the grace of what it rewrites.
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
  // only this namespace with one conditional UpdateItem of GEN, kept in the item
  // "NS:generation" (attribute `generation`, N); no Scan, whatever the namespace holds.
  // GEN is an integer from 0 to 10^18 - 1 and never takes a value the namespace had: a
  // namespace without its generation item (its first use, or the item was deleted) starts at
  // the wall clock's microseconds since the epoch (one UpdateItem creating the item), and
  // clear() moves it to max(GEN + 1, that clock) if GEN is still the one seen (else it reads
  // it and tries again), so a clear that returns has taken effect. Items of older generations
  // are never read again and age out through native TTL (items written with TTL zero stay
  // until a full clear() without namespace). A generation item holding no valid generation
  // makes every operation but clear() a CodecError naming the item; clear() replaces it.
  // Reserved: a key stored outside namespaces as "NS:generation" takes the place of the
  // generation item (the namespace's operations then fail naming it, until that key is
  // erased), and one shaped "NS:GEN:key" for a generation in use is that namespace's item.
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

  // Whether this backend's asynchronous gets may go out merged with others in one
  // BatchGetItem when its client merges GetItems (dynamodb::ClientOptions::batch_gets, which
  // says how); false sends each as a GetItem of its own. Default true.
  bool batch_gets = true;

  // Segments of the parallel Scan a full clear() (no namespace) runs, one thread each:
  // 1 to 64. Default 4; 1 scans sequentially.
  int clear_segments = 4;

  // Publish every write to the invalidation feed that CoherentNearCache (near_cache.h) reads:
  // set, set_many, erase, erase_many, an add that wrote, increment, a touch that re-timed, a
  // namespace clear, a full clear, and get_or_set's stores each make one UpdateItem more (one
  // per feed shard touched, for a batch) before returning to the caller; the asynchronous
  // write forms then run the blocking ones on a helper thread. A write whose invalidation
  // cannot be published throws an Error saying the write was made but not published (near
  // caches may keep the old value until their memory TTL). A write that throws for any other
  // reason, and a set or set_many that fail_open dropped, still try to publish, quietly (it
  // may have landed). Default false. README, "A near cache the fleet can trust", has the
  // feed's layout and cost.
  bool publish_invalidations = false;
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
// Written only by get_or_set with stale_if_error (epoch seconds, update_ts + expire).
inline const std::string kFreshUntil = "fresh_until";
inline const std::string kFormat = "fmt";
inline const std::string kCounter = "counter";
inline const std::string kFullKey = "full_key";
inline const std::string kGeneration = "generation";
// A random token that an exactly-once write (add, increment, get_or_set's store) puts in its
// item, so that after a lost answer a read tells whether that write was applied. Chunked heads
// use their write id (`wid`) instead.
inline const std::string kVersion = "ver";
}  // namespace attr

namespace detail {
struct DynamodbBackendAccess;
}  // namespace detail

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
  // contains_async, touch_async, add_async, increment_async, erase_many_async (Backend's
  // defaults) run the blocking call here: on a helper thread of this backend's own.
  void run_blocking(std::function<void(std::exception_ptr)> work) override;
  using Backend::clear_async, Backend::erase_async, Backend::get_entry_async, Backend::get_many_async,
      Backend::set_async, Backend::set_many_async;  // their Pending forms

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
  void set_many_async(std::vector<std::pair<std::string, std::string>> entries, Ttl ttl,
                      Done<void> done) override;
  // A namespace: one UpdateItem of the generation on the loop. The whole table: the
  // parallel Scan of clear(), its clear_segments segments issued at once on the loop, each
  // page's keys deleted by concurrent BatchWriteItems of 25 before the segment's next page
  // is read (leftovers UnprocessedItems are sent again after backoff by batch_write_all on a
  // helper thread). The first error stops every segment after its current page; `done` is
  // called once, when every segment has stopped, with that error.
  void clear_async(Done<void> done, std::function<void(uint64_t)> progress = nullptr) override;

  const DynamodbOptions& options() const;
  dynamodb::Client& client();

  // The one mapping from a user key to the `key` attribute its item is stored under:
  //   prefix + key                           usually;
  //   prefix + "#sha256:" + hex(SHA-256(key)) with long_keys, for a key too long for
  //                                          DynamoDB or beginning with "#sha256:".
  // `prefix` is key_prefix(): "NS:GEN:" in a namespace, else empty. Validates `key`.
  // Items derived from a key (chunks) take their keys from this result.
  std::string stored_key(std::string_view key, std::string_view prefix) const;
  std::string stored_key(std::string_view key) const;
  // "NS:GEN:" for the namespace's current generation (as namespace_refresh allows), or "".
  std::string key_prefix() const;

 private:
  struct Impl;  // src/cache/dynamodb_backend_impl.h
  // The library's own code and its tests reach Impl through it (src/cache/dynamodb_backend_impl.h).
  friend struct detail::DynamodbBackendAccess;
  std::unique_ptr<Impl> impl_;
};

}  // namespace dynamodb_cache
