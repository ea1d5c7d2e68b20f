// What every backend shares: key validation and the default batch operations.
#include "dynamodb_cache/backend.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <random>
#include <unordered_map>
#include <utility>

#include "cache/batch_entries.h"
#include "cache/outcome_of.h"
#include "dynamodb_cache/cache.h"
#include "dynamodb_cache/errors.h"
#include "util/log.h"
#include "util/random.h"
#include "util/text.h"

namespace dynamodb_cache {

void validate_key(std::string_view key, std::size_t max_bytes) {
  if (key.empty()) throw InvalidArgumentError("cache key is empty");
  if (key.size() > max_bytes)
    throw InvalidArgumentError("cache key is " + std::to_string(key.size()) + " bytes; " +
                               (max_bytes == 2048
                                    ? std::string("DynamoDB allows at most 2048 (DynamodbOptions::long_keys "
                                                  "stores keys up to 64 KiB as digests)")
                                    : "at most " + std::to_string(max_bytes) + " are allowed"));
  // UTF-8 well-formedness (RFC 3629): DynamoDB rejects anything else in a string key.
  const auto* p = reinterpret_cast<const unsigned char*>(key.data());
  const auto* end = p + key.size();
  while (p < end) {
    unsigned char c = *p;
    if (c < 0x80) {
      ++p;
      continue;
    }
    int n;
    uint32_t cp;
    if ((c & 0xE0) == 0xC0) {
      n = 1;
      cp = c & 0x1F;
    } else if ((c & 0xF0) == 0xE0) {
      n = 2;
      cp = c & 0x0F;
    } else if ((c & 0xF8) == 0xF0) {
      n = 3;
      cp = c & 0x07;
    } else
      throw InvalidArgumentError("cache key is not valid UTF-8");
    if (end - p <= n) throw InvalidArgumentError("cache key is not valid UTF-8");
    for (int i = 1; i <= n; ++i) {
      if ((p[i] & 0xC0) != 0x80) throw InvalidArgumentError("cache key is not valid UTF-8");
      cp = (cp << 6) | (p[i] & 0x3F);
    }
    static constexpr uint32_t kMin[] = {0, 0x80, 0x800, 0x10000};
    if (cp < kMin[n] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
      throw InvalidArgumentError("cache key is not valid UTF-8");
    p += n + 1;
  }
}

void throw_bad_ttl(double seconds) {
  std::string shown = std::isnan(seconds) ? "NaN" : seconds < 0 ? "negative" : "too long";
  throw InvalidArgumentError("ttl is " + shown + "; it must be 0 (never expires) to " +
                             std::to_string(kMaxTtl.count() / 1000) + " seconds (10,000 years)");
}

void validate_ttl(Ttl ttl) {
  if (ttl.count() < 0 || ttl > kMaxTtl) throw_bad_ttl(static_cast<double>(ttl.count()) / 1000);
}

void validate_ttl_jitter(double jitter) {
  if (!(jitter >= 0 && jitter < 1))
    throw InvalidArgumentError(
        "ttl_jitter is " + (std::isnan(jitter) ? std::string("NaN") : std::to_string(jitter)) +
        "; it must be a fraction of the TTL, 0 (off) or more and less than 1 (0.1: +-10%)");
}

Ttl jitter_ttl(Ttl ttl, double jitter) {
  if (jitter == 0 || ttl.count() == 0) return ttl;
  // Whole milliseconds inside the bounds; the lower one is above zero since jitter < 1.
  const auto ms = static_cast<double>(ttl.count());
  const auto lo = static_cast<Ttl::rep>(std::ceil(ms * (1 - jitter)));
  const auto hi = static_cast<Ttl::rep>(std::floor(ms * (1 + jitter)));
  if (lo >= hi) return ttl;
  std::uniform_int_distribution<Ttl::rep> spread(lo, hi);
  return std::min(Ttl(spread(util::thread_rng())), kMaxTtl);
}

namespace detail {
std::vector<size_t> last_of_each_key(const std::vector<std::pair<std::string, std::string>>& entries) {
  std::unordered_map<std::string_view, size_t> last;
  for (size_t i = 0; i < entries.size(); ++i) last[entries[i].first] = i;
  std::vector<size_t> send;
  send.reserve(last.size());
  for (size_t i = 0; i < entries.size(); ++i)
    if (last[entries[i].first] == i) send.push_back(i);
  return send;
}
}  // namespace detail

std::vector<std::vector<std::pair<std::string, std::string>>> ttl_jitter_groups(
    std::vector<std::pair<std::string, std::string>> entries) {
  constexpr size_t kGroup = 25;
  std::vector<std::vector<std::pair<std::string, std::string>>> groups;
  for (size_t i : detail::last_of_each_key(entries)) {
    if (groups.empty() || groups.back().size() == kGroup) groups.emplace_back().reserve(kGroup);
    groups.back().push_back(std::move(entries[i]));
  }
  return groups;
}

void note_undecodable(Backend& backend, const LogHook& log, std::string_view key) noexcept {
  backend.stats().decode_errors.fetch_add(1, std::memory_order_relaxed);
  try {
    // Not the codec's message: it may quote the stored value.
    detail::log_to(log, LogLevel::kWarning,
                   "the value of key '" + util::printable(key) +
                       "' does not decode (a changed type?); read as a miss "
                       "(TypedOptions::decode_error_is_miss), the next set replaces it");
  } catch (...) {  // no memory for the message: the count stands
  }
}

int64_t Backend::decrement(std::string_view key, int64_t delta, Ttl ttl) {
  if (delta == std::numeric_limits<int64_t>::min())
    throw InvalidArgumentError("decrement by INT64_MIN cannot be negated");
  return increment(key, -delta, ttl);
}

void Backend::erase_many(const std::vector<std::string>& keys) {
  for (const auto& k : keys) erase(k);
}

bool Backend::contains(std::string_view key) { return get_entry(key).has_value(); }

std::vector<std::optional<Hit>> Backend::get_many(const std::vector<std::string>& keys) {
  std::vector<std::optional<Hit>> out;
  out.reserve(keys.size());
  for (const auto& k : keys) out.push_back(get_entry(k));
  return out;
}

void Backend::set_many(const std::vector<std::pair<std::string, std::string>>& entries, Ttl ttl) {
  for (const auto& [k, v] : entries) set(k, v, ttl);
}

namespace {
// Runs `f` now and completes `done` inline with its result or its error.
template <class T, class F>
void complete_inline(const Backend::Done<T>& done, F&& f) {
  done(detail::outcome_of<T>(std::forward<F>(f)));
}
}  // namespace

void Backend::get_entry_async(std::string key, Done<std::optional<Hit>> done) {
  complete_inline(done, [&] { return get_entry(key); });
}
void Backend::set_async(std::string key, std::string value, Ttl ttl, Done<void> done) {
  complete_inline(done, [&] { set(key, value, ttl); });
}
void Backend::erase_async(std::string key, Done<void> done) {
  complete_inline(done, [&] { erase(key); });
}
void Backend::get_many_async(std::vector<std::string> keys, Done<std::vector<std::optional<Hit>>> done) {
  complete_inline(done, [&] { return get_many(keys); });
}
void Backend::set_many_async(std::vector<std::pair<std::string, std::string>> entries, Ttl ttl,
                             Done<void> done) {
  complete_inline(done, [&] { set_many(entries, ttl); });
}
void Backend::clear_async(Done<void> done, std::function<void(uint64_t)> progress) {
  complete_inline(done, [&] { clear(progress); });
}

void Backend::run_blocking(std::function<void(std::exception_ptr)> work) { work(nullptr); }

using detail::blocking;

void Backend::contains_async(std::string key, Done<bool> done) {
  blocking(*this, std::move(done), [key = std::move(key)](Backend& b) { return b.contains(key); });
}
void Backend::touch_async(std::string key, Ttl ttl, Done<bool> done) {
  blocking(*this, std::move(done), [key = std::move(key), ttl](Backend& b) { return b.touch(key, ttl); });
}
void Backend::add_async(std::string key, std::string value, Ttl ttl, Done<bool> done) {
  blocking(*this, std::move(done), [key = std::move(key), value = std::move(value), ttl](Backend& b) {
    return b.add(key, value, ttl);
  });
}
void Backend::increment_async(std::string key, int64_t delta, Ttl ttl, Done<int64_t> done) {
  blocking(*this, std::move(done),
           [key = std::move(key), delta, ttl](Backend& b) { return b.increment(key, delta, ttl); });
}
void Backend::decrement_async(std::string key, int64_t delta, Ttl ttl, Done<int64_t> done) {
  blocking(*this, std::move(done),
           [key = std::move(key), delta, ttl](Backend& b) { return b.decrement(key, delta, ttl); });
}
void Backend::erase_many_async(std::vector<std::string> keys, Done<void> done) {
  blocking(*this, std::move(done), [keys = std::move(keys)](Backend& b) { b.erase_many(keys); });
}

}  // namespace dynamodb_cache
