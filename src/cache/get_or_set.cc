#include "dynamodb_cache/get_or_set.h"

#include <algorithm>
#include <functional>
#include <random>
#include <thread>

#include "cache/chunked.h"
#include "cache/dynamodb_backend_impl.h"
#include "cache/outcome_of.h"
#include "cache/single_flight.h"
#include "dynamodb_cache/errors.h"
#include "dynamodb_cache/layered_backend.h"
#include "util/crypto.h"
#include "util/random.h"

namespace dynamodb_cache {

namespace ddb = dynamodb;

// ---- single flight ----

namespace detail {

std::string Flight::wait() {
  if (leader_ == std::this_thread::get_id())
    throw InvalidArgumentError(
        "get_or_set: the loader asked for its own key (get_or_set of the same key on the same "
        "cache, from inside its loader): it would wait for itself forever");
  std::unique_lock lock(mu_);
  ++waiters_;
  cv_.wait(lock, [&] { return done_; });
  --waiters_;
  if (error_) std::rethrow_exception(error_);
  return value_;
}

void Flight::finish(std::string value) {
  {
    std::lock_guard lock(mu_);
    value_ = std::move(value);
    done_ = true;
  }
  cv_.notify_all();
}

void Flight::fail(std::exception_ptr error) {
  {
    std::lock_guard lock(mu_);
    error_ = std::move(error);
    done_ = true;
  }
  cv_.notify_all();
}

std::string FlightRegistry::id(const void* owner, std::string_view key) {
  std::string id(reinterpret_cast<const char*>(&owner), sizeof owner);
  id += key;
  return id;
}

FlightRegistry::Shard& FlightRegistry::shard(const std::string& id) {
  return shards_[std::hash<std::string>{}(id) % kShards];
}

FlightRegistry::Joined FlightRegistry::join(const void* owner, std::string_view key) {
  std::string k = id(owner, key);
  Shard& s = shard(k);
  std::lock_guard lock(s.mu);
  auto [it, inserted] = s.flights.try_emplace(std::move(k));
  if (inserted) {
    it->second = std::make_shared<Flight>();
    it->second->leader_ = std::this_thread::get_id();
  }
  return {it->second, inserted};
}

void FlightRegistry::leave(const void* owner, std::string_view key, const std::shared_ptr<Flight>& flight) {
  std::string k = id(owner, key);
  Shard& s = shard(k);
  std::lock_guard lock(s.mu);
  auto it = s.flights.find(k);
  if (it != s.flights.end() && it->second == flight) s.flights.erase(it);
  ++s.finished;
}

uint64_t FlightRegistry::finished(const void* owner, std::string_view key) {
  Shard& s = shard(id(owner, key));
  std::lock_guard lock(s.mu);
  return s.finished;
}

std::size_t FlightRegistry::waiters(const void* owner, std::string_view key) {
  std::shared_ptr<Flight> f;
  {
    std::string k = id(owner, key);
    Shard& s = shard(k);
    std::lock_guard lock(s.mu);
    auto it = s.flights.find(k);
    if (it == s.flights.end()) return 0;
    f = it->second;
  }
  std::lock_guard lock(f->mu_);
  return f->waiters_;
}

FlightRegistry& FlightRegistry::instance() {
  static FlightRegistry registry;
  return registry;
}

}  // namespace detail

namespace {

using detail::FlightRegistry;

bool wants_refresh(const Hit& hit, const GetOrSetOptions& o) {
  return o.refresh_ahead.count() > 0 && hit.ttl_left && *hit.ttl_left < o.refresh_ahead;
}

// ---- the table side: what a process saw, leases, and writes conditional on what it saw ----

// Lease item attributes.
constexpr const char* kLeaseToken = "token";
constexpr const char* kLeaseUntil = "until";  // epoch milliseconds

// One DynamodbBackend's table, as get_or_set with a lease uses it, for one call: the key
// mapping's prefix (namespace generation) is resolved once, at construction, so the value, its
// chunks and its lease are all read and written under one generation. Thread-safe.
class LeaseTable {
 public:
  explicit LeaseTable(DynamodbBackend& b)
      : backend_(b), client_(b.client()), options_(b.options()), prefix_(b.key_prefix()) {}

  struct Seen {
    std::optional<ddb::Item> item;  // nullopt: no item
    std::optional<Hit> hit;         // nullopt: missing or expired
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
      if (!detail::holds_key(*res.item, key)) return Seen{std::move(res.item), std::nullopt};
      last = res.item;
      auto hit = detail::read_entry(options_, client_, *res.item);
      return Seen{std::move(res.item), std::move(hit)};
    });
    return seen ? std::move(*seen) : Seen{std::move(last), std::nullopt};  // chunks gone three times: a miss
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
        case detail::Written::kYes: return token;
        case detail::Written::kConditionFailed: return std::nullopt;
        case detail::Written::kUnknown: break;
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

