// DynamodbBackend's asynchronous operations (dynamodb_backend_impl.h).
//
// The common case is one request on the client's loop, accounted in stats as the
// synchronous call is; a namespace generation to read first is one more request there
// (prefix_async). What takes several dependent round trips (a value stored in chunks, a
// write replacing a never-expiring chunked value) runs the synchronous code on a helper
// thread of its own instead (offload), so that the loop never blocks; such operations are
// rare and already cost several requests.
#include <unordered_map>

#include "cache/chunked.h"
#include "cache/dynamodb_backend_impl.h"
#include "dynamodb/raw_call.h"

namespace dynamodb_cache {

using detail::kind_of;

// One GetItem of an asynchronous read, from the request to the answer: the state is one
// allocation (a class derived from this one, which says what the answer goes to), and the
// client's callback captures only a pointer to it, which std::function stores without
// another. An answer naming a chunked head goes to chunked() instead (more round trips: the
// caller reads it on a helper thread). Thread-safety: owned by one thread at a time (the
// caller, then the I/O thread that completes it, or the helper thread it is handed to).
struct DynamodbBackend::Impl::AsyncGet {
  AsyncGet(Impl* backend, std::string k, std::string p)
      : b(backend), key(std::move(k)), prefix(std::move(p)) {}
  virtual ~AsyncGet() = default;
  virtual void answered(ddb::Outcome<std::optional<Hit>> out) = 0;
  virtual void chunked() = 0;
  std::string stored() const { return b->key_map.stored_key(key, prefix); }

