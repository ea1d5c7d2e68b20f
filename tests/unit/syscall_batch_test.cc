// io::SyscallBatch: every outcome is the one send()/recv() with MSG_DONTWAIT would give on
// the same socket (bytes, end of stream, EAGAIN, EPIPE, EBADF), in batches larger than the
// ring, and without ever waiting for a peer.
#include "io/syscall_batch.h"

#include <gtest/gtest.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <string>
#include <vector>

namespace dynamodb_cache::io {
namespace {

struct Pair {
  int a = -1, b = -1;
  Pair() {
    int fds[2];
    EXPECT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, fds), 0);
    a = fds[0];
    b = fds[1];
  }
  ~Pair() {
    if (a >= 0) ::close(a);
    if (b >= 0) ::close(b);
  }
};

#define REQUIRE_RING(b)                                                     \
  if (!(b)) GTEST_SKIP() << "io_uring is not available here (the engine then uses send()/recv())"

TEST(SyscallBatch, SendsAndReceivesWhatTheSocketsHold) {
  auto batch = SyscallBatch::make();
  REQUIRE_RING(batch);
  constexpr int kPairs = 300;  // more than one ring's worth: run() goes in chunks
  std::vector<Pair> pairs(kPairs);
  std::vector<std::string> out(kPairs);
  std::vector<SyscallBatch::Op> ops;
  for (int i = 0; i < kPairs; ++i) {
    out[i] = "request " + std::to_string(i);
    ops.push_back({pairs[i].a, true, out[i].data(), out[i].size(), 0});
  }
  batch->run(ops);
  for (int i = 0; i < kPairs; ++i) EXPECT_EQ(ops[i].res, static_cast<long>(out[i].size())) << i;
  EXPECT_GE(batch->enters(), 2u);
  EXPECT_EQ(batch->ops(), static_cast<uint64_t>(kPairs));

  std::vector<std::string> in(kPairs, std::string(64, '\0'));
  ops.clear();
  for (int i = 0; i < kPairs; ++i) ops.push_back({pairs[i].b, false, in[i].data(), in[i].size(), 0});
  batch->run(ops);
  for (int i = 0; i < kPairs; ++i) {
    ASSERT_EQ(ops[i].res, static_cast<long>(out[i].size())) << i;
    EXPECT_EQ(in[i].substr(0, out[i].size()), out[i]);
  }
}

TEST(SyscallBatch, EmptySocketIsEagainAndNothingWaits) {
  auto batch = SyscallBatch::make();
  REQUIRE_RING(batch);
  std::vector<Pair> pairs(8);
  std::vector<std::string> in(8, std::string(16, '\0'));
  std::vector<SyscallBatch::Op> ops;
  for (int i = 0; i < 8; ++i) ops.push_back({pairs[i].b, false, in[i].data(), in[i].size(), 0});
  const auto t0 = std::chrono::steady_clock::now();
  batch->run(ops);
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(5));  // a hang would be forever
  for (auto& op : ops) EXPECT_EQ(op.res, -EAGAIN);
}

TEST(SyscallBatch, EndOfStreamClosedPeerAndBadDescriptor) {
  auto batch = SyscallBatch::make();
  REQUIRE_RING(batch);
  Pair eof, gone, live;
  ::close(eof.a);
  eof.a = -1;
  ::close(gone.b);
  gone.b = -1;
  std::string buf(16, '\0'), msg = "x";
  std::vector<SyscallBatch::Op> ops = {
      {eof.b, false, buf.data(), buf.size(), 0},   // peer closed: 0
      {gone.a, true, msg.data(), msg.size(), 0},   // peer gone: EPIPE, and no SIGPIPE
      {-1, true, msg.data(), msg.size(), 0},       // no such descriptor
      {live.a, true, msg.data(), msg.size(), 0},   // the others do not stop this one
  };
  batch->run(ops);
  EXPECT_EQ(ops[0].res, 0);
  EXPECT_EQ(ops[1].res, -EPIPE);
  EXPECT_EQ(ops[2].res, -EBADF);
  EXPECT_EQ(ops[3].res, 1);
}

TEST(SyscallBatch, FullSocketTakesWhatFitsThenEagain) {
  auto batch = SyscallBatch::make();
  REQUIRE_RING(batch);
  Pair p, q;
  int small = 4096;
  ::setsockopt(p.a, SOL_SOCKET, SO_SNDBUF, &small, sizeof small);
  std::string big(4 << 20, 'z');
  size_t sent = 0;
  long last = 0;
  for (int i = 0; i < 1000 && last != -EAGAIN; ++i) {
    std::string one = "y";
    std::vector<SyscallBatch::Op> ops = {{p.a, true, big.data() + sent, big.size() - sent, 0},
                                         {q.a, true, one.data(), one.size(), 0}};
    batch->run(ops);
    last = ops[0].res;
    if (last > 0) sent += static_cast<size_t>(last);
    EXPECT_EQ(ops[1].res, 1);
  }
  EXPECT_EQ(last, -EAGAIN);  // never parked waiting for the reader
  EXPECT_GT(sent, 0u);
  EXPECT_LT(sent, big.size());
}

TEST(SyscallBatch, DisabledByEnvironment) {
  ::setenv("DYNAMODB_CACHE_IO_URING", "0", 1);
  auto batch = SyscallBatch::make();
  ::unsetenv("DYNAMODB_CACHE_IO_URING");
  EXPECT_EQ(batch, nullptr);
}

}  // namespace
}  // namespace dynamodb_cache::io
