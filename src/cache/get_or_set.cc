#include "dynamodb_cache/get_or_set.h"

#include <algorithm>
#include <functional>
#include <random>
#include <thread>

#include "cache/dynamodb_backend_impl.h"
#include "cache/lease_table.h"
#include "cache/outcome_of.h"
#include "cache/single_flight.h"
#include "dynamodb_cache/errors.h"
#include "dynamodb_cache/layered_backend.h"
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
using detail::LeaseTable;

bool wants_refresh(const Hit& hit, const GetOrSetOptions& o) {
  return o.refresh_ahead.count() > 0 && hit.ttl_left && *hit.ttl_left < o.refresh_ahead;
}

// Sleeps before poll n: poll_min doubling up to poll_max, jittered down by up to half.
void poll_sleep(const GetOrSetOptions& o, int n) {
  auto base = std::min<int64_t>(o.poll_max.count(), o.poll_min.count() << std::min(n, 20));
  std::uniform_int_distribution<int64_t> jitter(base / 2, std::max<int64_t>(base / 2, base));
  std::this_thread::sleep_for(Ttl(jitter(util::thread_rng())));
}

// Loads `key` and stores the value unless the item changed since `seen` (store_unless_changed);
// a key without an item is first reserved (LeaseTable::reserve), so that an erase or set during
// the load makes the store a no-op. Returns the value for the callers; `settled`: whether the
// table holds it now (stored, or found stored meanwhile). With `fail_open` (the backend's
// fail_open, counted in its stats), a table error around the load (not the loader's) is
// counted and the value returned unstored.
std::string load_and_store(LeaseTable& table, std::string_view key, const std::function<std::string()>& load,
                           Ttl ttl, LeaseTable::Seen seen, bool& settled, CacheStats* fail_open = nullptr) {
  auto failed_open = [&](const Error& e) {
    if (!fail_open || !table.fails_open(e)) return false;
    fail_open->count_error(e.kind());
    fail_open->fail_open.fetch_add(1, std::memory_order_relaxed);
    settled = false;
    return true;
  };
  if (!seen.item) {
    try {
      seen = table.reserve(key);
    } catch (const Error& e) {
      if (!failed_open(e)) throw;
      return load();
    }
    if (seen.hit) {
      settled = true;
      return std::move(seen.hit->value);
    }
  }
  std::string value;
  try {
    value = load();
  } catch (...) {
    if (seen.placeholder) table.unreserve(*seen.item);
    throw;
  }
  try {
    settled = table.store_unless_changed(key, value, ttl, seen);
  } catch (const Error& e) {
    if (!failed_open(e)) throw;
  }
  return value;
}

// The leader's work with a lease: returns the value to hand to every waiter.
std::string load_with_lease(LeaseTable& table, std::string_view key, const std::function<std::string()>& load,
                            Ttl ttl, const GetOrSetOptions& o, LeaseTable::Seen seen, CacheStats& stats,
                            bool& settled) {
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
            settled = true;
            return std::move(seen.hit->value);
          }
        }
        value = load_and_store(table, key, load, ttl, std::move(seen), settled);
      } catch (...) {
        table.release(key, *token);
        throw;
      }
      table.release(key, *token);
      return value;
    }
    // Another process holds the lease. A refresh leaves it to that process.
    if (refresh) {
      settled = true;
      return std::move(seen.hit->value);
    }
    if (std::chrono::steady_clock::now() >= deadline) break;
    if (!waited) stats.lease_waits.fetch_add(1, std::memory_order_relaxed);  // once per call
    waited = true;
    poll_sleep(o, n);
    seen = table.read(key, true);
    if (seen.hit) {
      settled = true;
      return std::move(seen.hit->value);
    }
  }
  // Waited long enough: load here, without overwriting what the holder may store meanwhile.
  return load_and_store(table, key, load, ttl, std::move(seen), settled);
}

void check(const GetOrSetOptions& o, Ttl ttl) {
  if (ttl.count() < 0) throw InvalidArgumentError("ttl must not be negative");
  if (o.lease.count() < 0 || o.lease_wait.count() < 0 || o.refresh_ahead.count() < 0 || o.poll_min.count() <= 0 ||
      o.poll_max < o.poll_min)
    throw InvalidArgumentError("get_or_set: lease, lease_wait and refresh_ahead must not be negative, "
                               "and 0 < poll_min <= poll_max");
}

std::string get_or_set_settled(Backend& backend, std::string_view key,
                               const std::function<std::string()>& user_load, Ttl ttl,
                               const GetOrSetOptions& o, bool& settled);

// Over layers whose lowest is DynamoDB: the layers answer a hit as a get does (a memory copy
// first); otherwise the lowest layer runs get_or_set (single flight, the lease, the store
// conditional on what it read: its own stats count the loads), and the value is copied into
// the layers above when the table holds it (a load whose store was a no-op, because the key
// was erased or set meanwhile, is not: the next get reads the table's truth).
std::string through_layers(LayeredBackend& layered, std::string_view key,
                           const std::function<std::string()>& load, Ttl ttl, const GetOrSetOptions& o) {
  check(o, ttl);
  if (auto hit = layered.get_entry(key); hit && !wants_refresh(*hit, o)) return std::move(hit->value);
  bool settled = false;
  std::string value = get_or_set_settled(*layered.layers().back(), key, load, ttl, o, settled);
  if (settled) layered.fill_upper(key, value, ttl);
  return value;
}

// get_or_set, telling in `settled` whether the backend holds the value returned (a hit, a
// store that happened; false for a waiter of another caller's load, which cannot tell).
std::string get_or_set_settled(Backend& backend, std::string_view key,
                               const std::function<std::string()>& user_load, Ttl ttl,
                               const GetOrSetOptions& o, bool& settled) {
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
  settled = true;
  if (seen.hit && !wants_refresh(*seen.hit, o)) return std::move(seen.hit->value);

  auto joined = registry.join(&backend, key);
  if (!joined.leader) {
    // A refresh under way elsewhere in the process: the current value will do.
    if (seen.hit) return std::move(seen.hit->value);
    settled = false;
    return joined.flight->wait();
  }
  try {
    std::string value;
    if (!seen.hit && registry.finished(&backend, key) != finished_before) seen = read(false);
    if (seen.hit && !wants_refresh(*seen.hit, o)) {
      value = std::move(seen.hit->value);
    } else if (leased) {
      value = load_with_lease(*table, key, load, ttl, o, std::move(seen), stats, settled);
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
      } else if (!fresh) {
        value = load();
        backend.set(key, value, ttl);
      } else {
        value = load_and_store(*table, key, load, ttl, std::move(*fresh), settled, &stats);
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

}  // namespace

std::string get_or_set(Backend& backend, std::string_view key, const std::function<std::string()>& load,
                       Ttl ttl, const GetOrSetOptions& o) {
  if (auto* layered = dynamic_cast<LayeredBackend*>(&backend);
      layered && dynamic_cast<DynamodbBackend*>(layered->layers().back().get()))
    return through_layers(*layered, key, load, ttl, o);
  bool settled = false;
  return get_or_set_settled(backend, key, load, ttl, o, settled);
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
