#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>

namespace test_clock {
// A steady clock that starts at 0 and moves only when told to (MemoryOptions::now). Thread-safe.
struct FakeSteady {
  std::shared_ptr<std::atomic<int64_t>> ms = std::make_shared<std::atomic<int64_t>>(0);
  std::function<std::chrono::steady_clock::time_point()> fn() const {
    auto m = ms;
    return [m] { return std::chrono::steady_clock::time_point(std::chrono::milliseconds(m->load())); };
  }
};
}  // namespace test_clock
