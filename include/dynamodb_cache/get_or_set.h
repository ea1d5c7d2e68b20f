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
};

// The value cached under `key`, or the bytes `load` returns, which are then cached for `ttl`.
//
// Single flight: within one process, callers of get_or_set on the same Backend object and
// key share one load: one runs `load`, the others wait for its result. (Two Backend objects,
// even on one table, do not share: each is its own flight registry, as two processes are.)
// An exception from `load` reaches every caller waiting on that load, and nothing is cached.
//
// With options.lease on a DynamodbBackend, see GetOrSetOptions::lease. Over a DynamodbBackend
// (leased or not) a load's value is written only if the item is still the one seen before the
// load (a conditional write on the item's version; a key with no item is first reserved by a
// placeholder item that reads as expired): a set, add or erase of the key, in any process,
// or another process's store, that lands while the load runs wins, and the late load's store
// is a no-op. Its callers still get its result. Through a LayeredBackend the layers above the
// table are filled only when the table took the value.
//
// Thread-safe. Blocking: callers may wait up to a load's duration (plus lease_wait with a
// lease). REQUIRES: `load` does not call get_or_set for the same backend and key (it would
// wait for itself).
std::string get_or_set(Backend& backend, std::string_view key, const std::function<std::string()>& load, Ttl ttl,
                       const GetOrSetOptions& options = {});

// get_or_set without waiting: the same call, run where `backend` runs blocking work
// (Backend::run_blocking: a helper thread over DynamoDB, inline over a MemoryBackend), which
// then completes `done` (or the Pending). `load` runs there too. `backend` must outlive it.
void get_or_set_async(Backend& backend, std::string key, std::function<std::string()> load, Ttl ttl,
                      GetOrSetOptions options, Backend::Done<std::string> done);
Pending<std::string> get_or_set_async(Backend& backend, std::string key, std::function<std::string()> load,
                                      Ttl ttl, GetOrSetOptions options = {});

}  // namespace dynamodb_cache
