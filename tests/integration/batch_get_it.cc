// Asynchronous gets merged into BatchGetItems (ClientOptions::batch_gets) against a local
// DynamoDB: each caller gets the item, miss or value its own GetItem would have returned,
// through the typed client and through the cache (compressed and chunked values included).
#include <future>
#include <map>

#include "it_env.h"

using namespace dynamodb_cache;
using namespace std::chrono_literals;
namespace ddb = dynamodb_cache::dynamodb;

namespace {

std::shared_ptr<ddb::Client> batching_client() {
  it::client();  // checks the endpoint is loopback
  ddb::ClientOptions o;
  o.batch_gets = true;
  return std::make_shared<ddb::Client>(o);
}

// Runs start(i) for i < n from within a callback on `c`'s loop: all queued in one turn.
void all_at_once(ddb::Client& c, const std::string& table, size_t n,
                 const std::function<void(size_t)>& start) {
  std::promise<void> started;
  ddb::GetItemRequest trigger;
  trigger.table_name = table;
  trigger.key = {{"key", ddb::AttributeValue::S("trigger")}};
  c.get_item_async(trigger, [&](Outcome<ddb::GetItemResult>) {
    for (size_t i = 0; i < n; ++i) start(i);
    started.set_value();
  });
  started.get_future().wait();
}

}  // namespace

TEST(BatchGetIT, TypedGetsOfOneTurnAreAnsweredEachAsItsOwn) {
  auto c = batching_client();
  const std::string name = it::unique_table("it-batch");
  Table table = it::make_cache_table(c, name);
  for (int i = 0; i < 120; ++i) {
    ddb::PutItemRequest p;
    p.table_name = name;
    p.item = {{"key", ddb::AttributeValue::S("k" + std::to_string(i))},
              {"value", ddb::AttributeValue::S("v" + std::to_string(i))}};
    c->put_item(p);
  }
  // 150 keys (30 missing), consistent and not, and 20 asked twice.
  const size_t n = 170;
  std::vector<std::promise<Outcome<ddb::GetItemResult>>> ps(n);
  all_at_once(*c, name, n, [&](size_t i) {
    ddb::GetItemRequest r;
    r.table_name = name;
    r.key = {{"key", ddb::AttributeValue::S("k" + std::to_string(i % 150))}};
    r.consistent_read = i % 3 == 0;
    r.return_consumed_capacity = ddb::ReturnConsumedCapacity::kTotal;
    c->get_item_async(r, [&ps, i](Outcome<ddb::GetItemResult> o) { ps[i].set_value(std::move(o)); });
  });
  double units = 0;
  for (size_t i = 0; i < n; ++i) {
    auto f = ps[i].get_future();
    ASSERT_EQ(f.wait_for(30s), std::future_status::ready);
    auto o = f.get();
    ASSERT_TRUE(o.ok()) << i;
    auto& r = o.value();
    const size_t k = i % 150;
    if (k < 120) {
      ASSERT_TRUE(r.item) << i;
      EXPECT_EQ(r.item->at("value").scalar, "v" + std::to_string(k));
    } else {
      EXPECT_FALSE(r.item) << i;
    }
    if (r.consumed) units += r.consumed->capacity_units;
  }
  // Eventually consistent: the 100 keys k%3 != 0 (k0..k19 asked twice, alike); consistent:
  // the other 50. One request each.
  EXPECT_EQ(c->stats().batches.load(), 2u);
  EXPECT_EQ(c->stats().batched_keys.load(), 150u);
  EXPECT_GT(units, 0);
  table.drop(false);
}

TEST(BatchGetIT, CacheGetsReadEveryLayoutThroughABatch) {
  auto c = batching_client();
  const std::string name = it::unique_table("it-batch-cache");
  Table table = it::make_cache_table(c, name);
  DynamodbOptions o;
  o.table = name;
  DynamodbBackend b(c, o);
  std::map<std::string, std::string> values = {{"small", "v"},
                                               {"compressed", std::string(5000, 'z')},      // zstd
                                               {"chunked", std::string(500 * 1024, 'c')}};  // past one item
  for (auto& [k, v] : values) b.set(k, v, Ttl(0s));
  const std::vector<std::string> keys = {"small", "compressed", "chunked", "absent", "small"};
  std::vector<std::promise<std::optional<Hit>>> ps(keys.size());
  all_at_once(*c, name, keys.size(), [&](size_t i) {
    b.get_entry_async(keys[i], [&ps, i](Outcome<std::optional<Hit>> h) {
      if (h.ok())
        ps[i].set_value(std::move(h).value());
      else
        ps[i].set_exception(std::move(h).error());
    });
  });
  for (size_t i = 0; i < keys.size(); ++i) {
    auto f = ps[i].get_future();
    ASSERT_EQ(f.wait_for(30s), std::future_status::ready);
    auto hit = f.get();
    if (keys[i] == "absent") {
      EXPECT_FALSE(hit) << keys[i];
    } else {
      ASSERT_TRUE(hit) << keys[i];
      EXPECT_EQ(hit->value, values[keys[i]]) << keys[i];
    }
  }
  EXPECT_GE(c->stats().batches.load(), 1u);
  EXPECT_GT(b.stats().read_capacity_units.load(), 0);
  table.drop(false);
}
