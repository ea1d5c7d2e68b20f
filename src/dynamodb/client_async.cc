// The asynchronous path of dynamodb::Client (private; see client_impl.h): the I/O threads,
// the max_in_flight slots, an operation from submit() to finish() (its attempts and retries
// on its I/O thread's loop, under RetryRun's policy), and the *_async calls.
#include <algorithm>
#include <type_traits>

#include "aws/fetch_deadline.h"
#include "dynamodb/client_impl.h"
#include "dynamodb/raw_call.h"
#include "dynamodb/wire.h"

namespace dynamodb_cache::dynamodb {

// An operation and its completion in one allocation (a std::function beside the operation
// would be a second one whenever its captures outgrow the function's inline buffer).
template <class Done>
struct Client::Impl::OpWith final : AsyncOp {
  OpWith(Impl& c, const char* t, std::string b, Done d, bool resend)
      : AsyncOp(c, t, std::move(b), resend), done(std::move(d)) {}
  void complete(std::string* body, std::exception_ptr error) override { done(body, std::move(error)); }
  Done done;
};

namespace {

// The GetItem body of a key handed over without one (raw_get_async): encode_get_item of the
// arguments wire::batchable_get made `key` from.
std::string get_item_body(const wire::BatchableGet& key) {
  const ReturnConsumedCapacity rcc = key.capacity.empty()    ? ReturnConsumedCapacity::kNone
                                     : key.capacity == "TOTAL" ? ReturnConsumedCapacity::kTotal
                                                               : ReturnConsumedCapacity::kIndexes;
  return wire::encode_get_item(key.table, key.key.front().first, key.key.front().second, key.consistent, rcc);
}

}  // namespace

void Client::Impl::IoThread::link(AsyncOp* op) {
  op->io = this;
  op->prev = nullptr;
  op->next = ops;
  if (ops) ops->prev = op;
  ops = op;
}

void Client::Impl::IoThread::unlink(AsyncOp* op) {
  (op->prev ? op->prev->next : ops) = op->next;
  if (op->next) op->next->prev = op->prev;
}

void Client::Impl::start_io() {
  std::call_once(io_once, [this] {
    auto tls = endpoint.rfind("https://", 0) == 0 && !blocking_async
                   ? std::make_shared<http::TlsContext>(http_options)
                   : nullptr;
    http::HttpOptions engine_options = http_options;
    engine_options.max_idle_connections =
        std::max(http_options.max_idle_connections,
                 (options.max_in_flight + static_cast<size_t>(options.io_threads) - 1) /
                     static_cast<size_t>(options.io_threads));
    for (int i = 0; i < options.io_threads; ++i) {
      auto t = std::make_unique<IoThread>();
      t->loop = std::make_unique<io::EventLoop>();
      t->engine = std::make_unique<io::HttpEngine>(*t->loop, engine_options, tls);
      if (options.hedge.enabled && !blocking_async) t->hedge.emplace(options.hedge);
      if (options.batch_gets && !blocking_async) {
        // Posted before any operation: the hook runs before the engine's (added on its first
        // send), so the batches it sends go out in the same iteration's system calls.
        IoThread* tp = t.get();
        // And in the engine's batched sends: gets its answers' callbacks started join them.
        tp->engine->set_before_send([this, tp] { flush_gets(*tp); });
        tp->loop->post([this, tp] {
          tp->loop->add_before_wait([this, tp] {
            flush_gets(*tp);
            return false;
          });
        });
      }
      io.push_back(std::move(t));
    }
    io_ready.store(true, std::memory_order_release);
  });
}

void Client::Impl::stop_io() {
  closing.store(true);
  for (auto& t : io) {
    IoThread* tp = t.get();
    t->loop->post([this, tp] {
      // One error object per operation: callers on other threads share none.
      auto cancelled = [] {
        return std::make_exception_ptr(
            CancelledError("DynamoDB client destroyed with the operation pending"));
      };
      // In-flight requests first (their operations give up: CancelledError is final), then
      // those waiting on a backoff timer.
      tp->engine->shutdown(cancelled);
      while (tp->ops) finish(*tp, tp->ops, nullptr, cancelled());
    });
  }
  for (auto& t : io) t->loop->stop();
  for (auto& t : io) t->loop->join();  // nothing runs on the loops any more
  io.clear();
}

bool Client::Impl::acquire_slot() {
  auto try_take = [this] {
    size_t cur = in_flight.load(std::memory_order_relaxed);
    while (cur < options.max_in_flight)
      if (in_flight.compare_exchange_weak(cur, cur + 1, std::memory_order_acq_rel)) return true;
    return false;
  };
  if (try_take()) return true;
  bool on_loop = false;
  for (auto& t : io) on_loop = on_loop || t->loop->in_loop();
  if (options.in_flight_policy == InFlightPolicy::kFail || on_loop)
    return false;  // waiting there would deadlock
  std::unique_lock lock(slot_mu);
  slot_waiters.fetch_add(1);
  slot_cv.wait(lock, try_take);
  slot_waiters.fetch_sub(1);
  return true;
}

void Client::Impl::release_slot() {
  in_flight.fetch_sub(1, std::memory_order_acq_rel);
  if (slot_waiters.load() > 0) {
    std::lock_guard lock(slot_mu);
    slot_cv.notify_one();
  }
}

template <class Done>
void Client::Impl::submit(const char* target, std::string body, Done done, bool resend_if_unknown,
                          bool may_batch, wire::BatchableGet* key) {
  const std::string_view op_name(target + kTargetPrefix);
  if (closing.load()) {
    auto error = std::make_exception_ptr(
        CancelledError(std::string(op_name).append(": the DynamoDB client is being destroyed")));
    return done(nullptr, std::move(error));
  }
  try {
    start_io();
  } catch (...) {  // a bad CA bundle, no threads left
    done(nullptr, std::current_exception());
    return;
  }
  if (!acquire_slot()) {
    auto error = std::make_exception_ptr(
        OverloadedError(std::string(op_name) + ": " + std::to_string(options.max_in_flight) +
                        " operations already in flight (ClientOptions::max_in_flight)"));
    return done(nullptr, std::move(error));
  }
  AsyncOp* op = new OpWith<Done>(*this, target, std::move(body), std::move(done), resend_if_unknown);
  op->batchable = may_batch && options.batch_gets && !blocking_async && op_name == "GetItem";
  if (key) op->batch_key.emplace(std::move(*key));
  op->hedgeable = options.hedge.enabled && !blocking_async && op_name == "GetItem";
  // Called on one of the loops (a callback starting the next operation): start it there at
  // once, without a hand-off through the task queue.
  for (auto& l : io)
    if (l->loop->in_loop()) {
      l->link(op);
      return begin(*l, op);
    }
  IoThread& t = *io[next_io.fetch_add(1, std::memory_order_relaxed) % io.size()];
  t.loop->post([this, &t, op] {
    t.link(op);
    begin(t, op);
  });
}

void Client::Impl::begin(IoThread& t, AsyncOp* op) {
  try {
    auto wait = op->run.before_attempt();
    if (wait.count() > 0) {
      op->timer = t.loop->add_timer(io::Clock::now() + wait, [this, &t, op] {
        op->timer = 0;
        send(t, op);
      });
      return;
    }
  } catch (...) {
    return finish(t, op, nullptr, std::current_exception());
  }
  send(t, op);
}

void Client::Impl::send(IoThread& t, AsyncOp* op) {
  if (op->batchable) {
    op->queued = true;
    t.pending_gets.push_back(op);
    return;
  }
  send_alone(t, op);
}

void Client::Impl::send_alone(IoThread& t, AsyncOp* op) {
  // The loop's, its strings reused. The provider only answers from what it holds: a fetch
  // is the fetcher's (want_credentials), never the loop's.
  thread_local aws::Credentials creds;
  op->run.creds_epoch = creds_epoch.load(std::memory_order_relaxed);
  try {
    if (!ready_credentials(creds)) return wait_for_credentials(t, op);
  } catch (...) {
    return on_answer(t, op, nullptr, std::current_exception());
  }
  send_signed(t, op, creds);
}

void Client::Impl::wait_for_credentials(IoThread& t, AsyncOp* op) {
  const auto until = op->run.real_deadline();
  try {
    want_credentials(until);
  } catch (...) {  // no thread could be started
    return on_answer(t, op, nullptr, std::current_exception());
  }
  op->waiting_credentials = true;
  t.credential_waiters.push_back(op);
  // The operation's deadline holds while it waits: the fetch may be slower.
  op->timer = t.loop->add_timer(until, [this, &t, op] {
    op->timer = 0;
    std::exception_ptr error;
    try {
      op->run.out_of_time(op->run.n, "its credentials were still being fetched");
    } catch (...) {
      error = std::current_exception();
    }
    finish(t, op, nullptr, std::move(error));
  });
}

void Client::Impl::want_credentials(std::chrono::steady_clock::time_point until) {
  std::lock_guard lock(fetch_mu);
  if (fetch_stop) return;
  fetch_wanted = true;
  fetch_until = std::max(fetch_until, until);
  if (!fetcher.joinable()) fetcher = std::thread([this] { fetch_loop(); });
  fetch_cv.notify_one();
}

void Client::Impl::fetch_loop() {
  std::unique_lock lock(fetch_mu);
  for (;;) {
    fetch_cv.wait(lock, [this] { return fetch_wanted || fetch_stop; });
    if (fetch_stop) return;
    fetch_wanted = false;
    const auto until = fetch_until;
    fetch_until = {};
    lock.unlock();
    // Shared by the operations it serves, read only.
    auto got = std::make_shared<aws::Credentials>();
    std::exception_ptr error;
    try {
      aws::detail::ScopedFetchDeadline within(until, kDeadlineWhat);
      credentials->get_into(*got);
    } catch (...) {
      error = std::current_exception();
    }
    std::shared_ptr<const aws::Credentials> done = std::move(got);
    // No loop yet (a blocking call's refresh): no operation waits on one. An operation that
    // waits asks for a fetch after its loop exists, and this round or the next answers it.
    if (io_ready.load(std::memory_order_acquire))
      for (auto& io_thread : io) {
        IoThread* tp = io_thread.get();
        tp->loop->post([this, tp, done, error] { credentials_fetched(*tp, done, error); });
      }
    lock.lock();
  }
}

void Client::Impl::stop_fetcher() {
  std::thread t;
  {
    std::lock_guard lock(fetch_mu);
    fetch_stop = true;
    t = std::move(fetcher);
  }
  fetch_cv.notify_all();
  if (t.joinable()) t.join();  // a fetch under way ends by its deadline at the latest
}

void Client::Impl::credentials_fetched(IoThread& t, const std::shared_ptr<const aws::Credentials>& got,
                                       const std::exception_ptr& error) {
  std::vector<AsyncOp*> waiters;
  waiters.swap(t.credential_waiters);  // an operation that waits again joins the next round
  for (AsyncOp* op : waiters) {
    op->waiting_credentials = false;
    if (op->timer) t.loop->cancel_timer(op->timer);
    op->timer = 0;
    if (!error) {
      send_signed(t, op, *got);
      continue;
    }
    // Each operation its own copy of a credentials error: callers on other threads share none.
    std::exception_ptr own;
    try {
      std::rethrow_exception(error);
    } catch (const CredentialsError& e) {
      own = std::make_exception_ptr(CredentialsError(e.what(), e.retryable()));
    } catch (...) {
      own = std::current_exception();
    }
    on_answer(t, op, nullptr, std::move(own));
  }
}

void Client::Impl::send_signed(IoThread& t, AsyncOp* op, const aws::Credentials& creds) {
  http::Request& req = t.request;
  try {
    if (op->body.empty() && op->batch_key) op->body = get_item_body(*op->batch_key);
    prepare(op->target, op->body, creds, op->signed_at, req, op->run.resend_if_unknown);
  } catch (...) {  // prepare lends the body last, with a move: op->body is untouched
    return on_answer(t, op, nullptr, std::current_exception());
  }
  if (blocking_async) {
    http::Response resp;
    std::exception_ptr error;
    try {
      resp = transport->send(req);
    } catch (...) {
      error = std::current_exception();
    }
    op->body = std::move(req.body);
    return on_answer(t, op, error ? nullptr : &resp, error);
  }
  send_copy(t, op, 0);
}

void Client::Impl::send_copy(IoThread& t, AsyncOp* op, int copy) {
  // The engine copies the request before it returns, and never calls back from within send().
  // A pointer and an int captured: the callback fits std::function's inline buffer (no
  // allocation).
  t.engine->send(t.request, [op, copy](http::Response* resp, std::exception_ptr error) {
    op->run.c.on_copy_answer(*op->io, op, copy, resp, std::move(error));
  });
  op->body = std::move(t.request.body);
  ++op->copies_out;
  if (!op->hedgeable) return;
  op->sent_at[static_cast<size_t>(copy)] = std::chrono::steady_clock::now();
  if (copy != 0 || op->hedged) return;
  if (auto after = t.hedge->on_send())
    op->hedge_timer = t.loop->add_timer(io::Clock::now() + *after, [this, &t, op] {
      op->hedge_timer = 0;
      hedge(t, op);
    });
}

void Client::Impl::hedge(IoThread& t, AsyncOp* op) {
  if (op->copies_out != 1) return;  // (the timer is cancelled by any answer)
  thread_local aws::Credentials creds;
  try {
    // Only credentials at hand: a hedge never waits for a fetch.
    if (!ready_credentials(creds)) return;
  } catch (...) {
    return;  // the first copy's answer decides
  }
  if (!t.hedge->take()) return;
  try {
    // Signed again (a signature is good for minutes; a fresh date costs one HMAC chain). The
    // operation's signed_at becomes this copy's: the first copy's answer may then learn the
    // clock offset against a time a few milliseconds later, far within the 4 minutes that
    // count as skew.
    prepare(op->target, op->body, creds, op->signed_at, t.request, op->run.resend_if_unknown);
  } catch (...) {
    return;
  }
  op->hedged = true;
  stats.hedged.fetch_add(1, std::memory_order_relaxed);
  // On another connection: the engine sends one request at a time per connection, and the
  // first copy's is busy until it is answered.
  send_copy(t, op, 1);
}

void Client::Impl::on_copy_answer(IoThread& t, AsyncOp* op, int copy, http::Response* resp,
                                  std::exception_ptr error) {
  --op->copies_out;
  // Every copy's latency, the loser's too: the percentile is that of the service's answers.
  if (op->hedgeable && !error && resp->status == 200)
    t.hedge->record(std::chrono::duration_cast<std::chrono::microseconds>(
        std::chrono::steady_clock::now() - op->sent_at[static_cast<size_t>(copy)]));
  if (op->completed) {  // the loser of a hedge: its answer was read whole, and is dropped
    if (op->copies_out == 0) delete op;
    return;
  }
  if (op->hedge_timer) t.loop->cancel_timer(op->hedge_timer);
  op->hedge_timer = 0;
  op->by_hedge = copy == 1;
  on_answer(t, op, resp, std::move(error));
}

void Client::Impl::on_answer(IoThread& t, AsyncOp* op, http::Response* resp, std::exception_ptr error) {
  bool skew_corrected = false;
  if (!error) {
    try {
      std::string out = check(op->target, t.request, *resp, op->signed_at, skew_corrected);
      op->run.succeeded();
      if (op->by_hedge) stats.hedge_wins.fetch_add(1, std::memory_order_relaxed);
      return finish(t, op, &out, nullptr);
    } catch (...) {
      error = std::current_exception();
    }
  }
  // A hedged attempt's other copy is still in flight: its answer decides (it may succeed;
  // if it fails too, the policy sees that error).
  if (op->copies_out > 0) return;
  std::optional<std::chrono::microseconds> delay;
  // Decided outside any catch handler, and the error moved on: when the user sees it, this
  // thread holds no reference to it (its last release is then ordered by what hands it over).
  error = decide(op, std::move(error), skew_corrected, delay);
  if (error) return finish(t, op, nullptr, std::move(error));
  if (!delay) return begin(t, op);
  // The backoff is a timer: the loop runs other operations meanwhile.
  op->timer = t.loop->add_timer(io::Clock::now() + *delay, [this, &t, op] {
    op->timer = 0;
    begin(t, op);
  });
}

std::exception_ptr Client::Impl::decide(AsyncOp* op, std::exception_ptr error, bool skew_corrected,
                                        std::optional<std::chrono::microseconds>& delay) {
  try {
    std::rethrow_exception(std::move(error));
  } catch (const Error& e) {
    try {
      delay = op->run.failed(e, skew_corrected);
      return nullptr;
    } catch (...) {
      return std::current_exception();
    }
  } catch (...) {
    return std::current_exception();
  }
}

void Client::Impl::finish(IoThread& t, AsyncOp* op, std::string* body, std::exception_ptr error) {
  if (op->timer) t.loop->cancel_timer(op->timer);
  if (op->hedge_timer) t.loop->cancel_timer(op->hedge_timer);
  if (op->waiting_credentials)
    t.credential_waiters.erase(std::find(t.credential_waiters.begin(), t.credential_waiters.end(), op));
  if (op->queued) t.pending_gets.erase(std::find(t.pending_gets.begin(), t.pending_gets.end(), op));
  t.unlink(op);
  if (op->copies_out > 0) {
    // A hedge's other copy is in flight and holds op: its answer frees it (on_copy_answer);
    // the engine answers every send, by its request timeout or at shutdown at the latest.
    op->completed = true;
    release_slot();
    return op->complete(body, std::move(error));
  }
  std::unique_ptr<AsyncOp> owned(op);
  release_slot();
  owned->complete(body, std::move(error));
}

namespace {

// The callback form of an operation's completion: decodes the body on the I/O thread.
// Kept whole in the operation (Impl::OpWith): no allocation of its own.
template <class T, class Decode>
struct Typed {
  Callback<T> done;
  Decode decode;
  void operator()(std::string* body, std::exception_ptr error) {
    if (error) return done(Outcome<T>(std::move(error)));
    std::optional<Outcome<T>> out;
    try {
      out.emplace(decode(std::move(*body)));
    } catch (...) {
      out.emplace(std::current_exception());
    }
    done(std::move(*out));
  }
};
template <class T, class Decode>
Typed<T, Decode> typed(Callback<T> done, Decode decode) {
  return Typed<T, Decode>{std::move(done), decode};
}

template <class T>
Callback<T> promise_callback(std::shared_ptr<std::promise<T>> p) {
  return [p = std::move(p)](Outcome<T> o) {
    if (o.ok())
      p->set_value(std::move(o).value());
    else
      p->set_exception(std::move(o).error());  // no reference left on this thread
  };
}

}  // namespace

size_t Client::in_flight() const { return impl_->in_flight.load(std::memory_order_relaxed); }

http::TransportStats Client::io_stats() const {
  http::TransportStats sum;
  for (auto& t : impl_->io) {
    std::promise<http::TransportStats> p;
    t->loop->post([&] { p.set_value(t->engine->stats()); });
    auto s = p.get_future().get();
    sum.connections += s.connections;
    sum.tls_handshakes += s.tls_handshakes;
    sum.tls_resumptions += s.tls_resumptions;
    sum.batched_socket_calls += s.batched_socket_calls;
    sum.batches += s.batches;
  }
  return sum;
}

namespace {
template <class Req>
bool resend_if_unknown_of(const Req& r) {
  if constexpr (std::is_base_of_v<ConditionalWrite, Req>) return r.resend_if_unknown;
  return true;
}
}  // namespace

#define DDB_ASYNC(name, Req, Res, op, decode_expr)                                         \
  void Client::name(Req r, Callback<Res> done) {                                           \
    bool resend = resend_if_unknown_of(r);                                                 \
    impl_->submit(DDB_TARGET(op), wire::encode(r),                                         \
                  typed<Res>(std::move(done), [](std::string b) { return decode_expr; }),  \
                  resend);                                                                 \
  }                                                                                        \
  std::future<Res> Client::name(Req r) {                                                   \
    auto p = std::make_shared<std::promise<Res>>();                                        \
    auto f = p->get_future();                                                              \
    name(std::move(r), promise_callback<Res>(std::move(p)));                               \
    return f;                                                                              \
  }

DDB_ASYNC(get_item_async, GetItemRequest, GetItemResult, "GetItem", wire::decode_get_item(b))
DDB_ASYNC(put_item_async, PutItemRequest, WriteResult, "PutItem", wire::decode_write(b))
DDB_ASYNC(delete_item_async, DeleteItemRequest, WriteResult, "DeleteItem", wire::decode_write(b))
DDB_ASYNC(update_item_async, UpdateItemRequest, WriteResult, "UpdateItem", wire::decode_write(b))
DDB_ASYNC(batch_get_item_async, BatchGetItemRequest, BatchGetItemResult, "BatchGetItem",
          wire::decode_batch_get(b))
DDB_ASYNC(batch_write_item_async, BatchWriteItemRequest, BatchWriteItemResult, "BatchWriteItem",
          wire::decode_batch_write(b))
DDB_ASYNC(query_async, QueryRequest, PageResult, "Query", wire::decode_page(b))
DDB_ASYNC(scan_async, ScanRequest, PageResult, "Scan", wire::decode_page(b))
#undef DDB_ASYNC

namespace detail {

void raw_call_async(Client& client, const char* target, std::string body, BodyDone done, bool may_batch) {
  Client::Impl::of(client).submit(target, std::move(body), std::move(done), true, may_batch);
}

bool merges_gets(Client& client) {
  const Client::Impl& c = Client::Impl::of(client);
  return c.options.batch_gets && !c.blocking_async;
}

void raw_get_async(Client& client, wire::BatchableGet&& key, BodyDone done) {
  Client::Impl::of(client).submit(DDB_TARGET("GetItem"), std::string(), std::move(done), true, true, &key);
}

}  // namespace detail

}  // namespace dynamodb_cache::dynamodb
