// The item layout of DynamodbBackend (private): cache entry <-> DynamoDB item, the Python
// package's liveness rule (as a test and as condition expressions), compression, sizes.
//
// The layout itself is documented once, above DynamodbOptions in dynamodb_backend.h: the
// Python package's key | value | expire | update_ts, plus our expire_at, fmt, counter and
// full_key; chunked heads and chunks are chunked.h's.
//
// Pure functions: no client, no clock of their own (the time is an argument), no state.
// Thread-safe. Errors: InvalidArgumentError for what a caller asked to write, CodecError for
// an item that cannot be read.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>

#include "cache/chunked.h"
#include "dynamodb/wire.h"
#include "dynamodb_cache/dynamodb_backend.h"

namespace dynamodb_cache::layout {

namespace ddb = dynamodb;

inline constexpr std::size_t kMaxItemBytes = 400 * 1024;  // DynamoDB's item size limit
// `fmt` of a one-item value: how `value` holds the bytes.
enum Format : int { kRaw = 1, kZstd = 2 };
// `fmt` of a get_or_set lease item (get_or_set.cc); reading one as a value is a CodecError.
inline constexpr int kLeaseFormat = 5;
// What a long-key digest's stored key starts with (after the namespace prefix).
inline constexpr std::string_view kDigestMark = "#sha256:";

// zstd at `level`; CodecError when zstd fails.
std::string compress(std::string_view in, int level);
// A zstd frame's bytes. CodecError for a corrupt frame or one declaring more than
// kMaxValueBytes (set() never writes more, so that bounds what one read can allocate).
// `key` names the item in the message.
std::string decompress(std::string_view in, std::string_view key);

// InvalidArgumentError for a value over kMaxValueBytes (decompress refuses the same on reads).
void check_value_size(std::string_view key, std::string_view value);
// True when a value this size (with its key) fits one item whatever the options; larger ones
// may need chunks.
bool fits_one_item(const DynamodbOptions& o, std::string_view key, std::string_view value);

// The primary key {key: S(stored)}.
ddb::Item key_item(std::string stored);

double seconds_of(SystemClock::time_point t);
int64_t whole_seconds_of(SystemClock::time_point t);
// A decimal DynamoDB accepts for a time in seconds (millisecond precision).
std::string decimal(double seconds);

// The attributes a cache read looks at (the entry, its liveness, holds_key), as the names of
// wire::decode_get_item_fields: the item layout of the Python package and ours, without the
// attributes of a chunked head (an answer with those is decoded into an Item).
enum Name : size_t {
  kKeyName,
  kValueName,
  kExpireName,
  kUpdateTsName,
  kExpireAtName,
  kFormatName,
  kCounterName,
  kFullKeyName,
  kFreshUntilName,
  kNames
};
// Inline: a read looks attributes up by name about a dozen times.
inline const std::string& name_of(Name n) {
  static const std::string* const names[kNames] = {&attr::kKey,      &attr::kValue,    &attr::kExpire,
                                                   &attr::kUpdateTs, &attr::kExpireAt, &attr::kFormat,
                                                   &attr::kCounter,  &attr::kFullKey,  &attr::kFreshUntil};
  return *names[n];
}
std::span<const std::string_view> field_names();

// An attribute's type and scalar, as an AttributeValue holds them.
struct Attr {
  ddb::AttrType type;
  std::string_view scalar;
};

// An item as the read functions take it: a dynamodb::Item, or the fields of a GetItem answer
// (wire::GetItemFields of field_names(): the answer's item has no other attributes).
// Views: valid while what they view is.
class ItemView {
 public:
  ItemView(const ddb::Item& item) : item_(&item) {}  // NOLINT: implicit, as Items are read too
  explicit ItemView(ddb::wire::GetItemFields& fields) : fields_(&fields) {}

