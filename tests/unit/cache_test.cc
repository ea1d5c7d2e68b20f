#include <gtest/gtest.h>

#include "dynamodb_cache/cache.h"
#include "dynamodb_cache/json_codec.h"

using namespace dynamodb_cache;
using namespace std::chrono_literals;

namespace app {
struct DatabaseCredential {
  std::string host;
  int port = 0;
  std::string database, username, password;
  bool operator==(const DatabaseCredential&) const = default;
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(DatabaseCredential, host, port, database, username, password)

// A hand-written codec: "a|b" pairs.
struct Pair {
  std::string a, b;
};
struct PairCodec {
  std::string encode(const Pair& p) const {
    if (p.a.find('|') != std::string::npos) throw std::invalid_argument("'|' in first field");
    return p.a + "|" + p.b;
  }
  Pair decode(std::string_view s) const {
    auto bar = s.find('|');
    if (bar == std::string_view::npos) throw std::runtime_error("no separator");
    return {std::string(s.substr(0, bar)), std::string(s.substr(bar + 1))};
  }
};
}  // namespace app

TEST(Cache, StringsAndBytes) {
  auto mem = std::make_shared<MemoryBackend>();
  Cache<std::string> s(mem);
  EXPECT_FALSE(s.get("k"));
  s.set("k", "v");
  EXPECT_EQ(*s.get("k"), "v");
  Cache<std::vector<std::byte>> b(mem);
  b.set("bin", {std::byte{0}, std::byte{255}}, 5min);
  EXPECT_EQ(b.get("bin")->size(), 2u);
  s.erase("k");
  EXPECT_FALSE(s.get("k"));
  s.clear();
  EXPECT_FALSE(b.get("bin"));
}

TEST(Cache, UserStructThroughJsonNeedsNoCodec) {
  JsonObjectCache<app::DatabaseCredential> c(std::make_shared<MemoryBackend>());
  app::DatabaseCredential cred{"www.db.com", 5432, "mydatabase", "alice", "123456"};
  c.set("my_db_credential", cred, 1h);
  EXPECT_EQ(*c.get("my_db_credential"), cred);
}

TEST(Cache, JsonValues) {
  auto mem = std::make_shared<MemoryBackend>();
  JsonCache c(mem);
  c.set("dict", nlohmann::json{{"a", 1}, {"b", {1, 2}}});
  c.set("list", nlohmann::json::array({1, "x", nullptr}));
  EXPECT_EQ((*c.get("dict"))["b"][1], 2);
  EXPECT_EQ(c.get("list")->size(), 3u);
  mem->set("broken", "{not json", 0ms);
  EXPECT_THROW(c.get("broken"), CodecError);
}

TEST(Cache, CodecFailuresAreCodecErrorsNamingTheKey) {
  auto mem = std::make_shared<MemoryBackend>();
  Cache<app::Pair, app::PairCodec> c(mem);
  c.set("p", {"x", "y"});
  EXPECT_EQ(c.get("p")->b, "y");
  try {
    c.set("bad", {"x|y", "z"});
    ADD_FAILURE();
  } catch (const CodecError& e) {
    EXPECT_NE(std::string(e.what()).find("'bad'"), std::string::npos);
  }
  mem->set("raw", "no separator here", 0ms);
  EXPECT_THROW(c.get("raw"), CodecError);
}

namespace app {
// A codec that throws what is not an exception, as cache.h allows a codec to do.
struct ThrowsIntCodec {
  std::string encode(const std::string&) const { throw 42; }
  std::string decode(std::string_view) const { throw 42; }
};
}  // namespace app

// Whatever a codec throws, std::exception or not, arrives as a CodecError naming the key.
TEST(Cache, ACodecThrowingANonExceptionGivesACodecError) {
  auto mem = std::make_shared<MemoryBackend>();
  Cache<std::string, app::ThrowsIntCodec> c(mem);
  try {
    c.set("k", "v");
    ADD_FAILURE();
  } catch (const CodecError& e) {
    EXPECT_NE(std::string(e.what()).find("'k'"), std::string::npos) << e.what();
  }
  mem->set("raw", "bytes", 0ms);
  EXPECT_THROW(c.get("raw"), CodecError);
}

TEST(Cache, GetOrSetLoadsOnce) {
  Cache<std::string> c(std::make_shared<MemoryBackend>());
  int loads = 0;
  auto load = [&] { ++loads; return std::string("slow value"); };
  EXPECT_EQ(c.get_or_set("k", load, 1h), "slow value");
  EXPECT_EQ(c.get_or_set("k", load, 1h), "slow value");
  EXPECT_EQ(loads, 1);
}

TEST(Cache, ManyAndTtlUnits) {
  MemoryOptions o;
  auto ms = std::make_shared<std::atomic<int64_t>>(0);
  o.now = [ms] { return std::chrono::steady_clock::time_point(std::chrono::milliseconds(ms->load())); };
  Cache<std::string> c(std::make_shared<MemoryBackend>(o));
  c.set_many({{"a", "1"}, {"b", "2"}}, 1500ms);
  auto r = c.get_many({"a", "x", "b"});
  EXPECT_EQ(*r[0], "1");
  EXPECT_FALSE(r[1]);
  EXPECT_EQ(*r[2], "2");
  ms->store(1500);
  EXPECT_FALSE(c.get("a"));
  EXPECT_THROW(c.set("k", "v", -1s), InvalidArgumentError);
  c.set("m", "v", std::chrono::minutes(1));
  ms->store(1500 + 59999);
  EXPECT_TRUE(c.get("m"));
}
