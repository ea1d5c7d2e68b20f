// The asynchronous backend operations (issue 10) against dynalite: each one must behave as its
// synchronous form does (results, errors, what the table holds afterwards, and stats()),
// whether it runs as one request on the client's loop or on a helper thread (chunked values,
// a namespace generation to read, replacing a never-expiring chunked value).
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <coroutine>
#include <exception>
#include <future>
#include <map>
#include <mutex>
#include <thread>

#include "cache/dynamodb_backend_impl.h"
#include "counted_table.h"
#include "it_env.h"

using namespace dynamodb_cache;
using namespace std::chrono_literals;
namespace ddb = dynamodb_cache::dynamodb;
using it::random_bytes;

namespace {

// A fresh cache table on a client with the default transport, so that the asynchronous
// calls run on the event loop as in production (a custom transport makes the loop call it
// blocking).
struct AsyncTable {
  std::shared_ptr<ddb::Client> c = it::client();
  std::string name = it::unique_table("it-async");
  Table table = it::make_cache_table(c, name);
  ~AsyncTable() { table.drop(false); }
  DynamodbOptions opts(const std::string& ns = "") {
    DynamodbOptions o;
    o.table = name;
    o.key_namespace = ns;
    return o;
  }
  // Every item: key -> item.
  std::map<std::string, ddb::Item> items() {
    std::map<std::string, ddb::Item> out;
    ddb::ScanRequest s;
    s.table_name = name;
    c->scan_all(s, [&](ddb::PageResult& p) {
      for (auto& i : p.items) out[i.at("key").scalar] = i;
      return true;
    });
    return out;
  }
  std::vector<std::string> keys() {
    std::vector<std::string> k;
    for (auto& [key, item] : items()) k.push_back(key);
    return k;
  }
};

// The asynchronous calls as Pendings, so that a test reads like the synchronous one.
Pending<std::optional<Hit>> get_async(Backend& b, std::string key) {
  auto [p, done] = Pending<std::optional<Hit>>::make();
  b.get_entry_async(std::move(key), std::move(done));
  return std::move(p);
}
Pending<void> set_async(Backend& b, std::string key, std::string value, Ttl ttl) {
  auto [p, done] = Pending<void>::make();
  b.set_async(std::move(key), std::move(value), ttl, std::move(done));
  return std::move(p);
}
Pending<void> erase_async(Backend& b, std::string key) {
  auto [p, done] = Pending<void>::make();
  b.erase_async(std::move(key), std::move(done));
  return std::move(p);
}
Pending<std::vector<std::optional<Hit>>> get_many_async(Backend& b, std::vector<std::string> keys) {
  auto [p, done] = Pending<std::vector<std::optional<Hit>>>::make();
  b.get_many_async(std::move(keys), std::move(done));
  return std::move(p);
}
Pending<void> set_many_async(Backend& b, std::vector<std::pair<std::string, std::string>> e, Ttl ttl) {
  auto [p, done] = Pending<void>::make();
  b.set_many_async(std::move(e), ttl, std::move(done));
  return std::move(p);
}
Pending<void> clear_async(Backend& b, std::function<void(uint64_t)> progress = nullptr) {
  auto [p, done] = Pending<void>::make();
  b.clear_async(std::move(done), std::move(progress));
  return std::move(p);
}

std::optional<std::string> value_of(const std::optional<Hit>& h) {
  if (!h) return std::nullopt;
  return h->value;
}

// The counters two backends must agree on after the same calls, one synchronous and one
// asynchronous (capacity units are compared as "some" or "none": item sizes differ by key).
void expect_same_stats(const CacheStats& sync, const CacheStats& async) {
  EXPECT_EQ(sync.hits.load(), async.hits.load());
  EXPECT_EQ(sync.misses.load(), async.misses.load());
  EXPECT_EQ(sync.sets.load(), async.sets.load());
  EXPECT_EQ(sync.erases.load(), async.erases.load());
  EXPECT_EQ(sync.fail_open.load(), async.fail_open.load());
  EXPECT_EQ(sync.bytes_read.load(), async.bytes_read.load());
  EXPECT_EQ(sync.bytes_written.load(), async.bytes_written.load());
  EXPECT_EQ(sync.read_capacity_units.load() > 0, async.read_capacity_units.load() > 0);
  EXPECT_EQ(sync.write_capacity_units.load() > 0, async.write_capacity_units.load() > 0);
  for (size_t k = 0; k < kErrorKindCount; ++k)
    EXPECT_EQ(sync.errors[k].load(), async.errors[k].load()) << "errors of kind " << k;
  for (size_t op = 0; op < kOpCount; ++op)
    EXPECT_EQ(sync.latency[op].count(), async.latency[op].count())
        << "latency count of " << to_string(static_cast<Op>(op));
}

// A loopback port nothing listens on: connections are refused at once.
std::string refused_endpoint() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = 0;
  socklen_t len = sizeof a;
  if (fd < 0 || ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) != 0)
    std::abort();
  const int port = ntohs(a.sin_port);
  ::close(fd);
  return "http://127.0.0.1:" + std::to_string(port);
}

