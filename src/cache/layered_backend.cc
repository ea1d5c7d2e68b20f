// LayeredBackend: reads in layer order with back-fill, writes lowest layer first.
#include "dynamodb_cache/layered_backend.h"

#include <algorithm>

#include "cache/background_pool.h"
#include "dynamodb_cache/errors.h"

namespace dynamodb_cache {

namespace {
// Back-fill TTL: the remaining lifetime, never "zero" (which would mean forever).
Ttl refill_ttl(const Hit& h) {
  if (!h.ttl_left) return Ttl::zero();
  return std::max(*h.ttl_left, Ttl(1));
}
}  // namespace

// The layers and the asynchronous forms' steps, each continuing from one layer to the next
// in the completion of the one before. Thread-safe: `layers` is not changed after
// construction; `stats` is the backend's (relaxed atomics).
struct LayeredBackend::Impl {
  struct Many;
  Impl(std::vector<std::shared_ptr<Backend>> l, LayeredOptions o, CacheStats& s)
      : layers(std::move(l)), options(o), stats(s) {}
  void get_from(size_t layer, std::string key, Done<std::optional<Hit>> done);
  void set_from(size_t layer, std::string key, std::string value, Ttl ttl, bool erase, Done<void> done);
  void clear_from(size_t layer, Done<void> done, std::function<void(uint64_t)> progress);
  void take_layer(size_t layer, Many& m, std::vector<std::optional<Hit>>& got);
  void many_from(size_t layer, std::shared_ptr<Many> m, Done<std::vector<std::optional<Hit>>> done);
  void set_many_from(size_t layer,
                     std::shared_ptr<const std::vector<std::pair<std::string, std::string>>> entries, Ttl ttl,
                     Done<void> done);
  Backend& lowest() { return *layers.back(); }
  // The TTL layer `layer` keeps a copy for: `ttl` in the lowest layer; above it, at most
  // options.upper_max_age (when set), also for a `ttl` of zero (never expires).
  Ttl ttl_in(size_t layer, Ttl ttl) const {
    if (layer + 1 == layers.size() || options.upper_max_age.count() == 0) return ttl;
    return ttl.count() == 0 ? options.upper_max_age : std::min(ttl, options.upper_max_age);
  }