  Impl* b;
  std::string key;
  std::string prefix;  // b->key_prefix(), resolved
};

// Sends op's GetItem; op->answered or op->chunked is called once, then op deleted.
void DynamodbBackend::Impl::start_get(std::unique_ptr<AsyncGet> op) {
  // A get that may be batched hands over its key alone: the client encodes the GetItem body
  // only if the get goes alone.
  std::string request;
  std::optional<ddb::wire::BatchableGet> key;  // none made for a get that goes alone anyway
  const DynamodbOptions& o = op->b->options;
  ddb::Client& client = *op->b->client;
  const bool batched = o.batch_gets && ddb::detail::merges_gets(client);
  auto made = detail::outcome_of<void>([&] {
    const std::string stored = op->stored();
    if (batched)
      key.emplace(ddb::wire::batchable_get(o.table, attr::kKey, stored, o.consistent_read, op->b->capacity_request()));
    else
      request = op->b->get_request(stored, o.consistent_read);
  });
  if (!made.ok()) return op->answered(std::move(made).error());
  auto done = [p = op.release()](std::string* body, std::exception_ptr error) {
    std::unique_ptr<AsyncGet> op(p);
    if (error) return op->answered(std::move(error));
    bool chunks = false;
    auto out = detail::outcome_of<std::optional<Hit>>([&]() -> std::optional<Hit> {
      try {
        return detail::read_answer(op->b->options, nullptr, *body, op->key,
                                   op->b->stats.read_capacity_units);
      } catch (const detail::NeedsChunks&) {
        chunks = true;
        return std::nullopt;
      }
    });
    if (chunks) return op->chunked();
    op->answered(std::move(out));
  };
  if (key) return ddb::detail::raw_get_async(client, std::move(*key), std::move(done));
  ddb::detail::raw_call_async(client, DDB_TARGET("GetItem"), std::move(request), std::move(done), false);
}

// GetItem on the loop; a chunked head found there is read with its chunks on a helper thread.
void DynamodbBackend::Impl::fetch_async(std::string key, const std::string& prefix,
                                        Done<std::optional<Hit>> done) {
  struct Fetch final : AsyncGet {
    Fetch(Impl* b, std::string k, std::string p, Done<std::optional<Hit>> d)
        : AsyncGet(b, std::move(k), std::move(p)), done(std::move(d)) {}
    void answered(ddb::Outcome<std::optional<Hit>> out) override { done(std::move(out)); }
    void chunked() override {
      std::string s = stored();
      b->offload(std::move(done),
                 [b = b, key = std::move(key), s = std::move(s)] { return b->read_stored(key, s); });
    }
    Done<std::optional<Hit>> done;
  };
  start_get(std::make_unique<Fetch>(this, std::move(key), prefix, std::move(done)));
}

// PutItem on the loop, conditioned on not replacing a never-expiring chunked value; that
// case, and values that may need chunks, run store() on a helper thread.
void DynamodbBackend::Impl::put_async(std::string key, const std::string& prefix, std::string value, Ttl ttl,
                                      Done<void> done) {
  struct Args {
    std::string key, prefix, value;
  };
  auto args = std::make_shared<const Args>(Args{std::move(key), prefix, std::move(value)});
  auto sync = [this, args, ttl] { store(args->key, args->prefix, args->value, ttl); };
  if (!layout::fits_one_item(options, args->key, args->value))
    return offload(std::move(done), std::move(sync));
  ddb::PutItemRequest r;
  auto made = detail::outcome_of<void>([&] {
    r.table_name = options.table;
    r.item = item_for(args->key, prefix, args->value, ttl, nullptr);
    r.return_consumed_capacity = capacity_request();
    chunked::set_no_cleanup_condition(r);
  });
  if (!made.ok()) return done(std::move(made).error());
  client->put_item_async(std::move(r), [this, sync = std::move(sync),
                                        done = std::move(done)](ddb::Outcome<ddb::WriteResult> res) mutable {
    if (res.ok()) add_write_units(res.value().consumed);
    if (!res.ok() && kind_of(res.error()) == ErrorKind::kConditionFailed)
      return offload(std::move(done), std::move(sync));  // replacing a never-expiring chunked value
    done(res.ok() ? Outcome<void>() : Outcome<void>(std::move(res).error()));
  });
}

template <class Then>
void DynamodbBackend::Impl::prefix_async(Then then) {
  if (auto known = key_map.known_prefix()) return then(Outcome<std::string>(std::move(*known)));
  const auto now = std::chrono::steady_clock::now();
  ddb::GetItemRequest r = key_map.generation_request(options.table);
  r.return_consumed_capacity = capacity_request();
  client->get_item_async(std::move(r),
                         [this, now, then = std::move(then)](ddb::Outcome<ddb::GetItemResult> res) mutable {
                           if (res.ok()) add_read_units(res.value().consumed);
                           std::optional<std::string> read;
                           Outcome<std::string> out = detail::outcome_of<std::string>([&] {
                             read = key_map.generation_read(res.value().item, now);
                             return read.value_or(std::string());
                           });
                           if (!out.ok() || read) return then(std::move(out));
                           // No generation item (the namespace's first use, or its item was deleted):
                           // key_prefix starts it, with requests that depend on each other, on a helper
                           // thread.
                           offload<std::string>([then = std::make_shared<Then>(std::move(then))](
                                                    Outcome<std::string> o) { (*then)(std::move(o)); },
                                                [this] { return key_prefix(); });
                         });
}

// As fetch_async, with the get's accounting (settle, count_read) in the same state: the
// whole get is one allocation of its own (when the prefix is known).
void DynamodbBackend::Impl::get_entry_async(std::string key, Done<std::optional<Hit>> done) {
  struct Get final : AsyncGet {
    Get(Impl* b, std::string k, Done<std::optional<Hit>> d)
        : AsyncGet(b, std::move(k), std::string()), done(std::move(d)) {}
    void answered(ddb::Outcome<std::optional<Hit>> out) override {
      out = b->settle(Op::kGet, "get", std::string_view(key).substr(0, 64), start, std::move(out),
                      std::optional<Outcome<std::optional<Hit>>>(std::optional<Hit>()));
      if (out.ok()) b->count_read(out.value());
      done(std::move(out));
    }
    void chunked() override {
      auto rest = std::make_shared<Get>(std::move(*this));  // the accounting, for the helper thread's answer
      b->offload<std::optional<Hit>>(
          [rest](ddb::Outcome<std::optional<Hit>> out) { rest->answered(std::move(out)); },
          [b = b, key = rest->key, stored = rest->stored()] { return b->read_stored(key, stored); });
    }
    const std::chrono::steady_clock::time_point start = std::chrono::steady_clock::now();
    Done<std::optional<Hit>> done;
  };
  // Owned by the callback below (called exactly once), then by start_get.
  auto* get = new Get(this, std::move(key), std::move(done));
  prefix_async([get](Outcome<std::string> prefix) {
    std::unique_ptr<Get> op(get);
    if (!prefix.ok()) return op->answered(std::move(prefix).error());
    op->prefix = std::move(prefix.value());
    start_get(std::move(op));
  });
}

// With publish_invalidations the asynchronous writes run the blocking ones on a helper thread,
// which publish before they return (DynamodbOptions::publish_invalidations).
void DynamodbBackend::Impl::set_async(std::string key, std::string value, Ttl ttl, Done<void> done) {
  if (options.publish_invalidations)
    return offload<void>(std::move(done), [this, key = std::move(key), value = std::move(value), ttl] {
      set(key, value, ttl);
    });
  const auto start = std::chrono::steady_clock::now();
  Done<void> finish = [this, start, bytes = uint64_t{value.size()}, name = key.substr(0, 64),
                       done = std::move(done)](Outcome<void> out) {
    const bool failed = !out.ok();
    out = settle(Op::kSet, "set", name, start, std::move(out), std::optional<Outcome<void>>(Outcome<void>()));
    if (!failed) count_write(1, bytes);
    done(std::move(out));
  };
  prefix_async([this, key = std::move(key), value = std::move(value), ttl,
                finish = std::move(finish)](Outcome<std::string> prefix) mutable {
    if (!prefix.ok()) return finish(std::move(prefix).error());
    put_async(std::move(key), prefix.value(), std::move(value), ttl, std::move(finish));
  });
}

void DynamodbBackend::Impl::erase_async(std::string key, Done<void> done) {
  if (options.publish_invalidations)
    return offload<void>(std::move(done), [this, key = std::move(key)] { erase(key); });
  const auto start = std::chrono::steady_clock::now();
  Done<void> finish = [this, start, name = key.substr(0, 64), done = std::move(done)](Outcome<void> out) {
    if (out.ok()) stats.erases.fetch_add(1, std::memory_order_relaxed);
    done(settle<void>(Op::kErase, "erase", name, start, std::move(out), std::nullopt));
  };
  prefix_async([this, key = std::move(key), finish = std::move(finish)](Outcome<std::string> prefix) mutable {
    ddb::DeleteItemRequest plain;  // what delete_replacing takes
    auto made = detail::outcome_of<void>([&] {
      plain = erase_request(key_map.stored_key(key, prefix.value()));  // rethrows the generation read's error
    });
    if (!made.ok()) return finish(std::move(made).error());
    ddb::DeleteItemRequest r = plain;
    chunked::set_no_cleanup_condition(r);
    client->delete_item_async(std::move(r), [this, plain = std::move(plain),
                                             finish](ddb::Outcome<ddb::WriteResult> res) mutable {
      if (res.ok()) add_write_units(res.value().consumed);
      if (!res.ok() && kind_of(res.error()) == ErrorKind::kConditionFailed)  // a never-expiring chunked value
        return offload(finish, [this, plain = std::move(plain)] {
          add_write_units(chunked::delete_replacing(*client, plain));
        });
      finish(res.ok() ? Outcome<void>() : Outcome<void>(std::move(res).error()));
    });
  });
}

// As get_many: every key checked before any request, each distinct key asked once, one
// get_many in stats (one latency, one fail-open for the whole call).
void DynamodbBackend::Impl::get_many_async(std::vector<std::string> keys,
                                           Done<std::vector<std::optional<Hit>>> done) {
  using Hits = std::vector<std::optional<Hit>>;
  const auto start = std::chrono::steady_clock::now();
  const size_t n = keys.size();
  Done<Hits> finish = [this, start, n, name = n ? keys.front().substr(0, 64) : std::string(),
                       done = std::move(done)](Outcome<Hits> out) {
    out =
        settle(Op::kGetMany, "get_many", name, start, std::move(out), std::optional<Outcome<Hits>>(Hits(n)));
    if (out.ok())
      for (const auto& h : out.value()) count_read(h);
    done(std::move(out));
  };
  prefix_async(
      [this, keys = std::move(keys), finish = std::move(finish)](Outcome<std::string> prefix) mutable {
        detail::Distinct d = detail::distinct(keys);  // keys[i]'s answer: ask[d.slot[i]]'s
        auto checked = detail::outcome_of<void>([&] {
          const std::string& p = prefix.value();  // rethrows the generation read's error
          for (size_t i : d.first) key_map.stored_key(keys[i], p);
        });
        if (!checked.ok()) return finish(std::move(checked).error());
        std::vector<std::string> ask;
        ask.reserve(d.first.size());
        for (size_t i : d.first) ask.push_back(std::move(keys[i]));
        if (ask.empty()) return finish(Hits());
        auto got = std::make_shared<Hits>(ask.size());
        auto all = detail::join(ask.size(), [got, slot = std::move(d.slot), finish](std::exception_ptr e) {
          if (e) return finish(std::move(e));
          Hits out;
          out.reserve(slot.size());
          for (size_t s : slot) out.push_back((*got)[s]);
          finish(std::move(out));
        });
        for (size_t s = 0; s < ask.size(); ++s)
          fetch_async(std::move(ask[s]), prefix.value(), [got, all, s](Outcome<std::optional<Hit>> r) {
            if (r.ok()) (*got)[s] = std::move(r.value());
            all->one(std::move(r).error());
          });
      });
}

// As set_many: the last value for a key wins (concurrent puts of one key would race), every
// entry checked before any request, one set_many in stats.
void DynamodbBackend::Impl::set_many_async(std::vector<std::pair<std::string, std::string>> entries, Ttl ttl,
                                           Done<void> done) {
  if (options.publish_invalidations)
    return offload<void>(std::move(done),
                         [this, entries = std::move(entries), ttl] { set_many(entries, ttl); });
  const auto start = std::chrono::steady_clock::now();
  std::vector<size_t> send = detail::last_of_each_key(entries);
  uint64_t bytes = 0;
  for (size_t i : send) bytes += entries[i].second.size();
  Done<void> finish = [this, start, n = uint64_t{send.size()}, bytes,
                       name = entries.empty() ? std::string() : entries.front().first.substr(0, 64),
                       done = std::move(done)](Outcome<void> out) {
    const bool failed = !out.ok();
    out = settle(Op::kSetMany, "set_many", name, start, std::move(out),
                 std::optional<Outcome<void>>(Outcome<void>()));
    if (!failed) count_write(n, bytes);
    done(std::move(out));
  };
  prefix_async([this, entries = std::move(entries), send = std::move(send), ttl,
                finish = std::move(finish)](Outcome<std::string> prefix) mutable {
    auto checked = detail::outcome_of<void>([&] {
      const std::string& p = prefix.value();  // rethrows the generation read's error
      validate_ttl(ttl);
      for (size_t i : send) {
        key_map.stored_key(entries[i].first, p);
        layout::check_value_size(entries[i].first, entries[i].second);
      }
    });
    if (!checked.ok()) return finish(std::move(checked).error());
    if (send.empty()) return finish(Outcome<void>());
    auto all =
        detail::join(send.size(), [finish](std::exception_ptr e) { finish(Outcome<void>(std::move(e))); });
    for (size_t i : send)
      put_async(std::move(entries[i].first), prefix.value(), std::move(entries[i].second), ttl,
                [all](Outcome<void> r) { all->one(std::move(r).error()); });
  });
}

}  // namespace dynamodb_cache
