// Namespaces (O(1) clear through a generation number), keys past 2048 bytes, and the
// parallel full clear, against dynalite; request counts checked on the wire.
#include <thread>

#include "counting_transport.h"
#include "it_env.h"
#include "util_clock.h"

using namespace dynamodb_cache;
using namespace std::chrono_literals;
namespace ddb = dynamodb_cache::dynamodb;
using testing_support::CountingTransport;

namespace {
struct NsTable {
  std::shared_ptr<CountingTransport> wire = std::make_shared<CountingTransport>();
  std::shared_ptr<ddb::Client> c = [this] {
    ddb::ClientOptions o;
    o.transport = wire;
    return std::make_shared<ddb::Client>(o);
  }();
  std::string name = it::unique_table("it-ns");
  Table table = it::make_cache_table(c, name);
  ~NsTable() { table.drop(false); }
  DynamodbOptions opts(const std::string& ns = "", std::chrono::milliseconds refresh = 1000ms) {
    DynamodbOptions o;
    o.table = name;
    o.key_namespace = ns;
    o.namespace_refresh = refresh;
    return o;
  }
  std::vector<std::string> stored_keys() {
    std::vector<std::string> keys;
    ddb::ScanRequest s;
    s.table_name = name;
    c->scan_all(s, [&](ddb::PageResult& p) {
      for (auto& i : p.items) keys.push_back(i.at("key").scalar);
      return true;
    });
    std::sort(keys.begin(), keys.end());
    return keys;
  }
};
}  // namespace

TEST(NamespaceIT, KeysAreReadablePrefixedAndNamespacesAreApart) {
  NsTable t;
  DynamodbBackend a(t.c, t.opts("app-a")), b(t.c, t.opts("app.b")), plain(t.c, t.opts());
  a.set("user:1", "in a", 0s);
  b.set("user:1", "in b", 0s);
  plain.set("user:1", "plain", 0s);
  EXPECT_EQ(*a.get("user:1"), "in a");
  EXPECT_EQ(*b.get("user:1"), "in b");
  EXPECT_EQ(*plain.get("user:1"), "plain");
  EXPECT_EQ(t.stored_keys(), (std::vector<std::string>{"app-a:0:user:1", "app.b:0:user:1", "user:1"}));
  EXPECT_THROW(DynamodbBackend(t.c, t.opts("has:colon")), InvalidArgumentError);
  EXPECT_THROW(DynamodbBackend(t.c, t.opts(std::string(65, 'n'))), InvalidArgumentError);
}

TEST(NamespaceIT, ClearIsOneUpdateItemAndNoScan) {
  NsTable t;
  DynamodbBackend a(t.c, t.opts("ns")), other(t.c, t.opts("other"));
  std::vector<std::pair<std::string, std::string>> entries;
  for (int i = 0; i < 120; ++i) entries.emplace_back("k" + std::to_string(i), "v");
  a.set_many(entries, 3600s);
  other.set("k1", "kept", 0s);
  EXPECT_TRUE(a.increment("n", 5, 0s));
  t.wire->reset();
  a.clear();
  EXPECT_EQ(t.wire->count("Scan"), 0);
  EXPECT_EQ(t.wire->count("UpdateItem"), 1);
  EXPECT_EQ(t.wire->total(), 1);
  EXPECT_FALSE(a.get("k1"));
  EXPECT_FALSE(a.contains("k119"));
  EXPECT_EQ(a.increment("n", 1, 0s), 1);  // counters are cleared too
  EXPECT_EQ(*other.get("k1"), "kept");
  a.set("k1", "after", 0s);
  EXPECT_EQ(*a.get("k1"), "after");
  auto keys = t.stored_keys();
  EXPECT_TRUE(std::count(keys.begin(), keys.end(), "ns:1:k1"));
  EXPECT_TRUE(std::count(keys.begin(), keys.end(), "ns:generation"));
}

TEST(NamespaceIT, OtherProcessesSeeAClearWithinTheRefreshTime) {
  NsTable t;
  DynamodbBackend writer(t.c, t.opts("shared"));
  DynamodbBackend strict(it::client(), t.opts("shared", 0ms));  // reads the generation every op
  DynamodbBackend lazy(it::client(), t.opts("shared", 3600s));  // trusts it for an hour
  writer.set("k", "before", 0s);
  EXPECT_EQ(*strict.get("k"), "before");
  EXPECT_EQ(*lazy.get("k"), "before");
  writer.clear();
  EXPECT_FALSE(writer.get("k"));        // its own clear: at once
  EXPECT_FALSE(strict.get("k"));        // refresh 0: at once
  EXPECT_EQ(*lazy.get("k"), "before");  // the documented window: the old generation
  DynamodbBackend fresh(it::client(), t.opts("shared", 3600s));
  EXPECT_FALSE(fresh.get("k"));  // a new process reads the current generation

  DynamodbBackend soon(it::client(), t.opts("shared", 200ms));
  EXPECT_FALSE(soon.get("k"));
  writer.set("k", "gen 1", 0s);
  EXPECT_EQ(*soon.get("k"), "gen 1");
  writer.clear();
  std::this_thread::sleep_for(250ms);
  EXPECT_FALSE(soon.get("k"));  // refreshed after 200 ms
}

