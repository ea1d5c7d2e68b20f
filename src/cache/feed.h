// The invalidation feed (private): what DynamodbOptions::publish_invalidations writes and
// CoherentNearCache (near_cache.h) reads. Pure: builds requests and reads items, sends none.
//
// Item layout (part of the table's layout: every writer and reader must agree on these
// constants, so changing one is a new layout):
//   key       S   "__dc#feed#<shard>#<slot>"  (kFeedPrefix; stored keys outside namespaces
//                 that begin with it are refused, so no cache entry takes a feed item's place)
//   inval     BS  8-byte big-endian hashes of what was written in that slot and shard
//   n         N   publishes made to the item (a reader skips an item whose n it has processed:
//                 a hash published again into the same item changes n, not the set)
//   expire_at N   the slot's end + kFeedItemLife, epoch seconds (native TTL removes old items)
// slot  = floor(writer's wall clock ms / kSlotMs)
// shard = hash % kShards; a namespace marker and the full-clear marker go to every shard.
// A hash is 64 bits of FNV-1a over a domain-tagged text, finished by a mixer: the key's
// ("k" NS 0x00 KEY, NS the namespace or empty), a namespace clear's ("n" NS), a full clear's
// ("*"). A collision only evicts more than needed (a read more), never keeps a stale value.
//
// Timing contract (README, "A near cache the fleet can trust"): a publish takes its slot from
// the writer's wall clock when it is sent; when its answer came more than kPublishDeadline
// later it is sent again into the then-current slot (kPublishTries in all), so a publish that
// returned lies in a slot no older than kPublishDeadline before it returned. Fleet clocks
// must agree within kClockTolerance (NTP). A reader's poll starting at wall time W, whose
// previous successful poll started at V, reads the slots
// [slot(V - kPublishDeadline - kClockTolerance), slot(W + kClockTolerance)] in every shard:
// every publish that returned before W lies there.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "dynamodb_cache/dynamodb.h"

namespace dynamodb_cache::feed {

inline constexpr std::string_view kFeedPrefix = "__dc#feed#";
inline constexpr const char* kHashes = "inval";  // attribute of the hashes (BS)
inline constexpr const char* kPublishes = "n";   // attribute counting publishes (N)
inline constexpr int64_t kSlotMs = 200;
inline constexpr uint64_t kShards = 2;
inline constexpr std::chrono::milliseconds kPublishDeadline{500};
inline constexpr std::chrono::milliseconds kClockTolerance{100};
inline constexpr int kPublishTries = 3;
inline constexpr std::chrono::seconds kFeedItemLife{600};
// A reader whose last successful poll is older than this (or whose window would pass
// kMaxWindowSlots) drops all of its memory and reads only a fresh window: a bounded request.
inline constexpr int64_t kMaxWindowSlots = 150;  // 30 s

// Hashes of what a write changes.
uint64_t key_hash(std::string_view ns, std::string_view key);
uint64_t namespace_hash(std::string_view ns);
uint64_t clear_all_hash();

int64_t slot_of(int64_t wall_ms);
uint64_t shard_of(uint64_t hash);
std::string item_key(uint64_t shard, int64_t slot);
// The 8 bytes of a hash in the item (big-endian), and back (nullopt: not 8 bytes).
std::string hash_bytes(uint64_t hash);
std::optional<uint64_t> hash_of_bytes(std::string_view bytes);

// The UpdateItem that adds `hashes` (all of one shard) to the item of (shard, slot):
// ADD inval :h, n :one SET expire_at = if_not_exists(expire_at, :e). Safe to resend (a
// resent copy adds to n once more: readers process the item again, harmlessly).
dynamodb::UpdateItemRequest publish_request(const std::string& table, uint64_t shard, int64_t slot,
                                            const std::vector<uint64_t>& hashes);
// `hashes` grouped by shard (markers of every shard included as given): index = shard.
std::vector<std::vector<uint64_t>> by_shard(const std::vector<uint64_t>& hashes);

// The slots a poll reads: [first, last]. `previous_ms`: the wall start of the previous
// successful poll (nullopt: none). An empty optional when the window is too long
// (kMaxWindowSlots): then the caller drops its memory and reads window(now_ms, nullopt).
struct Window {
  int64_t first, last;
};
std::optional<Window> window(int64_t now_ms, std::optional<int64_t> previous_ms);
// The keys of every shard's item of every slot in `w`.
std::vector<dynamodb::Item> window_keys(const Window& w);
// The hashes a feed item holds (items of other shapes hold none).
std::vector<uint64_t> hashes_in(const dynamodb::Item& item);
// The item's publish count `n` as text ("" when absent).
std::string publishes_in(const dynamodb::Item& item);
// The slot a feed item key names (nullopt: not a feed item key).
std::optional<int64_t> slot_in_key(std::string_view key);

}  // namespace dynamodb_cache::feed
