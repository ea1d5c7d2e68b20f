// GetItems merged into BatchGetItems on the client's event loops (private; see client_impl.h
// and ClientOptions::batch_gets): a batchable GetItem's attempt waits in its IoThread's
// pending_gets until the end of the loop's iteration (send), where flush_gets merges what
// waits there; the batch's answer is split back into one GetItem answer per operation, and
// anything else (an error, a key left unprocessed) is handed to each operation's own retry
// policy (on_answer), so each completes as its GetItem would have.
#include <algorithm>
#include <functional>
#include <memory>

#include "dynamodb/client_impl.h"
#include "dynamodb/get_batch.h"
#include "dynamodb/wire.h"

namespace dynamodb_cache::dynamodb {

// One BatchGetItem: its distinct keys, each with the operations that asked for it (the same
// key twice is read once). Owned by flush_gets, then by the engine's callback.
struct Client::Impl::GetBatch {
  Impl& c;
  IoThread& t;
  std::string table;
  bool consistent = false;
  std::string capacity;
  // keys[i]: the key of askers[i], its first asker (AsyncOp::batch_key, which lives until
  // that operation completes: after the answer is split); the others asking for it follow
  // askers[i] through AsyncOp::same_key, in the order they asked.
  std::vector<const wire::BatchableGet*> keys;
  std::vector<AsyncOp*> askers;
  aws::SystemClock::time_point signed_at;