std::shared_ptr<ddb::Client> unreachable_client() {
  ddb::ClientOptions o;
  o.region = "us-east-1";
  o.endpoint = refused_endpoint();
  o.credentials = aws::make_static_provider({"AKIDTEST", "SECRETKEYVALUE", "", std::nullopt, ""});
  o.retry.max_attempts = 2;
  o.retry.base_delay = 1ms;
  return std::make_shared<ddb::Client>(o);
}

}  // namespace

TEST(AsyncBackendIT, PlainKeysReadWriteAndEraseAsTheSynchronousCalls) {
  AsyncTable t;
  DynamodbBackend b(t.c, t.opts());
  b.set("a", "sync", 60s);
  auto hit = get_async(b, "a").get();
  ASSERT_TRUE(hit);
  EXPECT_EQ(hit->value, "sync");
  ASSERT_TRUE(hit->ttl_left);
  EXPECT_GT(hit->ttl_left->count(), 0);
  EXPECT_LE(hit->ttl_left->count(), 60000);
  EXPECT_FALSE(get_async(b, "absent").get());

  set_async(b, "b", "async", 0s).get();
  auto back = b.get_entry("b");
  ASSERT_TRUE(back);
  EXPECT_EQ(back->value, "async");
  EXPECT_FALSE(back->ttl_left);
  // Compressed as set() compresses it: the same item but for update_ts.
  std::string text(3000, 'x');
  set_async(b, "z", text, 30s).get();
  EXPECT_EQ(*b.get("z"), text);
  auto want = detail::make_item(b, "z", text, 30s);
  auto stored = t.items().at("z");
  EXPECT_EQ(stored.at("fmt").scalar, want.at("fmt").scalar);
  EXPECT_EQ(stored.at("value").scalar, want.at("value").scalar);
  EXPECT_EQ(stored.at("expire").scalar, "30");
  EXPECT_TRUE(stored.count("expire_at"));

  // A counter reads as its decimal text, marked as a counter.
  b.increment("n", 5, 0s);
  auto counter = get_async(b, "n").get();
  ASSERT_TRUE(counter);
  EXPECT_EQ(counter->value, "5");
  EXPECT_TRUE(counter->counter);

  erase_async(b, "b").get();
  EXPECT_FALSE(b.get("b"));
  erase_async(b, "never-there").get();  // absent keys are no error

  // The caller's mistakes are the synchronous calls' errors, before any request.
  EXPECT_THROW(get_async(b, "").get(), InvalidArgumentError);
  EXPECT_THROW(set_async(b, "", "v", 0s).get(), InvalidArgumentError);
  EXPECT_THROW(erase_async(b, "").get(), InvalidArgumentError);
  EXPECT_THROW(set_async(b, "k", "v", Ttl(-1)).get(), InvalidArgumentError);
  EXPECT_THROW(get_async(b, std::string(2049, 'k')).get(), InvalidArgumentError);
  EXPECT_THROW(set_async(b, "k", std::string(kMaxValueBytes + 1, 'v'), 0s).get(), InvalidArgumentError);
  EXPECT_FALSE(b.get("k"));
}

