// The typed cache: Cache<T, Codec> over any Backend. A Codec turns a T into bytes and back,
// the C++ form of the Python package's _serialize/_deserialize.
#pragma once

#include <chrono>
#include <concepts>
#include <cstddef>
#include <cstdlib>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include "dynamodb_cache/async.h"
#include "dynamodb_cache/backend.h"
#include "dynamodb_cache/errors.h"
#include "dynamodb_cache/get_or_set.h"
#include "dynamodb_cache/log.h"

namespace dynamodb_cache {

// The Codec contract: what Cache<T, Codec> needs to turn a T into bytes and back.
//   std::string encode(const T& value) const;    // any bytes (binary is fine)
//   T decode(std::string_view bytes) const;      // the bytes encode gave, for that key
// Both may throw; the cache reports what they throw as CodecError. Codecs are used
// concurrently: keep them stateless or thread-safe.
template <class C, class T>
concept CodecFor = requires(const C& c, const T& value, std::string_view bytes) {
  { c.encode(value) } -> std::convertible_to<std::string>;
  { c.decode(bytes) } -> std::convertible_to<T>;
};

// std::string values stored as they are (text or binary alike).
struct StringCodec {
  std::string encode(const std::string& v) const { return v; }
  std::string decode(std::string_view b) const { return std::string(b); }
};

// Raw bytes.
struct BytesCodec {
  std::string encode(const std::vector<std::byte>& v) const {
    return std::string(reinterpret_cast<const char*>(v.data()), v.size());
  }
  std::vector<std::byte> decode(std::string_view b) const {
    const auto* p = reinterpret_cast<const std::byte*>(b.data());
    return std::vector<std::byte>(p, p + b.size());
  }
};

// The codec used when none is named: std::string, std::vector<std::byte> and, with
// json_codec.h, nlohmann::json. Specialise it for your types (before naming Cache<YourType>),
// or pass a codec: Cache<YourType, YourCodec>.
template <class T>
struct DefaultCodec;
template <>
struct DefaultCodec<std::string> : StringCodec {};
template <>
struct DefaultCodec<std::vector<std::byte>> : BytesCodec {};

// True when DefaultCodec<T> is defined (specialised) at this point.
template <class T>
concept HasDefaultCodec = requires {
  sizeof(DefaultCodec<T>);
};

// A get_or_set loader for values of type T: called with no arguments, returns a T (or
// something convertible to one).
template <class L, class T>
concept LoaderOf = std::invocable<L&> && std::convertible_to<std::invoke_result_t<L&>, T>;

// A get_or_set loader that decides (LoadResult in get_or_set.h): called with no arguments,
// returns a LoadResult<T> (a T or "missing", its own TTL, whether to cache it).
template <class L, class T>
concept ResultLoaderOf = std::invocable<L&> && std::same_as<std::invoke_result_t<L&>, LoadResult<T>>;

namespace detail {
template <class C>
concept Complete = requires {
  sizeof(C);
};
template <class C, class T>
concept UsableCodec = Complete<C> && CodecFor<C, T>;
// Held in place of a codec that does not keep the contract, so that the static_assert saying
// so is the only error.
struct NoCodec {};
}  // namespace detail

// Options of Cache<T> itself (the backend has its own: dynamodb_backend.h, memory_backend.h).
// Every member has a default initializer, so designated initializers may name only some.
struct TypedOptions {
  // Spreads the TTLs of the values this cache writes (set, set_many, add, get_or_set's store
  // and their asynchronous forms), so that keys written together do not expire together: a
  // fraction of the TTL, each nonzero TTL drawn uniformly from [ttl * (1 - ttl_jitter),
  // ttl * (1 + ttl_jitter)] in whole milliseconds (jitter_ttl in backend.h); 0.1 is +-10%.
  // Jitter never makes a TTL zero ("never expires") or negative, and a TTL of zero stays
  // zero. set_many draws one TTL per group of 25 entries (see set_many). touch() and the
  // counters keep their exact TTLs. 0 (the default): exact TTLs.
  // Must be 0 or more and less than 1 (else InvalidArgumentError from the constructor).
  double ttl_jitter = 0;
  // For deploys that change a stored type: a stored value the codec cannot decode (a
  // CodecError) reads as a miss instead of throwing: get, get_entry, get_many and their
  // asynchronous forms answer std::nullopt (the backend has counted a hit), counted in
  // stats().decode_errors and logged at warning level through `log` below; get_or_set
  // loads and stores as on a miss (that load is not shared with concurrent callers, which
  // may each load once). The next set overwrites the value. Default false: a CodecError.
  bool decode_error_is_miss = false;
  // Where decode_error_is_miss logs; empty (the default): the process-wide hook (log.h).
  LogHook log{};
};

// Counts (CacheStats::decode_errors) and logs (`log`, else the process-wide hook) the value
// of `key` read as a miss under TypedOptions::decode_error_is_miss. Thread-safe. Public
// because Cache<T> (a header template) calls it.
void note_undecodable(Backend& backend, const LogHook& log, std::string_view key) noexcept;

// Thread-safety: as safe as its backend and codec (all built-in ones are thread-safe).
template <class T, class Codec = DefaultCodec<T>>
class Cache {
  static_assert(
      !std::is_same_v<Codec, DefaultCodec<T>> || HasDefaultCodec<T>,
      "Cache<T>: there is no DefaultCodec<T> for this T (built in: std::string, std::vector<std::byte>, "
      "nlohmann::json). Name a codec, Cache<T, YourCodec>, with `std::string encode(const T&) const` and "
      "`T decode(std::string_view) const`; or specialise dynamodb_cache::DefaultCodec<T>; or, for a type "
      "with to_json/from_json, use JsonObjectCache<T> from <dynamodb_cache/json_codec.h>");
  static_assert((std::is_same_v<Codec, DefaultCodec<T>> && !detail::Complete<Codec>) ||
                    detail::UsableCodec<Codec, T>,
                "Cache<T, Codec>: Codec must have `std::string encode(const T&) const` and "
                "`T decode(std::string_view) const` (see the Codec contract in cache.h)");
  // The codec, or a placeholder when the assertions above failed (no further errors then).
  using HeldCodec = std::conditional_t<detail::UsableCodec<Codec, T>, Codec, detail::NoCodec>;

