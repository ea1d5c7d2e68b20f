#include "dynamodb_cache/get_or_set.h"

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <random>
#include <thread>
#include <unordered_map>

#include "cache/background_pool.h"
#include "cache/dynamodb_backend_impl.h"
#include "cache/lease_table.h"
#include "cache/outages.h"
#include "cache/outcome_of.h"
#include "cache/single_flight.h"
#include "dynamodb_cache/errors.h"
#include "dynamodb_cache/layered_backend.h"
#include "dynamodb_cache/memory_backend.h"
#include "util/log.h"
#include "util/random.h"
#include "util/text.h"

namespace dynamodb_cache {

namespace ddb = dynamodb;

namespace {

using detail::BackgroundPool;
using detail::FlightRegistry;
using detail::LeaseTable;
using detail::NoValueLoaded;
using detail::Outages;

// Whether `e` says the source has no value (a load's answer, not a failure of the source).
bool says_missing(const std::exception_ptr& e) {
  try {
    std::rethrow_exception(e);
  } catch (const NoValueLoaded&) {
    return true;
  } catch (...) {
    return false;
  }
}

bool wants_refresh(const Hit& hit, const GetOrSetOptions& o) {
  return o.refresh_ahead.count() > 0 && hit.ttl_left && *hit.ttl_left < o.refresh_ahead;
}

// Sleeps before poll n: poll_min doubling up to poll_max, jittered down by up to half.
void poll_sleep(const GetOrSetOptions& o, int n) {
  auto base = std::min<int64_t>(o.poll_max.count(), o.poll_min.count() << std::min(n, 20));
  std::uniform_int_distribution<int64_t> jitter(base / 2, std::max<int64_t>(base / 2, base));
  std::this_thread::sleep_for(Ttl(jitter(util::thread_rng())));
}

// Whether `b`'s destructor drains its pool tasks (backend_gone): this library's backends do,
// so a refresh may run on the pool after its caller returned. A Backend of the user's own
// cannot promise it (its destructor runs before any base class could wait), so over one a
// refresh runs on the caller's thread, as a load.
bool drains_the_pool(const Backend& b) {
  return dynamic_cast<const DynamodbBackend*>(&b) || dynamic_cast<const LayeredBackend*>(&b) ||
         dynamic_cast<const MemoryBackend*>(&b);
}

// A caller answered with the stale value: counted per caller.
GetOrSetResult served_stale(CacheStats& stats, std::string value) {
  stats.stale_served.fetch_add(1, std::memory_order_relaxed);
  return {std::move(value), true};
}

// The value of `e` for a log line: its message, made printable and short (never the value).
std::string why(const std::exception_ptr& e) {
  try {
    std::rethrow_exception(e);
  } catch (const std::exception& x) {
    return util::printable(x.what(), 200);
  } catch (...) {
    return "a non-exception was thrown";
  }
}

// Thrown inside a call whose load outlived load_timeout (never out of get_or_set).
struct LoadTimedOut {};

// One get_or_set call past its first read, by value (the caller's load copied): what a
// leader's work needs, so that a copy of it can finish a load on the pool after the caller has
// gone. The Backend it names outlives that copy (its destructor drains the pool).
struct Call {
  Backend& backend;
  std::string key;
  std::function<Loaded()> user_load;
  Ttl ttl;
  GetOrSetOptions o;
  mutable std::optional<LeaseTable> table;  // over a DynamodbBackend (thread-safe)
  const LogHook* log;                       // the backend's hook (DynamodbOptions::log), or the process's
  // Set when a load's value was not stored (the item changed during the load, or the table
  // failed open): a layered cache then leaves its upper layers alone. Shared with the copy a
  // load past load_timeout runs on.
  std::shared_ptr<std::atomic<bool>> unstored = std::make_shared<std::atomic<bool>>(false);
  // The TTL the loader chose for its value (LoadResult::ttl) in ms; -1: the call's. Shared so.
  std::shared_ptr<std::atomic<int64_t>> loaded_ttl_ms = std::make_shared<std::atomic<int64_t>>(-1);
  // Set when the loader itself threw (not the table around it): only that is the source's
  // failure, which starts a backoff (Outages). Shared so.
  std::shared_ptr<std::atomic<bool>> loader_threw = std::make_shared<std::atomic<bool>>(false);

