// MemoryBackend: shards, each an LRU list with an index under one mutex.
#include "dynamodb_cache/memory_backend.h"

#include <list>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "cache/background_pool.h"
#include "dynamodb_cache/errors.h"

namespace dynamodb_cache {

// An entry and a shard of MemoryBackend: private to this file (a named namespace, as the
// backend's Impl holds shards).
namespace memory {
using Steady = std::chrono::steady_clock;
struct Entry;
struct Shard;
}  // namespace memory

using memory::Entry;
using memory::Shard;
using memory::Steady;

// The backend's state: its options and shards. Thread-safety: each shard's lists and
// counters only under its mutex; `options` and `shards` are not changed after construction.
struct MemoryBackend::Impl {
  explicit Impl(MemoryOptions o);
  // The shard that holds `key`.
  Shard& shard_for(std::string_view key) const;
  // Runs f(shard, live entry or nullptr, expiry for ttl) under the key's shard lock: the
  // frame of touch, add and increment.
  template <class F>
  auto locked(std::string_view key, Ttl ttl, F&& f);

  MemoryOptions options;
  std::vector<std::unique_ptr<Shard>> shards;
};

struct memory::Entry {
  std::string key;
  std::string value;           // a counter's: its decimal text
  Steady::time_point expires;  // time_point::max(): never
  bool counter = false;        // written by increment()
};

namespace {

// When an entry written at `now` with `ttl` expires. Saturates: steady_clock counts
// nanoseconds in an int64_t (292 years from its epoch), so a longer TTL (up to kMaxTtl)
// ends at the last representable instant, one tick before the "never" sentinel.
Steady::time_point expiry(Steady::time_point now, Ttl ttl) {
  validate_ttl(ttl);
  if (ttl.count() == 0) return Steady::time_point::max();
  const auto room = Steady::time_point::max() - now;  // > 0: now is a real clock reading
  if (ttl >= std::chrono::duration_cast<Ttl>(room)) return Steady::time_point::max() - Steady::duration(1);
  return now + std::chrono::duration_cast<Steady::duration>(ttl);
}

std::optional<Ttl> ttl_left(const Entry& e, Steady::time_point now) {
  if (e.expires == Steady::time_point::max()) return std::nullopt;
  return std::chrono::duration_cast<Ttl>(e.expires - now);
}
}  // namespace

struct memory::Shard {
  mutable std::mutex mu;
  std::list<Entry> lru;  // front: most recently used
  // Keys view into the list nodes, which never move.
  std::unordered_map<std::string_view, std::list<Entry>::iterator> index;
  std::size_t bytes = 0;
  uint64_t evictions = 0;
  uint64_t hits = 0, misses = 0, sets = 0, erases = 0;  // for stats()
  std::size_t max_entries = 0;
  std::size_t max_bytes = 0;

  void drop(std::list<Entry>::iterator it) {
    bytes -= it->key.size() + it->value.size();
    index.erase(std::string_view(it->key));
    lru.erase(it);
  }

  // The live entry for key, made most recently used, or nullptr (an expired one is
  // dropped). REQUIRES: mu held.
  Entry* live(std::string_view key, Steady::time_point now) {
    auto it = index.find(key);
    if (it == index.end()) return nullptr;
    auto node = it->second;
    if (node->expires <= now) {
      drop(node);
      return nullptr;
    }
    lru.splice(lru.begin(), lru, node);
    return &*node;
  }