 public:
  // `backend`: any Backend (std::make_shared<MemoryBackend>(), a DynamodbBackend, a
  // LayeredBackend from make_layered); make_cache() (make_cache.h) builds the usual ones in one line.
  // `options`: TypedOptions above. Throws InvalidArgumentError for a missing backend or an
  // invalid option.
  explicit Cache(std::shared_ptr<Backend> backend, HeldCodec codec = HeldCodec(), TypedOptions options = {})
      : backend_(std::move(backend)), codec_(std::move(codec)), options_(options) {
    if (!backend_) throw InvalidArgumentError("Cache needs a backend");
    validate_ttl_jitter(options_.ttl_jitter);
  }

  // A live entry read with its remaining time to live.
  struct Entry {
    T value;
    std::optional<Ttl> ttl_left;  // nullopt: never expires
  };

  // The value, or std::nullopt on a miss or an expired entry.
  std::optional<T> get(std::string_view key) {
    auto e = get_entry(key);
    if (!e) return std::nullopt;
    return std::move(e->value);
  }

  // get() with the entry's remaining TTL (Backend::get_entry; a layered backend answers with
  // the layer that had it).
  std::optional<Entry> get_entry(std::string_view key) { return to_entry(key, backend_->get_entry(key)); }

  // Stores `value`; ttl zero (the default) means it never expires.
  template <class Rep = int64_t, class Period = std::ratio<1>>
  void set(std::string_view key, const T& value,
           std::chrono::duration<Rep, Period> ttl = std::chrono::seconds(0)) {
    backend_->set(key, encode(key, value), write_ttl(ttl));
  }

  void erase(std::string_view key) { backend_->erase(key); }
  void erase_many(const std::vector<std::string>& keys) { backend_->erase_many(keys); }
  void clear() { backend_->clear(); }

  // True when `key` has a live entry (DynamoDB: without reading the value).
  bool contains(std::string_view key) { return backend_->contains(key); }

  // A new TTL for a live entry, counted from now, without rewriting its value; false on a
  // miss. Atomic (Backend::touch).
  template <class Rep = int64_t, class Period = std::ratio<1>>
  bool touch(std::string_view key, std::chrono::duration<Rep, Period> ttl) {
    return backend_->touch(key, to_ttl(ttl));
  }

  // Stores `value` only if `key` has no live entry; returns whether it wrote. Atomic across
  // processes on DynamoDB (Backend::add).
  template <class Rep = int64_t, class Period = std::ratio<1>>
  bool add(std::string_view key, const T& value,
           std::chrono::duration<Rep, Period> ttl = std::chrono::seconds(0)) {
    return backend_->add(key, encode(key, value), write_ttl(ttl));
  }

  // Atomic counters (Backend::increment): the new value; a missing or expired key starts at
  // 0 and lives for `ttl`. A counter is not a T: get() of it decodes its decimal text.
  template <class Rep = int64_t, class Period = std::ratio<1>>
  int64_t increment(std::string_view key, int64_t delta = 1,
                    std::chrono::duration<Rep, Period> ttl = std::chrono::seconds(0)) {
    return backend_->increment(key, delta, to_ttl(ttl));
  }
  template <class Rep = int64_t, class Period = std::ratio<1>>
  int64_t decrement(std::string_view key, int64_t delta = 1,
                    std::chrono::duration<Rep, Period> ttl = std::chrono::seconds(0)) {
    return backend_->decrement(key, delta, to_ttl(ttl));
  }

  // The cached value, or load()'s result, which is then cached for `ttl`. `load` is called
  // with no arguments and returns a T (LoaderOf). Protects the source (get_or_set.h): one
  // load per key at a time in the process, waiters share its result or its exception
  // (nothing is cached then); `options` adds a fleet-wide lease and refresh ahead of expiry.
  // The caller that ran load() gets its T as returned; the others decode the stored bytes.
  // With options.load_timeout or options.refresh_ahead, load may run on after the call has
  // returned (get_or_set.h: a refresh runs on a pool while the caller gets the current value):
  // it is then copied (or moved, if passed as an rvalue) together with the codec, and must not
  // refer to the caller's locals.
  template <class Load, class Rep = int64_t, class Period = std::ratio<1>>
  T get_or_set(std::string_view key, Load&& load,
               std::chrono::duration<Rep, Period> ttl = std::chrono::seconds(0),
               const GetOrSetOptions& options = {}) {
    return get_or_set_entry(key, std::forward<Load>(load), ttl, options).value;
  }