  // Inline, as name_of: the hot part of every read.
  std::optional<Attr> get(Name n) const {
    if (item_) {
      auto it = item_->find(name_of(n));
      if (it == item_->end()) return std::nullopt;
      return Attr{it->second.type, it->second.scalar};
    }
    const ddb::wire::Field& f = fields_->fields[n];
    if (!f.present) return std::nullopt;
    return Attr{f.type, f.scalar()};
  }
  // The bytes of `value` (present, binary) for a hit: moved out of answer fields (which are
  // then done with), copied from an Item.
  std::string take_value() const;
  // chunked::parse_head of the item.
  std::optional<chunked::Head> head() const;

 private:
  const ddb::Item* item_ = nullptr;
  ddb::wire::GetItemFields* fields_ = nullptr;
};

// An integer attribute (fmt, counter, generation): exactly an int64_t in decimal, nothing else
// ("1.9", "1e0" and out-of-range values are refused with a CodecError naming `key`).
int64_t integer(Attr v, std::string_view name, std::string_view key);
int64_t integer(const ddb::AttributeValue& v, std::string_view name, std::string_view key);

// What the liveness rule reads of an item: the decimal text of `expire`, `expire_at`,
// `update_ts` and `fresh_until`, each nullopt when absent or not a number (the rule reads
// those as absent).
struct LiveInputs {
  std::optional<std::string> expire, expire_at, update_ts, fresh_until;
};

// The liveness of an item. The rule, over LiveInputs (a missing or non-number attribute
// counts as absent; `expire` and `update_ts` absent count as 0):
//   expire == 0                           live, never expires;
//   else, with fresh_until                live while now < fresh_until (get_or_set's
//                                         stale_if_error: expire_at is later, by the grace);
//   else, with expire_at                  live while now < expire_at;
//   else (the Python package's items)     live while now - update_ts < expire.
// For every item this library writes fresh_until, or else expire_at, = update_ts + expire, so the rule is the
// Python package's own (expire == 0 or now - update_ts < expire) for its items and ours; it
// reads expire_at first because DynamoDB expressions have no arithmetic: with it, condition
// expressions (LiveRule) state the rule exactly for any item. An item without update_ts
// (the Python package itself cannot read one) has expired unless its expire_at says not.
struct Liveness {
  bool live = false;
  // Not live, but kept for get_or_set's stale_if_error: fresh_until present and
  // now < expire_at (the grace period).
  bool stale = false;
  std::optional<Ttl> left;  // nullopt: never expires
  LiveInputs seen;          // what the verdict was made of (LiveRule's condition after a read)
};
// `now`: epoch seconds. CodecError for a number attribute that is no number.
Liveness liveness(const ItemView& item, double now);
// The same rule over inputs already read.
Liveness liveness(LiveInputs in, double now);

// The liveness rule as DynamoDB condition expressions, sound for any item: an item a
// condition lets through is live (live()) or not (not_live()) under liveness() at `now`.
// Before any read (`seen` nullopt) they are the one-request forms:
//   live:     #x = 0 OR #s > now OR (no #s AND #t > now)
//   not live: #x <> 0 (a number) AND (#s <= now OR (no #s AND #t <= now))
// (#s fresh_until, #t expire_at), which decide every item with expire_at or fresh_until; any
// other item (the Python package's, an item
// without expire, ill-typed attributes) fails both, and the caller reads it. After a read
// (`seen`: liveness(item).seen), the form matching the verdict on `seen` at `now` is "the
// rule's inputs are still those": exact for every item, whatever its attributes hold.
struct LiveRule {
  double now;
  std::optional<LiveInputs> seen;