  bool leased() const { return o.lease.count() > 0; }
  CacheStats& stats() const { return backend.stats(); }
  void warn(const std::string& message) const { detail::log_to(*log, LogLevel::kWarning, message); }
  std::string quoted_key() const { return "'" + util::printable(key, 64) + "'"; }

  // The caller's load, counted with its duration (also when it throws). A TTL it chose is
  // checked and kept (stored_ttl).
  Loaded load() const {
    Loaded l;
    try {
      l = detail::timed_load(stats(), user_load);
    } catch (...) {
      loader_threw->store(true);
      throw;
    }
    if (l.ttl) {
      if (l.ttl->count() < 0) throw InvalidArgumentError("get_or_set: the loader returned a negative TTL");
      loaded_ttl_ms->store(l.ttl->count());
    }
    return l;
  }
  // The TTL the value is stored with: the loader's, else the call's.
  Ttl stored_ttl() const {
    const int64_t ms = loaded_ttl_ms->load();
    return ms < 0 ? ttl : Ttl(ms);
  }
  // The callers' answer to `l`: its value, or NoValueLoaded when the source has none.
  std::string answer(Loaded l) const {
    if (!l.value) throw NoValueLoaded(key);
    return std::move(*l.value);
  }
  // A read that found a miss remembered (cache_misses_for) ends the call with "missing".
  void unless_missing(const LeaseTable::Seen& seen) const {
    if (o.cache_misses_for.count() > 0 && seen.missing) throw NoValueLoaded(key);
  }
  // The load without a table to condition the store on (not DynamoDB, or its read failed
  // open): stored by a plain set when the loader wants it cached.
  std::string load_and_set() const {
    Loaded l = load();
    if (l.value && l.cache)
      backend.set(key, *l.value, stored_ttl());
    else
      unstored->store(true);
    return answer(std::move(l));
  }

  // Loads `key` and stores the value unless the item changed since `seen`, the item read before
  // the load (LeaseTable::store_unless_changed). A key with no item is first reserved
  // (LeaseTable::reserve): an erase, set or add of the key during the load then makes the store
  // a no-op too; a loader that throws deletes its placeholder. With `fail_open` (the backend's
  // DynamodbOptions::fail_open), a table error around the load (never the loader's) is counted
  // and the value returned unstored. The loader decides (Loaded): its TTL; not to cache (the
  // placeholder goes); "missing" (a negative entry stored as conditionally under
  // cache_misses_for, else the placeholder goes; then NoValueLoaded).
  std::string load_and_store(LeaseTable::Seen seen, bool fail_open) const {
    auto failed_open = [&](const Error& e) {
      if (!fail_open || !table->fails_open(e)) return false;
      stats().count_error(e.kind());
      stats().fail_open.fetch_add(1, std::memory_order_relaxed);
      unstored->store(true);
      return true;
    };
    // With stale_if_error the service is kept up: a value loaded but not stored (the table
    // failed after the load) is fresher than the stale one, so the callers get it, unstored
    // (counted and logged). Never for a bad argument (a value too large is the caller's to know).
    auto answered_unstored = [&](const Error& e) {
      if (o.stale_if_error.count() == 0 || e.kind() == ErrorKind::kInvalidArgument) return false;
      stats().count_error(e.kind());
      unstored->store(true);
      warn("get_or_set: the value loaded for key " + quoted_key() +
           " could not be stored; answered unstored: " + why(std::current_exception()));
      return true;
    };
    if (!seen.item) {
      try {
        seen = table->reserve(key);
      } catch (const Error& e) {
        if (!failed_open(e)) throw;
        return answer(load());
      }
      if (seen.hit) return std::move(seen.hit->value);  // stored meanwhile
      unless_missing(seen);
    }
    Loaded l;
    try {
      l = load();
    } catch (...) {
      if (seen.placeholder) table->unreserve(*seen.item);
      throw;
    }
    const bool remember_miss = !l.value && l.cache && o.cache_misses_for.count() > 0;
    if (!remember_miss && (!l.value || !l.cache)) {
      if (seen.placeholder) table->unreserve(*seen.item);
      unstored->store(true);
      return answer(std::move(l));
    }
    try {
      const bool stored = remember_miss ? table->store_miss(key, o.cache_misses_for, seen)
                                        : table->store_unless_changed(key, *l.value, stored_ttl(), seen);
      if (!stored) unstored->store(true);
    } catch (...) {
      // A placeholder has no expire_at: left here it would stay. Deleted unless the store
      // landed after all (its condition is the placeholder's token).
      if (seen.placeholder) table->unreserve(*seen.item);
      try {
        throw;
      } catch (const Error& e) {
        if (!failed_open(e) && !answered_unstored(e)) throw;
      }
    }
    return answer(std::move(l));
  }

