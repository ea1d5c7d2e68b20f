// Values past one 400 KB item (private to DynamodbBackend).
//
// A value whose item would not fit is stored as chunk items plus one head item:
//
//   head  (the cache key): key | expire | update_ts | expire_at | fmt = 3 | wid | chunks | bytes
//                          | crc32 | cfmt
//   chunk i (0-based):     key = chunk_key(head key, wid, i) | value (B) | fmt = 4 | expire_at
//
// `wid` is a random 128-bit write id (32 hex digits), `chunks` the number of chunks, `bytes`
// the stored length (after compression), `crc32` zlib's CRC-32 of the stored bytes, `cfmt` how
// they hold the value (1 raw, 2 zstd, as `fmt` of a one-item value).
//
// Every write draws a new write id and writes its chunks before its head, so a head names
// chunks that were complete before it became visible, and a chunk key belongs to exactly one
// write. A reader who fetched head H therefore gets H's chunks or finds one missing (H was
// overwritten or erased and its chunks deleted); it then re-reads the head, and after a few
// tries reports a miss. It never returns a mix of two writes; the CRC-32 guards against
// anything else (a damaged or foreign chunk is a CodecError).
//
// Clean-up: a chunk of a value with a TTL carries expire_at equal to the head's, so DynamoDB's
// native TTL removes it with (never before) its head, overwritten or not. Chunks of a value
// that never expires have no expire_at: when a set() or erase() replaces such a head, the old
// write's chunks are deleted (best effort, after the new head is in place). A process that
// dies between writing chunks and its head, or between replacing a head and deleting the old
// chunks, leaves chunks that nothing names: with a TTL they expire; without one they stay
// until clear().
//
// Thread-safety: free functions over a thread-safe Client; no state of their own.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "dynamodb_cache/dynamodb.h"

namespace dynamodb_cache::chunked {

// Stored bytes per chunk item. 384 KiB leaves more than 10 KB under DynamoDB's 400 KB item
// limit for a 2048-byte key, the attribute names and the numbers.
inline constexpr std::size_t kChunkBytes = 384 * 1024;
// Chunks asked per BatchGetItem: 24 x 384 KiB = 9.4 MB of data (12.6 MB as base64 JSON),
// below DynamoDB's 16 MB answer limit, so an answer is not cut short and retried.
inline constexpr std::size_t kChunksPerBatchGet = 24;
// Values of `fmt` for the two kinds of items above.
inline constexpr int kHeadFormat = 3;
inline constexpr int kChunkFormat = 4;
// The head attribute holding the write id: present exactly on chunked heads.
inline constexpr const char* kWriteId = "wid";

// What a head names.
struct Head {
  std::string write_id;   // 32 lower-case hex digits
  uint64_t chunks = 0;
  uint64_t bytes = 0;     // stored bytes, all chunks together
  uint32_t crc32 = 0;     // of the stored bytes
  int inner_format = 1;   // 1 raw, 2 zstd
};

// The key of chunk `index` of write `write_id` of the head stored under `head_key`: the head
// key (cut to 1900 bytes at a character boundary, so the result stays within 2048) followed
// by "#chunk:WID:INDEX". Readable next to its head in a scan.
std::string chunk_key(std::string_view head_key, std::string_view write_id, uint64_t index);

// Writes `stored` as chunks of a new write (BatchWriteItem, 25 per call) and returns the
// head that names them. expire_at: the head's native-TTL time (nullopt: never expires).
Head write_chunks(dynamodb::Client& client, const std::string& table, std::string_view head_key,
                  std::string_view stored, int inner_format, std::optional<int64_t> expire_at);

// Adds the head attributes (fmt = 3, wid, chunks, bytes, crc32, cfmt) to `item`.
void add_head_attributes(dynamodb::Item& item, const Head& head);

// The head an item holds, nullopt when it is not a head. Throws CodecError when it claims to
// be one but its attributes are missing, malformed or beyond kMaxValueBytes.
std::optional<Head> parse_head(const dynamodb::Item& item);

// Thrown by read_chunks when a chunk the head names is gone: the head was overwritten or
// erased meanwhile. Callers re-read the head.
struct ChunksGone {};

// The stored bytes of the write `head` names, read with BatchGetItem (kChunksPerBatchGet per
// call). Missing chunks are asked once more with a strongly consistent read; still missing:
// throws ChunksGone. A wrong length or CRC-32 is a CodecError.
std::string read_chunks(dynamodb::Client& client, const std::string& table, std::string_view head_key,
                        const Head& head, bool consistent_read);

// How many times read_retrying reads a head whose chunks vanish under it. Each time, a writer
// replaced the never-expiring value (deleting its chunks) while it was read. With three
// writers of 0.5-2 MB values back to back on three keys, 3 tries once let a read miss a value
// that was there (the history check's R3, in CI on 2026-12-07); 8 need 8 replacements during
// one read, for at most 8 reads of the value's size.
inline constexpr int kChunkedReadTries = 8;

// Calls `read` (which reads the head, with a strongly consistent read when its argument is
// true, and its chunks) until it does not throw ChunksGone; after kChunkedReadTries, a miss.
template <class Read>
auto read_retrying(Read&& read) -> decltype(read(false)) {
  for (int attempt = 0; attempt < kChunkedReadTries; ++attempt) {
    try {
      return read(attempt > 0);
    } catch (const ChunksGone&) {
    }
  }
  return {};
}

// Deletes the chunks `old` names, if it is a head (only when it never expires, if
// only_never_expiring). Best effort: errors are swallowed, leaving the chunks to their TTL or
// clear().
void delete_chunks_of(dynamodb::Client& client, const std::string& table, const dynamodb::Item& old,
                      bool only_never_expiring);

// The chunked heads of values that never expire among the items stored under `head_keys`
// (distinct), for erase_many: BatchWriteItem deletes return nothing, so their chunks are
// found beforehand. BatchGetItem, 100 keys a call, projected to the head attributes (no value
// bytes on the wire; DynamoDB still charges read units by item size). Best effort: keys left
// unprocessed after a few tries, and errors, are skipped (their chunks wait for clear()).
std::vector<dynamodb::Item> never_expiring_heads(dynamodb::Client& client, const std::string& table,
                                                 const std::vector<std::string>& head_keys);

// PutItem of a head or one-item value, unconditional in effect. When it replaces the head of a
// value that never expires, that value's chunks are deleted afterwards (best effort: a failure
// there leaves them for clear() and is not reported). Costs one PutItem, two in that case.
// Returns the capacity the write that succeeded consumed, as `r` asked for it.
std::optional<dynamodb::ConsumedCapacity> put_replacing(dynamodb::Client& client, dynamodb::PutItemRequest r);
// DeleteItem with the same clean-up.
std::optional<dynamodb::ConsumedCapacity> delete_replacing(dynamodb::Client& client, dynamodb::DeleteItemRequest r);
// The condition (on an unconditional `w`) under which the write cannot be replacing a
// never-expiring chunked head: then there is nothing to clean up and no old image needs to
// come back. put/delete_replacing's first try; the asynchronous writes send it alone and
// take the replacing path only when it fails.
void set_no_cleanup_condition(dynamodb::ConditionalWrite& w);

}  // namespace dynamodb_cache::chunked
