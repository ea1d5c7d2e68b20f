#include "io/syscall_batch.h"

#include <linux/io_uring.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <vector>

namespace dynamodb_cache::io {

namespace {

// The raw system calls (no liburing: the three calls and the ring layout below are all this
// needs, and a library would become a link and packaging dependency of every user).
int uring_setup(unsigned entries, io_uring_params* p) {
  return static_cast<int>(::syscall(__NR_io_uring_setup, entries, p));
}
int uring_enter(int fd, unsigned to_submit, unsigned min_complete, unsigned flags) {
  return static_cast<int>(::syscall(__NR_io_uring_enter, fd, to_submit, min_complete, flags, nullptr, 0));
}
int uring_register(int fd, unsigned op, void* arg, unsigned n) {
  return static_cast<int>(::syscall(__NR_io_uring_register, fd, op, arg, n));
}

// The kernel's side of the rings is shared memory: the tail we publish is read by the kernel
// after a release store, and the completion tail it publishes is read with an acquire load.
unsigned load_acquire(const unsigned* p) { return __atomic_load_n(p, __ATOMIC_ACQUIRE); }
void store_release(unsigned* p, unsigned v) { __atomic_store_n(p, v, __ATOMIC_RELEASE); }

constexpr uint64_t kCancelBit = uint64_t{1} << 63;

// Whether the kernel knows every opcode used here (IORING_OP_SEND and _RECV came in 5.6; an
// unknown one would complete with -EINVAL, indistinguishable from a real send error).
bool supports_ops(int fd) {
  constexpr unsigned kOps = 64;
  std::vector<unsigned char> mem(sizeof(io_uring_probe) + kOps * sizeof(io_uring_probe_op), 0);
  auto* probe = reinterpret_cast<io_uring_probe*>(mem.data());
  if (uring_register(fd, IORING_REGISTER_PROBE, probe, kOps) < 0) return false;
  for (unsigned op : {unsigned{IORING_OP_SEND}, unsigned{IORING_OP_RECV}, unsigned{IORING_OP_ASYNC_CANCEL}}) {
    if (op > probe->last_op || op >= probe->ops_len || !(probe->ops[op].flags & IO_URING_OP_SUPPORTED)) return false;
  }
  return true;
}

long direct(const SyscallBatch::Op& op) {
  for (;;) {
    ssize_t n = op.send ? ::send(op.fd, op.buf, op.len, MSG_DONTWAIT | MSG_NOSIGNAL) : ::recv(op.fd, op.buf, op.len, MSG_DONTWAIT);
    if (n >= 0) return n;
    if (errno != EINTR) return -errno;
  }
}

}  // namespace

std::unique_ptr<SyscallBatch> SyscallBatch::make(unsigned depth) {
  if (const char* v = std::getenv("DYNAMODB_CACHE_IO_URING"); v && std::strcmp(v, "0") == 0) return nullptr;
  std::unique_ptr<SyscallBatch> b(new SyscallBatch());
  io_uring_params p{};
  // SUBMIT_ALL (5.18): one bad entry does not stop the rest; COOP_TASKRUN (5.19): no
  // interrupt to post completions. Older kernels refuse unknown flags: then without them.
  p.flags = IORING_SETUP_SUBMIT_ALL | IORING_SETUP_COOP_TASKRUN;
  b->fd_ = uring_setup(depth, &p);
  if (b->fd_ < 0 && errno == EINVAL) {
    p = io_uring_params{};
    b->fd_ = uring_setup(depth, &p);
  }
  if (b->fd_ < 0) return nullptr;
  if (!(p.features & IORING_FEAT_SINGLE_MMAP) || !supports_ops(b->fd_)) return nullptr;  // ~SyscallBatch closes
  b->entries_ = p.sq_entries;
  b->sq_ring_size_ = std::max(p.sq_off.array + p.sq_entries * sizeof(unsigned),
                              p.cq_off.cqes + p.cq_entries * sizeof(io_uring_cqe));
  void* ring = ::mmap(nullptr, b->sq_ring_size_, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, b->fd_,
                      IORING_OFF_SQ_RING);
  if (ring == MAP_FAILED) return nullptr;
  b->sq_ring_ = ring;  // the completion ring too (IORING_FEAT_SINGLE_MMAP)
  b->sqes_size_ = p.sq_entries * sizeof(io_uring_sqe);
  void* sqes = ::mmap(nullptr, b->sqes_size_, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, b->fd_,
                      IORING_OFF_SQES);
  if (sqes == MAP_FAILED) return nullptr;
  b->sqes_ = sqes;
  auto* base = static_cast<char*>(ring);
  b->sq_head_ = reinterpret_cast<unsigned*>(base + p.sq_off.head);
  b->sq_tail_ = reinterpret_cast<unsigned*>(base + p.sq_off.tail);
  b->sq_mask_ = *reinterpret_cast<unsigned*>(base + p.sq_off.ring_mask);
  b->sq_array_ = reinterpret_cast<unsigned*>(base + p.sq_off.array);
  b->cq_head_ = reinterpret_cast<unsigned*>(base + p.cq_off.head);
  b->cq_tail_ = reinterpret_cast<unsigned*>(base + p.cq_off.tail);
  b->cq_mask_ = *reinterpret_cast<unsigned*>(base + p.cq_off.ring_mask);
  b->cqes_ = base + p.cq_off.cqes;
  return b;
}

SyscallBatch::~SyscallBatch() {
  if (sqes_) ::munmap(sqes_, sqes_size_);
  if (sq_ring_) ::munmap(sq_ring_, sq_ring_size_);
  if (fd_ >= 0) ::close(fd_);
}

void SyscallBatch::run(std::span<Op> ops) {
  for (size_t i = 0; i < ops.size(); i += entries_) run_chunk(ops.subspan(i, std::min<size_t>(entries_, ops.size() - i)));
}

void SyscallBatch::run_chunk(std::span<Op> ops) {
  const unsigned n = static_cast<unsigned>(ops.size());
  if (n == 0) return;
  if (n == 1) {  // no saving: the system call itself
    ops[0].res = direct(ops[0]);
    return;
  }
  auto* sqes = static_cast<io_uring_sqe*>(sqes_);
  auto* cqes = static_cast<io_uring_cqe*>(cqes_);
  const unsigned tail = *sq_tail_;  // only this thread moves it
  for (unsigned i = 0; i < n; ++i) {
    const unsigned idx = (tail + i) & sq_mask_;
    io_uring_sqe& s = sqes[idx];
    std::memset(&s, 0, sizeof s);
    s.opcode = ops[i].send ? IORING_OP_SEND : IORING_OP_RECV;
    s.fd = ops[i].fd;
    s.addr = reinterpret_cast<uint64_t>(ops[i].buf);
    s.len = static_cast<uint32_t>(std::min<size_t>(ops[i].len, 1u << 30));
    s.msg_flags = ops[i].send ? (MSG_DONTWAIT | MSG_NOSIGNAL) : MSG_DONTWAIT;
    s.user_data = i;
    sq_array_[idx] = idx;
  }
  store_release(sq_tail_, tail + n);

  int r;
  do r = uring_enter(fd_, n, 0, 0);
  while (r < 0 && errno == EINTR);
  ++enters_;
  // What the kernel took (all of it, unless it failed or ran short of memory): the rest is
  // taken back from the ring and done directly.
  const unsigned taken = load_acquire(sq_head_) - tail;
  if (taken < n) {
    store_release(sq_tail_, tail + taken);
    for (unsigned i = taken; i < n; ++i) ops[i].res = direct(ops[i]);
  }
  ops_ += taken;

  std::vector<unsigned char>& done = done_;
  done.assign(taken, 0);
  unsigned left = taken;
  auto reap = [&] {
    unsigned head = *cq_head_;
    const unsigned ctail = load_acquire(cq_tail_);
    for (; head != ctail; ++head) {
      const io_uring_cqe& c = cqes[head & cq_mask_];
      if (c.user_data & kCancelBit) continue;  // a cancellation's own answer
      const auto i = static_cast<unsigned>(c.user_data);
      if (i >= taken || done[i]) continue;
      done[i] = 1;
      --left;
      // Parked and then cancelled: what a non-blocking call would have said.
      ops[i].res = c.res == -ECANCELED ? -EAGAIN : c.res;
    }
    store_release(cq_head_, head);
  };
  reap();
  if (left == 0) return;
  // Operations the kernel parked instead of completing (kernels that arm a poll despite
  // MSG_DONTWAIT): cancel them, then wait for every answer (cancelled or done meanwhile).
  const unsigned ct = *sq_tail_;
  unsigned k = 0;
  for (unsigned i = 0; i < taken; ++i) {
    if (done[i]) continue;
    const unsigned idx = (ct + k) & sq_mask_;
    io_uring_sqe& s = sqes[idx];
    std::memset(&s, 0, sizeof s);
    s.opcode = IORING_OP_ASYNC_CANCEL;
    s.fd = -1;
    s.addr = i;  // the user_data of the operation to cancel
    s.user_data = kCancelBit | i;
    sq_array_[idx] = idx;
    ++k;
  }
  store_release(sq_tail_, ct + k);
  unsigned to_submit = k;
  while (left > 0) {
    // The buffers stay lent to the kernel until each answer is in: no giving up here (each
    // of these completes at once: a cancellation, or a non-blocking call finishing).
    uring_enter(fd_, to_submit, 1, IORING_ENTER_GETEVENTS);
    ++enters_;
    to_submit = *sq_tail_ - load_acquire(sq_head_);
    reap();
  }
}

}  // namespace dynamodb_cache::io
