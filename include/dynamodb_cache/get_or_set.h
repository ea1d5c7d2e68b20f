// get_or_set that protects the source: one load per key at a time in a process (single
// flight), optionally one per fleet (a lease kept in the DynamoDB table), and optional refresh
// ahead of expiry so a hot key has no miss storm when it expires.
// Cache<T>::get_or_set (cache.h) is the typed front of this byte-level function.
#pragma once

#include <chrono>
#include <functional>
#include <optional>
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
  // Refresh ahead of expiry: a hit with less than this left to live is reloaded in the
  // background while every caller, the one that noticed it too, gets the current value at
  // once. The reload runs on a small process-wide pool (4 threads, a bounded queue: when the
  // queue is full the refresh is skipped, and a later hit tries again, so a caller is never
  // held up); one at a time per key in this process (the key's single flight: a caller that
  // finds the key missing meanwhile waits for it), one per fleet with a lease (the holder
  // reloads, the others keep the current value). Its store is conditional as every load's
  // (an erase or set made during it wins); through a LayeredBackend the layers above are
  // filled after it, when the table took the value. A reload that fails is counted
  // (stats().refresh_failures) and logged at warning level through the backend's log hook
  // (its message, never the value), and the current value is served until it expires; it is
  // never thrown at a caller (only at callers waiting on it after finding the key missing).
  // The loader then runs after get_or_set has returned: it must own what it uses (see
  // get_or_set). Over a Backend class of your own (not this library's DynamodbBackend,
  // MemoryBackend or LayeredBackend, whose destructors wait for their pool tasks) nothing could
  // keep the backend alive for a background reload: there the caller that notices the key due
  // reloads it on its own thread, as a load, and gets the new value. Zero (the default): off.
  // Entries that never expire are never refreshed.
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
  // stores its value (conditionally, as always), and until it ends, while a stale value is
  // there to serve, no other load of the key starts in this process (past the grace a caller
  // loads again; the two stores are conditional, so neither overwrites a newer value). Without
  // a stale value (a miss, or past the grace) the callers wait for the load as usual. Nonzero
  // without stale_if_error: InvalidArgumentError.
  Ttl load_timeout{0};
  // Negative caching, for loaders that can say the source has no value (LoadResult::missing):
  // such a miss is remembered in the table for this long, and callers that set this option
  // get "missing" (std::nullopt) within it without calling the loader, so a missing row does
  // not hammer the source. Zero (the default): a miss is not remembered. Stored as an item
  // every other read takes for an expired entry of no bytes (get(), contains() and the
  // Python package 0.1.1 see no value; `miss_until` in the README's table layout), with
  // `miss_until` (epoch ms) that only get_or_set reads; a set(), add() or erase() of the key
  // ends it, and a loader that returns a value is stored over it (conditionally, as always).
  // Needs a loader returning LoadResult and a DynamodbBackend (or a LayeredBackend whose
  // lowest layer is one); else InvalidArgumentError.
  Ttl cache_misses_for{0};
};

// What a get_or_set loader may return instead of a value alone (the overloads taking a
// std::function<Loaded()> here, and Cache<T>::get_or_set with a loader returning
// LoadResult<T>): the value, or that the source has none, its own TTL, or not to cache it.
template <class T>
struct LoadResult {
  std::optional<T> value;  // std::nullopt: the source has no value for the key
  std::optional<Ttl> ttl;  // this value's TTL, instead of the call's (ttl_jitter still applies)
  bool cache = true;       // false: the callers get the value (or the miss); nothing is stored

  // A value, cached for `ttl` when given, else for the call's TTL.
  static LoadResult found(T value, std::optional<Ttl> ttl = std::nullopt) {
    return {std::move(value), ttl, true};
  }
  // The source has no value: remembered for GetOrSetOptions::cache_misses_for, if set.
  static LoadResult missing() { return {}; }
  // A value handed to the callers (and those waiting on this load) but not stored; a
  // placeholder reserved for it is removed.
  static LoadResult uncached(T value) { return {std::move(value), std::nullopt, false}; }
};
using Loaded = LoadResult<std::string>;

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
// With options.lease on a DynamodbBackend, see GetOrSetOptions::lease. Over a DynamodbBackend
// (leased or not) a load's value is written only if the item is still the one seen before the
// load (a conditional write on the item's version; a key with no item is first reserved by a
// placeholder item that reads as expired): a set, add or erase of the key, in any process,
// or another process's store, that lands while the load runs wins, and the late load's store
// is a no-op. Its callers still get its result. Through a LayeredBackend the layers above the
// table are filled only when the table took the value.
//
// Thread-safe. Blocking: callers may wait up to a load's duration (plus lease_wait with a
// lease); never for a refresh ahead of expiry. REQUIRES: `load` does not call get_or_set for
// the same backend and key (it would wait for itself). With refresh_ahead or load_timeout,
// `load` may run, on the pool, after get_or_set has returned: it must own what it uses (no
// references to the caller's locals); the backend's destructor (a LayeredBackend's too)
// waits for it, and drops a refresh still queued.
std::string get_or_set(Backend& backend, std::string_view key, const std::function<std::string()>& load,
                       Ttl ttl, const GetOrSetOptions& options = {});
