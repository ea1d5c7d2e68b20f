// The asynchronous API as a user meets it (issue 25): blocking on a Pending from an I/O thread
// fails at once instead of hanging, Pending::via resumes a coroutine on the user's executor,
// every Cache<T> operation has a callback and an awaitable form, and a LayeredBackend's
// upper layers keep a copy no longer than upper_max_age.
#include <gtest/gtest.h>

#include <coroutine>
#include <future>
#include <thread>

#include "detached.h"
#include "dynamodb_cache/cache.h"
#include "dynamodb_cache/dynamodb.h"
#include "dynamodb_cache/errors.h"
#include "dynamodb_cache/layered_backend.h"
#include "dynamodb_cache/memory_backend.h"
#include "test_server.h"
#include "util/crypto.h"

using namespace dynamodb_cache;
using namespace std::chrono_literals;
using testing_support::Detached;
using testing_support::TestRequest;
using testing_support::TestResponse;
using testing_support::TestServer;

namespace {

TestResponse get_item_answer() {
  TestResponse r;
  r.body = R"({"Item":{"key":{"S":"k"},"value":{"B":"aGk="},"fmt":{"N":"1"}}})";  // "hi", raw
  r.headers.push_back({"x-amz-crc32", std::to_string(util::crc32(r.body))});
  r.headers.push_back({"Content-Type", "application/x-amz-json-1.0"});
  return r;
}

std::shared_ptr<dynamodb::Client> client_for(const TestServer& server) {
  dynamodb::ClientOptions o;
  o.region = "us-west-2";
  o.endpoint = server.url();
  o.credentials = aws::make_static_provider({"AKIDTEST", "SECRETKEYVALUE", "", std::nullopt, ""});
  return std::make_shared<dynamodb::Client>(o);
}

}  // namespace

// In a completion callback (on the client's I/O thread), Pending::get() throws at once, even
// for a result that would arrive two seconds later from elsewhere: waiting there would stall
// the loop, and for the loop's own operations wait forever.
TEST(AsyncApi, PendingGetOnAnIoThreadThrowsAtOnce) {
  TestServer server([](const TestRequest&) { return get_item_answer(); });
  Cache<std::string> cache(std::make_shared<DynamodbBackend>(client_for(server)));
  std::promise<std::string> error;
  std::thread completer;
  cache.get_async("k", [&](Outcome<std::optional<std::string>> r) {
    EXPECT_TRUE(r.ok());
    EXPECT_TRUE(on_io_thread());
    auto [pending, done] = Pending<int>::make();
    completer = std::thread([done = std::move(done)] {
      std::this_thread::sleep_for(2s);
      done(42);
    });
    try {
      (void)pending.get();
      error.set_value("no error");
    } catch (const InvalidArgumentError& e) {
      error.set_value(e.what());
    }
  });
  auto f = error.get_future();
  ASSERT_EQ(f.wait_for(1s), std::future_status::ready) << "get() waited on the I/O thread";
  EXPECT_NE(f.get().find("I/O thread"), std::string::npos);
  completer.join();
  EXPECT_FALSE(on_io_thread());
  EXPECT_EQ(cache.get_async("k").get(), "hi");  // off the loop, get() waits as before
}

// co_await pending.via(executor): the coroutine goes on on the executor's thread, not on the
// I/O thread that completed the operation.
TEST(AsyncApi, ViaResumesOnTheGivenExecutor) {
  TestServer server([](const TestRequest&) { return get_item_answer(); });
  Cache<std::string> cache(std::make_shared<DynamodbBackend>(client_for(server)));
  std::promise<std::function<void()>> handed;
  auto executor = [&](std::function<void()> f) { handed.set_value(std::move(f)); };
  std::promise<std::pair<std::thread::id, bool>> resumed;
  [](Cache<std::string>& c, decltype(executor) ex,
     std::promise<std::pair<std::thread::id, bool>>& out) -> Detached {
    auto v = co_await c.get_async("k").via(ex);
    EXPECT_EQ(v, "hi");
    out.set_value({std::this_thread::get_id(), on_io_thread()});
  }(cache, executor, resumed);
  auto f = handed.get_future();
  ASSERT_EQ(f.wait_for(5s), std::future_status::ready);
  f.get()();  // this thread is the executor
  auto [where, on_io] = resumed.get_future().get();
  EXPECT_EQ(where, std::this_thread::get_id());
  EXPECT_FALSE(on_io);
}

