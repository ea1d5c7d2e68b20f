// The one-line way in (make_cache.h) and what a newcomer does next (issue 25): the table named once,
// a memory layer and a namespace from the same call, get_or_set with a lease through the
// memory layer (taken on the DynamoDB layer), and the asynchronous forms over DynamoDB.
#include <coroutine>
#include <cstdlib>
#include <future>
#include <thread>

#include "detached.h"
#include "it_env.h"

using namespace dynamodb_cache;
using namespace std::chrono_literals;
namespace ddb = dynamodb_cache::dynamodb;
using testing_support::Detached;

namespace {

// Tables that settle quickly on the local servers.
TableOptions quiet() {
  TableOptions t;
  t.poll_interval = 20ms;
  return t;
}

// The keys of every item in `table`.
std::vector<std::string> stored_keys(ddb::Client& c, const std::string& table) {
  std::vector<std::string> keys;
  ddb::ScanRequest s;
  s.table_name = table;
  c.scan_all(s, [&](ddb::PageResult& p) {
    for (auto& i : p.items) keys.push_back(i.at("key").scalar);
    return true;
  });
  std::sort(keys.begin(), keys.end());
  return keys;
}

void drop(const std::shared_ptr<ddb::Client>& client, const std::string& name) {
  TableOptions t;
  t.name = name;
  Table(client, t).drop(false);
}

}  // namespace

// One line: the table (created here), a memory layer capped at 30 s, a namespace.
TEST(MakeCache, OneLineBuildsTheLayersOverTheNamedTable) {
  auto client = it::client();
  const std::string name = it::unique_table("it-open");
  auto cache = make_cache<std::string>(name, {.memory = MemoryOptions{},
                                              .memory_max_age = 30s,
                                              .ns = "orders",
                                              .create_table = true,
                                              .shared_client = client,
                                              .table_options = quiet()});
  cache.set("k", "v", 1h);
  EXPECT_EQ(cache.get("k"), "v");
  auto* layered = dynamic_cast<LayeredBackend*>(&cache.backend());
  ASSERT_NE(layered, nullptr);
  ASSERT_EQ(layered->layers().size(), 2u);
  auto* memory = dynamic_cast<MemoryBackend*>(layered->layers()[0].get());
  ASSERT_NE(memory, nullptr);
  auto left = memory->get_entry("k")->ttl_left;  // capped by memory_max_age, not the hour
  ASSERT_TRUE(left.has_value());
  EXPECT_LE(*left, Ttl(30000));
  EXPECT_GT(*left, Ttl(29000));
  auto* table = dynamic_cast<DynamodbBackend*>(layered->layers()[1].get());
  ASSERT_NE(table, nullptr);
  EXPECT_EQ(table->options().table, name);
  auto keys = stored_keys(*client, name);  // the generation item and the namespaced entry
  ASSERT_EQ(keys.size(), 2u);
  EXPECT_EQ(keys[0].rfind("orders:", 0), 0u);
  EXPECT_EQ(keys[0].substr(keys[0].size() - 2), ":k");
  EXPECT_EQ(keys[1], "orders:generation");
  drop(client, name);
}

// No name: $DYNAMODB_CACHE_TABLE, as the CLI; without a memory layer, the DynamodbBackend.
TEST(MakeCache, AnEmptyNameIsTheCliTable) {
  auto client = it::client();
  const std::string name = it::unique_table("it-open-env");
  ::setenv("DYNAMODB_CACHE_TABLE", name.c_str(), 1);
  auto cache =
      make_cache<std::string>("", {.create_table = true, .shared_client = client, .table_options = quiet()});
  ::unsetenv("DYNAMODB_CACHE_TABLE");
  ASSERT_NE(dynamic_cast<DynamodbBackend*>(&cache.backend()), nullptr);
  cache.set("k", "v");
  EXPECT_EQ(stored_keys(*client, name), std::vector<std::string>{"k"});
  drop(client, name);
}

// A memory bound without a memory layer is a mistake (a new user set it alone and thought the
// layer was there): refused before anything reaches the service, so no table is created.
TEST(MakeCache, AMemoryBoundWithoutAMemoryLayerIsRefused) {
  auto client = it::client();
  const std::string name = it::unique_table("it-open-bound");
  EXPECT_THROW(
      make_cache<std::string>(
          name,
          {.memory_max_age = 30s, .create_table = true, .shared_client = client, .table_options = quiet()}),
      InvalidArgumentError);
  TableOptions t;
  t.name = name;
  EXPECT_FALSE(Table(client, t).exists());
}