  // get_or_set's answer, and whether it is a stale value (GetOrSetOptions::stale_if_error).
  struct GetOrSetEntry {
    T value;
    bool stale = false;
  };
  template <class Load, class Rep = int64_t, class Period = std::ratio<1>>
  GetOrSetEntry get_or_set_entry(std::string_view key, Load&& load,
                                 std::chrono::duration<Rep, Period> ttl = std::chrono::seconds(0),
                                 const GetOrSetOptions& options = {}) {
    static_assert(LoaderOf<Load, T>,
                  "Cache<T>::get_or_set(key, load, ttl): load must be callable with no arguments and return "
                  "the cache's T (or something convertible to it)");
    if constexpr (LoaderOf<Load, T>) {
      const Ttl t = write_ttl(ttl);
      if (options.load_timeout.count() == 0 && options.refresh_ahead.count() == 0) {
        std::optional<T> loaded;
        GetOrSetResult r =
            dynamodb_cache::get_or_set_entry(*backend_, key, encoding_loader(key, load, loaded), t, options);
        return {answer_of(key, r, std::move(loaded), [&] { return load_over_undecodable(key, load, t); }),
                r.stale};
      }
      // The load may outlive this call: it owns its loader, codec and result, which it hands
      // over under a lock (a refresh may end while this call reads it).
      auto shared_load = std::make_shared<std::decay_t<Load>>(std::forward<Load>(load));
      auto loaded = std::make_shared<LoadedSlot>();
      GetOrSetResult r = dynamodb_cache::get_or_set_entry(
          *backend_, key,
          [k = std::string(key), shared_load, loaded, codec = codec_] {
            T value = (*shared_load)();
            std::string bytes = encode_with(codec, k, value);
            std::lock_guard lock(loaded->mu);
            loaded->value.emplace(std::move(value));
            return bytes;
          },
          t, options);
      return {answer_of(key, r, own_load(r, *loaded), [&] { return load_over_undecodable(key, *shared_load, t); }),
              r.stale};
    } else {
      std::abort();  // not reached: the assertion above failed
    }
  }

  // get_or_set whose loader decides: it returns a LoadResult<T> (get_or_set.h) saying the T
  // (LoadResult<T>::found, with a TTL of its own if it likes, ttl_jitter applied to it too),
  // that the source has none (missing(): answered std::nullopt, and remembered for
  // options.cache_misses_for: callers within it get std::nullopt without calling the loader),
  // or a T not to cache (uncached()). Otherwise as get_or_set above. The loader is copied (or
  // moved, if passed as an rvalue) with the codec: it may run after the call has returned
  // (refresh_ahead, load_timeout), so it must own what it uses.
  template <class Load, class Rep = int64_t, class Period = std::ratio<1>>
  requires ResultLoaderOf<Load, T> std::optional<T> get_or_set(
      std::string_view key, Load&& load, std::chrono::duration<Rep, Period> ttl = std::chrono::seconds(0),
      const GetOrSetOptions& options = {}) {
    const Ttl t = write_ttl(ttl);
    auto owned = std::make_shared<std::decay_t<Load>>(std::forward<Load>(load));
    auto loaded = std::make_shared<LoadedSlot>();
    std::optional<GetOrSetResult> r = dynamodb_cache::get_or_set_entry(
        *backend_, key,
        [k = std::string(key), owned, loaded, codec = codec_, jitter = options_.ttl_jitter] {
          LoadResult<T> r = (*owned)();
          dynamodb_cache::Loaded out;
          out.cache = r.cache;
          if (r.ttl) out.ttl = jitter_ttl(*r.ttl, jitter);
          if (r.value) {
            out.value = encode_with(codec, k, *r.value);
            std::lock_guard lock(loaded->mu);
            loaded->value = std::move(r.value);
          }
          return out;
        },
        t, options);
    if (!r) return std::nullopt;
    return answer_of(key, *r, own_load(*r, *loaded), [&]() -> std::optional<T> {
      LoadResult<T> again = (*owned)();
      if (again.value && again.cache)
        backend_->set(key, encode(key, *again.value), again.ttl ? jitter_ttl(*again.ttl, options_.ttl_jitter) : t);
      return std::move(again.value);
    });
  }

  // Result i answers keys[i].
  std::vector<std::optional<T>> get_many(const std::vector<std::string>& keys) {
    return decode_many(keys, backend_->get_many(keys));
  }

  // With TypedOptions::ttl_jitter, the entries go in groups of 25 (the last value of each
  // key), one after another, each with a TTL of its own; an error stops at its group, the
  // groups before it written.
  template <class Rep = int64_t, class Period = std::ratio<1>>
  void set_many(const std::vector<std::pair<std::string, T>>& entries,
                std::chrono::duration<Rep, Period> ttl = std::chrono::seconds(0)) {
    auto bytes = encode_many(entries);
    const Ttl t = to_ttl(ttl);
    if (options_.ttl_jitter == 0) return backend_->set_many(bytes, t);
    for (const auto& group : ttl_jitter_groups(std::move(bytes)))
      backend_->set_many(group, jitter_ttl(t, options_.ttl_jitter));
  }

