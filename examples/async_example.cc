// C++20 coroutines over the asynchronous cache: many requests in flight from one thread of
// control, no thread per request. `Task` below is the smallest coroutine type that will do
// (a detached, eagerly started coroutine); any framework's task type awaits Pending alike.
#include <atomic>
#include <coroutine>
#include <cstdlib>
#include <exception>
#include <future>
#include <iostream>
#include <string>
#include <vector>

#include "dynamodb_cache/dynamodb_cache.h"

using namespace dynamodb_cache;
using namespace std::chrono_literals;

// A fire-and-forget coroutine: starts at once, frees itself at the end.
struct Task {
  struct promise_type {
    Task get_return_object() { return {}; }
    std::suspend_never initial_suspend() noexcept { return {}; }
    std::suspend_never final_suspend() noexcept { return {}; }
    void return_void() {}
    void unhandled_exception() { std::terminate(); }
  };
};

// One user's visit: read the cached profile, fill it on a miss, count the visit. After each
// co_await the coroutine runs on the client's I/O thread (or inline for a memory hit).
Task visit(Cache<std::string>& cache, int user, std::atomic<int>& hits, std::atomic<int>& left,
           std::promise<void>& all_done) {
  const std::string key = "profile-" + std::to_string(user);
  try {
    if (auto profile = co_await cache.get_async(key)) {
      hits.fetch_add(1);
    } else {
      co_await cache.set_async(key, "{\"user\":" + std::to_string(user) + "}", 300s);
    }
  } catch (const Error& e) {
    std::cerr << "error: " << e.what() << "\n";
  }
  if (left.fetch_sub(1) == 1) all_done.set_value();
}

int main() try {
  const char* t = std::getenv("DYNAMODB_CACHE_TABLE");
  std::string table_name = t && *t ? t : "dynamodb-cache";
  auto client = std::make_shared<dynamodb::Client>();
  TableOptions table;
  table.name = table_name;
  Table(client, table).create(true);
  DynamodbOptions d;
  d.table = table_name;
  auto shared = std::make_shared<DynamodbBackend>(client, d);
  auto local = std::make_shared<MemoryBackend>();
  Cache<std::string> cache(std::make_shared<LayeredBackend>(std::vector<std::shared_ptr<Backend>>{local, shared}));

  constexpr int kUsers = 200;
  for (int round = 1; round <= 2; ++round) {
    std::atomic<int> hits{0}, left{kUsers};
    std::promise<void> all_done;
    for (int u = 0; u < kUsers; ++u) visit(cache, u, hits, left, all_done);  // all in flight at once
    all_done.get_future().wait();
    std::cout << "round " << round << ": " << kUsers << " visits, " << hits.load() << " cache hits\n";
  }
  // The same from a blocking caller: Pending::get().
  auto many = cache.get_many_async({"profile-1", "profile-2", "nobody"}).get();
  std::cout << "get_many: " << *many[0] << " " << *many[1] << " " << (many[2] ? "?" : "miss") << "\n";
  for (int u = 0; u < kUsers; ++u) cache.erase("profile-" + std::to_string(u));
  return 0;
} catch (const dynamodb_cache::Error& e) {
  std::cerr << "error: " << e.what() << std::endl;
  return 2;
}
