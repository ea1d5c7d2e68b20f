// dynamodb::Client's state and internals (private): struct Client::Impl, shared by the files
// that implement the client:
//   client_attempt.cc  Impl's constructor; one attempt (prepare signs, attempt sends, check
//                      turns the answer into its body or a typed error: CRC check, error
//                      classification, clock-skew correction); RetryRun, the one retry
//                      policy of the blocking and asynchronous paths; the blocking loop call()
//   client_async.cc    the asynchronous path: AsyncOp, the I/O threads (start_io, stop_io),
//                      the max_in_flight slots, an operation from submit() to finish(); the
//                      *_async calls, in_flight(), io_stats(), detail::raw_call_async
//   client.cc          the public blocking API over call(), batch_get_all, batch_write_all,
//                      scan_all, detail::raw_call
//
// Thread-safety: as Client's, any number of threads at once. The configuration (options,
// region, endpoint, url, path, host, credentials, transport, http_options, sleeper,
// blocking_async) is set by the constructor and only read after; quota, backoff, limiter,
// clock_offset_ms, stats and the in-flight counters are thread-safe themselves; `io` is set
// once (start_io) and cleared by the destructor. An IoThread's members, and begin, send,
// on_answer, decide and finish, run on that I/O thread's loop only. A RetryRun, and the
// AsyncOp holding one, serves one operation at a time. The credentials fetcher's state is
// guarded by fetch_mu; fetch_loop runs on its own thread.
#pragma once

#include <array>
#include <condition_variable>
#include <mutex>
#include <optional>
#include <thread>

#include "dynamodb/get_batch.h"
#include "dynamodb/hedge.h"
#include "dynamodb/raw_call.h"  // DDB_TARGET
#include "dynamodb/retry.h"
#include "dynamodb_cache/dynamodb.h"
#include "dynamodb_cache/errors.h"
#include "io/event_loop.h"
#include "io/http_engine.h"

namespace dynamodb_cache::dynamodb {

struct Client::Impl {
  ClientOptions options;
  std::string region;
  std::string endpoint;
  std::string url;
  std::string path;
  std::string host;
  std::shared_ptr<aws::CredentialsProvider> credentials;
  std::shared_ptr<http::Transport> transport;
  http::HttpOptions http_options;  // of the built-in transports (the blocking one and the engines)
  std::shared_ptr<Sleeper> sleeper;
  detail::RetryQuota quota;
  detail::Backoff backoff;
  detail::ClientRateLimiter limiter;  // used in adaptive mode only
  // Server clock minus ours, learnt from clock-skew errors; added to options.now() when
  // signing. Milliseconds.
  std::atomic<int64_t> clock_offset_ms{0};
  // Counts the client's invalidations of its credentials. An attempt notes it when it takes
  // credentials; of the attempts refused with ExpiredTokenException, only one that took them
  // in the current epoch invalidates them (the others were refused with credentials already
  // given up on): one invalidation for all the requests in flight with the same credentials.
  std::atomic<uint64_t> creds_epoch{0};
  ClientStats stats;
  // Names the deadline within which credentials are fetched, in messages.
  static constexpr const char* kDeadlineWhat = "the operation deadline (ClientOptions::operation_timeout)";

  static ClientOptions with_resolved_retry(ClientOptions o);

  explicit Impl(ClientOptions o);

  static constexpr size_t kTargetPrefix = sizeof("DynamoDB_20120810.") - 1;
  struct RetryRun;

  // The Impl of `c` (a nested class may reach Client's members): for the private calls of
  // raw_call.h.
  static Impl& of(Client& c) { return *c.impl_; }

  // The request of one attempt, signed with `creds`, made in `req` (whose strings are reused:
  // a request kept by the caller allocates less the next time); `body` is lent to it (moved
  // in: the caller takes it back from the request after sending). `signed_at` receives the
  // signing time. `resend_if_stale`: http::Request's (false for a write that must not be sent
  // twice).
  void prepare(const char* target, std::string& body, const aws::Credentials& creds,
               aws::SystemClock::time_point& signed_at, http::Request& req, bool resend_if_stale);