TEST(NamespaceIT, StrictRefreshCostsOneGenerationReadPerOperation) {
  NsTable t;
  DynamodbBackend strict(t.c, t.opts("s", 0ms));
  std::vector<std::string> keys;
  for (int i = 0; i < 30; ++i) keys.push_back("k" + std::to_string(i));
  t.wire->reset();
  strict.get_many(keys);
  EXPECT_EQ(t.wire->count("GetItem"), 1);  // the generation, once for the whole batch
  EXPECT_EQ(t.wire->count("BatchGetItem"), 1);
  DynamodbBackend cached(t.c, t.opts("s", 60s));
  cached.get("a");
  t.wire->reset();
  cached.get("b");
  cached.set("c", "v", 0s);
  EXPECT_EQ(t.wire->total(), 2);  // no generation read within namespace_refresh
}

TEST(LongKeysIT, KeysPast2048BytesAreStoredUnderADigestAndChecked) {
  NsTable t;
  DynamodbOptions o = t.opts("ns");
  o.long_keys = true;
  DynamodbBackend b(t.c, o);
  std::string long_key(5000, 'k');
  long_key += "é";
  b.set(long_key, "long", 0s);
  EXPECT_EQ(*b.get(long_key), "long");
  EXPECT_TRUE(b.contains(long_key));
  std::string near = std::string(2045, 'n');  // fits alone, not with "ns:0:"
  EXPECT_TRUE(b.add(near, "near", 0s));
  EXPECT_EQ(b.increment(long_key + "#n", 3, 0s), 3);
  EXPECT_TRUE(b.touch(long_key, 60s));
  auto many = b.get_many({long_key, near, "short"});
  EXPECT_EQ(many[0]->value, "long");
  EXPECT_EQ(many[1]->value, "near");
  EXPECT_FALSE(many[2]);
  b.set("#sha256:looks-like-a-digest", "short but marked", 0s);  // digested too: no collisions
  EXPECT_EQ(*b.get("#sha256:looks-like-a-digest"), "short but marked");

  auto keys = t.stored_keys();
  for (const auto& k : keys) EXPECT_LE(k.size(), 2048u) << k.substr(0, 80);
  ddb::GetItemRequest g;
  g.table_name = t.name;
  g.key = {{"key", ddb::AttributeValue::S("ns:0:#sha256:" + std::string(64, '0'))}};
  std::string digest_key;
  for (const auto& k : keys)
    if (k.starts_with("ns:0:#sha256:")) {
      g.key["key"] = ddb::AttributeValue::S(k);
      auto item = t.c->get_item(g).item;
      if (item && item->at("full_key").scalar == long_key) digest_key = k;
    }
  ASSERT_EQ(digest_key.size(), std::string("ns:0:#sha256:").size() + 64);

  // An item under the digest whose full_key is another key is not this key's: a miss.
  ddb::UpdateItemRequest u;
  u.table_name = t.name;
  u.key = {{"key", ddb::AttributeValue::S(digest_key)}};
  u.update_expression = "SET full_key = :other";
  u.values = {{":other", ddb::AttributeValue::S("someone else")}};
  t.c->update_item(u);
  EXPECT_FALSE(b.get(long_key));
  EXPECT_FALSE(b.contains(long_key));
  EXPECT_FALSE(b.get_many({long_key})[0]);

  DynamodbBackend off(t.c, t.opts("ns"));
  EXPECT_THROW(off.set(long_key, "v", 0s), InvalidArgumentError);
  EXPECT_THROW(off.set(near, "v", 0s), InvalidArgumentError);  // the prefix pushes it past 2048
  EXPECT_THROW(b.set(std::string(kMaxLongKeyBytes + 1, 'x'), "v", 0s), InvalidArgumentError);
}

TEST(FullClearIT, ParallelSegmentsDeleteEverythingAndReportProgress) {
  NsTable t;
  DynamodbOptions o = t.opts();
  o.clear_segments = 4;
  DynamodbBackend b(t.c, o);
  DynamodbBackend ns(t.c, t.opts("keepgen"));
  it::fill_for_full_clear(b, ns);
  t.wire->reset();
  std::vector<uint64_t> reports;
  b.clear([&](uint64_t n) { reports.push_back(n); });
  ASSERT_FALSE(reports.empty());
  EXPECT_EQ(reports.back(), 302u);  // 300 + ns's two generations of x; the generation item is kept
  EXPECT_TRUE(std::is_sorted(reports.begin(), reports.end()));
  EXPECT_GE(t.wire->count("Scan"), 4);             // one per segment at least
  EXPECT_GE(t.wire->count("BatchWriteItem"), 13);  // 302 deletes in batches of at most 25
  EXPECT_EQ(t.stored_keys(), std::vector<std::string>{"keepgen:generation"});
  ns.set("y", "v", 0s);
  EXPECT_EQ(t.stored_keys()[1], "keepgen:generation");
  EXPECT_EQ(t.stored_keys()[0], "keepgen:1:y");  // generations never go back
  EXPECT_THROW(DynamodbBackend(t.c,
                               [&] {
                                 auto x = t.opts();
                                 x.clear_segments = 0;
                                 return x;
                               }()),
               InvalidArgumentError);
}
