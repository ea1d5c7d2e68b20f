// CoherentNearCache (include/dynamodb_cache/near_cache.h): memory over a DynamodbBackend,
// kept coherent by the invalidation feed (feed.h).
//
// How the promise holds (README, "A near cache the fleet can trust"):
//   - The poller reads, strongly consistently, every feed item a publish that returned before
//     the poll began can lie in (feed::window), and evicts the hashes listed; then memory is
//     confirmed fresh up to the poll's start (`confirmed_`, steady clock). A write that
//     returned at T is thus evicted by the first poll that starts after T.
//   - The gate: memory answers a get only while steady now < confirmed_ + max_staleness. A get
//     that starts more than max_staleness after T is answered from memory only if a poll that
//     started after T has completed: the old value is gone. A poller that fails, lags or was
//     stopped (SIGSTOP) leaves confirmed_ behind, and gets go to DynamoDB.
//   - The fill race: a get that missed reads DynamoDB strongly consistently and fills memory
//     only if no invalidation of its key was processed since its read began
//     (InvalidationLog, epochs_). An invalidation processed before the read began was of a
//     write that had landed before it (the poll that found it started after the publish,
//     which followed the write): the read sees that write.
//   - Own writes: the table publishes them; this process evicts the key itself at once (as
//     an invalidation, so a get of its own in flight does not fill the old value back).
#include "cache/near_cache.h"

#include <algorithm>
#include <array>
#include <atomic>
#include <condition_variable>
#include <limits>
#include <list>
#include <mutex>
#include <thread>

#include "cache/dynamodb_backend_impl.h"
#include "cache/feed.h"
#include "cache/outcome_of.h"
#include "dynamodb_cache/errors.h"

namespace dynamodb_cache {

namespace detail {

void TopK::add(std::string_view key) {
  if (capacity_ == 0) return;
  if (auto it = counts_.find(std::string(key)); it != counts_.end()) {
    ++it->second;
    return;
  }
  if (counts_.size() < capacity_) {
    counts_.emplace(std::string(key), 1);
    return;
  }
  auto smallest = std::min_element(counts_.begin(), counts_.end(),
                                   [](const auto& a, const auto& b) { return a.second < b.second; });
  const uint64_t count = smallest->second + 1;
  counts_.erase(smallest);
  counts_.emplace(std::string(key), count);
}

std::vector<std::pair<std::string, uint64_t>> TopK::top(std::size_t k) const {
  std::vector<std::pair<std::string, uint64_t>> out(counts_.begin(), counts_.end());
  std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) {
    return a.second != b.second ? a.second > b.second : a.first < b.first;
  });
  if (out.size() > k) out.resize(k);
  return out;
}

void InvalidationLog::invalidated(uint64_t hash, uint64_t epoch) {
  if (last_.size() >= capacity_ && !last_.count(hash)) return drop_all(epoch);
  uint64_t& e = last_[hash];
  e = std::max(e, epoch);
}

void InvalidationLog::drop_all(uint64_t epoch) {
  floor_ = std::max(floor_, epoch);
  last_.clear();
}

bool InvalidationLog::may_fill(uint64_t hash, uint64_t began) const {
  if (floor_ > began) return false;
  auto it = last_.find(hash);
  return it == last_.end() || it->second <= began;
}

}  // namespace detail

namespace {

using Steady = std::chrono::steady_clock;
// DynamodbBackend::Impl, reached through detail::DynamodbBackendAccess (its name is private).
using TableImpl = std::remove_reference_t<decltype(detail::DynamodbBackendAccess::impl(
    std::declval<const DynamodbBackend&>()))>;
constexpr std::size_t kMaxShards = 16;
// Hashes each shard remembers invalidations of (InvalidationLog): enough for the invalidations
// of several polls at 1,000 writes a second fleet-wide; an overflow refuses the fills then in
// flight (a read more each), never keeps a stale value.
constexpr std::size_t kLogCapacity = 4096;

int64_t ticks(Steady::time_point t) {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch()).count();
}

