// The asynchronous DynamoDB client on its event loops: every operation completes exactly
// once (through faults, retries and backpressure), destroying the client cancels what is
// pending, and the results and errors are those of the synchronous calls.
#include <gtest/gtest.h>

#include <atomic>
#include <condition_variable>
#include <coroutine>
#include <future>
#include <mutex>
#include <thread>

#include "detached.h"
#include "dynamodb_cache/backend.h"
#include "dynamodb_cache/cache.h"
#include "dynamodb_cache/dynamodb.h"
#include "dynamodb_cache/errors.h"
#include "fake_transport.h"
#include "io/syscall_batch.h"
#include "test_server.h"
#include "util/crypto.h"

using namespace dynamodb_cache;
using namespace dynamodb_cache::dynamodb;
using namespace std::chrono_literals;
using testing_support::Detached;
using testing_support::TestRequest;
using testing_support::TestResponse;
using testing_support::TestServer;

namespace {

const char* kGetOk = R"({"Item":{"key":{"S":"k"},"value":{"B":"aGk="}}})";

TestResponse ok(std::string body) {
  TestResponse r;
  r.headers.push_back({"x-amz-crc32", std::to_string(util::crc32(body))});
  r.headers.push_back({"Content-Type", "application/x-amz-json-1.0"});
  r.body = std::move(body);
  return r;
}

TestResponse error(int status, const std::string& name) {
  TestResponse r = ok(R"({"__type":"com.amazonaws.dynamodb.v20120810#)" + name + R"(","message":"m"})");
  r.status = status;
  return r;
}

ClientOptions options_for(const TestServer& server) {
  ClientOptions o;
  o.region = "us-west-2";
  o.endpoint = server.url();
  o.credentials = aws::make_static_provider({"AKIDTEST", "SECRETKEYVALUE", "", std::nullopt, ""});
  o.retry.jitter_seed = 7;
  o.retry.base_delay = 1ms;
  o.retry.throttling_base_delay = 1ms;
  return o;
}

GetItemRequest get_request() {
  GetItemRequest r;
  r.table_name = "t";
  r.key = {{"key", AttributeValue::S("k")}};
  return r;
}

// Counts completions; wait() returns once `want` have arrived.
class Completions {
 public:
  explicit Completions(size_t want) : want_(want) {}
  void add() {
    std::lock_guard lock(mu_);
    if (++done_ == want_) cv_.notify_all();
  }
  bool wait(std::chrono::seconds limit) {
    std::unique_lock lock(mu_);
    return cv_.wait_for(lock, limit, [&] { return done_ >= want_; });
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  size_t want_, done_ = 0;
};

}  // namespace

// Thousands of operations in flight on two loops, through a server that answers one request
// in four with a fault (a 500, a truncated answer, a close without an answer): each completes
// exactly once, and with ten attempts each, all succeed.
TEST(AsyncClient, ThousandsOfOperationsThroughFaultsCompleteExactlyOnce) {
  std::atomic<int> n{0};
  TestServer server([&](const TestRequest&) {
    int i = n.fetch_add(1);
    if (i % 9 == 1) return error(500, "InternalServerError");
    if (i % 13 == 3) {
      TestResponse r;
      r.raw = "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{\"Item\":";
      return r;
    }
    if (i % 17 == 5) {
      TestResponse r;
      r.raw = "";
      return r;
    }
    return ok(kGetOk);
  });
  ClientOptions o = options_for(server);
  o.io_threads = 2;
  o.max_in_flight = 48;  // the server spends a thread per connection
  o.retry.max_attempts = 10;
  Client client(o);
  constexpr size_t kOps = 3000;
  std::vector<std::atomic<int>> calls(kOps);
  std::atomic<int> failures{0};
  Completions all(kOps);
  std::vector<std::thread> submitters;
  for (size_t t = 0; t < 2; ++t)
    submitters.emplace_back([&, t] {
      for (size_t i = t; i < kOps; i += 2)
        client.get_item_async(get_request(), [&, i](Outcome<GetItemResult> r) {
          if (!r.ok() || !r.value().item || r.value().item->at("value").scalar != "hi") failures.fetch_add(1);
          calls[i].fetch_add(1);
          all.add();
        });
    });
  for (auto& t : submitters) t.join();
  ASSERT_TRUE(all.wait(120s));
  for (size_t i = 0; i < kOps; ++i) EXPECT_EQ(calls[i].load(), 1) << "operation " << i;
  EXPECT_EQ(failures.load(), 0);
  EXPECT_GT(client.stats().retries.load(), 0u);
  EXPECT_EQ(client.stats().calls.load(), kOps);
  EXPECT_EQ(client.in_flight(), 0u);
  // With many in flight the loops make their sends and receives several to a system call,
  // where io_uring is there (unit_async_without_io_uring runs this without it).
  const http::TransportStats io = client.io_stats();
  if (io::SyscallBatch::make()) {
    EXPECT_GT(io.batched_socket_calls, io.batches) << io.batches << " batches";
    EXPECT_GT(io.batches, 0u);
  } else {
    EXPECT_EQ(io.batched_socket_calls, 0u);
    EXPECT_EQ(io.batches, 0u);
  }
}

// Destroying the client with operations waiting on the server and on backoff timers: each
// completes once, with CancelledError, before the destructor returns.
TEST(AsyncClient, DestroyingTheClientCancelsPendingOperations) {
  std::atomic<int> n{0};
  TestServer server([&](const TestRequest&) {
    TestResponse r = n.fetch_add(1) % 2 ? ok(kGetOk) : error(500, "InternalServerError");
    r.delay = 3s;
    if (r.status == 500) r.delay = 0ms;  // then a backoff of seconds
    return r;
  });
  ClientOptions o = options_for(server);
  o.retry.base_delay = 5s;
  constexpr int kOps = 20;
  std::atomic<int> calls{0}, cancelled{0};
  {
    Client client(o);
    for (int i = 0; i < kOps; ++i)
      client.get_item_async(get_request(), [&](Outcome<GetItemResult> r) {
        calls.fetch_add(1);
        try {
          r.value();
        } catch (const CancelledError& e) {
          EXPECT_EQ(e.kind(), ErrorKind::kCancelled);
          cancelled.fetch_add(1);
        } catch (...) {
        }
      });
    std::this_thread::sleep_for(500ms);  // requests sent, the 500s answered
  }
  EXPECT_EQ(calls.load(), kOps);
  EXPECT_EQ(cancelled.load(), kOps);
}

// Backpressure: with InFlightPolicy::kFail, one operation past max_in_flight fails at once
// with OverloadedError; with kWait, the caller waits for a slot.
TEST(AsyncClient, InFlightBoundFailsOrWaits) {
  TestServer server([](const TestRequest&) {
    TestResponse r = ok(kGetOk);
    r.delay = 300ms;
    return r;
  });
  ClientOptions o = options_for(server);
  o.max_in_flight = 2;
  o.in_flight_policy = InFlightPolicy::kFail;
  {
    Client client(o);
    auto a = client.get_item_async(get_request());
    auto b = client.get_item_async(get_request());
    auto c = client.get_item_async(get_request());
    EXPECT_THROW(c.get(), OverloadedError);
    EXPECT_TRUE(a.get().item.has_value());
    EXPECT_TRUE(b.get().item.has_value());
    EXPECT_EQ(client.in_flight(), 0u);
  }
  o.in_flight_policy = InFlightPolicy::kWait;
  Client client(o);
  std::vector<std::future<GetItemResult>> fs;
  auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < 4; ++i) fs.push_back(client.get_item_async(get_request()));
  // The third waited for one of the first two: the submitting loop took a round trip.
  EXPECT_GE(std::chrono::steady_clock::now() - start, 250ms);
  EXPECT_LE(client.in_flight(), 2u);
  for (auto& f : fs) EXPECT_TRUE(f.get().item.has_value());
}

// The same typed errors as the synchronous calls, and retries with backoff on the loop.
TEST(AsyncClient, ErrorsAndRetriesAreThoseOfTheSynchronousCalls) {
  std::atomic<int> n{0};
  TestServer server([&](const TestRequest& req) {
    if (req.body.find("\"cond\"") != std::string::npos) return error(400, "ConditionalCheckFailedException");
    if (n.fetch_add(1) < 2) return error(400, "ProvisionedThroughputExceededException");
    return ok(kGetOk);
  });
  ClientOptions o = options_for(server);
  o.retry.max_attempts = 5;
  Client client(o);
  auto r = client.get_item_async(get_request()).get();
  ASSERT_TRUE(r.item.has_value());
  EXPECT_EQ(r.item->at("value").scalar, "hi");
  EXPECT_EQ(client.stats().retries.load(), 2u);
  EXPECT_EQ(client.stats().attempts.load(), 3u);

  PutItemRequest put;
  put.table_name = "t";
  put.item = {{"key", AttributeValue::S("cond")}};
  try {
    client.put_item_async(put).get();
    ADD_FAILURE() << "no error";
  } catch (const ServiceError& e) {
    EXPECT_EQ(e.kind(), ErrorKind::kConditionFailed);
    EXPECT_EQ(e.name(), "ConditionalCheckFailedException");
  }
  // The synchronous call says the same.
  EXPECT_THROW(client.put_item(put), ServiceError);
}

// A server that never answers: the per-attempt timeout and then the operation deadline end
// the operation with a TimeoutError, without blocking the loop for other operations.
TEST(AsyncClient, TimeoutsEndAnOperationAndTheLoopServesOthers) {
  TestServer server([](const TestRequest& req) {
    TestResponse r = ok(kGetOk);
    if (req.body.find("\"slow\"") != std::string::npos) r.delay = 3s;
    return r;
  });
  ClientOptions o = options_for(server);
  o.operation_timeout = 1000ms;  // clamps the transport's request timeout too
  Client client(o);
  GetItemRequest slow = get_request();
  slow.key = {{"key", AttributeValue::S("slow")}};
  auto start = std::chrono::steady_clock::now();
  auto f = client.get_item_async(slow);
  for (int i = 0; i < 20; ++i) EXPECT_TRUE(client.get_item_async(get_request()).get().item.has_value());
  EXPECT_LT(std::chrono::steady_clock::now() - start, 900ms);
  EXPECT_THROW(f.get(), TimeoutError);
  EXPECT_LT(std::chrono::steady_clock::now() - start, 2500ms);
}

// A custom transport: the loop calls it (one request at a time), with the same policy.
TEST(AsyncClient, CustomTransportIsCalledFromTheLoop) {
  auto t = std::make_shared<testing_support::FakeTransport>([](const http::Request&, int call) {
    return call == 1 ? testing_support::ddb_error(500, "InternalServerError")
                     : testing_support::ddb_response(200, kGetOk);
  });
  ClientOptions o;
  o.region = "us-west-2";
  o.endpoint = "http://127.0.0.1:9";
  o.credentials = aws::make_static_provider({"AKIDTEST", "SECRETKEYVALUE", "", std::nullopt, ""});
  o.transport = t;
  o.retry.base_delay = 1ms;
  Client client(o);
  EXPECT_TRUE(client.get_item_async(get_request()).get().item.has_value());
  EXPECT_EQ(t->calls(), 2);
}

// ---- backends and the typed cache ----

// A memory hit in a layered cache is answered on the calling thread, without a loop hop and
// without a request; a miss goes to DynamoDB and completes on an I/O thread.
TEST(AsyncCache, LayeredMemoryHitsAreAnsweredInlineMissesGoToTheLoop) {
  TestServer server([](const TestRequest&) { return ok("{}"); });  // GetItem: no such item
  auto client = std::make_shared<Client>(options_for(server));
  auto memory = std::make_shared<MemoryBackend>();
  auto layered = std::make_shared<LayeredBackend>(
      std::vector<std::shared_ptr<Backend>>{memory, std::make_shared<DynamodbBackend>(client)});
  Cache<std::string> cache(layered);
  memory->set("here", "v", Ttl(0));

  std::thread::id where;
  std::optional<std::string> got;
  cache.get_async("here", [&](Outcome<std::optional<std::string>> r) {
    where = std::this_thread::get_id();
    got = r.value();
  });
  EXPECT_EQ(where, std::this_thread::get_id());  // completed before get_async returned
  EXPECT_EQ(got, "v");
  EXPECT_EQ(server.requests(), 0);

  std::promise<std::thread::id> miss_thread;
  cache.get_async("absent", [&](Outcome<std::optional<std::string>> r) {
    EXPECT_FALSE(r.value().has_value());
    miss_thread.set_value(std::this_thread::get_id());
  });
  EXPECT_NE(miss_thread.get_future().get(), std::this_thread::get_id());
  EXPECT_EQ(server.requests(), 1);
}

// co_await on a Pending: resumed inline for a memory hit, from the I/O thread otherwise;
// errors are rethrown at the co_await.
TEST(AsyncCache, CoroutinesAwaitPendingResults) {
  TestServer server([](const TestRequest&) { return error(400, "ResourceNotFoundException"); });
  auto client = std::make_shared<Client>(options_for(server));
  auto memory = std::make_shared<MemoryBackend>();
  Cache<std::string> cache(std::make_shared<LayeredBackend>(
      std::vector<std::shared_ptr<Backend>>{memory, std::make_shared<DynamodbBackend>(client)}));
  memory->set("k", "v", Ttl(0));
  std::promise<std::string> result;
  std::promise<ErrorKind> failure;
  [](Cache<std::string>& c, std::promise<std::string>& out, std::promise<ErrorKind>& fail) -> Detached {
    auto v = co_await c.get_async("k");
    out.set_value(*v);
    try {
      co_await c.get_async("not-in-memory");
    } catch (const Error& e) {
      fail.set_value(e.kind());
    }
  }(cache, result, failure);
  EXPECT_EQ(result.get_future().get(), "v");
  EXPECT_EQ(failure.get_future().get(), ErrorKind::kResourceNotFound);
  // An invalid key fails inline, through the same path.
  EXPECT_THROW(cache.get_async(std::string(3000, 'x')).get(), InvalidArgumentError);
}
