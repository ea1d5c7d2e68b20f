// get_or_set_many (get_or_set.h): bulk loads, with single flight per key through the same
// registry as get_or_set (single_flight.h), so that the two share loads.
#include <chrono>
#include <exception>
#include <memory>
#include <string_view>
#include <unordered_map>

#include "cache/outcome_of.h"
#include "cache/single_flight.h"
#include "dynamodb_cache/errors.h"
#include "dynamodb_cache/get_or_set.h"
#include "dynamodb_cache/layered_backend.h"
#include "util/text.h"

namespace dynamodb_cache {

namespace {

using detail::Flight;
using detail::FlightRegistry;
using detail::NoValueLoaded;

// The owner of the flights get_or_set joins for `backend`'s keys (get_or_set.cc: over layers
// whose lowest is DynamoDB, the lowest layer's), so that get_or_set_many shares them.
const void* flight_owner(Backend& backend) {
  if (auto* layered = dynamic_cast<LayeredBackend*>(&backend))
    if (auto* lowest = dynamic_cast<DynamodbBackend*>(layered->layers().back().get())) return lowest;
  return &backend;
}

// One batch store, or with a jitter one per group of 25 with its own TTL (as Cache<T>::set_many).
void store(Backend& backend, std::vector<std::pair<std::string, std::string>> entries, Ttl ttl,
           double jitter) {
  if (entries.empty()) return;
  if (jitter == 0) return backend.set_many(entries, ttl);
  for (const auto& group : ttl_jitter_groups(std::move(entries)))
    backend.set_many(group, jitter_ttl(ttl, jitter));
}

// The flights this call leads, by index into the call's unique keys. Each is left and then
// finished or failed exactly once: left first, as get_or_set does, so that a later caller
// starts anew and reads what was stored.
class Led {
 public:
  Led(FlightRegistry& registry, const void* owner, const std::vector<std::string>& keys)
      : registry_(registry), owner_(owner), keys_(keys) {}

  void add(size_t u, std::shared_ptr<Flight> flight) { flights_.push_back({u, std::move(flight), false}); }
  size_t size() const { return flights_.size(); }
  size_t key_index(size_t k) const { return flights_[k].u; }
  bool done(size_t k) const { return flights_[k].done; }

  // Ends flight k with `value`, or, for std::nullopt, as NoValueLoaded.
  void finish(size_t k, const std::optional<std::string>& value) {
    auto& f = flights_[k];
    const std::string& key = keys_[f.u];
    // What may throw (allocations) comes before `done`: fail_open then still ends the flight.
    registry_.leave(owner_, key, f.flight);
    if (value) {
      std::string copy = *value;
      f.done = true;
      f.flight->finish(GetOrSetResult{std::move(copy)});
    } else {
      auto none = std::make_exception_ptr(NoValueLoaded(key));
      f.done = true;
      f.flight->fail(std::move(none));
    }
  }

  // Fails every flight not yet ended with `error`, so that no waiter is left waiting.
  void fail_open(const std::exception_ptr& error) noexcept {
    for (auto& f : flights_) {
      if (f.done) continue;
      f.done = true;
      try {
        registry_.leave(owner_, keys_[f.u], f.flight);
      } catch (...) {  // no memory for the flight's id: it stays registered, but it has ended
      }
      f.flight->fail(error);
    }
  }