void check(const NearCacheOptions& o, const DynamodbBackend* table) {
  if (!table) throw InvalidArgumentError("CoherentNearCache: the table is null");
  if (!table->options().publish_invalidations)
    throw InvalidArgumentError(
        "CoherentNearCache: the table's DynamodbOptions::publish_invalidations must be true (every process "
        "writing the table must publish, or the near cache cannot know what changed)");
  if (o.max_staleness < Ttl(100) || o.max_staleness > Ttl(3'600'000))
    throw InvalidArgumentError("CoherentNearCache: max_staleness must be 100 ms to 1 hour, not " +
                               std::to_string(o.max_staleness.count()) + " ms");
  if (o.max_entries < 1) throw InvalidArgumentError("CoherentNearCache: max_entries must be at least 1");
  if (o.top_k > 1000) throw InvalidArgumentError("CoherentNearCache: top_k must be 0 to 1000");
}

}  // namespace

struct CoherentNearCache::Impl {
  struct Entry {
    Hit hit;  // ttl_left unused: `expires` says it
    Steady::time_point expires;
    uint64_t hash;
    uint32_t hits = 0;  // gets answered since the fill (halved when spared by eviction)
    std::list<std::string>::iterator lru;
  };
  // One get's DynamoDB read that concurrent gets of the same key share.
  struct Flight {
    uint64_t began;  // the epoch when its read began
    Steady::time_point started;
    std::mutex mu;
    std::condition_variable cv;
    bool done = false;
    std::optional<Hit> hit;
    std::exception_ptr error;
  };
  struct Shard {
    std::mutex mu;
    std::unordered_map<std::string, Entry> entries;
    std::list<std::string> lru;  // most recent first
    std::unordered_multimap<uint64_t, std::string> by_hash;
    detail::InvalidationLog log{kLogCapacity};
    std::unordered_map<std::string, std::shared_ptr<Flight>> flights;
  };

  std::shared_ptr<DynamodbBackend> table;
  TableImpl& t;
  const NearCacheOptions options;
  const std::string ns;
  const Steady::duration interval;
  std::size_t shard_capacity;
  std::vector<std::unique_ptr<Shard>> shards;

  std::atomic<uint64_t> epoch{0};
  std::atomic<int64_t> confirmed;  // ticks() of the start of the last successful poll
  std::atomic<bool> answering{false};

  std::atomic<uint64_t> hits{0}, misses{0}, stopped{0}, polls{0}, poll_failures{0};
  std::atomic<double> read_units{0};
  mutable std::mutex top_mu;
  detail::TopK top;

  std::mutex hook_mu;  // the two below (tests)
  std::function<void(std::string_view)> before_fill;
  std::shared_ptr<dynamodb::Client> feed_client;

  // The poller.
  std::mutex poll_mu;
  std::condition_variable poll_cv;
  bool stopping = false;
  std::thread poller;
  // Poller thread only:
  std::optional<int64_t> last_ok_wall;                     // wall ms of the last successful poll's start
  std::unordered_map<std::string, std::string> processed;  // feed item key -> its `n` processed

  Impl(std::shared_ptr<DynamodbBackend> tb, NearCacheOptions o)
      : table((check(o, tb.get()), std::move(tb))),
        t(detail::DynamodbBackendAccess::impl(*table)),
        options(o),
        ns(table->options().key_namespace),
        interval(std::chrono::duration_cast<Steady::duration>(o.max_staleness) * 45 / 100),
        confirmed(std::numeric_limits<int64_t>::min() / 2),
        top(o.top_k * 4) {
    const std::size_t n = std::min(kMaxShards, o.max_entries);
    shard_capacity = o.max_entries / n;
    for (std::size_t i = 0; i < n; ++i) shards.push_back(std::make_unique<Shard>());
    // Publishes that returned before now were made before any read this cache will make.
    last_ok_wall = wall_ms();
    poller = std::thread([this] { poll_loop(); });
  }

  ~Impl() {
    {
      std::lock_guard lock(poll_mu);
      stopping = true;
    }
    poll_cv.notify_all();
    poller.join();
  }

  int64_t wall_ms() const {
    return std::chrono::duration_cast<std::chrono::milliseconds>(t.options.now().time_since_epoch()).count();
  }
  Shard& shard_of(uint64_t hash) { return *shards[(hash >> 8) % shards.size()]; }

  // ---- the gate ----
  bool memory_answers(Steady::time_point now) {
    const bool open =
        ticks(now) < confirmed.load(std::memory_order_acquire) +
                         std::chrono::duration_cast<std::chrono::nanoseconds>(options.max_staleness).count();
    if (open) {
      if (!answering.load(std::memory_order_relaxed)) answering.store(true, std::memory_order_relaxed);
    } else if (answering.load(std::memory_order_relaxed) && answering.exchange(false)) {
      stopped.fetch_add(1, std::memory_order_relaxed);
    }
    return open;
  }

