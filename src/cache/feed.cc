// The invalidation feed's layout and arithmetic (feed.h).
#include "cache/feed.h"

#include <algorithm>

#include "cache/item_layout.h"
#include "dynamodb_cache/dynamodb_backend.h"

namespace dynamodb_cache::feed {

namespace {
uint64_t fnv1a(uint64_t h, std::string_view s) {
  for (unsigned char c : s) {
    h ^= c;
    h *= 0x100000001b3ull;
  }
  return h;
}
// splitmix64's finisher: spreads FNV's low bits (the shard is taken from them).
uint64_t mix(uint64_t x) {
  x ^= x >> 30;
  x *= 0xbf58476d1ce4e5b9ull;
  x ^= x >> 27;
  x *= 0x94d049bb133111ebull;
  x ^= x >> 31;
  return x;
}
constexpr uint64_t kFnvBasis = 0xcbf29ce484222325ull;
}  // namespace

uint64_t key_hash(std::string_view ns, std::string_view key) {
  uint64_t h = fnv1a(kFnvBasis, "k");
  h = fnv1a(h, ns);
  h = fnv1a(h, std::string_view("\0", 1));
  return mix(fnv1a(h, key));
}
uint64_t namespace_hash(std::string_view ns) { return mix(fnv1a(fnv1a(kFnvBasis, "n"), ns)); }
uint64_t clear_all_hash() { return mix(fnv1a(kFnvBasis, "*")); }

int64_t slot_of(int64_t wall_ms) {
  // Floor division: a clock before 1970 still maps to increasing slots.
  return wall_ms >= 0 ? wall_ms / kSlotMs : -((-wall_ms + kSlotMs - 1) / kSlotMs);
}
uint64_t shard_of(uint64_t hash) { return hash % kShards; }

std::string item_key(uint64_t shard, int64_t slot) {
  return std::string(kFeedPrefix) + std::to_string(shard) + "#" + std::to_string(slot);
}

std::string hash_bytes(uint64_t hash) {
  std::string s(8, '\0');
  for (int i = 7; i >= 0; --i) {
    s[static_cast<size_t>(i)] = static_cast<char>(hash & 0xff);
    hash >>= 8;
  }
  return s;
}
std::optional<uint64_t> hash_of_bytes(std::string_view bytes) {
  if (bytes.size() != 8) return std::nullopt;
  uint64_t h = 0;
  for (unsigned char c : bytes) h = (h << 8) | c;
  return h;
}

dynamodb::UpdateItemRequest publish_request(const std::string& table, uint64_t shard, int64_t slot,
                                            const std::vector<uint64_t>& hashes) {
  dynamodb::UpdateItemRequest r;
  r.table_name = table;
  r.key = layout::key_item(item_key(shard, slot));
  r.update_expression = "ADD #h :h, #n :one SET #t = if_not_exists(#t, :t)";
  r.names = {{"#h", kHashes}, {"#n", kPublishes}, {"#t", attr::kExpireAt}};
  std::vector<std::string> bytes;
  bytes.reserve(hashes.size());
  for (uint64_t h : hashes) bytes.push_back(hash_bytes(h));
  std::sort(bytes.begin(), bytes.end());
  bytes.erase(std::unique(bytes.begin(), bytes.end()), bytes.end());  // a set holds each once
  r.values = {{":h", dynamodb::AttributeValue::BS(std::move(bytes))},
              {":one", dynamodb::AttributeValue::N(1)},
              {":t", dynamodb::AttributeValue::N((slot + 1) * kSlotMs / 1000 + 1 +
                                                 std::chrono::seconds(kFeedItemLife).count())}};
  return r;
}

std::vector<std::vector<uint64_t>> by_shard(const std::vector<uint64_t>& hashes) {
  std::vector<std::vector<uint64_t>> out(kShards);
  for (uint64_t h : hashes) out[shard_of(h)].push_back(h);
  return out;
}

std::optional<Window> window(int64_t now_ms, std::optional<int64_t> previous_ms) {
  const int64_t ahead = kClockTolerance.count(), behind = kPublishDeadline.count() + kClockTolerance.count();
  const int64_t last = slot_of(now_ms + ahead);
  const int64_t first = slot_of((previous_ms ? std::min(*previous_ms, now_ms) : now_ms) - behind);
  if (last - first + 1 > kMaxWindowSlots) return std::nullopt;
  return Window{first, last};
}

std::vector<dynamodb::Item> window_keys(const Window& w) {
  std::vector<dynamodb::Item> keys;
  for (int64_t s = w.first; s <= w.last; ++s)
    for (uint64_t shard = 0; shard < kShards; ++shard) keys.push_back(layout::key_item(item_key(shard, s)));
  return keys;
}

std::vector<uint64_t> hashes_in(const dynamodb::Item& item) {
  std::vector<uint64_t> out;
  auto it = item.find(kHashes);
  if (it == item.end() || it->second.type != dynamodb::AttrType::kBS) return out;
  out.reserve(it->second.set.size());
  for (const auto& b : it->second.set)
    if (auto h = hash_of_bytes(b)) out.push_back(*h);
  return out;
}

std::string publishes_in(const dynamodb::Item& item) {
  auto it = item.find(kPublishes);
  return it == item.end() || it->second.type != dynamodb::AttrType::kN ? std::string() : it->second.scalar;
}

std::optional<int64_t> slot_in_key(std::string_view key) {
  if (!key.starts_with(kFeedPrefix)) return std::nullopt;
  auto hash = key.rfind('#');
  if (hash == std::string_view::npos || hash + 1 >= key.size()) return std::nullopt;
  int64_t slot = 0;
  bool negative = false;
  size_t i = hash + 1;
  if (key[i] == '-') {
    negative = true;
    ++i;
  }
  if (i >= key.size() || key.size() - i > 18) return std::nullopt;
  for (; i < key.size(); ++i) {
    if (key[i] < '0' || key[i] > '9') return std::nullopt;
    slot = slot * 10 + (key[i] - '0');
  }
  return negative ? -slot : slot;
}

}  // namespace dynamodb_cache::feed
