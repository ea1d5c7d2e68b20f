// Detached: the smallest coroutine type, for tests that co_await the library's Pending
// results: it starts at once, nobody awaits it, and it frees itself at its end. An exception
// escaping the coroutine ends the test binary.
#pragma once

#include <coroutine>
#include <exception>

namespace testing_support {

struct Detached {
  struct promise_type {
    Detached get_return_object() { return {}; }
    std::suspend_never initial_suspend() noexcept { return {}; }
    std::suspend_never final_suspend() noexcept { return {}; }
    void return_void() {}
    void unhandled_exception() { std::terminate(); }
  };
};

}  // namespace testing_support