  std::string live() const;
  std::string not_live() const;
  // The values `expression` (made of live()/not_live() and the caller's own parts) uses.
  void add_values(ddb::Values& v, std::string_view expression) const;
};

// Sets the ExpressionAttributeNames a request's expressions use (DynamoDB refuses unused
// ones). Placeholders are #k key, #x expire, #u update_ts, #t expire_at, #s fresh_until,
// #c counter, #g generation.
void bind_names(ddb::ConditionalWrite& w, std::string_view expressions);

// True unless `item` holds another key's entry: an item stored under a digest keeps the whole
// key in full_key (a SHA-256 collision, or a tampered item, reads as a miss). Checked before
// an entry is read, so a foreign item's chunks are never fetched.
bool holds_key(const ItemView& item, std::string_view key);

// key, expire, update_ts, (with a TTL, if `expire_at`) expire_at and (when `digest`: `stored`
// is a long-key digest, StoredKeys::is_digest) the user's `key` in full_key: what every item
// has. `stored`: the key the item is stored under. InvalidArgumentError for a bad ttl.
ddb::Item item_head(std::string stored, std::string_view key, bool digest, Ttl ttl,
                    SystemClock::time_point now, bool expire_at);

// get_or_set's stale_if_error on an item made by item_head: fresh_until = update_ts + expire
// and expire_at = fresh_until + `grace` (whole seconds, rounded up). Nothing for an item that
// never expires (expire 0) or a grace of 0.
void add_grace(ddb::Item& item, Ttl grace);

// The one-item form of `value` under `key`: item_head plus `value` and `fmt` as the options
// say (raw, zstd when it saves space, or python_compat's base64 text without fmt). It may be
// larger than kMaxItemBytes (item_bytes tells): detail::build_item then stores it in chunks.
// InvalidArgumentError for a bad ttl or value size.
ddb::Item encode_item(const DynamodbOptions& o, std::string stored, std::string_view key, bool digest,
                      std::string_view value, Ttl ttl, SystemClock::time_point now);
// DynamoDB's size of an item: attribute names (UTF-8) plus values (numbers: the decimal text
// length, a safe upper bound).
std::size_t item_bytes(const ddb::Item& item);

// Reads the stored bytes of the chunked value that `head`, the item stored under `stored_key`,
// names (chunked::read_chunks over a client); may throw chunked::ChunksGone. A reference to a
// callable `std::string(std::string_view stored_key, const chunked::Head&)`, valid while that
// callable is: made per read, so it neither allocates nor copies.
class ChunkReader {
 public:
  template <class F>
  requires(!std::is_same_v<std::remove_cvref_t<F>, ChunkReader>) explicit ChunkReader(F& read)
      : read_(&read),
        call_([](void* r, std::string_view stored_key, const chunked::Head& head) -> std::string {
          return (*static_cast<F*>(r))(stored_key, head);
        }) {}
  std::string operator()(std::string_view stored_key, const chunked::Head& head) const {
    return call_(read_, stored_key, head);
  }

 private:
  void* read_;
  std::string (*call_)(void*, std::string_view, const chunked::Head&);
};

// Thrown by decode_entry without a ChunkReader, for a chunked head: its chunks take more
// requests (the asynchronous get reads them on a helper thread).
struct NeedsChunks {};

// The entry `item` stands for at `now` (epoch seconds): nullopt when expired; a counter as its
// decimal text; a chunked value through `chunks` (null: NeedsChunks, decided after the
// liveness and counter checks); the Python package's base64 text decoded. CodecError for an
// item that is no cache entry or cannot be decoded.
// `stale`: the entry only when the item is stale (Liveness::stale), with ttl_left the grace
// left (to expire_at, rounded down to the millisecond); nullopt
// when it is live or past its grace (get_or_set's read of what it may serve on failure).
std::optional<Hit> decode_entry(const ItemView& item, double now, const ChunkReader* chunks,
                                bool stale = false);

// What a GetItem answer's `body`, asked for `key`, stands for: a miss without an item or for
// another key's item (holds_key), else decode_entry's at now() (asked only then). The items of the usual
// layouts are read without building an Item (wire::decode_get_item_fields), the rest with
// decode_get_item: the same answers and errors either way. Adds the capacity the answer
// reports to `read_units`.
std::optional<Hit> decode_answer(const std::string& body, std::string_view key,
                                 const std::function<SystemClock::time_point()>& now,
                                 const ChunkReader* chunks, std::atomic<double>& read_units);

}  // namespace dynamodb_cache::layout