  // Stores `value` unless the item changed since `seen` (someone stored a newer value): one
  // conditional PutItem (after the chunks, for a value past one item). Returns whether it wrote.
  // Exactly once (detail::write_once): after a lost answer, a consistent read tells whether the
  // item is this write (written) or not: then the same write again, whose condition settles it
  // (a copy of it delayed in the network fails the same condition once either has landed).
  // Throws UnknownOutcomeError after kMaxUnknownRounds lost answers.
  bool store_unless_changed(std::string_view key, std::string_view value, Ttl ttl, const Seen& seen) {
    ddb::PutItemRequest r;
    r.table_name = options_.table;
    r.item = detail::build_item(options_, backend_.stored_key(key, prefix_), key,
                                detail::DynamodbBackendAccess::impl(backend_).key_map.is_digest(key, prefix_),
                                value, ttl, &client_);
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
      r.condition_expression = "attribute_not_exists(#w) AND attribute_not_exists(#v) AND #u = :u AND #e = :e";
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
        counted_write(value);
        return true;
      }
      if (w == detail::Written::kConditionFailed) {
        if (lost_before && detail::same_write(read_item(stored), r.item)) {
          counted_write(value);  // a lost round's copy landed first
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
        counted_write(value);
        return true;
      }
      if (round == detail::kMaxUnknownRounds) std::rethrow_exception(unknown);
    }
  }

  // Whether the backend's fail_open turns `e` into a miss or a dropped write.
  bool fails_open(const Error& e) const { return options_.fail_open && e.kind() != ErrorKind::kInvalidArgument; }

 private:
  // The item stored under `stored`, read strongly consistently.
  std::optional<ddb::Item> read_item(const std::string& stored) {
    return client_.get_item(detail::consistent_get(options_.table, stored)).item;
  }

  // A stored value in the backend's stats, as its set() counts one.
  void counted_write(std::string_view value) {
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
};

// Sleeps before poll n: poll_min doubling up to poll_max, jittered down by up to half.
void poll_sleep(const GetOrSetOptions& o, int n) {
  auto base = std::min<int64_t>(o.poll_max.count(), o.poll_min.count() << std::min(n, 20));
  std::uniform_int_distribution<int64_t> jitter(base / 2, std::max<int64_t>(base / 2, base));
  std::this_thread::sleep_for(Ttl(jitter(util::thread_rng())));
}

// The leader's work with a lease: returns the value to hand to every waiter.
std::string load_with_lease(LeaseTable& table, std::string_view key, const std::function<std::string()>& load, Ttl ttl,
                            const GetOrSetOptions& o, LeaseTable::Seen seen, CacheStats& stats) {
  const bool refresh = seen.hit.has_value();
  bool waited = false;
  auto deadline = std::chrono::steady_clock::now() + o.lease_wait;
  for (int n = 0;; ++n) {
    if (auto token = table.try_lease(key, o.lease)) {
      std::string value;
      try {
        if (!refresh) {
          // Someone may have stored it between our read and our lease.
          seen = table.read(key, true);
          if (seen.hit) {
            table.release(key, *token);
            return std::move(seen.hit->value);
          }
        }
        value = load();
        table.store_unless_changed(key, value, ttl, seen);
      } catch (...) {
        table.release(key, *token);
        throw;
      }
      table.release(key, *token);
      return value;
    }
    // Another process holds the lease. A refresh leaves it to that process.
    if (refresh) return std::move(seen.hit->value);
    if (std::chrono::steady_clock::now() >= deadline) break;
    if (!waited) stats.lease_waits.fetch_add(1, std::memory_order_relaxed);  // once per call
    waited = true;
    poll_sleep(o, n);
    seen = table.read(key, true);
    if (seen.hit) return std::move(seen.hit->value);
  }
  // Waited long enough: load here, without overwriting what the holder may store meanwhile.
  std::string value = load();
  table.store_unless_changed(key, value, ttl, seen);
  return value;
}

void check(const GetOrSetOptions& o, Ttl ttl) {
  if (ttl.count() < 0) throw InvalidArgumentError("ttl must not be negative");
  if (o.lease.count() < 0 || o.lease_wait.count() < 0 || o.refresh_ahead.count() < 0 || o.poll_min.count() <= 0 ||
      o.poll_max < o.poll_min)
    throw InvalidArgumentError("get_or_set: lease, lease_wait and refresh_ahead must not be negative, "
                               "and 0 < poll_min <= poll_max");
}

// Over layers whose lowest is DynamoDB: the layers answer a hit as a get does (a memory copy
// first); otherwise the lowest layer runs get_or_set (single flight, the lease, the store
// conditional on what it read: its own stats count the loads), and the value is copied into
// the layers above.
std::string through_layers(LayeredBackend& layered, std::string_view key,
                           const std::function<std::string()>& load, Ttl ttl, const GetOrSetOptions& o) {
  check(o, ttl);
  if (auto hit = layered.get_entry(key); hit && !wants_refresh(*hit, o)) return std::move(hit->value);
  std::string value = get_or_set(*layered.layers().back(), key, load, ttl, o);
  layered.fill_upper(key, value, ttl);
  return value;
}

}  // namespace