  // work(call) (a load and its store) run within load_timeout on the pool, on a copy of this
  // call; past it LoadTimedOut is thrown, and the work goes on there: its end clears the key's
  // outage (stored) or extends it (failed, logged). Without a timeout, or with the pool full,
  // here, unbounded.
  std::string within_timeout(const std::function<std::string(const Call&)>& work) const {
    if (o.load_timeout.count() == 0) return work(*this);
    struct State {
      std::mutex mu;
      std::condition_variable cv;
      bool done = false, abandoned = false;
      std::string value;
      std::exception_ptr error;
    };
    auto state = std::make_shared<State>();
    auto self = std::make_shared<const Call>(*this);
    const bool queued = BackgroundPool::instance().submit(&backend, [state, self, work] {
      std::string value;
      std::exception_ptr error;
      try {
        value = work(*self);
      } catch (...) {
        error = std::current_exception();
      }
      {
        std::lock_guard lock(state->mu);
        if (!state->abandoned) {
          state->done = true;
          state->value = std::move(value);
          state->error = error;
          state->cv.notify_all();
          return;
        }
        // Nobody waits: under the lock, so that the leader's failed(.., true) came first.
        if (error && self->loader_threw->load())
          Outages::instance().failed(&self->backend, self->key, false);
        else
          Outages::instance().succeeded(&self->backend, self->key);
      }
      if (error && !says_missing(error))
        self->warn("get_or_set: the load of key " + self->quoted_key() +
                   " that outlived load_timeout failed: " + why(error));
    });
    if (!queued) return work(*this);
    std::unique_lock lock(state->mu);
    if (!state->cv.wait_for(lock, o.load_timeout, [&] { return state->done; })) {
      state->abandoned = true;
      Outages::instance().failed(&backend, key, true);
      throw LoadTimedOut{};
    }
    if (state->error) std::rethrow_exception(state->error);
    return std::move(state->value);
  }

  // work(call) (a load and its store). Without a stale value in `seen`, as it is. With one:
  // within load_timeout, and when it throws or times out, the stale value (counted, logged;
  // when the loader threw or timed out, the key's outage begins or goes on: Outages), if its
  // grace has not ended meanwhile; else the error (a TimeoutError for load_timeout).
  GetOrSetResult load_or_stale(std::optional<Hit> stale, int64_t stale_until_ms,
                               const std::function<std::string(const Call&)>& work) const {
    if (!stale) return {work(*this)};
    std::string reason;
    try {
      std::string value = within_timeout(work);
      Outages::instance().succeeded(&backend, key);
      return {std::move(value)};
    } catch (const LoadTimedOut&) {
      reason =
          "took longer than load_timeout (" + std::to_string(o.load_timeout.count()) + " ms; it goes on)";
      if (!table->within_grace(stale_until_ms))
        throw TimeoutError("get_or_set: the load of key " + quoted_key() + " " + reason +
                               ", and the stale value's grace (stale_if_error) ended meanwhile",
                           false);
    } catch (const NoValueLoaded&) {  // the source answered: it has none
      Outages::instance().succeeded(&backend, key);
      throw;
    } catch (...) {
      if (loader_threw->load()) Outages::instance().failed(&backend, key, false);
      if (!table->within_grace(stale_until_ms)) throw;
      reason = "failed: " + why(std::current_exception());
    }
    warn("get_or_set: the load of key " + quoted_key() + " " + reason + "; serving the stale value");
    return served_stale(stats(), std::move(stale->value));
  }