TEST(AsyncBackendIT, NamespaceGenerationsAsTheSynchronousCalls) {
  AsyncTable t;
  DynamodbOptions o = t.opts("app");
  o.namespace_refresh = 60s;
  DynamodbBackend b(t.c, o);
  DynamodbBackend other(t.c, t.opts("other"));
  other.set("k", "other's", 0s);
  // The generation is not known yet: read first (a helper thread), then written.
  set_async(b, "k", "v", 0s).get();
  EXPECT_EQ(*b.get("k"), "v");
  EXPECT_EQ(value_of(get_async(b, "k").get()), "v");
  const std::string first = b.key_prefix();
  EXPECT_EQ(t.items().count(first + "k"), 1u);

  b.clear();
  EXPECT_FALSE(get_async(b, "k").get());
  EXPECT_EQ(value_of(get_async(other, "k").get()), "other's");
  // A fresh backend (its generation unknown) reads the new generation and misses too.
  DynamodbBackend fresh(t.c, o);
  EXPECT_FALSE(get_async(fresh, "k").get());
  DynamodbBackend fresh_writer(t.c, o);
  set_async(fresh_writer, "k2", "gen 1", 0s).get();
  EXPECT_NE(fresh_writer.key_prefix(), first);
  EXPECT_EQ(fresh_writer.key_prefix(), b.key_prefix());
  EXPECT_EQ(t.items().count(b.key_prefix() + "k2"), 1u);
  EXPECT_EQ(value_of(get_async(b, "k2").get()), "gen 1");
  DynamodbBackend fresh_eraser(t.c, o);
  erase_async(fresh_eraser, "k2").get();
  EXPECT_FALSE(b.get("k2"));

  // A clear made asynchronously: one UpdateItem of the generation, seen at once here.
  set_async(b, "k3", "v", 0s).get();
  const std::string second = b.key_prefix();
  clear_async(b).get();
  EXPECT_FALSE(get_async(b, "k3").get());
  EXPECT_FALSE(b.get("k3"));
  EXPECT_NE(b.key_prefix(), second);
  EXPECT_EQ("app:" + t.items().at("app:generation").at("generation").scalar + ":", b.key_prefix());
  EXPECT_EQ(value_of(get_async(other, "k").get()), "other's");
  EXPECT_EQ(b.stats().latency[static_cast<size_t>(Op::kClear)].count(), 2u);

  // namespace_refresh zero: the generation read before every operation, so another
  // backend's clear is seen at once.
  DynamodbOptions eager_options = o;
  eager_options.namespace_refresh = 0ms;
  DynamodbBackend eager(t.c, eager_options);
  set_async(eager, "z", "v", 0s).get();
  EXPECT_EQ(value_of(get_async(eager, "z").get()), "v");
  EXPECT_EQ(value_of(get_many_async(eager, {"z", "y"}).get()[0]), "v");
  b.clear();
  EXPECT_FALSE(get_async(eager, "z").get());
  set_many_async(eager, {{"y", "3"}}, 0s).get();
  EXPECT_EQ(t.items().count(b.key_prefix() + "y"), 1u);
  erase_async(eager, "y").get();
  EXPECT_FALSE(b.get("y"));

  // An asynchronous clear from a generation known but out of date (another backend cleared
  // since): its UpdateItem's condition fails, and it reads the generation and moves it on.
  DynamodbBackend stale(t.c, o);
  set_async(stale, "s", "v", 0s).get();
  b.clear();
  b.set("s", "after b's clear", 0s);
  clear_async(stale).get();
  EXPECT_FALSE(DynamodbBackend(t.c, o).get("s"));
  EXPECT_NE(stale.key_prefix(), b.key_prefix());  // b still within its namespace_refresh
  EXPECT_EQ(stale.key_prefix(), DynamodbBackend(t.c, o).key_prefix());
}

TEST(AsyncBackendIT, LongKeysGoThroughTheirDigestAndFullKey) {
  AsyncTable t;
  DynamodbOptions o = t.opts();
  o.long_keys = true;
  DynamodbBackend b(t.c, o);
  std::string long_key(5000, 'k');
  set_async(b, long_key, "long", 0s).get();
  EXPECT_EQ(*b.get(long_key), "long");
  EXPECT_EQ(value_of(get_async(b, long_key).get()), "long");
  std::string digest_key;
  for (auto& [k, item] : t.items())
    if (item.count("full_key") && item.at("full_key").scalar == long_key) digest_key = k;
  ASSERT_TRUE(digest_key.starts_with("#sha256:")) << digest_key;

  // Keys marked as digests are digested at any length: two of them are two entries.
  set_async(b, "#sha256:a", "marked a", 0s).get();
  EXPECT_FALSE(get_async(b, "#sha256:b").get());
  EXPECT_FALSE(b.get("#sha256:b"));
  EXPECT_EQ(value_of(get_async(b, "#sha256:a").get()), "marked a");
  EXPECT_EQ(t.items().count("#sha256:a"), 0u);

  // An item under the key's digest that holds another key is a miss, as for get().
  ddb::UpdateItemRequest u;
  u.table_name = t.name;
  u.key = {{"key", ddb::AttributeValue::S(digest_key)}};
  u.update_expression = "SET full_key = :other";
  u.values = {{":other", ddb::AttributeValue::S("someone else")}};
  t.c->update_item(u);
  EXPECT_FALSE(b.get(long_key));
  EXPECT_FALSE(get_async(b, long_key).get());
  EXPECT_FALSE(get_many_async(b, {long_key}).get()[0]);
  erase_async(b, long_key).get();
  EXPECT_EQ(t.items().count(digest_key), 0u);

  DynamodbBackend off(t.c, t.opts());
  EXPECT_THROW(get_async(off, long_key).get(), InvalidArgumentError);
  EXPECT_THROW(set_async(off, long_key, "v", 0s).get(), InvalidArgumentError);
}