// Every operation of Cache<T> in both asynchronous shapes, over memory (inline), with the
// results and errors of the blocking forms.
TEST(AsyncApi, EveryCacheOperationHasCallbackAndAwaitableForms) {
  Cache<std::string> cache(std::make_shared<MemoryBackend>());
  EXPECT_TRUE(cache.add_async("a", "1", 10s).get());
  EXPECT_FALSE(cache.add_async("a", "2").get());
  EXPECT_TRUE(cache.contains_async("a").get());
  EXPECT_TRUE(cache.touch_async("a", 20s).get());
  EXPECT_FALSE(cache.touch_async("absent", 20s).get());
  EXPECT_EQ(cache.increment_async("n", 5).get(), 5);
  EXPECT_EQ(cache.decrement_async("n", 2).get(), 3);
  int loads = 0;
  auto load = [&] {
    ++loads;
    return std::string("loaded");
  };
  EXPECT_EQ(cache.get_or_set_async("g", load, 10s).get(), "loaded");
  EXPECT_EQ(cache.get_or_set_async("g", load).get(), "loaded");
  EXPECT_EQ(loads, 1);
  EXPECT_EQ(cache.get_many_async({"a", "g", "absent"}).get(),
            (std::vector<std::optional<std::string>>{"1", "loaded", std::nullopt}));
  // The keys as arguments: what GCC 12 accepts inside co_await (a braced list it rejects).
  std::vector<std::optional<std::string>> awaited;
  [](Cache<std::string>& c, std::vector<std::optional<std::string>>& out) -> Detached {
    out = co_await c.get_many_async("a", "absent");
  }(cache, awaited);
  EXPECT_EQ(awaited, (std::vector<std::optional<std::string>>{"1", std::nullopt}));
  cache.erase_many_async({"a", "g"}).get();
  EXPECT_FALSE(cache.contains("a"));
  EXPECT_FALSE(cache.contains("g"));

  // The callback forms, and errors in the Outcome.
  std::optional<bool> added;
  cache.add_async("b", "v", 0s, [&](Outcome<bool> r) { added = r.value(); });
  EXPECT_EQ(added, true);
  std::exception_ptr err;
  cache.touch_async("b", -1s, [&](Outcome<bool> r) { err = r.error(); });
  EXPECT_THROW(std::rethrow_exception(err), InvalidArgumentError);
  std::optional<int64_t> n;
  cache.increment_async("n", 1, 0s, [&](Outcome<int64_t> r) { n = r.value(); });
  EXPECT_EQ(n, 4);
  cache.increment_async("b", 1, 0s, [&](Outcome<int64_t> r) { err = r.error(); });
  EXPECT_THROW(std::rethrow_exception(err), WrongTypeError);
  std::optional<std::string> got;
  cache.get_or_set_async(
      "c", [] { return std::string("x"); }, 0s, {}, [&](Outcome<std::string> r) { got = r.value(); });
  EXPECT_EQ(got, "x");
  cache.get_or_set_async(
      "d", []() -> std::string { throw std::runtime_error("source down"); }, 0s, {},
      [&](Outcome<std::string> r) { err = r.error(); });
  EXPECT_THROW(std::rethrow_exception(err), std::runtime_error);
  bool contained = false;
  cache.contains_async("c", [&](Outcome<bool> r) { contained = r.value(); });
  EXPECT_TRUE(contained);
  bool erased = false;
  cache.erase_many_async({"c"}, [&](Outcome<void> r) { erased = r.ok(); });
  EXPECT_TRUE(erased);
  EXPECT_FALSE(cache.contains("c"));
}

// Over DynamoDB, the forms without a request of their own on the loop run on a helper
// thread: the caller never waits for the answer, and the I/O thread never blocks.
TEST(AsyncApi, DynamodbRunsBlockingFormsOnAHelperThread) {
  std::promise<void> release;
  std::shared_future<void> released = release.get_future().share();
  TestServer server([&](const TestRequest&) {
    released.wait();
    return get_item_answer();
  });
  Cache<std::string> cache(std::make_shared<DynamodbBackend>(client_for(server)));
  std::promise<std::pair<std::thread::id, bool>> where;
  cache.contains_async("k", [&](Outcome<bool> r) {
    EXPECT_TRUE(r.ok() && r.value());
    where.set_value({std::this_thread::get_id(), on_io_thread()});
  });
  release.set_value();  // contains_async returned before the server answered
  auto [thread, on_io] = where.get_future().get();
  EXPECT_NE(thread, std::this_thread::get_id());
  EXPECT_FALSE(on_io);
}

// A memory layer keeps a copy at most upper_max_age, also of a value that never expires: a
// value overwritten below (by another process) is served stale until then, never longer.
TEST(LayeredMaxAge, UpperLayersKeepACopyNoLongerThanTheCap) {
  auto now = std::make_shared<std::chrono::steady_clock::time_point>(std::chrono::steady_clock::now());
  MemoryOptions mo;
  mo.now = [now] { return *now; };
  auto memory = std::make_shared<MemoryBackend>(mo);
  auto shared = std::make_shared<MemoryBackend>(mo);  // stands for the table
  auto layered = make_layered(LayeredOptions{.upper_max_age = 5s}, memory, shared);
  layered->set("k", "v1", Ttl(0));
  EXPECT_EQ(memory->get_entry("k")->ttl_left, Ttl(5000));
  EXPECT_EQ(shared->get_entry("k")->ttl_left, std::nullopt);  // the lowest layer keeps the TTL
  shared->set("k", "v2", Ttl(0));                             // another process overwrites it
  EXPECT_EQ(layered->get("k"), "v1");                         // the stale copy, within the cap
  *now += 5s;
  EXPECT_EQ(layered->get("k"), "v2");
  EXPECT_EQ(memory->get_entry("k")->ttl_left, Ttl(5000));  // filled back, capped again
  layered->set("short", "v", Ttl(2000));                   // a shorter TTL stays as it is
  EXPECT_EQ(memory->get_entry("short")->ttl_left, Ttl(2000));
  EXPECT_THROW(LayeredBackend({memory}, LayeredOptions{.upper_max_age = Ttl(-1)}), InvalidArgumentError);
}

// make_layered takes the layers as they are, shared_ptrs of any backend type.
TEST(LayeredMaxAge, MakeLayeredTakesAnyBackendPointers) {
  auto memory = std::make_shared<MemoryBackend>();
  std::shared_ptr<Backend> other = std::make_shared<MemoryBackend>();
  auto layered = make_layered(memory, other);
  EXPECT_EQ(layered->layers().size(), 2u);
  EXPECT_EQ(layered->layers()[0], memory);
}