  // ---- asynchronous forms ----
  // Every operation above has two: one taking a callback `done` (called once, where the
  // backend completes: an I/O thread of the DynamoDB client, a helper thread, or inline for
  // memory hits; see Backend), and one returning a Pending to co_await or get() (async.h).
  // Errors (CodecError and invalid arguments included) arrive in the Outcome, never thrown
  // by the call itself. The cache must outlive its pending operations.
  template <class U>
  using Done = std::function<void(Outcome<U>)>;

  void get_async(std::string key, Done<std::optional<T>> done) {
    get_entry_async(std::move(key), [done = std::move(done)](Outcome<std::optional<Entry>> r) {
      done(map_outcome<std::optional<T>>(
          r, [&] { return r.value() ? std::optional<T>(std::move(r.value()->value)) : std::nullopt; }));
    });
  }
  Pending<std::optional<T>> get_async(std::string key) {
    return detail::start_pending<std::optional<T>>([&](auto d) { get_async(std::move(key), std::move(d)); });
  }

  void get_entry_async(std::string key, Done<std::optional<Entry>> done) {
    backend_->get_entry_async(key, [this, key, done = std::move(done)](Outcome<std::optional<Hit>> r) {
      done(map_outcome<std::optional<Entry>>(r, [&] { return to_entry(key, std::move(r.value())); }));
    });
  }
  Pending<std::optional<Entry>> get_entry_async(std::string key) {
    return detail::start_pending<std::optional<Entry>>(
        [&](auto d) { get_entry_async(std::move(key), std::move(d)); });
  }

  template <class Rep, class Period>
  void set_async(std::string key, const T& value, std::chrono::duration<Rep, Period> ttl, Done<void> done) {
    std::string bytes;
    Ttl t;
    if (!prepare(done, [&] { bytes = encode(key, value), t = write_ttl(ttl); })) return;
    backend_->set_async(std::move(key), std::move(bytes), t, std::move(done));
  }
  template <class Rep = int64_t, class Period = std::ratio<1>>
  Pending<void> set_async(std::string key, const T& value,
                          std::chrono::duration<Rep, Period> ttl = std::chrono::seconds(0)) {
    return detail::start_pending<void>([&](auto d) { set_async(std::move(key), value, ttl, std::move(d)); });
  }

  void erase_async(std::string key, Done<void> done) {
    backend_->erase_async(std::move(key), std::move(done));
  }
  Pending<void> erase_async(std::string key) { return backend_->erase_async(std::move(key)); }

  void erase_many_async(std::vector<std::string> keys, Done<void> done) {
    backend_->erase_many_async(std::move(keys), std::move(done));
  }
  Pending<void> erase_many_async(std::vector<std::string> keys) {
    return backend_->erase_many_async(std::move(keys));
  }

  void contains_async(std::string key, Done<bool> done) {
    backend_->contains_async(std::move(key), std::move(done));
  }
  Pending<bool> contains_async(std::string key) { return backend_->contains_async(std::move(key)); }

  template <class Rep, class Period>
  void touch_async(std::string key, std::chrono::duration<Rep, Period> ttl, Done<bool> done) {
    Ttl t;
    if (!prepare(done, [&] { t = to_ttl(ttl); })) return;
    backend_->touch_async(std::move(key), t, std::move(done));
  }
  template <class Rep, class Period>
  Pending<bool> touch_async(std::string key, std::chrono::duration<Rep, Period> ttl) {
    return detail::start_pending<bool>([&](auto d) { touch_async(std::move(key), ttl, std::move(d)); });
  }

  template <class Rep, class Period>
  void add_async(std::string key, const T& value, std::chrono::duration<Rep, Period> ttl, Done<bool> done) {
    std::string bytes;
    Ttl t;
    if (!prepare(done, [&] { bytes = encode(key, value), t = write_ttl(ttl); })) return;
    backend_->add_async(std::move(key), std::move(bytes), t, std::move(done));
  }
  template <class Rep = int64_t, class Period = std::ratio<1>>
  Pending<bool> add_async(std::string key, const T& value,
                          std::chrono::duration<Rep, Period> ttl = std::chrono::seconds(0)) {
    return detail::start_pending<bool>([&](auto d) { add_async(std::move(key), value, ttl, std::move(d)); });
  }

  template <class Rep, class Period>
  void increment_async(std::string key, int64_t delta, std::chrono::duration<Rep, Period> ttl,
                       Done<int64_t> done) {
    Ttl t;
    if (!prepare(done, [&] { t = to_ttl(ttl); })) return;
    backend_->increment_async(std::move(key), delta, t, std::move(done));
  }
  template <class Rep = int64_t, class Period = std::ratio<1>>
  Pending<int64_t> increment_async(std::string key, int64_t delta = 1,
                                   std::chrono::duration<Rep, Period> ttl = std::chrono::seconds(0)) {
    return detail::start_pending<int64_t>(
        [&](auto d) { increment_async(std::move(key), delta, ttl, std::move(d)); });
  }
  template <class Rep, class Period>
  void decrement_async(std::string key, int64_t delta, std::chrono::duration<Rep, Period> ttl,
                       Done<int64_t> done) {
    Ttl t;
    if (!prepare(done, [&] { t = to_ttl(ttl); })) return;
    backend_->decrement_async(std::move(key), delta, t, std::move(done));
  }
  template <class Rep = int64_t, class Period = std::ratio<1>>
  Pending<int64_t> decrement_async(std::string key, int64_t delta = 1,
                                   std::chrono::duration<Rep, Period> ttl = std::chrono::seconds(0)) {
    return detail::start_pending<int64_t>(
        [&](auto d) { decrement_async(std::move(key), delta, ttl, std::move(d)); });
  }