TEST(AsyncBackendIT, ChunkedValuesAndTheirCleanUp) {
  AsyncTable t;
  DynamodbBackend b(t.c, t.opts());
  const std::string big = random_bytes(1u << 20, 7);
  set_async(b, "big", big, 0s).get();
  auto items = t.items();
  EXPECT_EQ(items.size(), 4u);  // the head and 3 chunks, as set() writes them
  for (auto& [k, item] : items) {
    size_t size = 0;
    for (auto& [n, v] : item) size += n.size() + v.scalar.size();
    EXPECT_LT(size, 400u * 1024) << k;
  }
  auto hit = get_async(b, "big").get();
  ASSERT_TRUE(hit);
  EXPECT_TRUE(hit->value == big);
  EXPECT_FALSE(hit->ttl_left);
  EXPECT_TRUE(*b.get("big") == big);
  auto many = get_many_async(b, {"absent", "big"}).get();
  EXPECT_FALSE(many[0]);
  ASSERT_TRUE(many[1]);
  EXPECT_TRUE(many[1]->value == big);

  // A small value over a never-expiring chunked one: its chunks go.
  set_async(b, "big", "small now", 0s).get();
  EXPECT_EQ(t.keys(), std::vector<std::string>{"big"});
  EXPECT_EQ(value_of(get_async(b, "big").get()), "small now");
  // Erased: the chunks go with the head.
  set_async(b, "big", big, 0s).get();
  EXPECT_EQ(t.items().size(), 4u);
  erase_async(b, "big").get();
  EXPECT_TRUE(t.items().empty());
  // With a TTL, overwritten chunks are left to expire with their head (as set()).
  set_async(b, "ttl", big, 600s).get();
  for (auto& [k, item] : t.items()) EXPECT_TRUE(item.count("expire_at")) << k;
  EXPECT_TRUE(get_async(b, "ttl").get()->value == big);
}

TEST(AsyncBackendIT, FailOpenAnswersMissesAndDropsSetsAsTheSynchronousCalls) {
  std::vector<std::string> logged;
  std::mutex mu;
  auto options = [&] {
    DynamodbOptions o;
    o.table = "t";
    o.fail_open = true;
    o.log = [&](LogLevel, std::string_view m) {
      std::lock_guard lock(mu);
      logged.emplace_back(m);
    };
    return o;
  };
  DynamodbBackend sync(unreachable_client(), options());
  DynamodbBackend async(unreachable_client(), options());
  EXPECT_FALSE(sync.get_entry("k"));
  EXPECT_FALSE(get_async(async, "k").get());
  EXPECT_NO_THROW(sync.set("k", "v", 0s));
  EXPECT_NO_THROW(set_async(async, "k", "v", 0s).get());
  auto m = sync.get_many({"a", "b"});
  auto am = get_many_async(async, {"a", "b"}).get();
  EXPECT_EQ(m.size(), 2u);
  EXPECT_EQ(am.size(), 2u);
  EXPECT_FALSE(am[0] || am[1]);
  EXPECT_NO_THROW(sync.set_many({{"a", "1"}, {"b", "2"}}, 0s));
  EXPECT_NO_THROW(set_many_async(async, {{"a", "1"}, {"b", "2"}}, 0s).get());
  EXPECT_THROW(sync.erase("k"), TransportError);  // no safe made-up answer
  EXPECT_THROW(erase_async(async, "k").get(), TransportError);
  EXPECT_THROW(sync.get(""), InvalidArgumentError);  // the caller's mistake is not hidden
  EXPECT_THROW(get_async(async, "").get(), InvalidArgumentError);
  EXPECT_THROW(set_async(async, "", "v", 0s).get(), InvalidArgumentError);
  EXPECT_THROW(sync.set("", "v", 0s), InvalidArgumentError);
  EXPECT_EQ(async.stats().fail_open.load(), 4u);
  EXPECT_EQ(async.stats().misses.load(), 3u);
  expect_same_stats(sync.stats(), async.stats());
  std::lock_guard lock(mu);
  EXPECT_EQ(logged.size(), 8u);
}