  // The body of a 200 answer; throws Error otherwise. Sets `skew_corrected` when the answer
  // was a clock-skew error and the clock offset was corrected from its Date header (sending
  // again may then succeed). `req`: the request answered (or the last one signed on this
  // thread); its secrets never reach the error's message.
  std::string check(const char* target, const http::Request& req, http::Response& resp,
                    aws::SystemClock::time_point signed_at, bool& skew_corrected);

  // A T kept per thread and reused by each blocking attempt (client_attempt.cc).
  template <class T>
  class PerThread;

  // One blocking attempt of `run`'s operation: credentials (fetched on this thread within the
  // operation deadline when the provider has none ready), sign, send, check. `body` is lent to
  // the request for the send and handed back, also when send() throws. The request and the
  // response are the thread's, reused (prepare and the built-in transport's send_into
  // overwrite their strings in place): no allocation for their headers per request. The
  // answer's body leaves with the result; an error's large body is not kept.
  std::string attempt(RetryRun& run, std::string& body, bool& skew_corrected);

  // Corrects the clock offset when the answer's Date is more than 4 minutes (the AWS SDKs'
  // threshold; services allow 5) from the time the request was signed with. Returns whether
  // it did.
  bool learn_clock_offset(const http::Response& resp, aws::SystemClock::time_point signed_at);

  // Thrown when the operation deadline ends the retries.
  [[noreturn]] void deadline_expired(const char* target, int attempts, const std::string& last);

  // The retry loop around attempt(), within the operation deadline. `resend_if_unknown`:
  // ConditionalWrite's (false: an attempt whose outcome is unknown ends the call with
  // UnknownOutcomeError).
  std::string call(const char* target, std::string body, bool resend_if_unknown = true);

  // ---- the asynchronous path ----
  struct AsyncOp;
  template <class Done>
  struct OpWith;
  struct IoThread {
    std::unique_ptr<io::EventLoop> loop;
    std::unique_ptr<io::HttpEngine> engine;
    // Loop thread only: every operation not yet completed, an intrusive list (AsyncOp::prev,
    // next) so that starting and ending one allocates nothing.
    AsyncOp* ops = nullptr;
    http::Request request;  // loop thread only: each attempt's, reused (see prepare)
    // Loop thread only: operations waiting for the credentials fetcher.
    std::vector<AsyncOp*> credential_waiters;
    // Loop thread only: batchable GetItems sent in this iteration, merged at its end
    // (flush_gets, a before-wait hook of the loop), and the vector flush_gets works on.
    std::vector<AsyncOp*> pending_gets, flushing;
    // Loop thread only: flush_gets' open-addressing index of the keys of one turn (each slot
    // the last operation asking for a key, or null), kept for its capacity.
    std::vector<AsyncOp*> key_slots;
    // Loop thread only: hedged reads' latencies and budget (ClientOptions::hedge).
    std::optional<detail::HedgeGate> hedge;
    void link(AsyncOp* op);
    void unlink(AsyncOp* op);
  };
  std::once_flag io_once;
  std::vector<std::unique_ptr<IoThread>> io;  // set once (io_once)
  std::atomic<bool> io_ready{false};          // `io` is set: for threads that do not start it
  std::atomic<size_t> next_io{0};
  std::atomic<bool> closing{false};
  std::atomic<size_t> in_flight{0};
  std::atomic<int> slot_waiters{0};
  std::mutex slot_mu;
  std::condition_variable slot_cv;
  bool blocking_async = false;  // a custom transport or a proxy: the loop calls `transport`

  // The asynchronous path's credentials fetcher: a loop never waits for a fetch (a
  // credential_process or STS may take seconds). When the provider has no credentials ready
  // (try_get_into), or wants a refresh, one thread of the client's own, started on first
  // need, calls get_into within the latest deadline asked for, then hands the outcome to
  // every loop, whose waiting operations go on with it.
  std::mutex fetch_mu;
  std::condition_variable fetch_cv;
  std::thread fetcher;                                  // guarded by fetch_mu
  bool fetch_wanted = false, fetch_stop = false;        // guarded by fetch_mu
  std::chrono::steady_clock::time_point fetch_until{};  // guarded by fetch_mu
  // Credentials the provider holds, into `out`, without waiting for a fetch: false when it
  // has none. When they are due for a refresh, they are returned and the fetcher refreshes
  // them meanwhile (within operation_timeout): no caller, blocking or on a loop, waits for it.
  bool ready_credentials(aws::Credentials& out);
  // Asks the fetcher for a fetch that ends by `until` at the latest.
  void want_credentials(std::chrono::steady_clock::time_point until);
  void fetch_loop();
  void stop_fetcher();
  void credentials_fetched(IoThread& t, const std::shared_ptr<const aws::Credentials>& got,
                           const std::exception_ptr& error);
  void wait_for_credentials(IoThread& t, AsyncOp* op);