  // get_or_set without waiting: it runs where the backend runs blocking work
  // (Backend::run_blocking: a helper thread over DynamoDB, inline over memory), `load` too.
  template <class Load, class Rep, class Period>
  requires(!ResultLoaderOf<Load, T>) void get_or_set_async(std::string key, Load load,
                                                           std::chrono::duration<Rep, Period> ttl,
                                                           const GetOrSetOptions& options, Done<T> done) {
    static_assert(LoaderOf<Load, T>,
                  "Cache<T>::get_or_set_async(key, load, ...): load must be callable with no arguments and "
                  "return the cache's T (or something convertible to it)");
    if constexpr (LoaderOf<Load, T>) {
      if (options.load_timeout.count() > 0 || options.refresh_ahead.count() > 0 ||
          options.stale_if_error.count() > 0) {
        // A load may outlive the call (a refresh, or past load_timeout), or the answer may be
        // a stale value, which must not be loaded over when it does not decode (the load just
        // failed): the blocking form, which owns its loader and codec, reads the loaded T under
        // a lock and tells a stale answer, runs where blocking work runs.
        auto owned = std::make_shared<Load>(std::move(load));
        backend_->run_blocking([this, key = std::move(key), owned, ttl, options,
                                done = std::move(done)](std::exception_ptr refused) {
          if (refused) return done(std::move(refused));
          std::optional<Outcome<T>> out;
          try {
            out.emplace(get_or_set_entry(key, std::move(*owned), ttl, options).value);
          } catch (...) {
            out.emplace(std::current_exception());
          }
          done(std::move(*out));
        });
        return;
      }
      Ttl t;
      if (!prepare(done, [&] { t = write_ttl(ttl); })) return;
      auto loaded = std::make_shared<std::optional<T>>();
      auto shared_load = std::make_shared<Load>(std::move(load));
      dynamodb_cache::get_or_set_async(
          *backend_, key,
          [this, key, shared_load, loaded] { return encoding_loader(key, *shared_load, *loaded)(); }, t,
          options,
          [this, key, t, shared_load, loaded, done = std::move(done)](Outcome<std::string> r) {
            // Here where the backend runs blocking work (get_or_set_async), so it may load.
            done(map_outcome<T>(r, [&] {
              if (*loaded) return std::move(**loaded);
              if (auto v = decode_or_miss(key, r.value())) return std::move(*v);
              return load_over_undecodable(key, *shared_load, t);
            }));
          });
    }
  }
  template <class Load, class Rep = int64_t, class Period = std::ratio<1>>
  requires(!ResultLoaderOf<Load, T>) Pending<T> get_or_set_async(
      std::string key, Load load, std::chrono::duration<Rep, Period> ttl = std::chrono::seconds(0),
      const GetOrSetOptions& options = {}) {
    return detail::start_pending<T>(
        [&](auto d) { get_or_set_async(std::move(key), std::move(load), ttl, options, std::move(d)); });
  }
  // get_or_set_async whose loader decides (LoadResult<T>): the blocking form above, run where
  // the backend runs blocking work, completing with std::nullopt when the source has none. The
  // loader is moved into the call (it may run after the call has returned: refresh_ahead,
  // load_timeout), so it must own what it uses.
  template <class Load, class Rep, class Period>
  requires ResultLoaderOf<Load, T>
  void get_or_set_async(std::string key, Load load, std::chrono::duration<Rep, Period> ttl,
                        const GetOrSetOptions& options, Done<std::optional<T>> done) {
    auto owned = std::make_shared<Load>(std::move(load));
    backend_->run_blocking([this, key = std::move(key), owned, ttl, options,
                            done = std::move(done)](std::exception_ptr refused) {
      if (refused) return done(std::move(refused));
      std::optional<Outcome<std::optional<T>>> out;
      try {
        out.emplace(get_or_set(key, std::move(*owned), ttl, options));
      } catch (...) {
        out.emplace(std::current_exception());
      }
      done(std::move(*out));
    });
  }
  template <class Load, class Rep = int64_t, class Period = std::ratio<1>>
  requires ResultLoaderOf<Load, T> Pending<std::optional<T>> get_or_set_async(
      std::string key, Load load, std::chrono::duration<Rep, Period> ttl = std::chrono::seconds(0),
      const GetOrSetOptions& options = {}) {
    return detail::start_pending<std::optional<T>>(
        [&](auto d) { get_or_set_async(std::move(key), std::move(load), ttl, options, std::move(d)); });
  }