TEST(AsyncBackendIT, FailOpenWithAnUnknownGenerationToo) {
  DynamodbOptions o;
  o.table = "t";
  o.fail_open = true;
  o.key_namespace = "ns";
  DynamodbBackend sync(unreachable_client(), o);
  DynamodbBackend async(unreachable_client(), o);
  EXPECT_FALSE(sync.get("k"));
  EXPECT_FALSE(get_async(async, "k").get());
  EXPECT_FALSE(sync.get_many({"a", "b"})[1]);
  EXPECT_FALSE(get_many_async(async, {"a", "b"}).get()[1]);
  sync.set("k", "v", 0s);
  set_async(async, "k", "v", 0s).get();
  sync.set_many({{"a", "1"}}, 0s);
  set_many_async(async, {{"a", "1"}}, 0s).get();
  EXPECT_THROW(sync.clear(), TransportError);
  EXPECT_THROW(clear_async(async).get(), TransportError);
  EXPECT_EQ(async.stats().fail_open.load(), 4u);
  expect_same_stats(sync.stats(), async.stats());
}

TEST(AsyncBackendIT, StatsCountAsTheSynchronousCalls) {
  AsyncTable ts, ta;
  DynamodbBackend s(ts.c, ts.opts());
  DynamodbBackend a(ta.c, ta.opts());
  s.set("k", std::string(3000, 'x'), 0s);
  set_async(a, "k", std::string(3000, 'x'), 0s).get();
  s.get("k");
  get_async(a, "k").get();
  s.get("absent");
  get_async(a, "absent").get();
  s.get_many({"k", "absent", "k"});
  get_many_async(a, {"k", "absent", "k"}).get();
  s.set_many({{"m", "1"}, {"n", "22"}, {"m", "333"}}, 0s);
  set_many_async(a, {{"m", "1"}, {"n", "22"}, {"m", "333"}}, 0s).get();
  s.erase("k");
  erase_async(a, "k").get();
  EXPECT_THROW(s.get(""), InvalidArgumentError);
  EXPECT_THROW(get_async(a, "").get(), InvalidArgumentError);
  EXPECT_THROW(s.get_many({"ok", ""}), InvalidArgumentError);
  EXPECT_THROW(get_many_async(a, {"ok", ""}).get(), InvalidArgumentError);
  EXPECT_THROW(s.set_many({{"ok", "1"}, {"", "2"}}, 0s), InvalidArgumentError);
  EXPECT_THROW(set_many_async(a, {{"ok", "1"}, {"", "2"}}, 0s).get(), InvalidArgumentError);
  EXPECT_FALSE(a.get("ok"));  // a batch with a bad key writes nothing, as set_many()
  EXPECT_FALSE(s.get("ok"));
  s.clear();
  clear_async(a).get();

  auto& st = a.stats();
  EXPECT_EQ(st.hits.load(), 3u);
  EXPECT_EQ(st.misses.load(), 3u);  // "absent" twice, "ok"
  EXPECT_EQ(st.sets.load(), 3u);
  EXPECT_EQ(st.bytes_written.load(), 3000u + 3 + 2);
  EXPECT_EQ(st.bytes_read.load(), 9000u);
  EXPECT_GT(st.read_capacity_units.load(), 0);
  EXPECT_GT(st.write_capacity_units.load(), 0);
  EXPECT_EQ(st.latency[static_cast<size_t>(Op::kGet)].count(), 4u);
  EXPECT_EQ(st.latency[static_cast<size_t>(Op::kGetMany)].count(), 2u);
  expect_same_stats(s.stats(), a.stats());

  // Without track_capacity nothing asks for capacity.
  DynamodbOptions o = ta.opts();
  o.track_capacity = false;
  DynamodbBackend quiet(ta.c, o);
  set_async(quiet, "q", "v", 0s).get();
  get_async(quiet, "q").get();
  EXPECT_EQ(quiet.stats().read_capacity_units.load(), 0);
  EXPECT_EQ(quiet.stats().write_capacity_units.load(), 0);
}