  ~Impl() {
    stop_fetcher();  // first: it posts to the loops
    stop_io();
  }
  void start_io();
  void stop_io();
  bool acquire_slot();
  void release_slot();
  // Starts an operation that completes with done(body, error): `Done` is called once with
  // the 200 answer's body (non-null) or a null body and the error. The operation, `done`
  // inside, is one allocation. Defined, and instantiated only, in client_async.cc.
  template <class Done>
  // `may_batch`: a GetItem that ClientOptions::batch_gets may merge with others; `key`, when
  // not null, its key, moved from (raw_get_async: `body` is then empty, made from the key
  // when the GetItem is sent alone).
  // Hidden: Client (a public class) gives Impl's members default visibility, and this one's
  // instantiations name private types (wire::BatchableGet).
  [[gnu::visibility("hidden")]] void submit(const char* target, std::string body, Done done,
                                            bool resend_if_unknown = true, bool may_batch = true,
                                            wire::BatchableGet* key = nullptr);
  void begin(IoThread& t, AsyncOp* op);
  // Sends op's attempt, or for a batchable GetItem queues it for flush_gets.
  void send(IoThread& t, AsyncOp* op);
  // Sends op's attempt on its own: credentials, sign, send.
  void send_alone(IoThread& t, AsyncOp* op);
  // ---- GetItems merged into BatchGetItems (client_batch.cc) ----
  struct GetBatch;
  // At the end of a loop iteration: the GetItems queued in it, merged by table, consistency
  // and ReturnConsumedCapacity into BatchGetItems of up to 100 distinct keys; a lone one goes
  // as it is.
  void flush_gets(IoThread& t);
  void send_batch(IoThread& t, GetBatch* b);
  void on_batch_answer(IoThread& t, GetBatch* b, http::Response* resp, std::exception_ptr error);
  // Signs op's attempt (its GetItem body made first when its caller handed over only the
  // key) and sends it.
  void send_signed(IoThread& t, AsyncOp* op, const aws::Credentials& creds);
  // ---- hedged reads (ClientOptions::hedge) ----
  // Sends the request prepared in t.request as copy `copy` of op's attempt (0: the first,
  // 1: the hedge) and, for a hedgeable first copy, arms the hedge timer.
  void send_copy(IoThread& t, AsyncOp* op, int copy);
  // op's hedge timer fired: sends its second copy if it is still unanswered and the budget
  // allows.
  void hedge(IoThread& t, AsyncOp* op);
  // The engine's answer to copy `copy` of op's attempt: drops it when op is already complete
  // (and frees op when it was the last copy out), else records its latency and hands it to
  // on_answer.
  void on_copy_answer(IoThread& t, AsyncOp* op, int copy, http::Response* resp, std::exception_ptr error);
  // An attempt's answer (or its error). When the attempt's other copy is still in flight, an
  // error is dropped: that copy's answer decides.
  void on_answer(IoThread& t, AsyncOp* op, http::Response* resp, std::exception_ptr error);
  // After a failed attempt: the error to complete with, or nullptr and `delay` (nullopt: at once).
  std::exception_ptr decide(AsyncOp* op, std::exception_ptr error, bool skew_corrected,
                            std::optional<std::chrono::microseconds>& delay);
  void finish(IoThread& t, AsyncOp* op, std::string* body, std::exception_ptr error);
};

// One operation's retry state: what the blocking loop and the asynchronous path both ask
// before each attempt and after each failure, so the two share one policy (quota, backoff,
// deadline, adaptive limiter, clock-skew and expired-token resends). One operation at a time.
// Implemented in client_attempt.cc.
struct Client::Impl::RetryRun {
  Impl& c;
  const char* target;
  const std::chrono::steady_clock::time_point deadline;
  const bool adaptive;
  const bool resend_if_unknown;  // ConditionalWrite::resend_if_unknown
  const bool write;              // an operation that changes items (is_write)
  // Attempts at most for a refused connection (ConnectError::refused): the standard mode's.
  static constexpr int kRefusedAttempts = 3;
  int n = 1;                     // the attempt about to be made (1-based)
  int unknown_attempt = 0;       // the first attempt that may have been applied, 0: none
  std::string unknown_what;      // its error
  int spent = 0;  // quota tokens taken by this operation's retries
  bool refreshed_credentials = false, corrected_skew = false;
  uint64_t creds_epoch = 0;  // Impl::creds_epoch when the attempt took its credentials
  std::string last_error;