  // ---- bulk loads ----
  // get_or_set for many keys (get_or_set_many in get_or_set.h: one batch read, ONE call of
  // `load_many` with the keys that missed and nobody else is loading, one batch store, single
  // flight per key shared with get_or_set); result i answers keys[i]. `load_many` is called
  // with a `const std::vector<std::string>&` of those keys (each once, in the order of their
  // first appearance) and returns a std::vector<std::optional<T>>, one result per key:
  // std::nullopt for a key the source has no value for (answered std::nullopt, not cached);
  // another count of results is an InvalidArgumentError. A value the loader returned reaches
  // the caller as returned at the key's first position (a repeated key's later positions, and
  // everything else, are decoded from the bytes). With TypedOptions::ttl_jitter, one TTL is
  // drawn per group of 25 values stored. Under decode_error_is_miss, the keys whose stored
  // values do not decode are loaded by one more call of `load_many` (not shared with other
  // callers) and stored over them. Unlike get_or_set, the store is unconditional and takes no
  // lease (see get_or_set_many).
  template <class LoadMany, class Rep = int64_t, class Period = std::ratio<1>>
  std::vector<std::optional<T>> get_or_set_many(
      const std::vector<std::string>& keys, LoadMany&& load_many,
      std::chrono::duration<Rep, Period> ttl = std::chrono::seconds(0)) {
    static_assert(
        kLoadsMany<LoadMany>,
        "Cache<T>::get_or_set_many(keys, load_many, ttl): load_many must be callable with a "
        "const std::vector<std::string>& (the keys to load) and return a std::vector<std::optional<T>> "
        "of the cache's T, one result per key");
    if constexpr (kLoadsMany<LoadMany>) {
      Loaded loaded;
      const Ttl t = to_ttl(ttl);
      auto bytes = dynamodb_cache::get_or_set_many(
          *backend_, keys,
          [&](const std::vector<std::string>& missing) { return encode_loaded(load_many, missing, loaded); },
          t, GetOrSetManyOptions{.ttl_jitter = options_.ttl_jitter});
      return many_answers(keys, bytes, loaded, load_many, t);
    } else {
      std::abort();  // not reached: the assertion above failed
    }
  }

  // get_or_set_many without waiting: it runs where the backend runs blocking work
  // (Backend::run_blocking: a helper thread over DynamoDB, inline over memory), `load_many` too.
  template <class LoadMany, class Rep, class Period>
  void get_or_set_many_async(std::vector<std::string> keys, LoadMany load_many,
                             std::chrono::duration<Rep, Period> ttl,
                             Done<std::vector<std::optional<T>>> done) {
    static_assert(
        kLoadsMany<LoadMany>,
        "Cache<T>::get_or_set_many_async(keys, load_many, ...): load_many must be callable with a "
        "const std::vector<std::string>& (the keys to load) and return a std::vector<std::optional<T>> "
        "of the cache's T, one result per key");
    if constexpr (kLoadsMany<LoadMany>) {
      Ttl t;
      if (!prepare(done, [&] { t = to_ttl(ttl); })) return;
      struct State {
        LoadMany load;
        Loaded loaded;
        std::vector<std::string> keys;
      };
      auto state = std::make_shared<State>(State{std::move(load_many), {}, keys});
      dynamodb_cache::get_or_set_many_async(
          *backend_, std::move(keys),
          [this, state](const std::vector<std::string>& missing) {
            return encode_loaded(state->load, missing, state->loaded);
          },
          t, GetOrSetManyOptions{.ttl_jitter = options_.ttl_jitter},
          [this, state, t, done = std::move(done)](Outcome<std::vector<std::optional<std::string>>> r) {
            // Here where the backend runs blocking work (get_or_set_many_async), so it may load.
            done(map_outcome<std::vector<std::optional<T>>>(
                r, [&] { return many_answers(state->keys, r.value(), state->loaded, state->load, t); }));
          });
    }
  }
  template <class LoadMany, class Rep = int64_t, class Period = std::ratio<1>>
  Pending<std::vector<std::optional<T>>> get_or_set_many_async(
      std::vector<std::string> keys, LoadMany load_many,
      std::chrono::duration<Rep, Period> ttl = std::chrono::seconds(0)) {
    return detail::start_pending<std::vector<std::optional<T>>>(
        [&](auto d) { get_or_set_many_async(std::move(keys), std::move(load_many), ttl, std::move(d)); });
  }

 private:
  // A T loaded off the caller's thread (a refresh, a load past load_timeout, which may end
  // while the caller reads it), handed over under the lock.
  struct LoadedSlot {
    std::mutex mu;
    std::optional<T> value;
  };

  template <class L>
  static constexpr bool kLoadsMany =
      std::is_invocable_r_v<std::vector<std::optional<T>>, L&, const std::vector<std::string>&>;

  // What get_or_set_many's loader returned, as returned, for the keys it was given.
  struct Loaded {
    std::vector<std::string> keys;
    std::vector<std::optional<T>> values;
  };

  // get_or_set_many's byte-level loader: load(missing) kept in `loaded`, its encoding returned
  // (nothing encoded when the count is wrong: the byte level reports that).
  template <class L>
  std::vector<std::optional<std::string>> encode_loaded(L& load, const std::vector<std::string>& missing,
                                                        Loaded& loaded) {
    loaded.keys = missing;
    loaded.values = load(missing);
    std::vector<std::optional<std::string>> bytes(loaded.values.size());
    if (loaded.values.size() == missing.size())
      for (size_t i = 0; i < missing.size(); ++i)
        if (loaded.values[i]) bytes[i] = encode(missing[i], *loaded.values[i]);
    return bytes;
  }