// track_capacity counts what every write consumed, sets and erases included, both ways.
TEST(AsyncBackendIT, WriteCapacityOfSetsAndErasesIsCountedBothWays) {
  AsyncTable t;
  DynamodbBackend s(t.c, t.opts());
  s.set("k", "v", 0s);
  const double after_set = s.stats().write_capacity_units.load();
  EXPECT_GT(after_set, 0);
  s.erase("k");
  EXPECT_GT(s.stats().write_capacity_units.load(), after_set);
  DynamodbBackend a(t.c, t.opts());
  set_async(a, "k", "v", 0s).get();
  EXPECT_EQ(a.stats().write_capacity_units.load(), after_set);
  erase_async(a, "k").get();
  EXPECT_EQ(a.stats().write_capacity_units.load(), s.stats().write_capacity_units.load());
}

TEST(AsyncBackendIT, PythonCompatItemsAsSetWritesThem) {
  AsyncTable t;
  DynamodbOptions o = t.opts();
  o.python_compat = true;
  DynamodbBackend b(t.c, o);
  std::string value = "bytes \x01\x02 and text";
  value += std::string(2000, 'y');  // long enough that set() would compress it without python_compat
  set_async(b, "py", value, 60s).get();
  auto item = t.items().at("py");
  auto want = detail::make_item(b, "py", value, 60s);
  EXPECT_EQ(item.count("fmt"), 0u);
  EXPECT_EQ(item.count("expire_at"), 0u);
  EXPECT_EQ(item.at("value").scalar, want.at("value").scalar);  // base64 text
  EXPECT_EQ(*b.get("py"), value);
  EXPECT_EQ(value_of(get_async(b, "py").get()), value);
  // Past one item even as base64: chunked, as set() does.
  std::string big = random_bytes(350 * 1024, 3);
  set_async(b, "big", big, 0s).get();
  EXPECT_TRUE(*b.get("big") == big);
  EXPECT_TRUE(get_async(b, "big").get()->value == big);
}

TEST(AsyncBackendIT, BatchesWithDuplicateKeysLastValueWins) {
  AsyncTable t;
  DynamodbBackend b(t.c, t.opts());
  set_many_async(b, {{"a", "1"}, {"b", "2"}, {"a", "3"}, {"c", std::string(500 * 1024, 'c')}}, 0s).get();
  EXPECT_EQ(*b.get("a"), "3");
  EXPECT_EQ(*b.get("b"), "2");
  auto got = get_many_async(b, {"a", "b", "a", "absent", "c"}).get();
  ASSERT_EQ(got.size(), 5u);
  EXPECT_EQ(value_of(got[0]), "3");
  EXPECT_EQ(value_of(got[1]), "2");
  EXPECT_EQ(value_of(got[2]), "3");
  EXPECT_FALSE(got[3]);
  EXPECT_EQ(value_of(got[4]), std::string(500 * 1024, 'c'));
  auto sync = b.get_many({"a", "b", "a", "absent", "c"});
  for (size_t i = 0; i < got.size(); ++i) EXPECT_EQ(value_of(got[i]), value_of(sync[i])) << i;
  EXPECT_TRUE(get_many_async(b, {}).get().empty());
  set_many_async(b, {}, 0s).get();
  EXPECT_EQ(b.stats().sets.load(), 3u);
}

