// The table side of get_or_set over a DynamodbBackend: what a process saw of a key's item,
// fleet leases, and stores conditional on what was seen. Private to get_or_set.
#pragma once

#include <charconv>
#include <optional>
#include <string>
#include <string_view>

#include "cache/chunked.h"
#include "cache/dynamodb_backend_impl.h"
#include "dynamodb_cache/backend.h"
#include "dynamodb_cache/errors.h"
#include "util/crypto.h"
#include "util/random.h"

namespace dynamodb_cache::detail {

namespace ddb = dynamodb;

// Lease item attributes.
inline constexpr const char* kLeaseToken = "token";
inline constexpr const char* kLeaseUntil = "until";  // epoch milliseconds
// A negative entry's end (GetOrSetOptions::cache_misses_for), epoch milliseconds: an item with
// it stands for "the source has no value" until then (an expired entry of no bytes to others).
inline constexpr const char* kMissUntil = "miss_until";

// One DynamodbBackend's table, as get_or_set with a lease uses it, for one call: the key
// mapping's prefix (namespace generation) is resolved once, at construction, so the value, its
// chunks and its lease are all read and written under one generation. Thread-safe.
class LeaseTable {
 public:
  // `grace`: get_or_set's stale_if_error: stores keep their value that much past the TTL
  // (layout::add_grace), and reads return a stale value (Seen::stale).
  explicit LeaseTable(DynamodbBackend& b, Ttl grace = Ttl(0))
      : backend_(b), client_(b.client()), options_(b.options()), prefix_(b.key_prefix()), grace_(grace) {}

  struct Seen {
    std::optional<ddb::Item> item;  // nullopt: no item
    std::optional<Hit> hit;         // nullopt: missing or expired
    std::optional<Hit> stale;       // with a grace: the stale entry, when not live but within its grace
    int64_t stale_until_ms = 0;     // `stale`'s grace ends then (epoch ms, DynamodbOptions::now)
    bool placeholder = false;       // `item` is the placeholder reserve() wrote
    bool missing = false;           // `item` is a negative entry still in force (store_miss)
  };