  // ---- memory (each under its shard's lock) ----
  void erase_entry(Shard& s, std::unordered_map<std::string, Entry>::iterator it) {
    auto [b, e] = s.by_hash.equal_range(it->second.hash);
    for (; b != e; ++b)
      if (b->second == it->first) {
        s.by_hash.erase(b);
        break;
      }
    s.lru.erase(it->second.lru);
    s.entries.erase(it);
  }

  // Makes room for one entry, evicting the least recently used; false (no room made) when that
  // one is hot: it stays, its count halved, and the new entry is not kept.
  bool make_room(Shard& s) {
    while (s.entries.size() >= shard_capacity && !s.lru.empty()) {
      auto it = s.entries.find(s.lru.back());
      if (options.hot_threshold > 0 && it->second.hits >= options.hot_threshold) {
        it->second.hits /= 2;
        return false;
      }
      erase_entry(s, it);
    }
    return true;
  }

  // Records an invalidation of `hash` and evicts what memory holds under it.
  void invalidate(uint64_t hash) {
    Shard& s = shard_of(hash);
    std::lock_guard lock(s.mu);
    s.log.invalidated(hash, epoch.fetch_add(1) + 1);
    auto [b, e] = s.by_hash.equal_range(hash);
    std::vector<std::string> keys;
    for (; b != e; ++b) keys.push_back(b->second);
    for (const auto& k : keys)
      if (auto it = s.entries.find(k); it != s.entries.end()) erase_entry(s, it);
  }

  // Empties memory and refuses every fill begun before.
  void drop_all() {
    const uint64_t e = epoch.fetch_add(1) + 1;
    for (auto& sp : shards) {
      std::lock_guard lock(sp->mu);
      sp->log.drop_all(e);
      sp->entries.clear();
      sp->lru.clear();
      sp->by_hash.clear();
    }
  }

  // Fills memory with `hit`, read from DynamoDB from epoch `began` at `started`, unless an
  // invalidation of its key came since.
  void fill(Shard& s, const std::string& key, uint64_t hash, const Hit& hit, uint64_t began,
            Steady::time_point started) {
    if (!s.log.may_fill(hash, began)) return;
    uint32_t hits_before = 0;  // a refill (memory closed meanwhile) keeps the key's count
    if (auto it = s.entries.find(key); it != s.entries.end()) {
      hits_before = it->second.hits + 1;
      erase_entry(s, it);
    }
    if (!make_room(s)) return;
    Entry e;
    e.hits = hits_before;
    e.hit.value = hit.value;
    e.hit.counter = hit.counter;
    e.expires = hit.ttl_left ? started + *hit.ttl_left : Steady::time_point::max();
    e.hash = hash;
    s.lru.push_front(key);
    e.lru = s.lru.begin();
    s.by_hash.emplace(hash, key);
    s.entries.emplace(key, std::move(e));
  }

  std::optional<Hit> from_memory(Shard& s, const std::string& key, Steady::time_point now) {
    auto it = s.entries.find(key);
    if (it == s.entries.end()) return std::nullopt;
    if (now >= it->second.expires) {
      erase_entry(s, it);
      return std::nullopt;
    }
    ++it->second.hits;
    s.lru.splice(s.lru.begin(), s.lru, it->second.lru);
    Hit h = it->second.hit;
    if (it->second.expires != Steady::time_point::max())
      h.ttl_left = std::chrono::ceil<Ttl>(it->second.expires - now);
    return h;
  }

  void count_get(std::string_view key) {
    if (options.top_k == 0) return;
    std::lock_guard lock(top_mu);
    top.add(key);
  }