namespace {

// The smallest coroutine type: runs eagerly, its result in a std::promise.
template <class T>
struct Task {
  struct promise_type {
    std::promise<T> result;
    Task get_return_object() { return Task{result.get_future()}; }
    std::suspend_never initial_suspend() noexcept { return {}; }
    std::suspend_never final_suspend() noexcept { return {}; }
    void return_value(T v) { result.set_value(std::move(v)); }
    void unhandled_exception() { result.set_exception(std::current_exception()); }
  };
  std::future<T> result;
};

// (No braced initializer lists around a co_await: g++ 12 cannot keep their arrays in the
// coroutine frame, "array used as initializer".)
Task<std::string> round_trip(Cache<std::string>& cache, std::thread::id caller) {
  const std::string co = "co", nothing = "nothing", empty, awaited = "awaited", miss = "(miss)";
  co_await cache.set_async(co, awaited, 60s);
  auto v = co_await cache.get_async(co);
  std::string out = v.value_or(miss);
  out += std::this_thread::get_id() == caller ? std::string(" on the caller") : std::string(" on the loop");
  std::vector<std::string> keys;
  keys.push_back(co);
  keys.push_back(nothing);
  auto many = co_await cache.get_many_async(keys);
  out += many[1] ? std::string(" hit") : std::string(" miss");
  co_await cache.erase_async(co);
  auto gone = co_await cache.get_async(co);
  out += gone ? std::string(" kept") : std::string(" erased");
  try {
    co_await cache.get_async(empty);
  } catch (const InvalidArgumentError&) {
    out += " invalid";
  }
  co_await cache.clear_async();
  co_return out;
}

}  // namespace

TEST(AsyncBackendIT, CoroutinesAwaitTheTypedCache) {
  AsyncTable t;
  auto backend = std::make_shared<DynamodbBackend>(t.c, t.opts());
  Cache<std::string> cache(backend);
  cache.set("other", "v");
  auto task = round_trip(cache, std::this_thread::get_id());
  EXPECT_EQ(task.result.get(), "awaited on the loop miss erased invalid");
  EXPECT_FALSE(cache.get("other"));
  EXPECT_EQ(backend->stats().latency[static_cast<size_t>(Op::kClear)].count(), 1u);
}

TEST(AsyncBackendIT, LayeredReadsFillUpperLayersAndWriteLowestFirst) {
  AsyncTable t;
  auto shared = std::make_shared<DynamodbBackend>(t.c, t.opts());
  auto memory = std::make_shared<MemoryBackend>();
  LayeredBackend layered({memory, shared});
  shared->set("k", "from dynamo", 60s);
  shared->increment("n", 2, 0s);
  EXPECT_EQ(value_of(get_async(layered, "k").get()), "from dynamo");
  auto filled = memory->get_entry("k");
  ASSERT_TRUE(filled);
  EXPECT_LE(filled->ttl_left->count(), 60000);
  EXPECT_EQ(value_of(get_async(layered, "n").get()), "2");
  EXPECT_FALSE(memory->get("n"));  // counters are not copied up
  EXPECT_FALSE(get_async(layered, "absent").get());
  EXPECT_EQ(layered.stats().hits.load(), 2u);
  EXPECT_EQ(layered.stats().misses.load(), 1u);

  set_async(layered, "w", "both", 0s).get();
  EXPECT_EQ(*memory->get("w"), "both");
  EXPECT_EQ(*shared->get("w"), "both");
  erase_async(layered, "w").get();
  EXPECT_FALSE(memory->get("w"));
  EXPECT_FALSE(shared->get("w"));
  EXPECT_THROW(set_async(layered, "", "v", 0s).get(), InvalidArgumentError);

  auto many = get_many_async(layered, {"k", "absent", "n"}).get();
  EXPECT_EQ(value_of(many[0]), "from dynamo");
  EXPECT_FALSE(many[1]);
  EXPECT_EQ(value_of(many[2]), "2");
  set_many_async(layered, {{"x", "1"}, {"x", "2"}}, 0s).get();
  EXPECT_EQ(*memory->get("x"), "2");
  EXPECT_EQ(*shared->get("x"), "2");
  // Keys only the lower layer holds are read on its loop: the caller is not blocked.
  shared->set_many({{"d1", "one"}, {"d2", "two"}}, 0s);
  std::promise<std::thread::id> where;
  Hit two;
  layered.get_many_async({"d1", "d2", "k"}, [&](ddb::Outcome<std::vector<std::optional<Hit>>> r) {
    two = *r.value().at(1);
    where.set_value(std::this_thread::get_id());
  });
  EXPECT_NE(where.get_future().get(), std::this_thread::get_id());
  EXPECT_EQ(two.value, "two");
  EXPECT_EQ(*memory->get("d1"), "one");  // written back above
  std::promise<std::thread::id> wrote;
  layered.set_many_async({{"e", "1"}}, 0s, [&](ddb::Outcome<void> r) {
    r.value();
    wrote.set_value(std::this_thread::get_id());
  });
  EXPECT_NE(wrote.get_future().get(), std::this_thread::get_id());
  EXPECT_EQ(*memory->get("e"), "1");
  EXPECT_EQ(*shared->get("e"), "1");
  EXPECT_THROW(get_many_async(layered, {"ok", ""}).get(), InvalidArgumentError);

  // Cleared lowest first: both layers empty.
  clear_async(layered).get();
  EXPECT_FALSE(memory->get("k"));
  EXPECT_FALSE(shared->get("k"));
  EXPECT_TRUE(t.items().empty());
}