std::string get_or_set(Backend& backend, std::string_view key, const std::function<std::string()>& user_load,
                       Ttl ttl, const GetOrSetOptions& o) {
  if (auto* layered = dynamic_cast<LayeredBackend*>(&backend);
      layered && dynamic_cast<DynamodbBackend*>(layered->layers().back().get()))
    return through_layers(*layered, key, user_load, ttl, o);
  check(o, ttl);
  // Keys are validated by the backend's first read, under its own limit (long_keys).
  CacheStats& stats = backend.stats();
  // Every call of the caller's load, counted with its duration (also when it throws).
  const std::function<std::string()> load = [&] {
    struct Timed {
      CacheStats& s;
      std::chrono::steady_clock::time_point start = std::chrono::steady_clock::now();
      ~Timed() {
        auto us = std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() - start);
        s.loads.fetch_add(1, std::memory_order_relaxed);
        s.load_time_us.fetch_add(static_cast<uint64_t>(us.count()), std::memory_order_relaxed);
      }
    } timed{stats};
    return user_load();
  };
  // Over DynamoDB, the store is conditional on the item the load was decided on (a value set
  // meanwhile, by any process, is never overwritten), and a lease may be taken.
  std::optional<LeaseTable> table;
  const bool leased = o.lease.count() > 0;
  if (auto* d = dynamic_cast<DynamodbBackend*>(&backend)) table.emplace(*d);
  if (leased && !table)
    throw InvalidArgumentError(
        "get_or_set: a lease needs a DynamodbBackend, or a LayeredBackend whose lowest layer "
        "is one");
  auto& registry = FlightRegistry::instance();
  uint64_t finished_before = registry.finished(&backend, key);
  auto read = [&](bool consistent) {
    if (leased) return table->read(key, consistent);
    LeaseTable::Seen s;
    s.hit = backend.get_entry(key);
    return s;
  };
  LeaseTable::Seen seen = read(false);
  if (seen.hit && !wants_refresh(*seen.hit, o)) return std::move(seen.hit->value);

  auto joined = registry.join(&backend, key);
  if (!joined.leader) {
    // A refresh under way elsewhere in the process: the current value will do.
    if (seen.hit) return std::move(seen.hit->value);
    return joined.flight->wait();
  }
  try {
    std::string value;
    if (!seen.hit && registry.finished(&backend, key) != finished_before) seen = read(false);
    if (seen.hit && !wants_refresh(*seen.hit, o)) {
      value = std::move(seen.hit->value);
    } else if (leased) {
      value = load_with_lease(*table, key, load, ttl, o, std::move(seen), stats);
    } else if (table) {
      // The item itself (the fast read above keeps only the entry), read before the load: a
      // set that lands after this read makes the store a no-op. One GetItem per load. With
      // fail_open, a table that fails is answered as before: the load, and a set that fails
      // open (counted and logged).
      std::optional<LeaseTable::Seen> fresh;
      try {
        fresh = table->read(key, false);
      } catch (const Error& e) {
        if (!table->fails_open(e)) throw;
      }
      if (fresh && fresh->hit && !wants_refresh(*fresh->hit, o)) {
        value = std::move(fresh->hit->value);  // stored meanwhile (or refreshed by another process)
      } else {
        value = load();
        if (!fresh) {
          backend.set(key, value, ttl);
        } else {
          try {
            table->store_unless_changed(key, value, ttl, *fresh);
          } catch (const Error& e) {
            if (!table->fails_open(e)) throw;
            stats.count_error(e.kind());
            stats.fail_open.fetch_add(1, std::memory_order_relaxed);
          }
        }
      }
    } else {
      value = load();
      backend.set(key, value, ttl);
    }
    registry.leave(&backend, key, joined.flight);
    joined.flight->finish(value);
    return value;
  } catch (...) {
    registry.leave(&backend, key, joined.flight);
    joined.flight->fail(std::current_exception());
    throw;
  }
}

void get_or_set_async(Backend& backend, std::string key, std::function<std::string()> load, Ttl ttl,
                      GetOrSetOptions options, Backend::Done<std::string> done) {
  backend.run_blocking([&backend, key = std::move(key), load = std::move(load), ttl, options,
                        done = std::move(done)](std::exception_ptr refused) {
    if (refused) return done(std::move(refused));
    done(detail::outcome_of<std::string>([&] { return get_or_set(backend, key, load, ttl, options); }));
  });
}

Pending<std::string> get_or_set_async(Backend& backend, std::string key, std::function<std::string()> load,
                                      Ttl ttl, GetOrSetOptions options) {
  return detail::start_pending<std::string>([&](auto d) {
    get_or_set_async(backend, std::move(key), std::move(load), ttl, options, std::move(d));
  });
}

}  // namespace dynamodb_cache
