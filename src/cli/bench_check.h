// The staleness checker of `dynamodb-cache bench --check` (private to the CLI): every read
// of a multi-process run checked against the acknowledged writes.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace dynamodb_cache::cli::check {

// What an operation wrote or a read answered. Values written under --check are unique: a
// (process, sequence) pair, process 1..N and sequence from 1, as value_id() packs them; the
// value every key was prepared with is kPrepared.
inline constexpr uint64_t kPrepared = 0;
inline constexpr uint64_t kAbsent = ~uint64_t{0};       // an erase; a read's miss
inline constexpr uint64_t kForeign = ~uint64_t{0} - 1;  // a read's answer no run of --check wrote
inline uint64_t value_id(uint64_t process, uint64_t seq) { return process << 40 | seq; }

// The bytes a write of `id` stores: "chk:RUN:PROCESS:SEQ:" padded with '.' to `size` bytes
// (longer when that does not fit). `run` tells this run's values from a previous run's.
std::string encode_value(std::string_view run, uint64_t id, std::size_t size);
// The id in bytes encode_value made for `run`; kForeign for anything else.
uint64_t decode_value(std::string_view run, std::string_view bytes);
// "3:17", "prepared", "miss" or "foreign", for messages.
std::string describe(uint64_t id);

enum class Kind : uint8_t { kGet, kSet, kErase };

// One operation as a process saw it. Times are CLOCK_MONOTONIC nanoseconds (one clock for
// every process of a machine): `start` before the call, `end` after its answer.
struct Op {
  uint64_t key = 0;
  Kind kind = Kind::kGet;
  // A get: answered (else it failed and is not checked). A set or erase: acknowledged; false
  // when it threw, which leaves its outcome unknown: it may have been applied, so it may be
  // read, but it never makes another value stale.
  bool ok = true;
  int64_t start = 0, end = 0;
  // A set: the id written; an erase: kAbsent; a get: what it answered (kAbsent for a miss).
  uint64_t value = kAbsent;
};

struct Violation {
  Op read;
  // "stale": it answered a value that a write acknowledged more than the bound before the
  // read began had replaced; "unwritten": no write invoked before the read ended wrote it
  // (nor was it the prepared value).
  const char* rule = "";
  // For "stale": the write that had replaced it (its value and when it was acknowledged).
  uint64_t replaced_by = kAbsent;
  int64_t replaced_at = 0;
};

struct Report {
  uint64_t reads = 0;            // reads checked (answered ones)
  uint64_t stale = 0;            // the staleness rule broken
  uint64_t unwritten = 0;        // the first rule broken
  std::vector<Violation> first;  // the first few, in read start order
};

// Checks every answered get in `ops` (all processes' operations, any order) against the
// writes to its key. Before the run every key held `initial` (kPrepared, or kAbsent for
// keys never written). A read R is:
//  - "unwritten" when it answers a value no write of that key invoked before R ended wrote
//    (nor `initial`), or a miss when neither `initial` nor any erase invoked before R ended
//    was a miss;
//  - "stale" when every write W that could have produced its answer was replaced: another
//    acknowledged write W2 of the key, invoked after W completed and writing something else,
//    was acknowledged more than `bound_ns` before R began. Writes overlapping W do not
//    replace it (either may be the last).
// O((ops) log(ops)): sorts writes per key, then one binary search per read. Keeps up to
// `keep` violations in `first`.
Report check_history(std::vector<Op> ops, uint64_t initial, int64_t bound_ns, std::size_t keep = 5);

}  // namespace dynamodb_cache::cli::check