TEST(AsyncBackendIT, FullClearScansSegmentsConcurrentlyAndReportsProgress) {
  AsyncTable t;
  DynamodbOptions o = t.opts();
  o.clear_segments = 4;
  DynamodbBackend b(t.c, o);
  DynamodbBackend ns(t.c, t.opts("keepgen"));
  it::fill_for_full_clear(b, ns);
  b.set("chunked", random_bytes(1u << 20, 9), 0s);  // head and 3 chunks
  std::mutex mu;
  std::vector<uint64_t> reports;
  std::atomic<int> concurrent{0}, overlapped{0};
  clear_async(b, [&](uint64_t n) {
    if (concurrent.fetch_add(1) != 0) overlapped.fetch_add(1);
    {
      std::lock_guard lock(mu);
      reports.push_back(n);
    }
    concurrent.fetch_sub(1);
  }).get();
  EXPECT_EQ(overlapped.load(), 0);  // one call at a time
  ASSERT_FALSE(reports.empty());
  EXPECT_EQ(reports.back(), 306u);  // 300 + 4 + ns's two generations of x
  EXPECT_TRUE(std::is_sorted(reports.begin(), reports.end()));
  EXPECT_EQ(t.keys(), std::vector<std::string>{"keepgen:generation"});
  EXPECT_EQ(b.stats().erases.load(), 306u);
  EXPECT_EQ(b.stats().latency[static_cast<size_t>(Op::kClear)].count(), 1u);
  ns.set("y", "v", 0s);
  EXPECT_EQ(t.keys()[0], ns.key_prefix() + "y");  // the generation item was kept: no going back

  // One item left, then nothing: no progress call for an empty table.
  reports.clear();
  clear_async(b, [&](uint64_t n) { reports.push_back(n); }).get();
  EXPECT_EQ(reports, std::vector<uint64_t>{1});  // keepgen:GEN:y
  clear_async(b, [&](uint64_t n) { reports.push_back(n); }).get();
  EXPECT_EQ(reports, std::vector<uint64_t>{1});
  EXPECT_EQ(t.keys(), std::vector<std::string>{"keepgen:generation"});

  // Typed: Cache::clear_async.
  auto backend = std::make_shared<DynamodbBackend>(t.c, o);
  Cache<std::string> cache(backend);
  cache.set("t", "v");
  cache.clear_async().get();
  EXPECT_FALSE(cache.get("t"));
}

TEST(AsyncBackendIT, ClearFailureCompletesOnceWithTheError) {
  DynamodbOptions o;
  o.table = "t";
  o.clear_segments = 8;
  auto stats = std::make_shared<CacheStats>();
  o.stats = stats;
  std::optional<DynamodbBackend> b(std::in_place, unreachable_client(), o);
  std::atomic<int> calls{0};
  std::promise<std::exception_ptr> error;
  b->clear_async([&](ddb::Outcome<void> r) {
    if (calls.fetch_add(1) == 0) error.set_value(std::move(r).error());
  });
  auto e = error.get_future().get();
  ASSERT_TRUE(e);
  EXPECT_THROW(std::rethrow_exception(e), TransportError);
  // The backend holds the last reference to its client: destroying it ends whatever is
  // still pending, which must not complete the clear a second time.
  b.reset();
  EXPECT_EQ(calls.load(), 1);
  EXPECT_EQ(stats->errors[static_cast<size_t>(ErrorKind::kTransport)].load(), 1u);
  EXPECT_EQ(stats->latency[static_cast<size_t>(Op::kClear)].count(), 1u);
  // A missing table is the synchronous call's ResourceNotFound error.
  AsyncTable t;
  DynamodbOptions missing = t.opts();
  missing.table = t.name + "-missing";
  DynamodbBackend m(t.c, missing);
  EXPECT_THROW(m.clear(), ServiceError);
  EXPECT_THROW(clear_async(m).get(), ServiceError);
}
