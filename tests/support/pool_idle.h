// Waiting for get_or_set's background work (refreshes ahead of expiry, loads past
// load_timeout) on detail::BackgroundPool, in tests.
#pragma once

#include <gtest/gtest.h>

#include <chrono>
#include <thread>

#include "cache/background_pool.h"

namespace testing_support {

// Blocks until the pool runs nothing of `owner` (a Backend object): its tasks ended. Fails the
// test after 10 s.
inline void await_idle(const void* owner) {
  auto until = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (dynamodb_cache::detail::BackgroundPool::instance().pending(owner) > 0) {
    if (std::chrono::steady_clock::now() > until) {
      ADD_FAILURE() << "the pool is still busy";
      return;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
}

}  // namespace testing_support