  // ---- gets ----
  // `counted`: the get was counted already (get_entry_async, which looked in memory first).
  std::optional<Hit> get_entry(std::string_view key_view, bool counted = false) {
    if (!counted) count_get(key_view);
    const std::string key(key_view);
    const uint64_t hash = feed::key_hash(ns, key);
    Shard& s = shard_of(hash);
    const auto now = Steady::now();
    const bool answers = memory_answers(now);
    std::shared_ptr<Flight> flight;
    bool joined = false, lead = false;
    {
      std::lock_guard lock(s.mu);
      if (answers) {
        if (auto h = from_memory(s, key, now)) {
          hits.fetch_add(1, std::memory_order_relaxed);
          return h;
        }
      }
      // Join a read of this key in flight if it could not have missed an invalidation this
      // get must see: memory answers (the feed is confirmed), the read began within
      // max_staleness and no invalidation of its key was processed since it began.
      auto f = s.flights.find(key);
      if (answers && f != s.flights.end() && now - f->second->started < options.max_staleness &&
          s.log.may_fill(hash, f->second->began)) {
        flight = f->second;
        joined = true;
      } else {
        flight = std::make_shared<Flight>();
        flight->began = epoch.load();
        flight->started = now;
        lead = f == s.flights.end();  // else a read of its own, beside the one in flight
        if (lead) s.flights.emplace(key, flight);
      }
    }
    misses.fetch_add(1, std::memory_order_relaxed);
    if (joined) return wait(*flight);
    return read(s, key, hash, *flight, lead);
  }

  static std::optional<Hit> wait(Flight& f) {
    std::unique_lock lock(f.mu);
    f.cv.wait(lock, [&] { return f.done; });
    if (f.error) std::rethrow_exception(f.error);
    return f.hit;
  }

  // The read of `flight` (registered in s.flights when `lead`), its fill and its completion.
  std::optional<Hit> read(Shard& s, const std::string& key, uint64_t hash, Flight& flight, bool lead) {
    std::optional<Hit> hit;
    std::exception_ptr error;
    try {
      hit = t.get_entry(key, true);
      std::function<void(std::string_view)> hook;
      {
        std::lock_guard lock(hook_mu);
        hook = before_fill;
      }
      if (hook) hook(key);
    } catch (...) {
      error = std::current_exception();
    }
    {
      std::lock_guard lock(s.mu);
      if (hit) fill(s, key, hash, *hit, flight.began, flight.started);
      if (lead) {
        auto it = s.flights.find(key);
        if (it != s.flights.end() && it->second.get() == &flight) s.flights.erase(it);
      }
    }
    {
      std::lock_guard lock(flight.mu);
      flight.done = true;
      flight.hit = hit;
      flight.error = error;
    }
    flight.cv.notify_all();
    if (error) std::rethrow_exception(error);
    return hit;
  }

  std::vector<std::optional<Hit>> get_many(const std::vector<std::string>& keys) {
    std::vector<std::optional<Hit>> out(keys.size());
    std::vector<std::string> missing;
    std::vector<size_t> where;
    const auto now = Steady::now();
    const bool answers = memory_answers(now);
    for (size_t i = 0; i < keys.size(); ++i) {
      count_get(keys[i]);
      if (answers) {
        Shard& s = shard_of(feed::key_hash(ns, keys[i]));
        std::lock_guard lock(s.mu);
        if ((out[i] = from_memory(s, keys[i], now))) {
          hits.fetch_add(1, std::memory_order_relaxed);
          continue;
        }
      }
      misses.fetch_add(1, std::memory_order_relaxed);
      missing.push_back(keys[i]);
      where.push_back(i);
    }
    if (missing.empty()) return out;
    const uint64_t began = epoch.load();
    auto got = t.get_many(missing, true);
    for (size_t j = 0; j < missing.size(); ++j) {
      out[where[j]] = got[j];
      if (!got[j]) continue;
      const uint64_t hash = feed::key_hash(ns, missing[j]);
      Shard& s = shard_of(hash);
      std::lock_guard lock(s.mu);
      fill(s, missing[j], hash, *got[j], began, now);
    }
    return out;
  }

  // ---- writes: through to the table (which publishes), then evicted here ----
  template <class F>
  auto written(const std::vector<std::string>& keys, F&& write) -> decltype(write()) {
    struct Evict {
      Impl& c;
      const std::vector<std::string>& keys;
      ~Evict() {
        for (const auto& k : keys) c.invalidate(feed::key_hash(c.ns, k));
      }
    } evict{*this, keys};
    return write();
  }

  // ---- the poller ----
  void poll_loop() {
    std::unique_lock lock(poll_mu);
    while (!stopping) {
      const auto start = Steady::now();
      lock.unlock();
      poll(start);
      lock.lock();
      poll_cv.wait_until(lock, start + interval, [&] { return stopping; });
    }
  }