  // get_or_set_many's typed answers: the loaded values as returned, at their keys' first
  // positions (loaded.keys come in that order, so one walk finds them), the rest decoded; the
  // values that do not decode under decode_error_is_miss loaded again and stored over.
  template <class L>
  std::vector<std::optional<T>> many_answers(const std::vector<std::string>& keys,
                                             const std::vector<std::optional<std::string>>& bytes,
                                             Loaded& loaded, L& load, Ttl ttl) {
    std::vector<std::optional<T>> out(keys.size());
    std::vector<size_t> undecodable;  // positions in keys
    size_t next = 0;                  // into loaded.keys
    for (size_t i = 0; i < keys.size(); ++i) {
      if (next < loaded.keys.size() && keys[i] == loaded.keys[next]) {
        out[i] = std::move(loaded.values[next++]);
      } else if (bytes[i]) {
        out[i] = decode_or_miss(keys[i], *bytes[i]);
        if (!out[i]) undecodable.push_back(i);
      }
    }
    if (undecodable.empty()) return out;
    std::vector<std::string> again;  // each key once
    for (size_t i : undecodable) {
      bool known = false;
      for (const auto& k : again) known = known || k == keys[i];
      if (!known) again.push_back(keys[i]);
    }
    std::vector<std::optional<T>> values = load(again);
    if (values.size() != again.size())
      throw InvalidArgumentError("get_or_set_many: the loader returned " + std::to_string(values.size()) +
                                 " results for " + std::to_string(again.size()) + " keys");
    std::vector<std::pair<std::string, T>> entries;
    for (size_t j = 0; j < again.size(); ++j)
      if (values[j]) entries.emplace_back(again[j], *values[j]);
    set_many(entries, ttl);
    for (size_t i : undecodable)
      for (size_t j = 0; j < again.size(); ++j)
        if (keys[i] == again[j]) out[i] = values[j];
    return out;
  }

 public:
  // Result i answers keys[i]; the backend issues the sub-requests concurrently.
  void get_many_async(std::vector<std::string> keys, Done<std::vector<std::optional<T>>> done) {
    auto shared_keys = std::make_shared<std::vector<std::string>>(keys);
    backend_->get_many_async(std::move(keys), [this, shared_keys, done = std::move(done)](
                                                  Outcome<std::vector<std::optional<Hit>>> r) {
      done(map_outcome<std::vector<std::optional<T>>>(r,
                                                      [&] { return decode_many(*shared_keys, r.value()); }));
    });
  }
  Pending<std::vector<std::optional<T>>> get_many_async(std::vector<std::string> keys) {
    return detail::start_pending<std::vector<std::optional<T>>>(
        [&](auto d) { get_many_async(std::move(keys), std::move(d)); });
  }
  // `co_await cache.get_many_async("a", "b")`: the keys as arguments. (GCC 12 rejects any
  // braced list inside a co_await expression, `get_many_async({"a", "b"})` included: "array
  // used as initializer"; this form, or a vector made before the co_await, avoids it.)
  template <class... Keys>
  requires(sizeof...(Keys) > 0 &&
           (std::convertible_to<const Keys&, std::string_view> &&
            ...)) Pending<std::vector<std::optional<T>>> get_many_async(const Keys&... keys) {
    return get_many_async(std::vector<std::string>{std::string(std::string_view(keys))...});
  }

  // With TypedOptions::ttl_jitter, as set_many but the groups are sent at once; `done` hears
  // the first error, after every group has completed.
  template <class Rep, class Period>
  void set_many_async(const std::vector<std::pair<std::string, T>>& entries,
                      std::chrono::duration<Rep, Period> ttl, Done<void> done) {
    std::vector<std::pair<std::string, std::string>> bytes;
    Ttl t;
    if (!prepare(done, [&] { bytes = encode_many(entries), t = to_ttl(ttl); })) return;
    if (options_.ttl_jitter == 0) return backend_->set_many_async(std::move(bytes), t, std::move(done));
    auto groups = ttl_jitter_groups(std::move(bytes));
    if (groups.empty()) return done(Outcome<void>());
    struct Join {
      std::mutex mu;
      size_t left;
      std::exception_ptr error;
      Done<void> done;
    };
    auto join = std::make_shared<Join>();
    join->left = groups.size();
    join->done = std::move(done);
    for (auto& group : groups)
      backend_->set_many_async(std::move(group), jitter_ttl(t, options_.ttl_jitter), [join](Outcome<void> r) {
        std::unique_lock lock(join->mu);
        if (!r.ok() && !join->error) join->error = std::move(r).error();
        if (--join->left != 0) return;
        lock.unlock();
        join->done(std::move(join->error));
      });
  }
  template <class Rep = int64_t, class Period = std::ratio<1>>
  Pending<void> set_many_async(const std::vector<std::pair<std::string, T>>& entries,
                               std::chrono::duration<Rep, Period> ttl = std::chrono::seconds(0)) {
    return detail::start_pending<void>([&](auto d) { set_many_async(entries, ttl, std::move(d)); });
  }

  // Clears the backend (Backend::clear_async: a namespace's generation, or the whole table
  // scanned in parallel segments).
  void clear_async(Done<void> done) { backend_->clear_async(std::move(done)); }
  Pending<void> clear_async() { return backend_->clear_async(); }

  Backend& backend() { return *backend_; }
  // The backend's statistics (stats.h); print them with stats().to_json().
  CacheStats& stats() { return backend_->stats(); }

 private:
  // `f()` when `r` is ok, else r's error; an exception from f becomes the error.
  template <class U, class R, class F>
  static Outcome<U> map_outcome(R& r, F&& f) {
    if (!r.ok()) return Outcome<U>(std::move(r).error());
    try {
      return Outcome<U>(f());
    } catch (...) {
      return Outcome<U>(std::current_exception());
    }
  }

