// Saying something through a logging hook (log.h), from any layer of the library (private).
#pragma once

#include <string_view>

#include "dynamodb_cache/log.h"

namespace dynamodb_cache::detail {

// Hands `message` to `own` when it is set, else to the process-wide hook (set_log_hook), else
// to nobody. What a hook throws is swallowed: a logging failure must not become a cache
// failure.
void log_to(const LogHook& own, LogLevel level, std::string_view message) noexcept;

}  // namespace dynamodb_cache::detail
