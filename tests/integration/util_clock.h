#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>

namespace test_clock {
// A wall clock that starts at the real time and moves only when told to. Thread-safe.
struct FakeWallClock {
  std::shared_ptr<std::atomic<int64_t>> offset_ms = std::make_shared<std::atomic<int64_t>>(0);
  std::chrono::system_clock::time_point start = std::chrono::system_clock::now();
  void advance(std::chrono::milliseconds d) { offset_ms->fetch_add(d.count()); }
  std::function<std::chrono::system_clock::time_point()> fn() const {
    auto off = offset_ms;
    auto s = start;
    return [off, s] { return s + std::chrono::milliseconds(off->load()); };
  }
};
}  // namespace test_clock