 private:
  struct One {
    size_t u;
    std::shared_ptr<Flight> flight;
    bool done;
  };
  FlightRegistry& registry_;
  const void* owner_;
  const std::vector<std::string>& keys_;
  std::vector<One> flights_;
};

}  // namespace

std::vector<std::optional<std::string>> get_or_set_many(Backend& backend,
                                                        const std::vector<std::string>& keys,
                                                        const ManyLoader& load_many, Ttl ttl,
                                                        const GetOrSetManyOptions& options) {
  validate_ttl(ttl);
  validate_ttl_jitter(options.ttl_jitter);
  if (!load_many) throw InvalidArgumentError("get_or_set_many: the loader is empty");
  // Each key once, in the order of its first appearance; keys[i] is unique[at[i]].
  std::vector<std::string> unique;
  std::vector<size_t> at;
  at.reserve(keys.size());
  {
    std::unordered_map<std::string_view, size_t> index;
    for (const auto& k : keys) {
      auto [it, inserted] = index.try_emplace(k, unique.size());
      if (inserted) unique.push_back(k);
      at.push_back(it->second);
    }
  }
  if (unique.empty()) return {};

  auto& registry = FlightRegistry::instance();
  const void* owner = flight_owner(backend);
  std::vector<uint64_t> finished_before(unique.size());
  for (size_t u = 0; u < unique.size(); ++u) finished_before[u] = registry.finished(owner, unique[u]);
  // Keys are validated by this read, under the backend's own limit (long_keys).
  auto hits = backend.get_many(unique);
  std::vector<std::optional<std::string>> found(unique.size());
  std::vector<std::pair<size_t, std::shared_ptr<Flight>>> followed;
  {
    Led led(registry, owner, unique);
    try {
      for (size_t u = 0; u < unique.size(); ++u) {
        if (hits[u]) {
          found[u] = std::move(hits[u]->value);
          continue;
        }
        auto joined = registry.join(owner, unique[u]);
        if (joined.leader)
          led.add(u, std::move(joined.flight));
        else
          followed.emplace_back(u, std::move(joined.flight));
      }
      // A flight that ended between the read and the join may have stored some of the keys
      // this call now leads: those are read again (one batch), as get_or_set does.
      std::vector<size_t> recheck;  // into led
      std::vector<std::string> recheck_keys;
      for (size_t k = 0; k < led.size(); ++k)
        if (registry.finished(owner, unique[led.key_index(k)]) != finished_before[led.key_index(k)]) {
          recheck.push_back(k);
          recheck_keys.push_back(unique[led.key_index(k)]);
        }
      if (!recheck.empty()) {
        auto again = backend.get_many(recheck_keys);
        for (size_t j = 0; j < recheck.size(); ++j)
          if (again[j]) {
            found[led.key_index(recheck[j])] = std::move(again[j]->value);
            led.finish(recheck[j], found[led.key_index(recheck[j])]);
          }
      }
      std::vector<size_t> to_load;  // into led
      std::vector<std::string> missing;
      for (size_t k = 0; k < led.size(); ++k)
        if (!led.done(k)) {
          to_load.push_back(k);
          missing.push_back(unique[led.key_index(k)]);
        }
      if (!missing.empty()) {
        auto loaded = detail::timed_load(backend.stats(), [&] { return load_many(missing); });
        if (loaded.size() != missing.size())
          throw InvalidArgumentError("get_or_set_many: the loader returned " + std::to_string(loaded.size()) +
                                     " results for " + std::to_string(missing.size()) +
                                     " keys; it must return one per key it is given (std::nullopt for a "
                                     "key it has no value for)");
        std::vector<std::pair<std::string, std::string>> entries;
        for (size_t j = 0; j < missing.size(); ++j)
          if (loaded[j]) entries.emplace_back(missing[j], *loaded[j]);
        store(backend, std::move(entries), ttl, options.ttl_jitter);
        for (size_t j = 0; j < missing.size(); ++j) {
          size_t u = led.key_index(to_load[j]);
          found[u] = std::move(loaded[j]);
          led.finish(to_load[j], found[u]);
        }
      }
    } catch (...) {
      led.fail_open(std::current_exception());
      throw;
    }
  }
  // Only now, with nothing of ours left open, wait for the loads others lead.
  for (auto& [u, flight] : followed) {
    try {
      found[u] = flight->wait().value;
    } catch (const NoValueLoaded&) {  // the loader had none: std::nullopt
    }
  }
  if (unique.size() == keys.size()) return found;  // no duplicates: in the order of keys
  std::vector<std::optional<std::string>> out;
  out.reserve(keys.size());
  for (size_t u : at) out.push_back(found[u]);
  return out;
}

void get_or_set_many_async(Backend& backend, std::vector<std::string> keys, ManyLoader load_many, Ttl ttl,
                           GetOrSetManyOptions options,
                           Backend::Done<std::vector<std::optional<std::string>>> done) {
  backend.run_blocking([&backend, keys = std::move(keys), load_many = std::move(load_many), ttl, options,
                        done = std::move(done)](std::exception_ptr refused) {
    if (refused) return done(std::move(refused));
    done(detail::outcome_of<std::vector<std::optional<std::string>>>(
        [&] { return get_or_set_many(backend, keys, load_many, ttl, options); }));
  });
}

Pending<std::vector<std::optional<std::string>>> get_or_set_many_async(Backend& backend,
                                                                       std::vector<std::string> keys,
                                                                       ManyLoader load_many, Ttl ttl,
                                                                       GetOrSetManyOptions options) {
  return detail::start_pending<std::vector<std::optional<std::string>>>([&](auto d) {
    get_or_set_many_async(backend, std::move(keys), std::move(load_many), ttl, options, std::move(d));
  });
}

}  // namespace dynamodb_cache
