// Calling a logging hook (stats.h) from the library (private).
#pragma once

#include <string_view>

#include "dynamodb_cache/stats.h"

namespace dynamodb_cache::detail {

// Hands `message` to `hook` at `level` when there is a hook; what the hook throws is
// swallowed: a logging failure must not become a cache failure.
inline void log_to(const LogHook& hook, LogLevel level, std::string_view message) noexcept {
  if (!hook) return;
  try {
    hook(level, message);
  } catch (...) {
  }
}

}  // namespace dynamodb_cache::detail
