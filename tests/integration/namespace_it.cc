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
  // Writes the item `key` as another tool would: `attrs` and the key.
  void put_raw(const std::string& key, ddb::Item attrs) {
    ddb::PutItemRequest p;
    p.table_name = name;
    p.item = std::move(attrs);
    p.item["key"] = ddb::AttributeValue::S(key);
    c->put_item(p);
  }
  void delete_raw(const std::string& key) {
    ddb::DeleteItemRequest d;
    d.table_name = name;
    d.key = {{"key", ddb::AttributeValue::S(key)}};
    c->delete_item(d);
  }
};

// The largest generation (detail::kMaxGeneration, documented in dynamodb_backend.h).
constexpr int64_t kMaxGeneration = 999'999'999'999'999'999;

// The message of the CodecError `f` throws ("" when it throws none).
template <class F>
std::string codec_error_of(F&& f) {
  try {
    f();
  } catch (const CodecError& e) {
    return e.what();
  }
  return "";
}
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
  std::vector<std::string> expected = {a.key_prefix() + "user:1", "app-a:generation",
                                       b.key_prefix() + "user:1", "app.b:generation", "user:1"};
  std::sort(expected.begin(), expected.end());
  EXPECT_EQ(t.stored_keys(), expected);
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
  EXPECT_TRUE(std::count(keys.begin(), keys.end(), a.key_prefix() + "k1"));
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

// A generation item set by hand to what is no generation (negative, past kMaxGeneration, not
// an integer) is an error naming the item for every operation, never silently used; clear()
// replaces it with a new generation, and what was stored before is gone for everyone.
TEST(NamespaceIT, AGenerationOutOfRangeIsAnErrorAndClearReplacesIt) {
  NsTable t;
  DynamodbBackend a(t.c, t.opts("ns"));
  a.set("k", "old", 0s);
  for (const std::string bad : {"-5", "9223372036854775807", "1000000000000000000", "1.5"}) {
    t.put_raw("ns:generation", {{"generation", ddb::AttributeValue::N(bad)}});
    DynamodbBackend fresh(t.c, t.opts("ns"));
    const std::string message = codec_error_of([&] { fresh.get("k"); });
    EXPECT_NE(message.find("item 'ns:generation' holds generation " + bad), std::string::npos) << message;
    EXPECT_NE(message.find("clearing the namespace replaces it"), std::string::npos) << message;
    EXPECT_THROW(fresh.set("k", "v", 0s), CodecError) << bad;
    fresh.clear();
    EXPECT_FALSE(fresh.get("k")) << bad;
    EXPECT_FALSE(DynamodbBackend(t.c, t.opts("ns")).get("k")) << bad;
    fresh.set("k", "new", 0s);  // the namespace works again
    EXPECT_EQ(*DynamodbBackend(t.c, t.opts("ns")).get("k"), "new") << bad;
  }
  // At the last valid generation a clear starts afresh instead of overflowing.
  t.put_raw("ns:generation", {{"generation", ddb::AttributeValue::N(kMaxGeneration)}});
  DynamodbBackend last(t.c, t.opts("ns"));
  EXPECT_EQ(last.key_prefix(), "ns:" + std::to_string(kMaxGeneration) + ":");
  last.set("k", "at the limit", 0s);
  last.clear();
  EXPECT_FALSE(last.get("k"));
  EXPECT_FALSE(DynamodbBackend(t.c, t.opts("ns")).get("k"));
  last.set("k", "after", 0s);
  EXPECT_EQ(*DynamodbBackend(t.c, t.opts("ns")).get("k"), "after");
}

// Deleting the generation item brings back nothing a clear hid: a namespace without it
// starts at a generation it never had (the clock's microseconds).
TEST(NamespaceIT, DeletingTheGenerationItemBringsNothingBack) {
  NsTable t;
  DynamodbBackend a(t.c, t.opts("ns"));
  a.set("k0", "before any clear", 0s);
  a.clear();
  a.set("k1", "before the second clear", 0s);
  a.clear();
  t.delete_raw("ns:generation");
  DynamodbBackend fresh(t.c, t.opts("ns"));
  EXPECT_FALSE(fresh.get("k0"));
  EXPECT_FALSE(fresh.get("k1"));
  fresh.set("k2", "v", 0s);
  EXPECT_EQ(*DynamodbBackend(t.c, t.opts("ns")).get("k2"), "v");
  // A clear by a process that knew the deleted generation: its condition fails, it reads, and
  // it still takes effect.
  t.delete_raw("ns:generation");
  a.clear();
  EXPECT_FALSE(DynamodbBackend(t.c, t.opts("ns")).get("k2"));
  EXPECT_FALSE(a.get("k1"));
}

// User keys cannot pass for a namespace's items: a key outside namespaces shaped like
// NS:GEN:key is not read as a namespace's (a started namespace's GEN is the clock's
// microseconds, never 0), and one stored under the generation item's name is an error naming
// it, never read as generation 0 (which brought cleared values back).
TEST(NamespaceIT, KeysOutsideTheNamespaceCannotPassForItsItems) {
  NsTable t;
  DynamodbBackend plain(t.c, t.opts());
  plain.set("ns:0:k", "a plain key shaped like generation 0's k", 0s);
  DynamodbBackend ns(t.c, t.opts("ns"));
  EXPECT_FALSE(ns.get("k"));
  ns.set("generation", "a key named like the item", 0s);  // ns:GEN:generation, not ns:generation
  EXPECT_EQ(*ns.get("generation"), "a key named like the item");
  EXPECT_EQ(*plain.get("ns:0:k"), "a plain key shaped like generation 0's k");

  ns.set("k", "cleared", 0s);
  ns.clear();
  plain.set("ns:generation", "someone's value", 0s);
  DynamodbBackend fresh(t.c, t.opts("ns"));
  const std::string message = codec_error_of([&] { fresh.get("k"); });
  EXPECT_NE(message.find("item 'ns:generation' has no `generation`"), std::string::npos) << message;
  EXPECT_THROW(fresh.clear(), CodecError);  // someone's value is not overwritten
  EXPECT_EQ(*plain.get("ns:generation"), "someone's value");
  plain.erase("ns:generation");
  fresh.clear();
  EXPECT_FALSE(fresh.get("k"));
  EXPECT_EQ(*plain.get("ns:0:k"), "a plain key shaped like generation 0's k");
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
  std::string near = std::string(2045, 'n');  // fits alone, not with "ns:GEN:"
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
  const std::string digests = b.key_prefix() + "#sha256:";
  std::string digest_key;
  for (const auto& k : keys)
    if (k.starts_with(digests)) {
      g.key["key"] = ddb::AttributeValue::S(k);
      auto item = t.c->get_item(g).item;
      if (item && item->at("full_key").scalar == long_key) digest_key = k;
    }
  ASSERT_EQ(digest_key.size(), digests.size() + 64);

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
  EXPECT_EQ(t.stored_keys()[0], ns.key_prefix() + "y");  // the generation item was kept: no going back
  EXPECT_THROW(DynamodbBackend(t.c,
                               [&] {
                                 auto x = t.opts();
                                 x.clear_segments = 0;
                                 return x;
                               }()),
               InvalidArgumentError);
}
