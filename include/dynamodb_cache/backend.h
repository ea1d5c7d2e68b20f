// Byte-level cache backends: in-process memory (sharded LRU), DynamoDB, and a layered
// combination. Cache<T, Codec> (cache.h) puts typed values on top of any of them.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "dynamodb_cache/dynamodb.h"

namespace dynamodb_cache {

using SystemClock = std::chrono::system_clock;
// Time-to-live of an entry; zero means "never expires".
using Ttl = std::chrono::milliseconds;

// A cache hit: the stored bytes and how long they have left to live.
struct Hit {
  std::string value;
  std::optional<Ttl> ttl_left;  // nullopt: never expires
};

// Keys: 1 to 2048 bytes of valid UTF-8 (DynamoDB's limits for a string hash key).
// Throws InvalidArgumentError otherwise.
void validate_key(std::string_view key);

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
  // entries (DynamoDB: after each batch).
  virtual void clear(const std::function<void(uint64_t)>& progress = nullptr) = 0;

  // Result i answers keys[i]. The default calls get_entry per key; DynamoDB batches.
  virtual std::vector<std::optional<Hit>> get_many(const std::vector<std::string>& keys);
  // Stores all pairs with one ttl. The default calls set per pair; DynamoDB batches.
  virtual void set_many(const std::vector<std::pair<std::string, std::string>>& entries, Ttl ttl);

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

  std::size_t size() const;        // live and not-yet-evicted expired entries
  std::size_t bytes() const;       // keys plus values held
  uint64_t evictions() const;      // entries dropped to stay within bounds

  struct Shard;

 private:
  Shard& shard_for(std::string_view key) const;
  MemoryOptions options_;
  std::vector<std::unique_ptr<Shard>> shards_;
};

// ---- layered ----

// Reads layers in order (fastest first); a hit in a lower layer is written back into the
// layers above it with the remaining TTL. Writes and erases go to every layer, lowest
// (most durable) first, so a failure there leaves the upper layers untouched.
// Thread-safe if its layers are.
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

 private:
  void get_from(size_t layer, std::string key, Done<std::optional<Hit>> done);
  void set_from(size_t layer, std::string key, std::string value, Ttl ttl, bool erase, Done<void> done);
  std::vector<std::shared_ptr<Backend>> layers_;
};

// ---- DynamoDB ----

// Item layout, compatible with the Python package dynamodb_cache 0.1.1:
//   key (S, hash key) | value (B) | expire (N, TTL seconds, 0 = never) | update_ts (N, epoch s)
// plus, from this library:
//   expire_at (N, epoch seconds; only when expire > 0) for DynamoDB's native TTL deletion,
//   fmt (N) marking how `value` holds the bytes: 1 = raw, 2 = zstd-compressed.
// An item without `fmt` was written the Python package's way: PynamoDB 5 stores `value` as
// the base64 text of the bytes, so it is decoded once more.
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
};

// Attribute names of the layout above.
namespace attr {
inline constexpr const char* kKey = "key";
inline constexpr const char* kValue = "value";
inline constexpr const char* kExpire = "expire";
inline constexpr const char* kUpdateTs = "update_ts";
inline constexpr const char* kExpireAt = "expire_at";
inline constexpr const char* kFormat = "fmt";
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

  // One GetItem / PutItem / DeleteItem on the client's I/O threads; get_many_async and
  // set_many_async issue one request per key, all at once (bounded by the client's
  // max_in_flight), and complete when the last one has. Pending operations use this
  // backend: it must outlive them, unless it holds the last reference to its client (the
  // destructor then destroys the client first, which completes them with CancelledError).
  ~DynamodbBackend() override;
  void get_entry_async(std::string key, Done<std::optional<Hit>> done) override;
  void set_async(std::string key, std::string value, Ttl ttl, Done<void> done) override;
  void erase_async(std::string key, Done<void> done) override;
  void get_many_async(std::vector<std::string> keys, Done<std::vector<std::optional<Hit>>> done) override;
  void set_many_async(std::vector<std::pair<std::string, std::string>> entries, Ttl ttl, Done<void> done) override;

  // The item `set` would write (exposed for tests and capacity estimates).
  dynamodb::Item make_item(std::string_view key, std::string_view value, Ttl ttl) const;
  // The hit an item stands for, or nullopt when expired. Throws CodecError for an item whose
  // value cannot be decoded.
  std::optional<Hit> read_item(const dynamodb::Item& item) const;

  const DynamodbOptions& options() const { return options_; }
  dynamodb::Client& client() { return *client_; }

 private:
  std::shared_ptr<dynamodb::Client> client_;
  DynamodbOptions options_;
};

}  // namespace dynamodb_cache