  std::vector<std::shared_ptr<Backend>> layers;
  const LayeredOptions options;
  CacheStats& stats;
};

LayeredBackend::LayeredBackend(std::vector<std::shared_ptr<Backend>> layers, LayeredOptions options)
    : impl_(std::make_unique<Impl>(std::move(layers), options, *stats_)) {
  if (options.upper_max_age.count() < 0)
    throw InvalidArgumentError("LayeredOptions::upper_max_age is negative");
  if (impl_->layers.empty()) throw InvalidArgumentError("LayeredBackend needs at least one layer");
  for (const auto& l : impl_->layers)
    if (!l) throw InvalidArgumentError("LayeredBackend: a layer is null");
}

// A refresh ahead of expiry through the layers runs on the pool under this object's name (it
// fills the layers above the table): done before the layers go.
LayeredBackend::~LayeredBackend() { detail::backend_gone(this); }

void LayeredBackend::run_blocking(std::function<void(std::exception_ptr)> work) {
  impl_->lowest().run_blocking(std::move(work));
}

std::optional<Hit> LayeredBackend::get_entry(std::string_view key) {
  for (size_t i = 0; i < impl_->layers.size(); ++i) {
    auto h = impl_->layers[i]->get_entry(key);
    if (!h) continue;
    if (h->ttl_left && h->ttl_left->count() <= 0) return std::nullopt;  // expired in transit
    if (!h->counter)
      for (size_t j = 0; j < i; ++j) impl_->layers[j]->set(key, h->value, impl_->ttl_in(j, refill_ttl(*h)));
    stats_->hits.fetch_add(1, std::memory_order_relaxed);
    return h;
  }
  stats_->misses.fetch_add(1, std::memory_order_relaxed);
  return std::nullopt;
}

void LayeredBackend::set(std::string_view key, std::string_view value, Ttl ttl) {
  for (size_t j = impl_->layers.size(); j-- > 0;) impl_->layers[j]->set(key, value, impl_->ttl_in(j, ttl));
  stats_->sets.fetch_add(1, std::memory_order_relaxed);
}

void LayeredBackend::erase(std::string_view key) {
  for (auto it = impl_->layers.rbegin(); it != impl_->layers.rend(); ++it) (*it)->erase(key);
  stats_->erases.fetch_add(1, std::memory_order_relaxed);
}

void LayeredBackend::clear(const std::function<void(uint64_t)>& progress) {
  for (auto it = impl_->layers.rbegin(); it != impl_->layers.rend(); ++it) (*it)->clear(progress);
}

// A get_many in progress, one layer at a time: the keys no layer answered yet.
struct LayeredBackend::Impl::Many {
  std::vector<std::string> keys;
  std::vector<std::optional<Hit>> out;
  std::vector<size_t> missing;  // indexes into keys
  explicit Many(std::vector<std::string> k) : keys(std::move(k)), out(keys.size()), missing(keys.size()) {
    for (size_t i = 0; i < keys.size(); ++i) missing[i] = i;
  }
  std::vector<std::string> ask() const {
    std::vector<std::string> a;
    a.reserve(missing.size());
    for (size_t i : missing) a.push_back(keys[i]);
    return a;
  }
};

// Takes layer `layer`'s answers to m.ask(): hits go to m.out and are written back into the
// layers above (counters excepted), the rest stay missing.
void LayeredBackend::Impl::take_layer(size_t layer, Many& m, std::vector<std::optional<Hit>>& got) {
  std::vector<size_t> still;
  for (size_t k = 0; k < m.missing.size(); ++k) {
    auto& h = got[k];
    if (!h || (h->ttl_left && h->ttl_left->count() <= 0)) {
      still.push_back(m.missing[k]);
      continue;
    }
    if (!h->counter)
      for (size_t j = 0; j < layer; ++j)
        layers[j]->set(m.keys[m.missing[k]], h->value, ttl_in(j, refill_ttl(*h)));
    m.out[m.missing[k]] = std::move(h);
  }
  m.missing = std::move(still);
}

std::vector<std::optional<Hit>> LayeredBackend::get_many(const std::vector<std::string>& keys) {
  Impl::Many m(keys);
  for (size_t layer = 0; layer < impl_->layers.size() && !m.missing.empty(); ++layer) {
    auto got = impl_->layers[layer]->get_many(m.ask());
    impl_->take_layer(layer, m, got);
  }
  return std::move(m.out);
}

void LayeredBackend::get_many_async(std::vector<std::string> keys,
                                    Done<std::vector<std::optional<Hit>>> done) {
  impl_->many_from(0, std::make_shared<Impl::Many>(std::move(keys)), std::move(done));
}

// As get_many from layer `layer` on, each layer asked with its asynchronous form.
void LayeredBackend::Impl::many_from(size_t layer, std::shared_ptr<Many> m,
                                     Done<std::vector<std::optional<Hit>>> done) {
  if (layer == layers.size() || m->missing.empty()) return done(std::move(m->out));
  layers[layer]->get_many_async(
      m->ask(), [this, layer, m, done = std::move(done)](Outcome<std::vector<std::optional<Hit>>> r) mutable {
        std::exception_ptr error = std::move(r).error();
        if (!error) {
          try {
            take_layer(layer, *m, r.value());
          } catch (...) {
            error = std::current_exception();
          }
        }
        if (error) return done(std::move(error));  // outside the handler: no reference kept here
        many_from(layer + 1, std::move(m), std::move(done));
      });
}

void LayeredBackend::set_many_async(std::vector<std::pair<std::string, std::string>> entries, Ttl ttl,
                                    Done<void> done) {
  impl_->set_many_from(
      impl_->layers.size(),
      std::make_shared<const std::vector<std::pair<std::string, std::string>>>(std::move(entries)), ttl,
      std::move(done));
}

// Layers below `layer` are written; the next one up is layer - 1.
void LayeredBackend::Impl::set_many_from(
    size_t layer, std::shared_ptr<const std::vector<std::pair<std::string, std::string>>> entries, Ttl ttl,
    Done<void> done) {
  if (layer == 0) return done(Outcome<void>());
  layers[layer - 1]->set_many_async(*entries, ttl_in(layer - 1, ttl),
                                    [this, layer, entries, ttl, done](Outcome<void> r) mutable {
                                      if (!r.ok()) return done(std::move(r));
                                      set_many_from(layer - 1, std::move(entries), ttl, std::move(done));
                                    });
}

void LayeredBackend::set_many(const std::vector<std::pair<std::string, std::string>>& entries, Ttl ttl) {
  for (size_t j = impl_->layers.size(); j-- > 0;) impl_->layers[j]->set_many(entries, impl_->ttl_in(j, ttl));
}

void LayeredBackend::get_entry_async(std::string key, Done<std::optional<Hit>> done) {
  impl_->get_from(0, std::move(key), std::move(done));
}

// Layer `layer` and below. A memory layer completes inline, so a hit there is answered on
// the calling thread; only a miss reaches a layer that waits on I/O.
void LayeredBackend::Impl::get_from(size_t layer, std::string key, Done<std::optional<Hit>> done) {
  if (layer == layers.size()) {
    stats.misses.fetch_add(1, std::memory_order_relaxed);
    return done(std::optional<Hit>());
  }
  auto& l = *layers[layer];
  l.get_entry_async(key, [this, layer, key, done = std::move(done)](Outcome<std::optional<Hit>> r) mutable {
    if (!r.ok() || !r.value()) {
      if (!r.ok()) return done(std::move(r));
      return get_from(layer + 1, std::move(key), std::move(done));
    }
    std::optional<Hit>& h = r.value();
    if (h->ttl_left && h->ttl_left->count() <= 0) return done(std::optional<Hit>());  // expired in transit
    std::exception_ptr error;
    try {
      if (!h->counter)
        for (size_t j = 0; j < layer; ++j) layers[j]->set(key, h->value, ttl_in(j, refill_ttl(*h)));
    } catch (...) {
      error = std::current_exception();
    }
    if (error) return done(std::move(error));  // outside the handler: no reference kept here
    stats.hits.fetch_add(1, std::memory_order_relaxed);
    done(std::move(r));
  });
}

void LayeredBackend::set_async(std::string key, std::string value, Ttl ttl, Done<void> done) {
  impl_->set_from(impl_->layers.size(), std::move(key), std::move(value), ttl, false, std::move(done));
}

void LayeredBackend::erase_async(std::string key, Done<void> done) {
  impl_->set_from(impl_->layers.size(), std::move(key), std::string(), Ttl::zero(), true, std::move(done));
}

// Layers below `layer` are done; the next one up is layer - 1.
void LayeredBackend::Impl::set_from(size_t layer, std::string key, std::string value, Ttl ttl, bool erase,
                                    Done<void> done) {
  if (layer == 0) {
    (erase ? stats.erases : stats.sets).fetch_add(1, std::memory_order_relaxed);
    return done(Outcome<void>());
  }
  auto& l = *layers[layer - 1];
  auto next = [this, layer, key, value, ttl, erase, done](Outcome<void> r) mutable {
    if (!r.ok()) return done(std::move(r));
    set_from(layer - 1, std::move(key), std::move(value), ttl, erase, std::move(done));
  };
  if (erase)
    l.erase_async(std::move(key), std::move(next));
  else
    l.set_async(std::move(key), std::move(value), ttl_in(layer - 1, ttl), std::move(next));
}

void LayeredBackend::clear_async(Done<void> done, std::function<void(uint64_t)> progress) {
  impl_->clear_from(impl_->layers.size(), std::move(done), std::move(progress));
}

// Layers below `layer` are cleared; the next one up is layer - 1.
void LayeredBackend::Impl::clear_from(size_t layer, Done<void> done, std::function<void(uint64_t)> progress) {
  if (layer == 0) return done(Outcome<void>());
  layers[layer - 1]->clear_async(
      [this, layer, done, progress](Outcome<void> r) mutable {
        if (!r.ok()) return done(std::move(r));
        clear_from(layer - 1, std::move(done), std::move(progress));
      },
      progress);
}

void LayeredBackend::erase_many(const std::vector<std::string>& keys) {
  for (auto it = impl_->layers.rbegin(); it != impl_->layers.rend(); ++it) (*it)->erase_many(keys);
}

bool LayeredBackend::contains(std::string_view key) {
  for (auto& l : impl_->layers)
    if (l->contains(key)) return true;
  return false;
}

bool LayeredBackend::touch(std::string_view key, Ttl ttl) {
  bool touched = impl_->lowest().touch(key, ttl);
  for (size_t j = 0; j + 1 < impl_->layers.size(); ++j) {
    if (touched)
      impl_->layers[j]->touch(
          key, impl_->ttl_in(j, ttl));  // false when this layer has no copy: nothing to re-time
    else
      impl_->layers[j]->erase(key);  // whatever copy it has outlived the shared entry
  }
  return touched;
}

bool LayeredBackend::add(std::string_view key, std::string_view value, Ttl ttl) {
  if (!impl_->lowest().add(key, value, ttl)) return false;
  fill_upper(key, value, ttl);
  return true;
}

void LayeredBackend::fill_upper(std::string_view key, std::string_view value, Ttl ttl) {
  for (size_t j = 0; j + 1 < impl_->layers.size(); ++j)
    impl_->layers[j]->set(key, value, impl_->ttl_in(j, ttl));
}

const std::vector<std::shared_ptr<Backend>>& LayeredBackend::layers() const { return impl_->layers; }

int64_t LayeredBackend::increment(std::string_view key, int64_t delta, Ttl ttl) {
  auto erase_above = [&] {
    for (size_t j = 0; j + 1 < impl_->layers.size(); ++j) impl_->layers[j]->erase(key);
  };
  int64_t v;
  try {
    v = impl_->lowest().increment(key, delta, ttl);
  } catch (const UnknownOutcomeError&) {
    erase_above();  // the counter may have moved: no copy above may say otherwise
    throw;
  }
  erase_above();
  return v;
}

}  // namespace dynamodb_cache