  // Stores an entry, replacing any under its key and evicting to stay within bounds.
  // REQUIRES: mu held.
  void put(Entry e) {
    if (auto it = index.find(e.key); it != index.end()) drop(it->second);
    std::size_t need = e.key.size() + e.value.size();
    if (need > max_bytes || max_entries == 0) {  // larger than the whole shard, or no room at all: not cached
      ++evictions;
      return;
    }
    while (!lru.empty() && (lru.size() + 1 > max_entries || bytes + need > max_bytes)) {
      drop(std::prev(lru.end()));
      ++evictions;
    }
    lru.push_front(std::move(e));
    index.emplace(std::string_view(lru.front().key), lru.begin());
    bytes += need;
  }
};

MemoryBackend::Impl::Impl(MemoryOptions o) : options(std::move(o)) {
  if (!options.now) options.now = [] { return Steady::now(); };
  std::size_t n = 1;
  while (n < std::max<std::size_t>(1, options.shards)) n <<= 1;
  options.shards = n;
  for (std::size_t i = 0; i < n; ++i) {
    auto s = std::make_unique<Shard>();
    s->max_entries = (options.max_entries + n - 1) / n;  // 0 stays 0: nothing stored
    s->max_bytes = (options.max_bytes + n - 1) / n;
    shards.push_back(std::move(s));
  }
}

Shard& MemoryBackend::Impl::shard_for(std::string_view key) const {
  auto h = std::hash<std::string_view>{}(key);
  // Mix the high bits in: the map uses the low bits of the same hash.
  return *shards[(h ^ (h >> 29)) & (shards.size() - 1)];
}

template <class F>
auto MemoryBackend::Impl::locked(std::string_view key, Ttl ttl, F&& f) {
  validate_key(key, options.max_key_bytes);
  auto now = options.now();
  auto expires = expiry(now, ttl);
  Shard& s = shard_for(key);
  std::lock_guard lock(s.mu);
  return f(s, s.live(key, now), expires);
}

MemoryBackend::MemoryBackend(MemoryOptions options) : impl_(std::make_unique<Impl>(std::move(options))) {}

// get_or_set's background refreshes use this object: none may outlive it (background_pool.h).
MemoryBackend::~MemoryBackend() { detail::backend_gone(this); }

std::optional<Hit> MemoryBackend::get_entry(std::string_view key) {
  validate_key(key, impl_->options.max_key_bytes);
  Shard& s = impl_->shard_for(key);
  auto now = impl_->options.now();
  std::lock_guard lock(s.mu);
  Entry* e = s.live(key, now);
  ++(e ? s.hits : s.misses);
  if (!e) return std::nullopt;
  return Hit{e->value, ttl_left(*e, now), e->counter};
}

void MemoryBackend::set(std::string_view key, std::string_view value, Ttl ttl) {
  validate_key(key, impl_->options.max_key_bytes);
  auto expires = expiry(impl_->options.now(), ttl);
  Shard& s = impl_->shard_for(key);
  std::lock_guard lock(s.mu);
  s.put(Entry{std::string(key), std::string(value), expires});
  ++s.sets;
}

bool MemoryBackend::contains(std::string_view key) {
  validate_key(key, impl_->options.max_key_bytes);
  Shard& s = impl_->shard_for(key);
  auto now = impl_->options.now();
  std::lock_guard lock(s.mu);
  return s.live(key, now) != nullptr;
}

bool MemoryBackend::touch(std::string_view key, Ttl ttl) {
  return impl_->locked(key, ttl, [](Shard&, Entry* e, Steady::time_point expires) {
    if (!e) return false;
    e->expires = expires;
    return true;
  });
}

bool MemoryBackend::add(std::string_view key, std::string_view value, Ttl ttl) {
  return impl_->locked(key, ttl, [&](Shard& s, Entry* e, Steady::time_point expires) {
    if (e) return false;
    s.put(Entry{std::string(key), std::string(value), expires});
    ++s.sets;
    return true;
  });
}

int64_t MemoryBackend::increment(std::string_view key, int64_t delta, Ttl ttl) {
  return impl_->locked(key, ttl, [&](Shard& s, Entry* e, Steady::time_point expires) {
    if (e && !e->counter)
      throw WrongTypeError("key '" + std::string(key.substr(0, 64)) + "' holds a value, not a counter");
    int64_t current = e ? std::stoll(e->value) : 0;  // our own decimal text
    int64_t next;
    if (__builtin_add_overflow(current, delta, &next))
      throw InvalidArgumentError("counter '" + std::string(key.substr(0, 64)) + "' at " +
                                 std::to_string(current) + " + " + std::to_string(delta) +
                                 " would overflow int64");
    if (e) {
      s.bytes = s.bytes - e->value.size();
      e->value = std::to_string(next);
      s.bytes += e->value.size();
    } else {
      s.put(Entry{std::string(key), std::to_string(next), expires, true});
    }
    return next;
  });
}

void MemoryBackend::erase(std::string_view key) {
  validate_key(key, impl_->options.max_key_bytes);
  Shard& s = impl_->shard_for(key);
  std::lock_guard lock(s.mu);
  if (auto it = s.index.find(key); it != s.index.end()) s.drop(it->second);
  ++s.erases;
}

void MemoryBackend::clear(const std::function<void(uint64_t)>& progress) {
  uint64_t n = 0;
  for (auto& s : impl_->shards) {
    std::lock_guard lock(s->mu);
    n += s->lru.size();
    s->index.clear();
    s->lru.clear();
    s->bytes = 0;
  }
  if (progress) progress(n);
}

std::size_t MemoryBackend::size() const {
  std::size_t n = 0;
  for (auto& s : impl_->shards) {
    std::lock_guard lock(s->mu);
    n += s->lru.size();
  }
  return n;
}

std::size_t MemoryBackend::bytes() const {
  std::size_t n = 0;
  for (auto& s : impl_->shards) {
    std::lock_guard lock(s->mu);
    n += s->bytes;
  }
  return n;
}

CacheStats& MemoryBackend::stats() const {
  uint64_t hits = 0, misses = 0, sets = 0, erases = 0;
  for (auto& s : impl_->shards) {
    std::lock_guard lock(s->mu);
    hits += s->hits;
    misses += s->misses;
    sets += s->sets;
    erases += s->erases;
  }
  stats_->hits = hits;
  stats_->misses = misses;
  stats_->sets = sets;
  stats_->erases = erases;
  return *stats_;
}

uint64_t MemoryBackend::evictions() const {
  uint64_t n = 0;
  for (auto& s : impl_->shards) {
    std::lock_guard lock(s->mu);
    n += s->evictions;
  }
  return n;
}

}  // namespace dynamodb_cache
