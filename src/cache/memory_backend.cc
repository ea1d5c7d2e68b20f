#include <list>
#include <mutex>
#include <unordered_map>

#include "dynamodb_cache/backend.h"
#include "dynamodb_cache/errors.h"

namespace dynamodb_cache {

namespace {
using Steady = std::chrono::steady_clock;

struct Entry {
  std::string key;
  std::string value;
  Steady::time_point expires;  // time_point::max(): never
};
}  // namespace

struct MemoryBackend::Shard {
  mutable std::mutex mu;
  std::list<Entry> lru;  // front: most recently used
  // Keys view into the list nodes, which never move.
  std::unordered_map<std::string_view, std::list<Entry>::iterator> index;
  std::size_t bytes = 0;
  uint64_t evictions = 0;
  std::size_t max_entries = 0;
  std::size_t max_bytes = 0;

  void drop(std::list<Entry>::iterator it) {
    bytes -= it->key.size() + it->value.size();
    index.erase(std::string_view(it->key));
    lru.erase(it);
  }
};

MemoryBackend::MemoryBackend(MemoryOptions options) : options_(std::move(options)) {
  if (!options_.now) options_.now = [] { return Steady::now(); };
  std::size_t n = 1;
  while (n < std::max<std::size_t>(1, options_.shards)) n <<= 1;
  options_.shards = n;
  for (std::size_t i = 0; i < n; ++i) {
    auto s = std::make_unique<Shard>();
    s->max_entries = std::max<std::size_t>(1, (options_.max_entries + n - 1) / n);
    s->max_bytes = std::max<std::size_t>(1, (options_.max_bytes + n - 1) / n);
    shards_.push_back(std::move(s));
  }
}

MemoryBackend::~MemoryBackend() = default;

MemoryBackend::Shard& MemoryBackend::shard_for(std::string_view key) const {
  auto h = std::hash<std::string_view>{}(key);
  // Mix the high bits in: the map uses the low bits of the same hash.
  return *shards_[(h ^ (h >> 29)) & (shards_.size() - 1)];
}

std::optional<Hit> MemoryBackend::get_entry(std::string_view key) {
  validate_key(key);
  Shard& s = shard_for(key);
  auto now = options_.now();
  std::lock_guard lock(s.mu);
  auto it = s.index.find(key);
  if (it == s.index.end()) return std::nullopt;
  auto node = it->second;
  if (node->expires <= now) {
    s.drop(node);
    return std::nullopt;
  }
  s.lru.splice(s.lru.begin(), s.lru, node);
  Hit h{node->value, std::nullopt};
  if (node->expires != Steady::time_point::max())
    h.ttl_left = std::chrono::duration_cast<Ttl>(node->expires - now);
  return h;
}

void MemoryBackend::set(std::string_view key, std::string_view value, Ttl ttl) {
  validate_key(key);
  if (ttl.count() < 0) throw InvalidArgumentError("ttl must not be negative");
  auto now = options_.now();
  auto expires = ttl.count() == 0 ? Steady::time_point::max()
                                  : now + std::chrono::duration_cast<Steady::duration>(ttl);
  Shard& s = shard_for(key);
  std::size_t need = key.size() + value.size();
  std::lock_guard lock(s.mu);
  if (auto it = s.index.find(key); it != s.index.end()) s.drop(it->second);
  if (need > s.max_bytes) {  // larger than the whole shard: not cached at all
    ++s.evictions;
    return;
  }
  while (!s.lru.empty() && (s.lru.size() + 1 > s.max_entries || s.bytes + need > s.max_bytes)) {
    s.drop(std::prev(s.lru.end()));
    ++s.evictions;
  }
  s.lru.push_front(Entry{std::string(key), std::string(value), expires});
  s.index.emplace(std::string_view(s.lru.front().key), s.lru.begin());
  s.bytes += need;
}

void MemoryBackend::erase(std::string_view key) {
  validate_key(key);
  Shard& s = shard_for(key);
  std::lock_guard lock(s.mu);
  if (auto it = s.index.find(key); it != s.index.end()) s.drop(it->second);
}

void MemoryBackend::clear(const std::function<void(uint64_t)>& progress) {
  uint64_t n = 0;
  for (auto& s : shards_) {
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
  for (auto& s : shards_) {
    std::lock_guard lock(s->mu);
    n += s->lru.size();
  }
  return n;
}

std::size_t MemoryBackend::bytes() const {
  std::size_t n = 0;
  for (auto& s : shards_) {
    std::lock_guard lock(s->mu);
    n += s->bytes;
  }
  return n;
}

uint64_t MemoryBackend::evictions() const {
  uint64_t n = 0;
  for (auto& s : shards_) {
    std::lock_guard lock(s->mu);
    n += s->evictions;
  }
  return n;
}

}  // namespace dynamodb_cache