  // The item under `key` and what it stands for; a strongly consistent read when asked.
  Seen read(std::string_view key, bool consistent) {
    std::optional<ddb::Item> last;  // a head whose chunks are gone: what a store replaces
    auto seen = chunked::read_retrying([&](bool reread) -> std::optional<Seen> {
      ddb::GetItemRequest r;
      r.table_name = options_.table;
      r.key = layout::key_item(backend_.stored_key(key, prefix_));
      r.consistent_read = consistent || reread || options_.consistent_read;
      auto res = client_.get_item(r);
      if (!res.item) return Seen{};
      // Another key's item under the same digest: a miss, and the item a store is conditioned on.
      if (!detail::holds_key(*res.item, key)) return Seen{std::move(res.item), std::nullopt, std::nullopt};
      if (auto until = res.item->find(kMissUntil); until != res.item->end()) {
        // A negative entry: no value, nothing stale; in force until miss_until (a bad number: not).
        Seen s;
        int64_t ms = 0;
        const std::string& text = until->second.scalar;
        auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), ms);
        s.missing = ec == std::errc() && end == text.data() + text.size() && now_ms() < ms;
        s.item = std::move(res.item);
        return s;
      }
      last = res.item;
      auto hit = detail::read_entry(options_, client_, *res.item);
      std::optional<Hit> stale;
      if (!hit && grace_.count() > 0) stale = detail::read_entry(options_, client_, *res.item, true);
      const int64_t stale_until = stale ? now_ms() + stale->ttl_left->count() : 0;
      Seen s{std::move(res.item), std::move(hit), std::move(stale)};
      s.stale_until_ms = stale_until;
      return s;
    });
    return seen ? std::move(*seen)
                : Seen{std::move(last), std::nullopt, std::nullopt};  // chunks gone three times: a miss
  }

  // A lease on `key` for `ttl`: its token, or nullopt when another holder's has not lapsed.
  // Exactly once: after a lost answer a consistent read finds this token (taken) or not, and
  // then the take is sent again (not by the client: detail::write_once); its condition also
  // accepts a lease with this very token, so it succeeds whether or not the lost one lands.
  // (A lost take that lands after this call has given up, or after the release, leaves a
  // lease nobody holds until it lapses.)
  std::optional<std::string> try_lease(std::string_view key, Ttl ttl) {
    int64_t now = now_ms();
    std::string token = util::random_hex(16, "a lease token");
    ddb::PutItemRequest r;
    r.table_name = options_.table;
    r.item = lease_key(key);
    r.item.emplace(attr::kFormat, ddb::AttributeValue::N(detail::kLeaseFormat));
    r.item.emplace(kLeaseToken, ddb::AttributeValue::S(token));
    r.item.emplace(kLeaseUntil, ddb::AttributeValue::N(now + ttl.count()));
    // Native TTL removes lapsed leases; a second's rounding up keeps it after `until`.
    r.item.emplace(attr::kExpireAt, ddb::AttributeValue::N((now + ttl.count()) / 1000 + 1));
    r.condition_expression = "attribute_not_exists(#k) OR #until < :now OR #t = :t";
    r.names = {{"#k", attr::kKey}, {"#until", kLeaseUntil}, {"#t", kLeaseToken}};
    r.values = {{":now", ddb::AttributeValue::N(now)}, {":t", ddb::AttributeValue::S(token)}};
    r.resend_if_unknown = false;
    for (int round = 1;; ++round) {
      std::exception_ptr unknown;
      switch (detail::write_once([&] { client_.put_item(r); }, unknown)) {
        case detail::Written::kYes:
          return token;
        case detail::Written::kConditionFailed:
          return std::nullopt;
        case detail::Written::kUnknown:
          break;
      }
      // Taken, if the lease read back holds this token; else (not applied, or not yet) again.
      auto held = detail::read_back(unknown, [&] { return read_item(r.item.at(attr::kKey).scalar); });
      auto t = held ? held->find(kLeaseToken) : ddb::Item::iterator();
      if (held && t != held->end() && t->second.scalar == token) return token;
      if (round == detail::kMaxUnknownRounds) std::rethrow_exception(unknown);
    }
  }

  // Gives the lease back if it is still ours. Best effort: on failure it lapses on its own.
  void release(std::string_view key, const std::string& token) noexcept {
    try {
      ddb::DeleteItemRequest r;
      r.table_name = options_.table;
      r.key = lease_key(key);
      r.condition_expression = "#t = :t";
      r.names = {{"#t", kLeaseToken}};
      r.values = {{":t", ddb::AttributeValue::S(token)}};
      client_.delete_item(r);
    } catch (...) {
    }
  }

  // Before loading a key that has no item: writes a placeholder item (an expired entry of no
  // bytes, with a write token) unless an item appeared meanwhile, so that the store after the
  // load (store_unless_changed, conditional on the placeholder's token) becomes a no-op when
  // the key is erased (the placeholder deleted) or set (replaced) while the load runs, in any
  // process: a late load never overwrites a newer truth. Returns what the store is to be
  // conditioned on: the placeholder, or the item found in its place (when it holds a live
  // entry, seen.hit is set and no load is needed). `seen` without an item only; one PutItem.
  // The placeholder has no expire_at, so native TTL never deletes it under a running load;
  // the Python package and every reader of this library read it as expired (update_ts 0).
  // Exactly once, as try_lease: after a lost answer a consistent read tells which item is there.
  Seen reserve(std::string_view key) {
    ddb::PutItemRequest r;
    r.table_name = options_.table;
    r.item = empty_entry(key);
    const std::string& stored = r.item.at(attr::kKey).scalar;
    r.item.erase(attr::kExpireAt);
    detail::add_write_token(r.item);
    r.condition_expression = "attribute_not_exists(#k)";
    r.names = {{"#k", attr::kKey}};
    r.resend_if_unknown = false;
    for (int round = 1;; ++round) {
      std::exception_ptr unknown;
      switch (detail::write_once([&] { client_.put_item(r); }, unknown)) {
        case detail::Written::kYes:
          return reserved(std::move(r.item));
        case detail::Written::kConditionFailed:
          return read(key, true);  // written meanwhile
        case detail::Written::kUnknown:
          break;
      }
      auto there = detail::read_back(unknown, [&] { return read_item(stored); });
      if (detail::same_write(there, r.item)) return reserved(std::move(r.item));
      if (there) return read(key, true);  // another writer's item: condition on it
      if (round == detail::kMaxUnknownRounds) std::rethrow_exception(unknown);
    }
  }

  // What reserve() answers when its placeholder is there.
  static Seen reserved(ddb::Item placeholder) {
    Seen s;
    s.item = std::move(placeholder);
    s.placeholder = true;
    return s;
  }

  // Deletes the placeholder reserve() wrote (`placeholder`, its item) if it is still there, after
  // a load that failed. Best effort: a placeholder left reads as expired and is replaced by the
  // next store.
  void unreserve(const ddb::Item& placeholder) noexcept {
    try {
      ddb::DeleteItemRequest r;
      r.table_name = options_.table;
      r.key = layout::key_item(placeholder.at(attr::kKey).scalar);
      r.condition_expression = "#v = :v";
      r.names = {{"#v", attr::kVersion}};
      r.values = {{":v", placeholder.at(attr::kVersion)}};
      client_.delete_item(r);
    } catch (...) {
    }
  }

  // Stores `value` unless the item changed since `seen` (someone stored a newer value): one
  // conditional PutItem (after the chunks, for a value past one item). Returns whether it wrote.
  // Exactly once (detail::write_once): after a lost answer, a consistent read tells whether the
  // item is this write (written) or not: then the same write again, whose condition settles it
  // (a copy of it delayed in the network fails the same condition once either has landed).
  // Throws UnknownOutcomeError after kMaxUnknownRounds lost answers.
  bool store_unless_changed(std::string_view key, std::string_view value, Ttl ttl, const Seen& seen) {
    return write_unless_changed(
        detail::build_item(options_, backend_.stored_key(key, prefix_), key,
                           detail::DynamodbBackendAccess::impl(backend_).key_map.is_digest(key, prefix_),
                           value, ttl, &client_, grace_),
        key, value, seen);
  }

  // Stores a negative entry for `key` (GetOrSetOptions::cache_misses_for): "the source has no
  // value" for `duration` from now, unless the item changed since `seen`, as
  // store_unless_changed. Others read it as an expired entry of no bytes (reserve()'s layout,
  // with fresh_until 0 so that this library's liveness rule agrees with the Python package's);
  // its expire_at lets native TTL remove it a second after it ends. Returns whether it wrote.
  bool store_miss(std::string_view key, Ttl duration, const Seen& seen) {
    const int64_t until = now_ms() + duration.count();
    ddb::Item item = empty_entry(key);
    item.insert_or_assign(attr::kFreshUntil, ddb::AttributeValue::N(0));
    item.insert_or_assign(attr::kExpireAt, ddb::AttributeValue::N(until / 1000 + 1));
    item.insert_or_assign(kMissUntil, ddb::AttributeValue::N(until));
    return write_unless_changed(std::move(item), key, "", seen);
  }

  // Whether the backend's fail_open turns `e` into a miss or a dropped write.
  bool fails_open(const Error& e) const {
    return options_.fail_open && e.kind() != ErrorKind::kInvalidArgument;
  }
  // Whether a stale value whose grace ends at `until_ms` (Seen::stale_until_ms) is still
  // within it: a load that fails after the grace ended has no stale value to serve.
  bool within_grace(int64_t until_ms) const { return now_ms() < until_ms; }

 private:
  // An entry of no bytes under `key` that every reader takes for expired (update_ts 0; its
  // expire_at, which the caller removes or replaces, is the one of a 1 s TTL).
  ddb::Item empty_entry(std::string_view key) const {
    ddb::Item item =
        detail::build_item(options_, backend_.stored_key(key, prefix_), key,
                           detail::DynamodbBackendAccess::impl(backend_).key_map.is_digest(key, prefix_), "",
                           Ttl(1000), nullptr);
    item.insert_or_assign(attr::kUpdateTs, ddb::AttributeValue::N(0));
    return item;
  }

  // store_unless_changed's write of `item` (holding `value` for `key`, counted as a set and
  // published to the invalidation feed when it lands).
  bool write_unless_changed(ddb::Item item, std::string_view key, std::string_view value, const Seen& seen) {
    ddb::PutItemRequest r;
    r.table_name = options_.table;
    r.item = std::move(item);
    detail::add_write_token(r.item);
    r.resend_if_unknown = false;
    if (!seen.item) {
      r.condition_expression = "attribute_not_exists(#k)";
      r.names["#k"] = attr::kKey;
    } else if (auto wid = seen.item->find(chunked::kWriteId); wid != seen.item->end()) {
      r.condition_expression = "#w = :w";
      r.names["#w"] = chunked::kWriteId;
      r.values[":w"] = wid->second;
    } else if (auto ver = seen.item->find(attr::kVersion); ver != seen.item->end()) {
      r.condition_expression = "#v = :v";
      r.names["#v"] = attr::kVersion;
      r.values[":v"] = ver->second;
    } else {
      // Written by set() or the Python package: known by its write time and TTL (seconds).
      r.condition_expression =
          "attribute_not_exists(#w) AND attribute_not_exists(#v) AND #u = :u AND #e = :e";
      r.names["#w"] = chunked::kWriteId;
      r.names["#v"] = attr::kVersion;
      r.names["#u"] = attr::kUpdateTs;
      r.names["#e"] = attr::kExpire;
      r.values[":u"] = attr_or_zero(*seen.item, attr::kUpdateTs);
      r.values[":e"] = attr_or_zero(*seen.item, attr::kExpire);
    }
    const std::string& stored = r.item.at(attr::kKey).scalar;
    bool lost_before = false;  // an earlier round's answer was lost: this write may be there
    for (int round = 1;; ++round) {
      std::exception_ptr unknown;
      const detail::Written w = detail::write_once([&] { client_.put_item(r); }, unknown);
      if (w == detail::Written::kYes) {
        // After a lost answer the old value's chunks are left (to their TTL, or to a full
        // clear for a value that never expires): the answer naming them may have been lost.
        if (seen.item && !lost_before) chunked::delete_chunks_of(client_, options_.table, *seen.item, true);
        counted_write(key, value);
        return true;
      }
      if (w == detail::Written::kConditionFailed) {
        if (lost_before && detail::same_write(read_item(stored), r.item)) {
          counted_write(key, value);  // a lost round's copy landed first
          return true;
        }
        // Another writer's item. Its chunks are nobody's, unless a lost copy of this write is
        // still on its way (an item erased meanwhile would let it land): then they stay.
        if (!lost_before) chunked::delete_chunks_of(client_, options_.table, r.item, false);
        return false;
      }
      // Lost: its chunks stay whatever follows, since a head delayed in the network may land.
      lost_before = true;
      if (detail::same_write(detail::read_back(unknown, [&] { return read_item(stored); }), r.item)) {
        counted_write(key, value);
        return true;
      }
      if (round == detail::kMaxUnknownRounds) std::rethrow_exception(unknown);
    }
  }

  // The item stored under `stored`, read strongly consistently.
  std::optional<ddb::Item> read_item(const std::string& stored) {
    return client_.get_item(detail::consistent_get(options_.table, stored)).item;
  }

  // A stored value in the backend's stats, as its set() counts one, and published to the
  // invalidation feed when the backend publishes (DynamodbOptions::publish_invalidations).
  void counted_write(std::string_view key, std::string_view value) {
    detail::DynamodbBackendAccess::impl(backend_).published_store(key);
    CacheStats& s = backend_.stats();
    s.sets.fetch_add(1, std::memory_order_relaxed);
    s.bytes_written.fetch_add(value.size(), std::memory_order_relaxed);
  }

  int64_t now_ms() const {
    return std::chrono::duration_cast<std::chrono::milliseconds>(options_.now().time_since_epoch()).count();
  }

  // `STORED#lease`, STORED being the key's stored key (namespace, digest: so a namespace clear
  // orphans old leases with the old values); for stored keys too long for that, their first
  // 1900 bytes, then `#lease:` and the SHA-256 of the whole stored key.
  ddb::Item lease_key(std::string_view key) const {
    const std::string stored = backend_.stored_key(key, prefix_);
    std::string k = stored;
    if (k.size() + 6 <= 2048) {
      k += "#lease";
    } else {
      std::size_t n = 1900;
      while (n > 0 && (static_cast<unsigned char>(stored[n]) & 0xC0) == 0x80) --n;
      k = stored.substr(0, n) + "#lease:" + util::hex(util::sha256(stored));
    }
    ddb::Item item;
    item.emplace(attr::kKey, ddb::AttributeValue::S(std::move(k)));
    return item;
  }

  static ddb::AttributeValue attr_or_zero(const ddb::Item& item, const std::string& name) {
    auto it = item.find(name);
    return it == item.end() ? ddb::AttributeValue::N(0) : it->second;
  }

  DynamodbBackend& backend_;
  ddb::Client& client_;
  const DynamodbOptions& options_;
  const std::string prefix_;
  const Ttl grace_;
};

}  // namespace dynamodb_cache::detail