// get_or_set whose loader decides (Loaded: a TTL of its own, "do not cache", or "the source
// has none", answered std::nullopt and remembered for options.cache_misses_for). Everything
// else as above; a waiter of a load that found nothing gets std::nullopt too (from the forms
// whose loader must return a value: InvalidArgumentError). A TTL below zero from the loader:
// InvalidArgumentError, nothing stored.
std::optional<std::string> get_or_set(Backend& backend, std::string_view key,
                                      const std::function<Loaded()>& load, Ttl ttl,
                                      const GetOrSetOptions& options = {});
// get_or_set, saying whether the value is stale (stale_if_error).
GetOrSetResult get_or_set_entry(Backend& backend, std::string_view key,
                                const std::function<std::string()>& load, Ttl ttl,
                                const GetOrSetOptions& options = {});
// get_or_set_entry whose loader decides (Loaded): std::nullopt when the source has none.
std::optional<GetOrSetResult> get_or_set_entry(Backend& backend, std::string_view key,
                                               const std::function<Loaded()>& load, Ttl ttl,
                                               const GetOrSetOptions& options = {});

// get_or_set without waiting: the same call, run where `backend` runs blocking work
// (Backend::run_blocking: a helper thread over DynamoDB, inline over a MemoryBackend), which
// then completes `done` (or the Pending). `load` runs there too, or, for a refresh ahead of
// expiry, on the pool (`done` hears the current value first). `backend` must outlive it.
void get_or_set_async(Backend& backend, std::string key, std::function<std::string()> load, Ttl ttl,
                      GetOrSetOptions options, Backend::Done<std::string> done);
Pending<std::string> get_or_set_async(Backend& backend, std::string key, std::function<std::string()> load,
                                      Ttl ttl, GetOrSetOptions options = {});
// get_or_set_async whose loader decides (Loaded): std::nullopt when the source has none.
void get_or_set_async(Backend& backend, std::string key, std::function<Loaded()> load, Ttl ttl,
                      GetOrSetOptions options, Backend::Done<std::optional<std::string>> done);
Pending<std::optional<std::string>> get_or_set_async(Backend& backend, std::string key,
                                                     std::function<Loaded()> load, Ttl ttl,
                                                     GetOrSetOptions options = {});

// ---- bulk loads ----

// get_or_set_many's loader: called with the keys to load, each once, in the order of their
// first appearance in the call's keys; returns one result per key (result i for missing[i]):
// the bytes to cache, or std::nullopt when the source has no value for it.
using ManyLoader =
    std::function<std::vector<std::optional<std::string>>(const std::vector<std::string>& missing)>;

struct GetOrSetManyOptions {
  // Spreads the TTLs of the values stored (TypedOptions::ttl_jitter in cache.h, which
  // Cache<T>::get_or_set_many passes here): the entries go in groups of 25 (ttl_jitter_groups),
  // each stored with a TTL of its own (jitter_ttl). 0 (the default): one batch, the exact TTL.
  // Must be 0 or more and less than 1, else InvalidArgumentError.
  double ttl_jitter = 0;
};

// get_or_set for many keys at once: result i answers keys[i]. One batch read of the keys
// (Backend::get_many; a key named twice is read, loaded and stored once and answered at each
// position); ONE call of `load_many` with exactly the keys that missed and that no other caller
// is loading; one batch store of what it returned (Backend::set_many, 25 items per
// BatchWriteItem over DynamoDB; over a LayeredBackend the layers' get_many and set_many:
// read-through with back-fill, write-through). A key the loader has no value for is answered
// std::nullopt and not cached. A loader returning more or fewer results than it was given keys
// is an InvalidArgumentError.
//
// Single flight, per key, shared with get_or_set (the same registry, the same flights): a key
// another caller (get_or_set or get_or_set_many) is loading is waited for, not loaded again;
// the keys this call loads are waited for by the others. This call finishes its own loads
// before it waits for anyone's, so overlapping calls never wait for each other in a circle.
// An exception from `load_many` (or from the store) reaches this caller and every waiter of
// the keys it was loading, and nothing is cached; an exception of a load this call waited for
// reaches it too. A get_or_set that shared the load of a key the loader had no value for
// (it must return a value) gets an InvalidArgumentError saying so.
//
// Unlike get_or_set, the store is one unconditional batch (BatchWriteItem cannot be
// conditional): a value another writer set meanwhile may be overwritten by it; and no lease is
// taken (single flight is within the process only). stats().loads counts each call of
// load_many once, its time in load_time_us.
//
// Thread-safe. Blocking. REQUIRES: `load_many` does not ask (get_or_set, get_or_set_many) for
// a key it is loading (InvalidArgumentError: it would wait for itself).
std::vector<std::optional<std::string>> get_or_set_many(Backend& backend,
                                                        const std::vector<std::string>& keys,
                                                        const ManyLoader& load_many, Ttl ttl,
                                                        const GetOrSetManyOptions& options = {});

// get_or_set_many without waiting: the same call, run where `backend` runs blocking work
// (Backend::run_blocking: a helper thread over DynamoDB, inline over a MemoryBackend), which
// then completes `done` (or the Pending). `load_many` runs there too. `backend` must outlive it.
void get_or_set_many_async(Backend& backend, std::vector<std::string> keys, ManyLoader load_many, Ttl ttl,
                           GetOrSetManyOptions options,
                           Backend::Done<std::vector<std::optional<std::string>>> done);
Pending<std::vector<std::optional<std::string>>> get_or_set_many_async(Backend& backend,
                                                                       std::vector<std::string> keys,
                                                                       ManyLoader load_many, Ttl ttl,
                                                                       GetOrSetManyOptions options = {});

}  // namespace dynamodb_cache