  void poll(Steady::time_point start) {
    const int64_t now_ms = wall_ms();
    auto w = feed::window(now_ms, last_ok_wall);
    if (!w) {  // behind too long to read what it missed: start again from nothing
      drop_all();
      processed.clear();
      w = feed::window(now_ms, std::nullopt);
    }
    std::shared_ptr<dynamodb::Client> client;
    {
      std::lock_guard lock(hook_mu);
      client = feed_client ? feed_client : t.client;
    }
    try {
      std::vector<dynamodb::ConsumedCapacity> used;
      auto items = client->batch_get_all(t.options.table, feed::window_keys(*w), true,
                                         t.options.track_capacity ? &used : nullptr);
      for (const auto& c : used) {
        read_units.fetch_add(c.capacity_units, std::memory_order_relaxed);
        t.add_read_units(c);
      }
      const uint64_t ns_marker = feed::namespace_hash(ns), all_marker = feed::clear_all_hash();
      for (const auto& item : items) {
        auto k = item.find(attr::kKey);
        if (k == item.end()) continue;
        std::string n = feed::publishes_in(item);
        auto seen = processed.find(k->second.scalar);
        if (seen != processed.end() && seen->second == n) continue;
        for (uint64_t h : feed::hashes_in(item)) {
          if (h == all_marker || (!ns.empty() && h == ns_marker)) {
            if (h == ns_marker) t.key_map.forget_generation();
            drop_all();
          } else {
            invalidate(h);
          }
        }
        processed[k->second.scalar] = std::move(n);
      }
      std::erase_if(processed, [&](const auto& p) {
        auto slot = feed::slot_in_key(p.first);
        return !slot || *slot < w->first;
      });
      last_ok_wall = now_ms;
      confirmed.store(ticks(start), std::memory_order_release);
      polls.fetch_add(1, std::memory_order_relaxed);
    } catch (...) {
      poll_failures.fetch_add(1, std::memory_order_relaxed);
    }
  }
};

CoherentNearCache::CoherentNearCache(std::shared_ptr<DynamodbBackend> table, NearCacheOptions options)
    : impl_(std::make_unique<Impl>(std::move(table), std::move(options))) {}
CoherentNearCache::~CoherentNearCache() = default;

NearCacheStats CoherentNearCache::near_stats() const {
  NearCacheStats s;
  s.memory_hits = impl_->hits.load();
  s.memory_misses = impl_->misses.load();
  s.stopped = impl_->stopped.load();
  s.feed_polls = impl_->polls.load();
  s.feed_poll_failures = impl_->poll_failures.load();
  s.feed_read_units = impl_->read_units.load();
  s.feed_write_units = impl_->t.feed_write_units.load();
  s.feed_lag = std::chrono::duration_cast<std::chrono::milliseconds>(
      std::chrono::nanoseconds(ticks(Steady::now()) - impl_->confirmed.load()));
  {
    std::lock_guard lock(impl_->top_mu);
    s.hottest = impl_->top.top(impl_->options.top_k);
  }
  return s;
}

const NearCacheOptions& CoherentNearCache::near_options() const { return impl_->options; }
DynamodbBackend& CoherentNearCache::table() { return *impl_->table; }

std::optional<Hit> CoherentNearCache::get_entry(std::string_view key) { return impl_->get_entry(key); }

std::vector<std::optional<Hit>> CoherentNearCache::get_many(const std::vector<std::string>& keys) {
  return impl_->get_many(keys);
}

bool CoherentNearCache::contains(std::string_view key) {
  const auto now = Steady::now();
  if (impl_->memory_answers(now)) {
    const std::string k(key);
    auto& s = impl_->shard_of(feed::key_hash(impl_->ns, k));
    std::lock_guard lock(s.mu);
    if (impl_->from_memory(s, k, now)) {
      impl_->hits.fetch_add(1, std::memory_order_relaxed);
      return true;
    }
  }
  // A get (strongly consistent, filling memory): the table's contains reads as its options
  // say, and an eventually consistent answer could be older than the bound.
  return impl_->get_entry(key, true).has_value();
}