  // The leader's work with a lease: the value to hand to every waiter.
  GetOrSetResult with_lease(LeaseTable::Seen seen) const {
    const bool refresh = seen.hit.has_value();
    bool waited = false;
    auto deadline = std::chrono::steady_clock::now() + o.lease_wait;
    for (int n = 0;; ++n) {
      if (auto token = table->try_lease(key, o.lease)) {
        if (!refresh) {
          // Someone may have stored it between our read and our lease.
          try {
            seen = table->read(key, true);
          } catch (...) {
            table->release(key, *token);
            throw;
          }
          if (seen.hit || (o.cache_misses_for.count() > 0 && seen.missing)) {
            table->release(key, *token);
            unless_missing(seen);
            return {std::move(seen.hit->value)};
          }
        }
        std::optional<Hit> stale = std::move(seen.stale);
        const int64_t stale_until = seen.stale_until_ms;
        // The lease goes back when the load ends (a load past load_timeout: on the pool).
        return load_or_stale(std::move(stale), stale_until, [seen = std::move(seen), token = *token](const Call& c) {
          struct Release {
            const Call& c;
            const std::string& token;
            ~Release() { c.table->release(c.key, token); }
          } release{c, token};
          return c.load_and_store(seen, false);
        });
      }
      // Another process holds the lease. A refresh leaves it to that process (its answer, the
      // current value, is not a value this call stored), and so does a caller with a stale
      // value to serve.
      if (refresh) {
        unstored->store(true);
        return {std::move(seen.hit->value)};
      }
      if (seen.stale) return served_stale(stats(), std::move(seen.stale->value));
      if (std::chrono::steady_clock::now() >= deadline) break;
      if (!waited) stats().lease_waits.fetch_add(1, std::memory_order_relaxed);  // once per call
      waited = true;
      poll_sleep(o, n);
      seen = table->read(key, true);
      unless_missing(seen);
      if (seen.hit) return {std::move(seen.hit->value)};
    }
    // Waited long enough: load here, without overwriting what the holder may store meanwhile.
    std::optional<Hit> stale = std::move(seen.stale);
    const int64_t stale_until = seen.stale_until_ms;
    return load_or_stale(std::move(stale), stale_until,
                         [seen = std::move(seen)](const Call& c) { return c.load_and_store(seen, false); });
  }

  // The single-flight leader's work, `seen` being what the caller read (again first when
  // `reread`): the value (or stale value) to hand to every waiter.
  GetOrSetResult lead(LeaseTable::Seen seen, bool reread) const {
    if (reread) seen = read(false);
    if (seen.hit && !wants_refresh(*seen.hit, o)) return {std::move(seen.hit->value)};
    if (leased()) return with_lease(std::move(seen));
    if (!table) return {load_and_set()};
    // The item itself, read before the load: a set that lands after this read makes the store
    // a no-op. One GetItem per load. With fail_open, a table that fails is answered as before:
    // the load, and a set that fails open (counted and logged).
    std::optional<LeaseTable::Seen> fresh;
    try {
      fresh = table->read(key, false);
    } catch (const Error& e) {
      if (!table->fails_open(e)) throw;
    }
    if (fresh && fresh->hit && !wants_refresh(*fresh->hit, o))
      return {std::move(fresh->hit->value)};  // stored meanwhile (or refreshed by another process)
    if (fresh) unless_missing(*fresh);
    std::optional<Hit> stale = fresh ? std::move(fresh->stale) : std::move(seen.stale);
    const int64_t stale_until = fresh ? fresh->stale_until_ms : seen.stale_until_ms;
    return load_or_stale(std::move(stale), stale_until, [fresh = std::move(fresh)](const Call& c) {
      if (fresh) return c.load_and_store(*fresh, true);
      return c.load_and_set();  // the read failed open: a plain set (failing open too)
    });
  }

  // What the caller reads first. With a lease or stale_if_error, the item itself (a stale
  // value comes with it); else the backend's get.
  LeaseTable::Seen read(bool consistent) const { return read_first(backend, table, o, key, consistent); }

