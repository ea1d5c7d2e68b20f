// The typed cache: Cache<T, Codec> over any Backend. A Codec turns a T into bytes and back,
// the C++ form of the Python package's _serialize/_deserialize.
#pragma once

#include <chrono>
#include <concepts>
#include <cstddef>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "dynamodb_cache/async.h"
#include "dynamodb_cache/backend.h"
#include "dynamodb_cache/errors.h"
#include "dynamodb_cache/get_or_set.h"

namespace dynamodb_cache {

// What a codec must provide. encode/decode may throw anything; the cache reports it as
// CodecError. Codecs are used concurrently: keep them stateless or thread-safe.
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

// The codec used when none is named. Specialise it for your types, or pass a codec.
template <class T>
struct DefaultCodec;
template <>
struct DefaultCodec<std::string> : StringCodec {};
template <>
struct DefaultCodec<std::vector<std::byte>> : BytesCodec {};

// Thread-safety: as safe as its backend and codec (all built-in ones are thread-safe).
template <class T, class Codec = DefaultCodec<T>>
  requires CodecFor<Codec, T>
class Cache {
 public:
  explicit Cache(std::shared_ptr<Backend> backend, Codec codec = Codec())
      : backend_(std::move(backend)), codec_(std::move(codec)) {
    if (!backend_) throw InvalidArgumentError("Cache needs a backend");
  }

  // The value, or std::nullopt on a miss or an expired entry.
  std::optional<T> get(std::string_view key) {
    auto bytes = backend_->get(key);
    if (!bytes) return std::nullopt;
    return decode(key, *bytes);
  }