// long_keys under a memory layer: the memory layer takes the keys the table takes (a new user
// found a 3000-byte key refused by the memory layer in front).
TEST(MakeCache, LongKeysPassAMemoryLayer) {
  auto client = it::client();
  const std::string name = it::unique_table("it-open-long");
  DynamodbOptions long_keys;
  long_keys.long_keys = true;
  auto cache = make_cache<std::string>(name, {.memory = MemoryOptions{},
                                              .create_table = true,
                                              .shared_client = client,
                                              .backend = long_keys,
                                              .table_options = quiet()});
  const std::string key(3000, 'k');
  cache.set(key, "long");
  EXPECT_EQ(cache.get(key), "long");
  drop(client, name);
}

// get_or_set with a lease through a memory layer takes the lease on the DynamoDB layer (the
// lease item is there while the load runs), and the loaded value lands in both layers.
TEST(MakeCache, GetOrSetWithALeaseThroughAMemoryLayerLeasesOnTheTable) {
  auto client = it::client();
  const std::string name = it::unique_table("it-open-lease");
  auto cache = make_cache<std::string>(
      name,
      {.memory = MemoryOptions{}, .create_table = true, .shared_client = client, .table_options = quiet()});
  std::vector<std::string> during;
  auto v = cache.get_or_set(
      "k",
      [&] {
        during = stored_keys(*client, name);
        return std::string("loaded");
      },
      1h, GetOrSetOptions{.lease = 10s});
  EXPECT_EQ(v, "loaded");
  // The lease, and the placeholder that makes the store a no-op if "k" is erased meanwhile.
  EXPECT_EQ(during, (std::vector<std::string>{"k", "k#lease"}));
  auto& layers = dynamic_cast<LayeredBackend&>(cache.backend()).layers();
  EXPECT_EQ(layers[0]->get("k"), "loaded");                              // memory
  EXPECT_EQ(layers[1]->get("k"), "loaded");                              // the table
  EXPECT_EQ(stored_keys(*client, name), std::vector<std::string>{"k"});  // the lease released
  // A second call is a memory hit: no load.
  EXPECT_EQ(cache.get_or_set(
                "k", [] { return std::string("again"); }, 1h, GetOrSetOptions{.lease = 10s}),
            "loaded");
  drop(client, name);
}

// An erase through a layered cache while its get_or_set loads: the late value lands in neither
// layer (the table's store is a no-op, so the memory layer is not filled either).
TEST(MakeCache, AnEraseDuringALoadThroughAMemoryLayerLeavesBothLayersEmpty) {
  auto client = it::client();
  const std::string name = it::unique_table("it-open-late");
  auto cache = make_cache<std::string>(
      name,
      {.memory = MemoryOptions{}, .create_table = true, .shared_client = client, .table_options = quiet()});
  for (bool leased : {false, true}) {
    const std::string key = leased ? "leased" : "plain";
    GetOrSetOptions o;
    if (leased) o.lease = 10s;
    auto v = cache.get_or_set(
        key,
        [&] {
          cache.erase(key);
          return std::string("late");
        },
        1h, o);
    EXPECT_EQ(v, "late");
    auto& layers = dynamic_cast<LayeredBackend&>(cache.backend()).layers();
    EXPECT_FALSE(layers[0]->get(key)) << key << ": memory";
    EXPECT_FALSE(layers[1]->get(key)) << key << ": the table";
    EXPECT_FALSE(cache.get(key)) << key;
  }
  drop(client, name);
}

// The asynchronous forms over DynamoDB, awaited in a coroutine.
TEST(MakeCache, EveryOperationCanBeAwaitedOverDynamodb) {
  auto client = it::client();
  const std::string name = it::unique_table("it-open-async");
  auto cache = make_cache<std::string>(
      name, {.create_table = true, .shared_client = client, .table_options = quiet()});
  std::promise<std::string> result;
  [](Cache<std::string>& c, std::promise<std::string>& out) -> Detached {
    std::string log;
    try {
      log += (co_await c.add_async("a", "1", 1h)) ? "added " : "not-added ";
      log += (co_await c.add_async("a", "2", 1h)) ? "added " : "not-added ";
      log += (co_await c.contains_async("a")) ? "contains " : "absent ";
      log += (co_await c.touch_async("a", 2h)) ? "touched " : "missed ";
      log += std::to_string(co_await c.increment_async("n", 5)) + " ";
      log += std::to_string(co_await c.decrement_async("n", 2)) + " ";
      log += co_await c.get_or_set_async(
                 "g", [] { return std::string("loaded"); }, 1h) +
             " ";
      auto many = co_await c.get_many_async("a", "g", "absent");
      log += *many[0] + *many[1] + (many[2] ? "?" : "-") + " ";
      std::vector<std::string> gone = {"a", "g"};  // GCC 12: no braced list inside co_await
      co_await c.erase_many_async(gone);
      log += (co_await c.contains_async("a")) ? "contains" : "absent";
    } catch (const std::exception& e) {
      log += std::string("error: ") + e.what();
    }
    out.set_value(log);
  }(cache, result);
  EXPECT_EQ(result.get_future().get(), "added not-added contains touched 5 3 loaded 1loaded- absent");
  drop(client, name);
}
