// get_or_set that protects the source: one load per key at a time in a process (single
// flight), optionally one per fleet (a lease kept in the DynamoDB table), and optional refresh
// ahead of expiry so a hot key has no miss storm when it expires.
// Cache<T>::get_or_set (cache.h) is the typed front of this byte-level function.
#pragma once

#include <chrono>
#include <functional>
#include <string>
#include <string_view>

#include "dynamodb_cache/backend.h"

namespace dynamodb_cache {

struct GetOrSetOptions {
  // Fleet-wide lease. Zero (the default): no lease; loads are single-flight within the process
  // only. Otherwise, before loading a missing key, a process takes a lease on it in the table
  // (the item `KEY#lease`, a conditional PutItem) for this long; other processes poll for the
  // value instead of loading. A crashed holder's lease lapses after this time. Choose it longer
  // than a load takes. Needs a DynamodbBackend, or a LayeredBackend whose lowest layer is one
  // (the lease is then taken there, and the value loaded is written into the layers above
  // too); others: InvalidArgumentError.
  Ttl lease{0};
  // How long a process waits for another's lease holder before it loads itself. Default 10 s.
  Ttl lease_wait{10000};
  // Polling while waiting: starts at poll_min, doubles up to poll_max, each delay jittered by
  // up to half. Defaults 50 ms and 1 s.
  Ttl poll_min{50};
  Ttl poll_max{1000};
  // Refresh ahead of expiry: a hit with less than this left to live is reloaded by one caller
  // (one per fleet with a lease) while every other caller gets the current value at once.
  // Zero (the default): off. Entries that never expire are never refreshed.
  Ttl refresh_ahead{0};
  // Serve stale on failure: a grace period. Zero (the default): off. Otherwise the value is
  // stored so that it stays readable this long past its TTL (the item's expire and update_ts
  // are as usual, so the Python package 0.1.1 and every other read sees it expire on time;
  // see the item layout in dynamodb_backend.h). When the key has expired but is within its
  // grace and the load throws (or takes longer than load_timeout), the callers get that
  // stale value instead of the error: counted in stats().stale_served, logged at warning
  // level through the backend's log hook, and marked stale by get_or_set_entry. Then, for this
  // key in this process, callers get the stale value without calling the loader until a
  // backoff passes (1 s doubling to 30 s, jittered; a load that succeeds ends it), when the
  // next caller (the single-flight leader; with a lease, its holder, the others serving the
  // stale value rather than waiting) tries again. Past the grace there is no stale value, and
  // a failure reaches the callers as it would without this option. Needs a DynamodbBackend
  // (or a LayeredBackend whose lowest layer is one; a stale value is not copied to the layers
  // above); others: InvalidArgumentError. A plain set(), add() or touch() of the key ends the
  // grace of the value it replaces or re-times.
  Ttl stale_if_error{0};
  // With stale_if_error, how long the leader waits for a load when a stale value could be
  // served instead; zero (the default): as long as the load takes. The load then runs on a
  // small process-wide pool (4 threads, a bounded queue; when the queue is full it runs on
  // the caller's thread, unbounded) and keeps running past the timeout: when it succeeds it
  // stores its value (conditionally, as always), and until it ends no other load of the key
  // starts in this process. Without a stale value (a miss, or past the grace) the callers wait
  // for the load as usual. Nonzero without stale_if_error: InvalidArgumentError.
  Ttl load_timeout{0};
};

// get_or_set's answer with whether it is a stale value (GetOrSetOptions::stale_if_error).
struct GetOrSetResult {
  std::string value;
  bool stale = false;  // the loader failed or timed out: a value past its TTL, within its grace
};

// The value cached under `key`, or the bytes `load` returns, which are then cached for `ttl`.
//
// Single flight: within one process, callers of get_or_set on the same Backend object and
// key share one load: one runs `load`, the others wait for its result. (Two Backend objects,
// even on one table, do not share: each is its own flight registry, as two processes are.)
// An exception from `load` reaches every caller waiting on that load, and nothing is cached.
//
// With options.lease on a DynamodbBackend, see GetOrSetOptions::lease. A holder writes the
// value only if the item is still the one it saw missing or expiring (a conditional write on
// the item's version): a holder that finishes after its lease lapsed and someone else stored a
// newer value returns its own result to its callers but does not overwrite the newer one.
//
// Thread-safe. Blocking: callers may wait up to a load's duration (plus lease_wait with a
// lease). REQUIRES: `load` does not call get_or_set for the same backend and key (it would
// wait for itself). With load_timeout, `load` may still be running, on the pool, after
// get_or_set has returned: it must own what it uses (no references to the caller's locals);
// the backend's destructor waits for it.
std::string get_or_set(Backend& backend, std::string_view key, const std::function<std::string()>& load, Ttl ttl,
                       const GetOrSetOptions& options = {});
// get_or_set, saying whether the value is stale (stale_if_error).
GetOrSetResult get_or_set_entry(Backend& backend, std::string_view key,
                                const std::function<std::string()>& load, Ttl ttl,
                                const GetOrSetOptions& options = {});

// get_or_set without waiting: the same call, run where `backend` runs blocking work
// (Backend::run_blocking: a helper thread over DynamoDB, inline over a MemoryBackend), which
// then completes `done` (or the Pending). `load` runs there too. `backend` must outlive it.
void get_or_set_async(Backend& backend, std::string key, std::function<std::string()> load, Ttl ttl,
                      GetOrSetOptions options, Backend::Done<std::string> done);
Pending<std::string> get_or_set_async(Backend& backend, std::string key, std::function<std::string()> load,
                                      Ttl ttl, GetOrSetOptions options = {});

}  // namespace dynamodb_cache