  RetryRun(Impl& impl, const char* t, bool resend_if_unknown = true);

  // The deadline on the steady clock (`deadline` is on the sleeper's, which tests replace):
  // for credential fetches and the loops' timers.
  std::chrono::steady_clock::time_point real_deadline() const;

  // Before attempt n: how long to wait first (the adaptive mode's limiter; zero otherwise).
  // Counts the attempt. Throws the deadline error when the wait would pass the deadline.
  std::chrono::microseconds before_attempt();

  void succeeded();

  // After attempt n failed with `e`: the backoff to sleep before the next attempt, or
  // nullopt to send again at once. Gives up by throwing: `e` itself (rethrown: call only
  // from the handler catching `e`), a TimeoutError naming the transport timeout, the
  // deadline error, or UnknownOutcomeError (`e` may have been applied and the operation must
  // not be resent). Takes quota tokens for a retry.
  std::optional<std::chrono::microseconds> failed(const Error& e, bool skew_corrected);

  // Ends the operation with `e` (rethrown: call only from its handler), or for a write after
  // an attempt that may have been applied, with UnknownOutcomeError.
  [[noreturn]] void give_up(const Error& e);
  // Ends it with the deadline's TimeoutError, or UnknownOutcomeError as give_up.
  [[noreturn]] void out_of_time(int attempts, const std::string& last);
  // UnknownOutcomeError for the attempt unknown_attempt; `last`: how the operation ended.
  [[noreturn]] void unknown_outcome(const std::string& last);
};

// An asynchronous operation: owned by its I/O thread from submit() to finish().
struct Client::Impl::AsyncOp {
  AsyncOp(Impl& c, const char* t, std::string b, bool resend)
      : target(t), body(std::move(b)), run(c, t, resend) {}
  virtual ~AsyncOp() = default;
  // The operation's end: the 200 answer's body, or null and the error. Called once.
  virtual void complete(std::string* body, std::exception_ptr error) = 0;
  const char* target;
  std::string body;  // lent to each attempt's request
  RetryRun run;
  uint64_t timer = 0;                // a backoff or limiter wait, or the deadline of a wait for credentials
  bool waiting_credentials = false;  // in its IoThread's credential_waiters
  aws::SystemClock::time_point signed_at;
  IoThread* io = nullptr;  // the loop it runs on, once linked there
  AsyncOp* prev = nullptr;
  AsyncOp* next = nullptr;
  // A GetItem that a BatchGetItem may carry (ClientOptions::batch_gets; client_batch.cc), and
  // whether it waits in its IoThread's pending_gets for the end of the loop's iteration.
  bool batchable = false;
  bool queued = false;
  // A batchable GetItem's key: handed over by its caller (raw_get_async, which sends no body:
  // send_signed encodes it only when the GetItem goes alone), or read from the body by
  // flush_gets. Kept for the operation's life: a batch points to it (GetBatch::keys), and a
  // retry (an unprocessed key) reads it again.
  std::optional<wire::BatchableGet> batch_key;
  // In a batch: the next operation asking for the same key (GetBatch::askers), or null.
  AsyncOp* same_key = nullptr;
  // Hedged reads (ClientOptions::hedge): a GetItem sent on its own may be hedged, once per
  // operation. `copies_out`: the engine's sends of this operation not yet answered (each
  // holds a pointer to it); `completed`: complete() was called, and the operation stays
  // allocated only until copies_out is 0. `sent_at`: when each copy went out.
  bool hedgeable = false;
  bool hedged = false;
  bool by_hedge = false;  // the answer being handled is the second copy's
  bool completed = false;
  int copies_out = 0;
  uint64_t hedge_timer = 0;
  std::array<std::chrono::steady_clock::time_point, 2> sent_at{};
};

}  // namespace dynamodb_cache::dynamodb