  // Runs `f` (the checks and encoding before a call); false, after completing `done` with
  // its exception, when it threw.
  template <class U, class F>
  static bool prepare(Done<U>& done, F&& f) {
    try {
      f();
      return true;
    } catch (...) {
      done(std::current_exception());
      return false;
    }
  }

  // The TTL of a value written: to_ttl, then jittered (TypedOptions::ttl_jitter).
  template <class Rep, class Period>
  Ttl write_ttl(std::chrono::duration<Rep, Period> ttl) const {
    return jitter_ttl(to_ttl(ttl), options_.ttl_jitter);
  }

  std::optional<Entry> to_entry(std::string_view key, std::optional<Hit> hit) const {
    if (!hit) return std::nullopt;
    auto v = decode_or_miss(key, hit->value);
    if (!v) return std::nullopt;
    return Entry{std::move(*v), hit->ttl_left};
  }

  // decode(), or std::nullopt for a value that does not decode under
  // TypedOptions::decode_error_is_miss (counted and logged).
  std::optional<T> decode_or_miss(std::string_view key, std::string_view bytes) const {
    try {
      return decode(key, bytes);
    } catch (const CodecError&) {
      if (!options_.decode_error_is_miss) throw;
      note_undecodable(*backend_, options_.log, key);
      return std::nullopt;
    }
  }

  // get_or_set's answer `r` as what a typed get_or_set returns: `mine` (this call's own load's
  // T, if it ran and may be read), else r's bytes decoded. Bytes that do not decode
  // (decode_error_is_miss) are an error when stale (no_stale_to_serve), else `load_over()`'s
  // result (loaded and stored over them, as on a miss). Every typed form answers through here.
  template <class LoadOver>
  auto answer_of(std::string_view key, const GetOrSetResult& r, std::optional<T> mine, LoadOver&& load_over)
      -> decltype(load_over()) {
    if (mine) return std::move(*mine);
    if (auto v = decode_or_miss(key, r.value)) return std::move(*v);
    if (r.stale) no_stale_to_serve();
    return load_over();
  }

  // The T a load that may outlive its call (it owns `slot`) handed over, taken under the lock;
  // none for a stale answer: that call's load, if any, may still run, and is not read.
  static std::optional<T> own_load(const GetOrSetResult& r, LoadedSlot& slot) {
    if (r.stale) return std::nullopt;
    std::lock_guard lock(slot.mu);
    return std::move(slot.value);
  }

  // get_or_set served a stale value (its load failed or outlived load_timeout) that does not
  // decode (decode_error_is_miss): there is nothing to answer, and the loader is not called
  // again (it just failed, or still runs on the pool).
  [[noreturn]] static void no_stale_to_serve() {
    throw CodecError(
        "get_or_set: the load failed or outlived load_timeout, and the stale value stored does not "
        "decode (decode_error_is_miss): there is no value to serve");
  }

  // get_or_set's answer when the stored value did not decode (decode_error_is_miss): load()'s
  // result, stored over it as on a miss.
  template <class Load>
  T load_over_undecodable(std::string_view key, Load& load, Ttl ttl) {
    T value = load();
    backend_->set(key, encode(key, value), ttl);
    return value;
  }

  // get_or_set's byte-level loader: load() kept in `loaded`, its encoding returned.
  template <class Load>
  auto encoding_loader(std::string_view key, Load& load, std::optional<T>& loaded) {
    return [this, key, &load, &loaded] {
      loaded.emplace(load());
      return encode(key, *loaded);
    };
  }

  std::vector<std::optional<T>> decode_many(const std::vector<std::string>& keys,
                                            const std::vector<std::optional<Hit>>& hits) const {
    std::vector<std::optional<T>> out;
    out.reserve(hits.size());
    for (size_t i = 0; i < hits.size(); ++i)
      out.push_back(hits[i] ? decode_or_miss(keys[i], hits[i]->value) : std::nullopt);
    return out;
  }

  std::vector<std::pair<std::string, std::string>> encode_many(
      const std::vector<std::pair<std::string, T>>& entries) const {
    std::vector<std::pair<std::string, std::string>> bytes;
    bytes.reserve(entries.size());
    for (const auto& [k, v] : entries) bytes.emplace_back(k, encode(k, v));
    return bytes;
  }

  std::string encode(std::string_view key, const T& value) const { return encode_with(codec_, key, value); }
  static std::string encode_with(const HeldCodec& codec, std::string_view key, const T& value) {
    try {
      return codec.encode(value);
    } catch (const Error&) {
      throw;
    } catch (const std::exception& e) {
      throw CodecError("cannot encode the value for key '" + std::string(key) + "': " + e.what());
    } catch (...) {
      throw CodecError("cannot encode the value for key '" + std::string(key) +
                       "': the codec threw a non-exception");
    }
  }

  T decode(std::string_view key, std::string_view bytes) const {
    try {
      return codec_.decode(bytes);
    } catch (const Error&) {
      throw;
    } catch (const std::exception& e) {
      throw CodecError("cannot decode the value of key '" + std::string(key) + "': " + e.what());
    } catch (...) {
      throw CodecError("cannot decode the value of key '" + std::string(key) +
                       "': the codec threw a non-exception");
    }
  }

  std::shared_ptr<Backend> backend_;
  HeldCodec codec_;
  TypedOptions options_;
};

}  // namespace dynamodb_cache