  // Stores `value`; ttl zero (the default) means it never expires.
  template <class Rep = int64_t, class Period = std::ratio<1>>
  void set(std::string_view key, const T& value,
           std::chrono::duration<Rep, Period> ttl = std::chrono::seconds(0)) {
    backend_->set(key, encode(key, value), to_ttl(ttl));
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
    return backend_->add(key, encode(key, value), to_ttl(ttl));
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

  // The cached value, or load()'s result, which is then cached for `ttl`. Protects the
  // source (get_or_set.h): one load per key at a time in the process, waiters share its
  // result or its exception (nothing is cached then); `options` adds a fleet-wide lease and
  // refresh ahead of expiry. The caller that ran load() gets its T as returned; the others
  // decode the stored bytes.
  template <class Load, class Rep = int64_t, class Period = std::ratio<1>>
  T get_or_set(std::string_view key, Load&& load,
               std::chrono::duration<Rep, Period> ttl = std::chrono::seconds(0),
               const GetOrSetOptions& options = {}) {
    std::optional<T> loaded;
    std::string bytes = dynamodb_cache::get_or_set(
        *backend_, key,
        [&] {
          loaded.emplace(std::forward<Load>(load)());
          return encode(key, *loaded);
        },
        to_ttl(ttl), options);
    if (loaded) return std::move(*loaded);
    return decode(key, bytes);
  }

  // Result i answers keys[i].
  std::vector<std::optional<T>> get_many(const std::vector<std::string>& keys) {
    auto hits = backend_->get_many(keys);
    std::vector<std::optional<T>> out;
    out.reserve(hits.size());
    for (size_t i = 0; i < hits.size(); ++i)
      out.push_back(hits[i] ? std::optional<T>(decode(keys[i], hits[i]->value)) : std::nullopt);
    return out;
  }

  template <class Rep = int64_t, class Period = std::ratio<1>>
  void set_many(const std::vector<std::pair<std::string, T>>& entries,
                std::chrono::duration<Rep, Period> ttl = std::chrono::seconds(0)) {
    std::vector<std::pair<std::string, std::string>> bytes;
    bytes.reserve(entries.size());
    for (const auto& [k, v] : entries) bytes.emplace_back(k, encode(k, v));
    backend_->set_many(bytes, to_ttl(ttl));
  }

  // ---- asynchronous forms ----
  // Each has a callback form (`done` called once, where the backend completes: an I/O
  // thread of the DynamoDB client, or inline for memory hits; see Backend) and a Pending
  // form to co_await or get(). Errors (CodecError included) arrive in the Outcome.
  // The cache must outlive its pending operations.
  void get_async(std::string key, std::function<void(Outcome<std::optional<T>>)> done) {
    backend_->get_entry_async(key, [this, key, done = std::move(done)](Outcome<std::optional<Hit>> r) {
      done(map_outcome<std::optional<T>>(r, [&] {
        auto& h = r.value();
        return h ? std::optional<T>(decode(key, h->value)) : std::nullopt;
      }));
    });
  }
  Pending<std::optional<T>> get_async(std::string key) {
    auto [p, done] = Pending<std::optional<T>>::make();
    get_async(std::move(key), std::move(done));
    return std::move(p);
  }

  template <class Rep, class Period>
  void set_async(std::string key, const T& value, std::chrono::duration<Rep, Period> ttl,
                 std::function<void(Outcome<void>)> done) {
    std::string bytes;
    Ttl t;
    try {
      bytes = encode(key, value);
      t = to_ttl(ttl);
    } catch (...) {
      return done(std::current_exception());
    }
    backend_->set_async(std::move(key), std::move(bytes), t, std::move(done));
  }
  template <class Rep = int64_t, class Period = std::ratio<1>>
  Pending<void> set_async(std::string key, const T& value,
                          std::chrono::duration<Rep, Period> ttl = std::chrono::seconds(0)) {
    auto [p, done] = Pending<void>::make();
    set_async(std::move(key), value, ttl, std::move(done));
    return std::move(p);
  }

  void erase_async(std::string key, std::function<void(Outcome<void>)> done) {
    backend_->erase_async(std::move(key), std::move(done));
  }
  Pending<void> erase_async(std::string key) {
    auto [p, done] = Pending<void>::make();
    erase_async(std::move(key), std::move(done));
    return std::move(p);
  }

  // Result i answers keys[i]; the backend issues the sub-requests concurrently.
  void get_many_async(std::vector<std::string> keys, std::function<void(Outcome<std::vector<std::optional<T>>>)> done) {
    auto shared_keys = std::make_shared<std::vector<std::string>>(keys);
    backend_->get_many_async(std::move(keys), [this, shared_keys, done = std::move(done)](
                                                  Outcome<std::vector<std::optional<Hit>>> r) {
      done(map_outcome<std::vector<std::optional<T>>>(r, [&] {
        auto& hits = r.value();
        std::vector<std::optional<T>> out;
        out.reserve(hits.size());
        for (size_t i = 0; i < hits.size(); ++i)
          out.push_back(hits[i] ? std::optional<T>(decode((*shared_keys)[i], hits[i]->value)) : std::nullopt);
        return out;
      }));
    });
  }
  Pending<std::vector<std::optional<T>>> get_many_async(std::vector<std::string> keys) {
    auto [p, done] = Pending<std::vector<std::optional<T>>>::make();
    get_many_async(std::move(keys), std::move(done));
    return std::move(p);
  }

  template <class Rep = int64_t, class Period = std::ratio<1>>
  Pending<void> set_many_async(const std::vector<std::pair<std::string, T>>& entries,
                               std::chrono::duration<Rep, Period> ttl = std::chrono::seconds(0)) {
    auto [p, done] = Pending<void>::make();
    std::vector<std::pair<std::string, std::string>> bytes;
    Ttl t;
    try {
      bytes.reserve(entries.size());
      for (const auto& [k, v] : entries) bytes.emplace_back(k, encode(k, v));
      t = to_ttl(ttl);
    } catch (...) {
      done(std::current_exception());
      return std::move(p);
    }
    backend_->set_many_async(std::move(bytes), t, std::move(done));
    return std::move(p);
  }

  // Clears the backend (Backend::clear_async: a namespace's generation, or the whole table
  // scanned in parallel segments).
  void clear_async(std::function<void(Outcome<void>)> done) { backend_->clear_async(std::move(done)); }
  Pending<void> clear_async() {
    auto [p, done] = Pending<void>::make();
    clear_async(std::move(done));
    return std::move(p);
  }

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

  std::string encode(std::string_view key, const T& value) const {
    try {
      return codec_.encode(value);
    } catch (const Error&) {
      throw;
    } catch (const std::exception& e) {
      throw CodecError("cannot encode the value for key '" + std::string(key) + "': " + e.what());
    }
  }

  T decode(std::string_view key, std::string_view bytes) const {
    try {
      return codec_.decode(bytes);
    } catch (const Error&) {
      throw;
    } catch (const std::exception& e) {
      throw CodecError("cannot decode the value of key '" + std::string(key) + "': " + e.what());
    }
  }

  std::shared_ptr<Backend> backend_;
  Codec codec_;
};

}  // namespace dynamodb_cache
