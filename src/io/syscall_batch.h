// Many non-blocking socket sends and receives in one system call (private), through io_uring.
//
// Why: on the machines this client runs on, entering the kernel is a large part of a
// request's cost (a null system call measured 1.26 us in this project's VM, where a whole get
// costs 15-30 us), and an event loop with C requests in flight makes one send() and one recv()
// per request. A batch makes one io_uring_enter for all the sends (or receives) an event-loop
// iteration has, so the entry is paid once per batch, not once per request.
//
// Contract: every operation is MSG_DONTWAIT, so it completes at once, as send()/recv() on a
// non-blocking socket would (bytes, 0 at end of stream, or -errno such as -EAGAIN); run()
// never waits for a peer. A kernel that would park such an operation instead (arming a poll)
// has it cancelled and reported as -EAGAIN. Operations the ring cannot take are performed
// with send()/recv() directly: the outcome is the same either way, only the cost differs.
//
// Thread-safety: one thread at a time (an event loop's).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <vector>

namespace dynamodb_cache::io {

class SyscallBatch {
 public:
  struct Op {
    int fd = -1;
    bool send = false;  // send(buf, len, MSG_DONTWAIT | MSG_NOSIGNAL); else recv(buf, len, MSG_DONTWAIT)
    char* buf = nullptr;
    size_t len = 0;
    long res = 0;  // out: bytes transferred, or -errno
  };

  // A ring for up to `depth` operations per system call, or nullptr where io_uring is not
  // available (old kernel, seccomp, io_uring_disabled) or DYNAMODB_CACHE_IO_URING=0 is set.
  static std::unique_ptr<SyscallBatch> make(unsigned depth = 256);
  ~SyscallBatch();
  SyscallBatch(const SyscallBatch&) = delete;
  SyscallBatch& operator=(const SyscallBatch&) = delete;

  // Performs every operation and sets its `res`. `buf` must stay valid during the call only.
  void run(std::span<Op> ops);

  // System calls made and operations performed through the ring (for tests and benchmarks).
  uint64_t enters() const { return enters_; }
  uint64_t ops() const { return ops_; }

 private:
  SyscallBatch() = default;
  void run_chunk(std::span<Op> ops);

  int fd_ = -1;
  unsigned entries_ = 0;
  // The mapped rings (see io_uring(7)): submission queue indices and entries, completions.
  void* sq_ring_ = nullptr;
  size_t sq_ring_size_ = 0;
  void* sqes_ = nullptr;
  size_t sqes_size_ = 0;
  unsigned* sq_head_ = nullptr;
  unsigned* sq_tail_ = nullptr;
  unsigned sq_mask_ = 0;
  unsigned* sq_array_ = nullptr;
  unsigned* cq_head_ = nullptr;
  unsigned* cq_tail_ = nullptr;
  unsigned cq_mask_ = 0;
  void* cqes_ = nullptr;
  std::vector<unsigned char> done_;  // run_chunk's: which operations have answered
  uint64_t enters_ = 0;
  uint64_t ops_ = 0;
};

}  // namespace dynamodb_cache::io
