// get_or_set's single flight (single_flight.h): one load per backend object and key.
#include "cache/single_flight.h"

#include <functional>

namespace dynamodb_cache {

namespace detail {

GetOrSetResult Flight::wait() {
  if (leader_.load() == std::this_thread::get_id())
    throw InvalidArgumentError(
        "get_or_set: the loader asked for its own key (get_or_set of the same key on the same "
        "cache, from inside its loader): it would wait for itself forever");
  std::unique_lock lock(mu_);
  ++waiters_;
  cv_.wait(lock, [&] { return done_; });
  --waiters_;
  if (error_) std::rethrow_exception(error_);
  return result_;
}

void Flight::finish(GetOrSetResult result) {
  {
    std::lock_guard lock(mu_);
    result_ = std::move(result);
    done_ = true;
  }
  cv_.notify_all();
}

void Flight::fail(std::exception_ptr error) {
  {
    std::lock_guard lock(mu_);
    error_ = std::move(error);
    done_ = true;
  }
  cv_.notify_all();
}

std::string FlightRegistry::id(const void* owner, std::string_view key) {
  std::string id(reinterpret_cast<const char*>(&owner), sizeof owner);
  id += key;
  return id;
}

FlightRegistry::Shard& FlightRegistry::shard(const std::string& id) {
  return shards_[std::hash<std::string>{}(id) % kShards];
}

FlightRegistry::Joined FlightRegistry::join(const void* owner, std::string_view key) {
  std::string k = id(owner, key);
  Shard& s = shard(k);
  std::lock_guard lock(s.mu);
  auto [it, inserted] = s.flights.try_emplace(std::move(k));
  if (inserted) {
    it->second = std::make_shared<Flight>();
    it->second->leader_.store(std::this_thread::get_id());
  }
  return {it->second, inserted};
}

void FlightRegistry::leave(const void* owner, std::string_view key, const std::shared_ptr<Flight>& flight) {
  std::string k = id(owner, key);
  Shard& s = shard(k);
  std::lock_guard lock(s.mu);
  auto it = s.flights.find(k);
  if (it != s.flights.end() && it->second == flight) s.flights.erase(it);
  ++s.finished;
}

uint64_t FlightRegistry::finished(const void* owner, std::string_view key) {
  Shard& s = shard(id(owner, key));
  std::lock_guard lock(s.mu);
  return s.finished;
}

std::size_t FlightRegistry::waiters(const void* owner, std::string_view key) {
  std::shared_ptr<Flight> f;
  {
    std::string k = id(owner, key);
    Shard& s = shard(k);
    std::lock_guard lock(s.mu);
    auto it = s.flights.find(k);
    if (it == s.flights.end()) return 0;
    f = it->second;
  }
  std::lock_guard lock(f->mu_);
  return f->waiters_;
}

FlightRegistry& FlightRegistry::instance() {
  static FlightRegistry registry;
  return registry;
}

}  // namespace detail

}  // namespace dynamodb_cache
