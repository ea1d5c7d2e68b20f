#include <gtest/gtest.h>

#include "dynamodb_cache/backend.h"
#include "dynamodb_cache/errors.h"

using namespace dynamodb_cache;
using namespace std::chrono_literals;

namespace {
struct Layers {
  std::shared_ptr<std::atomic<int64_t>> ms = std::make_shared<std::atomic<int64_t>>(0);
  std::shared_ptr<MemoryBackend> l1, l2;
  std::shared_ptr<LayeredBackend> both;
  Layers() {
    MemoryOptions o;
    auto m = ms;
    o.now = [m] { return std::chrono::steady_clock::time_point(std::chrono::milliseconds(m->load())); };
    l1 = std::make_shared<MemoryBackend>(o);
    l2 = std::make_shared<MemoryBackend>(o);
    both = std::make_shared<LayeredBackend>(std::vector<std::shared_ptr<Backend>>{l1, l2});
  }
};

// A layer that fails every write: the layered cache must not leave upper layers ahead of it.
struct FailingBackend : Backend {
  std::optional<Hit> get_entry(std::string_view) override { return std::nullopt; }
  void set(std::string_view, std::string_view, Ttl) override { throw TransportError("down"); }
  void erase(std::string_view) override { throw TransportError("down"); }
  void clear(const std::function<void(uint64_t)>&) override {}
  bool touch(std::string_view, Ttl) override { throw TransportError("down"); }
  bool add(std::string_view, std::string_view, Ttl) override { throw TransportError("down"); }
  int64_t increment(std::string_view, int64_t, Ttl) override { throw TransportError("down"); }
};
}  // namespace

TEST(LayeredBackend, WritesAndErasesReachEveryLayer) {
  Layers L;
  L.both->set("k", "v", 0ms);
  EXPECT_EQ(*L.l1->get("k"), "v");
  EXPECT_EQ(*L.l2->get("k"), "v");
  L.both->erase("k");
  EXPECT_FALSE(L.l1->get("k"));
  EXPECT_FALSE(L.l2->get("k"));
}

TEST(LayeredBackend, LowerHitBackFillsUpperWithRemainingTtl) {
  Layers L;
  L.l2->set("k", "v", 10000ms);
  L.ms->store(4000);
  auto h = L.both->get_entry("k");
  ASSERT_TRUE(h);
  EXPECT_EQ(h->value, "v");
  auto up = L.l1->get_entry("k");
  ASSERT_TRUE(up);
  EXPECT_EQ(up->ttl_left, Ttl(6000));  // not a fresh 10 s
  L.ms->store(10000);
  EXPECT_FALSE(L.l1->get("k"));  // expires in L1 when it expires in L2
  EXPECT_FALSE(L.both->get("k"));
}

TEST(LayeredBackend, NeverExpiringStaysNeverExpiring) {
  Layers L;
  L.l2->set("k", "v", 0ms);
  ASSERT_TRUE(L.both->get("k"));
  EXPECT_FALSE(L.l1->get_entry("k")->ttl_left);
}

TEST(LayeredBackend, UpperHitDoesNotTouchLower) {
  Layers L;
  L.l1->set("k", "upper", 0ms);
  L.l2->set("k", "lower", 0ms);
  EXPECT_EQ(*L.both->get("k"), "upper");
}

TEST(LayeredBackend, GetManyBackFillsOnlyMisses) {
  Layers L;
  L.l1->set("a", "1", 0ms);
  L.l2->set("b", "2", 5000ms);
  auto r = L.both->get_many({"a", "b", "c"});
  ASSERT_EQ(r.size(), 3u);
  EXPECT_EQ(r[0]->value, "1");
  EXPECT_EQ(r[1]->value, "2");
  EXPECT_FALSE(r[2]);
  EXPECT_EQ(L.l1->get_entry("b")->ttl_left, Ttl(5000));
}

TEST(LayeredBackend, FailedLowerWriteLeavesUpperUntouched) {
  auto l1 = std::make_shared<MemoryBackend>();
  LayeredBackend both({l1, std::make_shared<FailingBackend>()});
  EXPECT_THROW(both.set("k", "v", 0ms), TransportError);
  EXPECT_FALSE(l1->get("k"));
}

TEST(LayeredBackend, NeedsLayers) {
  EXPECT_THROW(LayeredBackend({}), InvalidArgumentError);
  EXPECT_THROW(LayeredBackend({nullptr}), InvalidArgumentError);
}