void CoherentNearCache::set(std::string_view key, std::string_view value, Ttl ttl) {
  impl_->written({std::string(key)}, [&] { impl_->table->set(key, value, ttl); });
}
void CoherentNearCache::erase(std::string_view key) {
  impl_->written({std::string(key)}, [&] { impl_->table->erase(key); });
}
void CoherentNearCache::set_many(const std::vector<std::pair<std::string, std::string>>& entries, Ttl ttl) {
  std::vector<std::string> keys;
  keys.reserve(entries.size());
  for (const auto& e : entries) keys.push_back(e.first);
  impl_->written(keys, [&] { impl_->table->set_many(entries, ttl); });
}
void CoherentNearCache::erase_many(const std::vector<std::string>& keys) {
  impl_->written(keys, [&] { impl_->table->erase_many(keys); });
}
bool CoherentNearCache::touch(std::string_view key, Ttl ttl) {
  return impl_->written({std::string(key)}, [&] { return impl_->table->touch(key, ttl); });
}
bool CoherentNearCache::add(std::string_view key, std::string_view value, Ttl ttl) {
  return impl_->written({std::string(key)}, [&] { return impl_->table->add(key, value, ttl); });
}
int64_t CoherentNearCache::increment(std::string_view key, int64_t delta, Ttl ttl) {
  return impl_->written({std::string(key)}, [&] { return impl_->table->increment(key, delta, ttl); });
}
void CoherentNearCache::clear(const std::function<void(uint64_t)>& progress) {
  struct Drop {
    Impl& c;
    ~Drop() { c.drop_all(); }
  } drop{*impl_};
  impl_->table->clear(progress);
}

using detail::blocking;

void CoherentNearCache::get_entry_async(std::string key, Done<std::optional<Hit>> done) {
  impl_->count_get(key);
  const auto now = Steady::now();
  if (impl_->memory_answers(now)) {
    auto& s = impl_->shard_of(feed::key_hash(impl_->ns, key));
    std::optional<Hit> hit;
    {
      std::lock_guard lock(s.mu);
      hit = impl_->from_memory(s, key, now);
    }
    if (hit) {
      impl_->hits.fetch_add(1, std::memory_order_relaxed);
      return done(std::move(hit));
    }
  }
  blocking<std::optional<Hit>>(
      *this, std::move(done), [this, key = std::move(key)](Backend&) { return impl_->get_entry(key, true); });
}
void CoherentNearCache::set_async(std::string key, std::string value, Ttl ttl, Done<void> done) {
  blocking<void>(*this, std::move(done), [key = std::move(key), value = std::move(value), ttl](Backend& b) {
    b.set(key, value, ttl);
  });
}
void CoherentNearCache::erase_async(std::string key, Done<void> done) {
  blocking<void>(*this, std::move(done), [key = std::move(key)](Backend& b) { b.erase(key); });
}
void CoherentNearCache::get_many_async(std::vector<std::string> keys,
                                       Done<std::vector<std::optional<Hit>>> done) {
  blocking<std::vector<std::optional<Hit>>>(
      *this, std::move(done), [keys = std::move(keys)](Backend& b) { return b.get_many(keys); });
}
void CoherentNearCache::set_many_async(std::vector<std::pair<std::string, std::string>> entries, Ttl ttl,
                                       Done<void> done) {
  blocking<void>(*this, std::move(done),
                 [entries = std::move(entries), ttl](Backend& b) { b.set_many(entries, ttl); });
}
void CoherentNearCache::clear_async(Done<void> done, std::function<void(uint64_t)> progress) {
  blocking<void>(*this, std::move(done), [progress = std::move(progress)](Backend& b) { b.clear(progress); });
}

void CoherentNearCache::run_blocking(std::function<void(std::exception_ptr)> work) {
  impl_->table->run_blocking(std::move(work));
}
CacheStats& CoherentNearCache::stats() const { return impl_->table->stats(); }

namespace detail {
void NearCacheAccess::before_fill(CoherentNearCache& c, std::function<void(std::string_view)> hook) {
  std::lock_guard lock(c.impl_->hook_mu);
  c.impl_->before_fill = std::move(hook);
}
void NearCacheAccess::feed_client(CoherentNearCache& c, std::shared_ptr<dynamodb::Client> client) {
  std::lock_guard lock(c.impl_->hook_mu);
  c.impl_->feed_client = std::move(client);
}
}  // namespace detail

}  // namespace dynamodb_cache