  static LeaseTable::Seen read_first(Backend& backend, std::optional<LeaseTable>& table,
                                     const GetOrSetOptions& o, std::string_view key, bool consistent) {
    if (table && (o.lease.count() > 0 || o.stale_if_error.count() > 0 || o.cache_misses_for.count() > 0))
      return table->read(key, consistent);
    LeaseTable::Seen s;
    s.hit = backend.get_entry(key);
    return s;
  }
};

// Over a LayeredBackend, what a refresh of its lowest layer needs from it: the object that
// owns the refresh on the pool (whose destructor drains it: the layers above are used) and
// the copy of a reloaded value into the layers above the table.
struct Above {
  const Backend* owner = nullptr;
  std::function<void(const std::string& value, Ttl ttl)> fill;
};

// A refresh ahead of expiry on the pool (GetOrSetOptions::refresh_ahead): the reload of a key
// whose flight the caller that saw it due opened, led by the pool thread that runs it. Its
// end (or its destruction unrun: the pool's queue was full, or its owner is being drained)
// closes the flight, so that waiters never hang; unrun, they get the current value. A failure
// is counted (stats().refresh_failures) and logged at warning level, never thrown at a caller
// but to those waiting on the flight (callers that found the key missing meanwhile).
class Refresh {
 public:
  Refresh(std::shared_ptr<const Call> call, std::shared_ptr<detail::Flight> flight, LeaseTable::Seen seen,
          std::function<void(const std::string&, Ttl)> fill)
      : call_(std::move(call)), flight_(std::move(flight)), seen_(std::move(seen)), fill_(std::move(fill)) {
    flight_->lead_from(std::thread::id());
  }
  Refresh(const Refresh&) = delete;
  Refresh& operator=(const Refresh&) = delete;
  ~Refresh() {
    if (!ran_) close([&] { flight_->finish({seen_.hit->value}); });
  }

  void run() {
    ran_ = true;
    flight_->lead_from(std::this_thread::get_id());
    std::optional<GetOrSetResult> r;
    try {
      r = call_->lead(seen_, false);
    } catch (...) {
      const std::exception_ptr error = std::current_exception();
      close([&] { flight_->fail(error); });
      if (says_missing(error)) return;  // the source has none now: the current value runs out
      call_->stats().refresh_failures.fetch_add(1, std::memory_order_relaxed);
      call_->warn("get_or_set: the refresh ahead of expiry of key " + call_->quoted_key() +
                  " failed: " + why(error) + "; the current value is served until it expires");
      return;
    }
    close([&] { flight_->finish(*r); });
    if (!fill_ || call_->unstored->load()) return;
    try {
      fill_(r->value, call_->stored_ttl());
    } catch (...) {
      call_->warn("get_or_set: the refreshed value of key " + call_->quoted_key() +
                  " was stored but not copied to the layers above: " + why(std::current_exception()));
    }
  }

 private:
  // Leaves the registry (later callers start anew), then ends the flight by `end`.
  template <class End>
  void close(End&& end) {
    FlightRegistry::instance().leave(&call_->backend, call_->key, flight_);
    end();
  }

