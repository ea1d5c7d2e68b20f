// The checker of `dynamodb-cache bench --check` (src/cli/bench_check.h) on hand-made
// histories, and the Zipf sampler of `bench --zipf` (src/cli/zipf.h).
#include "cli/bench_check.h"

#include <gtest/gtest.h>

#include <random>

#include "cli/zipf.h"

namespace dynamodb_cache::cli {
namespace {

using check::Kind;
using check::Op;

constexpr int64_t kMs = 1000000;  // nanoseconds

Op set(uint64_t key, uint64_t id, int64_t start_ms, int64_t end_ms, bool ok = true) {
  return Op{key, Kind::kSet, ok, start_ms * kMs, end_ms * kMs, id};
}
Op erase(uint64_t key, int64_t start_ms, int64_t end_ms, bool ok = true) {
  return Op{key, Kind::kErase, ok, start_ms * kMs, end_ms * kMs, check::kAbsent};
}
Op get(uint64_t key, uint64_t answer, int64_t start_ms, int64_t end_ms) {
  return Op{key, Kind::kGet, true, start_ms * kMs, end_ms * kMs, answer};
}
const uint64_t A = check::value_id(1, 1), B = check::value_id(2, 1), C = check::value_id(1, 2);

TEST(BenchCheck, ValuesRoundTripAndOthersAreForeign) {
  const std::string v = check::encode_value("run7", check::value_id(3, 17), 100);
  EXPECT_EQ(v.size(), 100u);
  EXPECT_EQ(check::decode_value("run7", v), check::value_id(3, 17));
  EXPECT_EQ(check::decode_value("run8", v), check::kForeign);  // another run's
  EXPECT_EQ(check::decode_value("run7", check::encode_value("run7", check::kPrepared, 10)), check::kPrepared);
  EXPECT_EQ(check::decode_value("run7", v + "x"), check::kForeign);
  EXPECT_EQ(check::decode_value("run7", "{\"v\":\"abc\"}"), check::kForeign);
  EXPECT_EQ(check::describe(check::value_id(3, 17)), "3:17");
}

TEST(BenchCheck, StaleReadIsCaught) {
  // A written at 0-10, B written at 20-30 (after A completed); a read at 100 answers A.
  auto r =
      check::check_history({set(1, A, 0, 10), set(1, B, 20, 30), get(1, A, 100, 101)}, check::kPrepared, 0);
  EXPECT_EQ(r.reads, 1u);
  EXPECT_EQ(r.stale, 1u);
  EXPECT_EQ(r.unwritten, 0u);
  ASSERT_EQ(r.first.size(), 1u);
  EXPECT_STREQ(r.first[0].rule, "stale");
  EXPECT_EQ(r.first[0].replaced_by, B);
  EXPECT_EQ(r.first[0].replaced_at, 30 * kMs);
  // The newest value, read then, is fine.
  EXPECT_EQ(
      check::check_history({set(1, A, 0, 10), set(1, B, 20, 30), get(1, B, 100, 101)}, check::kPrepared, 0)
          .stale,
      0u);
}

TEST(BenchCheck, ReadWithinTheBoundPasses) {
  // B acknowledged at 30; the read begins at 100: 70 ms later. A bound of 80 ms allows it,
  // one of 60 ms does not.
  const std::vector<Op> h{set(1, A, 0, 10), set(1, B, 20, 30), get(1, A, 100, 101)};
  EXPECT_EQ(check::check_history(h, check::kPrepared, 80 * kMs).stale, 0u);
  EXPECT_EQ(check::check_history(h, check::kPrepared, 60 * kMs).stale, 1u);
  // A read overlapping B's acknowledgement may answer A.
  EXPECT_EQ(
      check::check_history({set(1, A, 0, 10), set(1, B, 20, 30), get(1, A, 25, 40)}, check::kPrepared, 0)
          .stale,
      0u);
}

TEST(BenchCheck, EraseSupersedes) {
  // A, then an erase acknowledged at 30: reading A at 100 is stale, a miss is right.
  EXPECT_EQ(
      check::check_history({set(1, A, 0, 10), erase(1, 20, 30), get(1, A, 100, 101)}, check::kPrepared, 0)
          .stale,
      1u);
  auto r = check::check_history({set(1, A, 0, 10), erase(1, 20, 30), get(1, check::kAbsent, 100, 101)},
                                check::kPrepared, 0);
  EXPECT_EQ(r.stale + r.unwritten, 0u);
  // A miss after a set replaced the erase is stale; one while the set is under way is not.
  r = check::check_history({erase(1, 0, 10), set(1, A, 20, 30), get(1, check::kAbsent, 100, 101)},
                           check::kPrepared, 0);
  EXPECT_EQ(r.stale, 1u);
  EXPECT_EQ(r.first.at(0).replaced_by, A);
  EXPECT_EQ(check::check_history({erase(1, 0, 10), set(1, A, 20, 130), get(1, check::kAbsent, 100, 101)},
                                 check::kPrepared, 0)
                .stale,
            0u);
  // Two erases, the later one not replaced: a miss is right.
  EXPECT_EQ(check::check_history(
                {erase(1, 0, 10), set(1, A, 20, 30), erase(1, 40, 50), get(1, check::kAbsent, 100, 101)},
                check::kPrepared, 0)
                .stale,
            0u);
  // A miss of a prepared key no erase touched is an unwritten answer.
  EXPECT_EQ(check::check_history({get(1, check::kAbsent, 100, 101)}, check::kPrepared, 0).unwritten, 1u);
  EXPECT_EQ(check::check_history({get(1, check::kAbsent, 100, 101)}, check::kAbsent, 0).unwritten, 0u);
}

TEST(BenchCheck, ConcurrentWritesDoNotSupersede) {
  // B invoked (at 5) before A completed (at 10): either may be last, so A may be read.
  EXPECT_EQ(
      check::check_history({set(1, A, 0, 10), set(1, B, 5, 30), get(1, A, 100, 101)}, check::kPrepared, 0)
          .stale,
      0u);
  EXPECT_EQ(
      check::check_history({set(1, A, 0, 10), set(1, B, 5, 30), get(1, B, 100, 101)}, check::kPrepared, 0)
          .stale,
      0u);
  // A third write after both replaces both.
  EXPECT_EQ(check::check_history({set(1, A, 0, 10), set(1, B, 5, 30), set(1, C, 40, 50), get(1, A, 100, 101)},
                                 check::kPrepared, 0)
                .stale,
            1u);
}

TEST(BenchCheck, PreparedValue) {
  // The prepared value is right until a write is acknowledged, stale after.
  EXPECT_EQ(
      check::check_history({get(1, check::kPrepared, 0, 1), set(1, A, 20, 30)}, check::kPrepared, 0).stale,
      0u);
  EXPECT_EQ(check::check_history({set(1, A, 20, 30), get(1, check::kPrepared, 100, 101)}, check::kPrepared, 0)
                .stale,
            1u);
  // Other keys' writes do not matter.
  EXPECT_EQ(check::check_history({set(2, A, 20, 30), get(1, check::kPrepared, 100, 101)}, check::kPrepared, 0)
                .stale,
            0u);
  // Without a prepared value it is an unwritten answer.
  EXPECT_EQ(check::check_history({get(1, check::kPrepared, 0, 1)}, check::kAbsent, 0).unwritten, 1u);
}

TEST(BenchCheck, UnknownOutcomeWriteMayBeReadButReplacesNothing) {
  // B threw (outcome unknown): A is still readable, and so is B.
  EXPECT_EQ(check::check_history({set(1, A, 0, 10), set(1, B, 20, 30, false), get(1, A, 100, 101)},
                                 check::kPrepared, 0)
                .stale,
            0u);
  auto r = check::check_history({set(1, A, 0, 10), set(1, B, 20, 30, false), get(1, B, 100, 101)},
                                check::kPrepared, 0);
  EXPECT_EQ(r.stale + r.unwritten, 0u);
  // An erase that threw makes a miss possible, never necessary.
  r = check::check_history(
      {erase(1, 20, 30, false), get(1, check::kAbsent, 100, 101), get(1, check::kPrepared, 100, 101)},
      check::kPrepared, 0);
  EXPECT_EQ(r.stale + r.unwritten, 0u);
}

TEST(BenchCheck, UnwrittenAnswers) {
  // A value from the future (written after the read ended), another key's, or foreign.
  auto r = check::check_history({get(1, A, 0, 1), set(1, A, 20, 30), set(2, B, 0, 1), get(1, B, 10, 11),
                                 get(1, check::kForeign, 10, 11)},
                                check::kPrepared, 0);
  EXPECT_EQ(r.reads, 3u);
  EXPECT_EQ(r.unwritten, 3u);
  // A read overlapping the write may see it.
  EXPECT_EQ(check::check_history({get(1, A, 25, 40), set(1, A, 20, 30)}, check::kPrepared, 0).unwritten, 0u);
}

TEST(BenchCheck, ManyOperations) {
  // 200,000 operations over 1,000 keys, writes in sequence per key, reads of the newest:
  // nothing to report (one sort and a binary search per read: bench/README.md has the time
  // 760,570 operations take).
  std::vector<Op> h;
  std::mt19937_64 rng(5);
  std::vector<uint64_t> last(1000, check::kPrepared);
  for (int64_t t = 0; t < 200000; ++t) {
    const uint64_t key = rng() % 1000;
    if (t % 10 == 0) {
      last[key] = check::value_id(1, static_cast<uint64_t>(t) + 1);
      h.push_back(Op{key, Kind::kSet, true, t * 10, t * 10 + 5, last[key]});
    } else {
      h.push_back(Op{key, Kind::kGet, true, t * 10, t * 10 + 5, last[key]});
    }
  }
  auto r = check::check_history(h, check::kPrepared, 0);
  EXPECT_EQ(r.reads, 180000u);
  EXPECT_EQ(r.stale + r.unwritten, 0u);
  // Every read answering the prepared value after its key's first set is stale (all but
  // about 9,000 of them, made before their key's first set).
  for (Op& op : h)
    if (op.kind == Kind::kGet) op.value = check::kPrepared;
  r = check::check_history(h, check::kPrepared, 0);
  EXPECT_GT(r.stale, 150000u);
  EXPECT_LT(r.stale, 180000u);
  EXPECT_EQ(r.first.size(), 5u);
}

TEST(ZipfKeys, TopRanksFollowTheDistribution) {
  const uint64_t n = 100000;
  const ZipfKeys z(n, 0.99);
  // H(n, 0.99) for n = 100,000 is about 13.0: the hottest key draws about 7.7%.
  EXPECT_NEAR(z.probability(0), 0.077, 0.003);
  EXPECT_NEAR(z.probability(1) / z.probability(0), std::pow(2.0, -0.99), 1e-9);
  std::mt19937_64 rng(12345);
  const int draws = 2000000;
  std::vector<uint64_t> by_key(n);
  for (int i = 0; i < draws; ++i) ++by_key[z(rng)];
  for (uint64_t r = 0; r < 10; ++r) {
    const double want = z.probability(r) * draws;
    // Within 5 standard deviations of a binomial count.
    EXPECT_NEAR(static_cast<double>(by_key[z.key_of_rank(r)]), want, 5 * std::sqrt(want)) << "rank " << r + 1;
  }
  // The ranks are spread over the key space, the same in every process.
  EXPECT_NE(z.key_of_rank(0), 0u);
  EXPECT_EQ(ZipfKeys(n, 0.99).key_of_rank(0), z.key_of_rank(0));
  EXPECT_THROW(ZipfKeys(0, 0.99), std::invalid_argument);
  EXPECT_THROW(ZipfKeys(10, 0), std::invalid_argument);
}

}  // namespace
}  // namespace dynamodb_cache::cli
