// GetItems merged into BatchGetItems on the client's event loops (private; see client_impl.h
// and ClientOptions::batch_gets): a batchable GetItem's attempt waits in its IoThread's
// pending_gets until the end of the loop's iteration (send), where flush_gets merges what
// waits there; the batch's answer is split back into one GetItem answer per operation, and
// anything else (an error, a key left unprocessed) is handed to each operation's own retry
// policy (on_answer), so each completes as its GetItem would have.
#include <algorithm>
#include <iterator>
#include <unordered_map>

#include "dynamodb/client_impl.h"
#include "dynamodb/get_batch.h"
#include "dynamodb/wire.h"

namespace dynamodb_cache::dynamodb {

// One BatchGetItem: its keys, each with the operations that asked for it (the same key twice
// is read once). Owned by flush_gets, then by the engine's callback.
struct Client::Impl::GetBatch {
  Impl& c;
  IoThread& t;
  std::string table;
  bool consistent = false;
  std::string capacity;
  struct Entry {
    wire::BatchableGet key;
    std::vector<AsyncOp*> ops;
  };
  std::vector<Entry> entries;
  // Grouping only: key identity (a view into entries[i].key.identity, which `entries`,
  // reserved for every get of the turn, never moves meanwhile) -> index in entries.
  std::unordered_map<std::string_view, size_t> by_identity;
  aws::SystemClock::time_point signed_at;

  template <class F>
  void each(F f) {
    for (auto& e : entries)
      for (AsyncOp* op : e.ops) f(op);
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
  // Grouped by table, consistency and capacity, each distinct key once; then sent in
  // requests of at most kMaxBatchGetKeys keys (a lone key with one caller as a GetItem).
  std::vector<std::unique_ptr<GetBatch>> groups;
  wire::BatchableGet get;
  for (AsyncOp* op : ops) {
    if (op->batch_key) {
      get = std::move(*op->batch_key);
      op->batch_key.reset();  // a retry of the key (UnprocessedKeys) reads the body
    } else if (!wire::parse_batchable_get(op->body, get)) {
      send_alone(t, op);
      continue;
    }
    auto same = std::find_if(groups.begin(), groups.end(), [&](const auto& g) {
      return g->consistent == get.consistent && g->table == get.table && g->capacity == get.capacity;
    });
    if (same == groups.end()) {
      groups.push_back(std::unique_ptr<GetBatch>(
          new GetBatch{*this, t, get.table, get.consistent, get.capacity, {}, {}, {}}));
      same = groups.end() - 1;
      (*same)->entries.reserve(ops.size());
      (*same)->by_identity.reserve(ops.size());
    }
    GetBatch& g = **same;
    auto it = g.by_identity.find(get.identity);
    if (it == g.by_identity.end()) {
      g.entries.push_back({std::move(get), {op}});
      g.by_identity.emplace(g.entries.back().key.identity, g.entries.size() - 1);
    } else {
      g.entries[it->second].ops.push_back(op);
    }
  }
  ops.clear();
  for (auto& g : groups) {
    if (g->entries.size() == 1 && g->entries.front().ops.size() == 1) {
      send_alone(t, g->entries.front().ops.front());
      continue;
    }
    for (size_t from = 0; from < g->entries.size(); from += wire::kMaxBatchGetKeys) {
      const size_t to = std::min(g->entries.size(), from + wire::kMaxBatchGetKeys);
      auto* b = new GetBatch{*this, t, g->table, g->consistent, g->capacity, {}, {}, {}};
      b->entries.assign(std::make_move_iterator(g->entries.begin() + static_cast<ptrdiff_t>(from)),
                        std::make_move_iterator(g->entries.begin() + static_cast<ptrdiff_t>(to)));
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
  std::vector<const wire::BatchableGet*> keys;
  keys.reserve(b->entries.size());
  for (auto& e : b->entries) keys.push_back(&e.key);
  std::string body = wire::encode_batch_get(b->table, b->consistent, b->capacity, keys);
  b->each([&](AsyncOp* op) { op->run.creds_epoch = epoch; });
  http::Request& req = t.request;
  try {
    prepare(DDB_TARGET("BatchGetItem"), body, creds, b->signed_at, req, true);
  } catch (...) {
    return on_batch_answer(t, b, nullptr, std::current_exception());
  }
  stats.batches.fetch_add(1, std::memory_order_relaxed);
  stats.batched_keys.fetch_add(b->entries.size(), std::memory_order_relaxed);
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
      std::vector<std::string> key_names;
      for (auto& [name, value] : b->entries.front().key.key) key_names.push_back(name);
      std::vector<const wire::BatchableGet*> keys;
      keys.reserve(b->entries.size());
      for (auto& e : b->entries) keys.push_back(&e.key);
      answer = wire::split_batch_get(body, b->table, key_names, keys);
    } catch (...) {
      error = std::current_exception();
    }
  }
  if (error) return b->each([&](AsyncOp* op) { on_answer(t, op, nullptr, own_copy(error)); });

  size_t processed = 0;
  for (size_t i = 0; i < b->entries.size(); ++i)
    processed += !answer.items[i].empty() || !answer.unprocessed[i];
  const double share = processed ? answer.capacity_units / static_cast<double>(processed) : 0;
  std::string out;  // each operation's answer in turn (a callback may move it away)
  for (size_t k = 0; k < b->entries.size(); ++k) {
    auto& e = b->entries[k];
    if (answer.items[k].empty() && answer.unprocessed[k]) {
      // Retried as a throttled GetItem would be: the retry policy's backoff and quota, within
      // the operation's deadline; the error is what the operation ends with if it cannot.
      for (AsyncOp* op : e.ops)
        on_answer(t, op, nullptr,
                  std::make_exception_ptr(ServiceError(
                      ErrorKind::kThrottling, 200, "UnprocessedKeys",
                      "BatchGetItem left the key unprocessed (throughput or its 16 MB answer limit)",
                      std::string())));
      continue;
    }
    for (size_t i = 0; i < e.ops.size(); ++i) {
      // The key's read units counted once, with its first asker.
      wire::get_item_answer(out, answer.items[k], b->table, b->capacity, i == 0 ? share : 0);
      e.ops[i]->run.succeeded();
      finish(t, e.ops[i], &out, nullptr);
    }
  }
}

}  // namespace dynamodb_cache::dynamodb