  std::shared_ptr<const Call> call_;
  std::shared_ptr<detail::Flight> flight_;
  LeaseTable::Seen seen_;  // with a hit: the current value
  std::function<void(const std::string&, Ttl)> fill_;
  bool ran_ = false;
};

void check(const GetOrSetOptions& o, Ttl ttl) {
  if (ttl.count() < 0) throw InvalidArgumentError("ttl must not be negative");
  if (o.lease.count() < 0 || o.lease_wait.count() < 0 || o.refresh_ahead.count() < 0 ||
      o.poll_min.count() <= 0 || o.poll_max < o.poll_min || o.stale_if_error.count() < 0 ||
      o.load_timeout.count() < 0 || o.cache_misses_for.count() < 0)
    throw InvalidArgumentError(
        "get_or_set: lease, lease_wait, refresh_ahead, stale_if_error, load_timeout and cache_misses_for "
        "must not be negative, and 0 < poll_min <= poll_max");
  if (o.load_timeout.count() > 0 && o.stale_if_error.count() == 0)
    throw InvalidArgumentError(
        "get_or_set: load_timeout bounds the wait for a load when a stale value can be "
        "served instead: it needs stale_if_error");
}

// What a call learnt of its value: whether the backend holds it (see entry_of), with which TTL.
struct Settled {
  bool held = false;
  Ttl ttl{0};
};

GetOrSetResult entry_of(Backend& backend, std::string_view key, std::function<Loaded()> load, Ttl ttl,
                        const GetOrSetOptions& o, Settled& settled, Above above = {});

// Over layers whose lowest is DynamoDB: the layers answer a hit as a get does (a memory copy
// first); otherwise the lowest layer runs get_or_set (single flight, the lease, the store
// conditional on what it read: its own stats count the loads), and the value is copied into
// the layers above when the table holds it (not a stale value, nor a load whose store was a
// no-op because the key was erased or set meanwhile: the next get reads the table's truth).
GetOrSetResult through_layers(LayeredBackend& layered, std::string_view key, std::function<Loaded()> load,
                              Ttl ttl, const GetOrSetOptions& o) {
  check(o, ttl);
  if (auto hit = layered.get_entry(key); hit && !wants_refresh(*hit, o)) return {std::move(hit->value)};
  Settled settled;
  Above above{&layered, [&layered, k = std::string(key)](const std::string& value, Ttl stored_ttl) {
                layered.fill_upper(k, value, stored_ttl);
              }};
  GetOrSetResult r =
      entry_of(*layered.layers().back(), key, std::move(load), ttl, o, settled, std::move(above));
  if (settled.held && !r.stale) layered.fill_upper(key, r.value, settled.ttl);
  return r;
}

// get_or_set_entry below the layers; `settled`: whether the backend holds the value returned
// (a hit, or a store that happened; false for a waiter of another caller's load, which cannot
// tell, and for a value due for refresh, which is about to be replaced). `above`: from
// through_layers.
GetOrSetResult entry_of(Backend& backend, std::string_view key, std::function<Loaded()> load, Ttl ttl,
                        const GetOrSetOptions& o, Settled& settled, Above above) {
  check(o, ttl);
  settled = {true, ttl};
  // Keys are validated by the backend's first read, under its own limit (long_keys).
  CacheStats& stats = backend.stats();
  // Over DynamoDB, the store is conditional on the item the load was decided on (a value set
  // meanwhile, by any process, is never overwritten), and a lease may be taken.
  std::optional<LeaseTable> table;
  auto* dynamo = dynamic_cast<DynamodbBackend*>(&backend);
  if (dynamo) table.emplace(*dynamo, o.stale_if_error);
  if ((o.lease.count() > 0 || o.stale_if_error.count() > 0 || o.cache_misses_for.count() > 0) && !table)
    throw InvalidArgumentError(
        "get_or_set: a lease, stale_if_error and cache_misses_for need a DynamodbBackend, or a "
        "LayeredBackend "
        "whose lowest layer is one");
  auto& registry = FlightRegistry::instance();
  uint64_t finished_before = registry.finished(&backend, key);
  LeaseTable::Seen seen = Call::read_first(backend, table, o, key, false);
  if (seen.hit && !wants_refresh(*seen.hit, o)) return {std::move(seen.hit->value)};
  if (o.cache_misses_for.count() > 0 && seen.missing) throw NoValueLoaded(key);  // a miss remembered
  // In an outage of the source: the stale value, without a load until the backoff passes.
  if (!seen.hit && seen.stale && Outages::instance().holding(&backend, key))
    return served_stale(stats, std::move(seen.stale->value));

  auto joined = registry.join(&backend, key);
  if (!joined.leader) {
    // A refresh under way elsewhere in the process: the current value will do.
    if (seen.hit) return {std::move(seen.hit->value)};
    settled.held = false;
    GetOrSetResult r = joined.flight->wait();
    if (r.stale) stats.stale_served.fetch_add(1, std::memory_order_relaxed);
    return r;
  }
  static const LogHook kProcessHook;  // empty: detail::log_to then says it to set_log_hook's
  auto call =
      std::make_shared<const Call>(Call{backend, std::string(key), std::move(load), ttl, o, std::move(table),
                                        dynamo ? &dynamo->options().log : &kProcessHook});
  if (seen.hit && drains_the_pool(above.owner ? *above.owner : backend)) {
    // Due for refresh: the reload goes to the pool, this caller keeps the current value. A
    // full queue (or a backend being destroyed) skips it: the next hit tries again.
    settled.held = false;
    std::string current = seen.hit->value;
    auto refresh = std::make_shared<Refresh>(call, joined.flight, std::move(seen), std::move(above.fill));
    BackgroundPool::instance().submit(above.owner ? above.owner : &backend, [refresh] { refresh->run(); });
    return {std::move(current)};
  }
  try {
    const bool reread = registry.finished(&backend, key) != finished_before;
    GetOrSetResult r = call->lead(std::move(seen), reread);
    settled = {!call->unstored->load(), call->stored_ttl()};
    registry.leave(&backend, key, joined.flight);
    joined.flight->finish(r);
    return r;
  } catch (...) {
    registry.leave(&backend, key, joined.flight);
    joined.flight->fail(std::current_exception());
    throw;
  }
}

// Every form of get_or_set: `load` says what it loaded (Loaded); `may_miss`: the caller can
// answer "missing" (else NoValueLoaded reaches it, and cache_misses_for is refused).
GetOrSetResult entry(Backend& backend, std::string_view key, std::function<Loaded()> load, Ttl ttl,
                     const GetOrSetOptions& o, bool may_miss) {
  if (o.cache_misses_for.count() > 0 && !may_miss)
    throw InvalidArgumentError(
        "get_or_set: cache_misses_for remembers a loader's \"missing\": it needs a loader returning Loaded "
        "(LoadResult), which can say so");
  if (auto* layered = dynamic_cast<LayeredBackend*>(&backend);
      layered && dynamic_cast<DynamodbBackend*>(layered->layers().back().get()))
    return through_layers(*layered, key, std::move(load), ttl, o);
  Settled settled;
  return entry_of(backend, key, std::move(load), ttl, o, settled);
}

}  // namespace

namespace detail {

void backend_gone(const void* owner) {
  BackgroundPool::instance().drain(owner);
  Outages::instance().forget(owner);
}

std::size_t remembered_outages() { return Outages::instance().size(); }

}  // namespace detail

GetOrSetResult get_or_set_entry(Backend& backend, std::string_view key,
                                const std::function<std::string()>& load, Ttl ttl, const GetOrSetOptions& o) {
  return entry(
      backend, key, [load] { return Loaded::found(load()); }, ttl, o, false);
}

std::optional<GetOrSetResult> get_or_set_entry(Backend& backend, std::string_view key,
                                               const std::function<Loaded()>& load, Ttl ttl,
                                               const GetOrSetOptions& o) {
  try {
    return entry(backend, key, load, ttl, o, true);
  } catch (const NoValueLoaded&) {
    return std::nullopt;
  }
}

std::optional<std::string> get_or_set(Backend& backend, std::string_view key,
                                      const std::function<Loaded()>& load, Ttl ttl,
                                      const GetOrSetOptions& o) {
  auto r = get_or_set_entry(backend, key, load, ttl, o);
  if (!r) return std::nullopt;
  return std::move(r->value);
}

std::string get_or_set(Backend& backend, std::string_view key, const std::function<std::string()>& load,
                       Ttl ttl, const GetOrSetOptions& o) {
  return get_or_set_entry(backend, key, load, ttl, o).value;
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

void get_or_set_async(Backend& backend, std::string key, std::function<Loaded()> load, Ttl ttl,
                      GetOrSetOptions options, Backend::Done<std::optional<std::string>> done) {
  backend.run_blocking([&backend, key = std::move(key), load = std::move(load), ttl, options,
                        done = std::move(done)](std::exception_ptr refused) {
    if (refused) return done(std::move(refused));
    done(detail::outcome_of<std::optional<std::string>>(
        [&] { return get_or_set(backend, key, load, ttl, options); }));
  });
}

Pending<std::optional<std::string>> get_or_set_async(Backend& backend, std::string key,
                                                     std::function<Loaded()> load, Ttl ttl,
                                                     GetOrSetOptions options) {
  return detail::start_pending<std::optional<std::string>>([&](auto d) {
    get_or_set_async(backend, std::move(key), std::move(load), ttl, options, std::move(d));
  });
}

}  // namespace dynamodb_cache
