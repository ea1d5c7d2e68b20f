#include "dynamodb_cache/backend.h"
#include "dynamodb_cache/errors.h"

namespace dynamodb_cache {

namespace {
// Back-fill TTL: the remaining lifetime, never "zero" (which would mean forever).
Ttl refill_ttl(const Hit& h) {
  if (!h.ttl_left) return Ttl::zero();
  return std::max(*h.ttl_left, Ttl(1));
}
}  // namespace

LayeredBackend::LayeredBackend(std::vector<std::shared_ptr<Backend>> layers) : layers_(std::move(layers)) {
  if (layers_.empty()) throw InvalidArgumentError("LayeredBackend needs at least one layer");
  for (const auto& l : layers_)
    if (!l) throw InvalidArgumentError("LayeredBackend: a layer is null");
}

std::optional<Hit> LayeredBackend::get_entry(std::string_view key) {
  for (size_t i = 0; i < layers_.size(); ++i) {
    auto h = layers_[i]->get_entry(key);
    if (!h) continue;
    if (h->ttl_left && h->ttl_left->count() <= 0) return std::nullopt;  // expired in transit
    if (!h->counter)
      for (size_t j = 0; j < i; ++j) layers_[j]->set(key, h->value, refill_ttl(*h));
    stats_->hits.fetch_add(1, std::memory_order_relaxed);
    return h;
  }
  stats_->misses.fetch_add(1, std::memory_order_relaxed);
  return std::nullopt;
}

void LayeredBackend::set(std::string_view key, std::string_view value, Ttl ttl) {
  for (auto it = layers_.rbegin(); it != layers_.rend(); ++it) (*it)->set(key, value, ttl);
  stats_->sets.fetch_add(1, std::memory_order_relaxed);
}

void LayeredBackend::erase(std::string_view key) {
  for (auto it = layers_.rbegin(); it != layers_.rend(); ++it) (*it)->erase(key);
  stats_->erases.fetch_add(1, std::memory_order_relaxed);
}

void LayeredBackend::clear(const std::function<void(uint64_t)>& progress) {
  for (auto it = layers_.rbegin(); it != layers_.rend(); ++it) (*it)->clear(progress);
}

std::vector<std::optional<Hit>> LayeredBackend::get_many(const std::vector<std::string>& keys) {
  std::vector<std::optional<Hit>> out(keys.size());
  std::vector<size_t> missing(keys.size());
  for (size_t i = 0; i < keys.size(); ++i) missing[i] = i;
  for (size_t layer = 0; layer < layers_.size() && !missing.empty(); ++layer) {
    std::vector<std::string> ask;
    ask.reserve(missing.size());
    for (size_t i : missing) ask.push_back(keys[i]);
    auto got = layers_[layer]->get_many(ask);
    std::vector<size_t> still;
    for (size_t k = 0; k < missing.size(); ++k) {
      auto& h = got[k];
      if (!h || (h->ttl_left && h->ttl_left->count() <= 0)) {
        still.push_back(missing[k]);
        continue;
      }
      if (!h->counter)
        for (size_t j = 0; j < layer; ++j) layers_[j]->set(keys[missing[k]], h->value, refill_ttl(*h));
      out[missing[k]] = std::move(h);
    }
    missing = std::move(still);
  }
  return out;
}

void LayeredBackend::set_many(const std::vector<std::pair<std::string, std::string>>& entries, Ttl ttl) {
  for (auto it = layers_.rbegin(); it != layers_.rend(); ++it) (*it)->set_many(entries, ttl);
}

void LayeredBackend::erase_many(const std::vector<std::string>& keys) {
  for (auto it = layers_.rbegin(); it != layers_.rend(); ++it) (*it)->erase_many(keys);
}

bool LayeredBackend::contains(std::string_view key) {
  for (auto& l : layers_)
    if (l->contains(key)) return true;
  return false;
}

bool LayeredBackend::touch(std::string_view key, Ttl ttl) {
  bool touched = lowest().touch(key, ttl);
  for (size_t j = 0; j + 1 < layers_.size(); ++j) {
    if (touched)
      layers_[j]->touch(key, ttl);  // false when this layer has no copy: nothing to re-time
    else
      layers_[j]->erase(key);  // whatever copy it has outlived the shared entry
  }
  return touched;
}

bool LayeredBackend::add(std::string_view key, std::string_view value, Ttl ttl) {
  if (!lowest().add(key, value, ttl)) return false;
  for (size_t j = 0; j + 1 < layers_.size(); ++j) layers_[j]->set(key, value, ttl);
  return true;
}

int64_t LayeredBackend::increment(std::string_view key, int64_t delta, Ttl ttl) {
  int64_t v = lowest().increment(key, delta, ttl);
  for (size_t j = 0; j + 1 < layers_.size(); ++j) layers_[j]->erase(key);
  return v;
}

}  // namespace dynamodb_cache