  GetBatch(Impl& impl, IoThread& io, const wire::BatchableGet& like)
      : c(impl), t(io), table(like.table), consistent(like.consistent), capacity(like.capacity) {}
  bool holds(const wire::BatchableGet& k) const {
    return k.consistent == consistent && k.table == table && k.capacity == capacity;
  }
  // f(op) for every operation of key i (f may complete op, or queue it again).
  template <class F>
  void each_of(size_t i, F f) {
    for (AsyncOp* op = askers[i]; op;) {
      AsyncOp* next = op->same_key;
      f(op);
      op = next;
    }
  }
  template <class F>
  void each(F f) {
    for (size_t i = 0; i < askers.size(); ++i) each_of(i, f);
  }
};

namespace {

template <class E>
std::exception_ptr copy_of_type(const std::exception& e) {
  auto* as = dynamic_cast<const E*>(&e);
  return as ? std::make_exception_ptr(*as) : nullptr;
}

template <class... E>
std::exception_ptr copy_as(const std::exception_ptr& error) {
  std::exception_ptr copy;
  try {
    std::rethrow_exception(error);
  } catch (const std::exception& e) {
    ((!copy && (copy = copy_of_type<E>(e))), ...);
  } catch (...) {
  }
  return copy ? copy : error;
}

// Each operation its own copy of an error that ended their shared request: callers on other
// threads share no exception object. The most derived classes first, so none is sliced
// (a ThrottlingError stays one); any other error is shared as it is.
std::exception_ptr own_copy(const std::exception_ptr& error) {
  return copy_as<ConnectError, TimeoutError, CertificateError, TransportError, ProtocolError,
                 ResourceNotFoundError, ThrottlingError, ConditionFailedError, ServiceError, CancelledError,
                 CredentialsError>(error);
}

}  // namespace

void Client::Impl::flush_gets(IoThread& t) {
  if (t.pending_gets.empty()) return;
  std::vector<AsyncOp*>& ops = t.flushing;  // empty: kept for its capacity
  ops.swap(t.pending_gets);
  for (AsyncOp* op : ops) op->queued = false;
  if (ops.size() == 1) {  // alone in its iteration: sent as it is, nothing parsed
    AsyncOp* op = ops.front();
    ops.clear();
    return send_alone(t, op);
  }
  // Grouped by table, consistency and capacity, each distinct key once (found through
  // t.key_slots, which hold the last asker of each key: no allocation per get); then sent
  // in requests of at most kMaxBatchGetKeys keys (a lone key with one caller as a GetItem).
  std::vector<std::unique_ptr<GetBatch>> groups;
  size_t slots = 16;
  while (slots < 2 * ops.size()) slots *= 2;
  t.key_slots.assign(slots, nullptr);
  GetBatch* last = nullptr;  // the group of the previous get: most turns have one
  for (AsyncOp* op : ops) {
    op->same_key = nullptr;
    if (!op->batch_key) {
      op->batch_key.emplace();
      if (!wire::parse_batchable_get(op->body, *op->batch_key)) {
        op->batch_key.reset();
        send_alone(t, op);
        continue;
      }
    }
    const wire::BatchableGet& key = *op->batch_key;
    if (!last || !last->holds(key)) {
      auto same = std::find_if(groups.begin(), groups.end(), [&](const auto& g) { return g->holds(key); });
      if (same == groups.end()) {
        groups.push_back(std::make_unique<GetBatch>(*this, t, key));
        same = groups.end() - 1;
        (*same)->keys.reserve(ops.size());
        (*same)->askers.reserve(ops.size());
      }
      last = same->get();
    }
    size_t at = std::hash<std::string_view>{}(key.identity) & (slots - 1);
    for (; t.key_slots[at]; at = (at + 1) & (slots - 1)) {
      const wire::BatchableGet& seen = *t.key_slots[at]->batch_key;
      if (seen.identity == key.identity && last->holds(seen)) break;
    }
    if (AsyncOp* before = t.key_slots[at]) {
      before->same_key = op;
    } else {
      last->keys.push_back(&key);
      last->askers.push_back(op);
    }
    t.key_slots[at] = op;
  }
  ops.clear();
  for (auto& g : groups) {
    if (g->askers.size() == 1 && !g->askers.front()->same_key) {
      send_alone(t, g->askers.front());
      continue;
    }
    if (g->keys.size() <= wire::kMaxBatchGetKeys) {
      send_batch(t, g.release());
      continue;
    }
    for (size_t from = 0; from < g->keys.size(); from += wire::kMaxBatchGetKeys) {
      const size_t to = std::min(g->keys.size(), from + wire::kMaxBatchGetKeys);
      auto* b = new GetBatch(*this, t, *g->keys.front());
      b->keys.assign(g->keys.begin() + static_cast<ptrdiff_t>(from), g->keys.begin() + static_cast<ptrdiff_t>(to));
      b->askers.assign(g->askers.begin() + static_cast<ptrdiff_t>(from), g->askers.begin() + static_cast<ptrdiff_t>(to));
      send_batch(t, b);
    }
  }
}

void Client::Impl::send_batch(IoThread& t, GetBatch* b) {
  thread_local aws::Credentials creds;  // the loop's, its strings reused
  const uint64_t epoch = creds_epoch.load(std::memory_order_relaxed);
  bool ready = false;
  try {
    ready = ready_credentials(creds);
  } catch (...) {  // each operation meets the error on its own
  }
  if (!ready) {  // each waits for the fetcher (or fails) as it would alone
    b->each([&](AsyncOp* op) { send_alone(t, op); });
    delete b;
    return;
  }
  std::string body = wire::encode_batch_get(b->table, b->consistent, b->capacity, b->keys);
  b->each([&](AsyncOp* op) { op->run.creds_epoch = epoch; });
  http::Request& req = t.request;
  try {
    prepare(DDB_TARGET("BatchGetItem"), body, creds, b->signed_at, req, true);
  } catch (...) {
    return on_batch_answer(t, b, nullptr, std::current_exception());
  }
  stats.batches.fetch_add(1, std::memory_order_relaxed);
  stats.batched_keys.fetch_add(b->keys.size(), std::memory_order_relaxed);
  // One pointer captured: no allocation for the callback.
  t.engine->send(req, [b](http::Response* resp, std::exception_ptr error) {
    b->c.on_batch_answer(b->t, b, resp, std::move(error));
  });
}

void Client::Impl::on_batch_answer(IoThread& t, GetBatch* raw, http::Response* resp,
                                   std::exception_ptr error) {
  std::unique_ptr<GetBatch> b(raw);
  b->each([&](AsyncOp* op) { op->signed_at = b->signed_at; });
  wire::BatchGetAnswer answer;
  if (!error && resp->status != 200) {
    // One key DynamoDB refuses (too long, a wrong attribute name) refuses the whole batch:
    // each operation is sent again alone and gets its own GetItem's answer.
    if (resp->status == 400 && wire::decode_error(resp->body).name == "ValidationException")
      return b->each([&](AsyncOp* op) { send_alone(t, op); });
    // Any other refusal is each operation's own, read from the answer as its GetItem's
    // (check makes each its own error; on_answer applies its retry policy).
    return b->each([&](AsyncOp* op) { on_answer(t, op, resp, nullptr); });
  }
  std::string body;  // the answer's items are views into it
  if (!error) {
    try {
      bool skew_corrected = false;
      body = check(DDB_TARGET("BatchGetItem"), t.request, *resp, b->signed_at, skew_corrected);
      thread_local std::vector<std::string> key_names;  // the loop's, its strings reused
      const auto& first = b->keys.front()->key;
      key_names.resize(first.size());
      for (size_t i = 0; i < first.size(); ++i) key_names[i].assign(first[i].first);
      answer = wire::split_batch_get(body, b->table, key_names, b->keys);
    } catch (...) {
      error = std::current_exception();
    }
  }
  if (error) return b->each([&](AsyncOp* op) { on_answer(t, op, nullptr, own_copy(error)); });

  // From here on b->keys[k] may dangle once askers[k] has completed: the answer's items are
  // views into `body`, and the table and capacity are the batch's own.
  size_t processed = 0;
  for (size_t i = 0; i < b->keys.size(); ++i)
    processed += !answer.items[i].empty() || !answer.unprocessed[i];
  const double share = processed ? answer.capacity_units / static_cast<double>(processed) : 0;
  std::string out;  // each operation's answer in turn (a callback may move it away)
  for (size_t k = 0; k < b->keys.size(); ++k) {
    if (answer.items[k].empty() && answer.unprocessed[k]) {
      // Retried as a throttled GetItem would be: the retry policy's backoff and quota, within
      // the operation's deadline; the error is what the operation ends with if it cannot.
      b->each_of(k, [&](AsyncOp* op) {
        on_answer(t, op, nullptr,
                  std::make_exception_ptr(ServiceError(
                      ErrorKind::kThrottling, 200, "UnprocessedKeys",
                      "BatchGetItem left the key unprocessed (throughput or its 16 MB answer limit)",
                      std::string())));
      });
      continue;
    }
    bool first_asker = true;
    b->each_of(k, [&](AsyncOp* op) {
      // The key's read units counted once, with its first asker.
      wire::get_item_answer(out, answer.items[k], b->table, b->capacity, first_asker ? share : 0);
      first_asker = false;
      op->run.succeeded();
      finish(t, op, &out, nullptr);
    });
  }
}

}  // namespace dynamodb_cache::dynamodb
