#include "util/log.h"

#include <memory>
#include <mutex>
#include <utility>

namespace dynamodb_cache {

namespace {
// Guards `process_hook`. A call copies the pointer under the lock and calls the hook outside
// it, so a hook that logs again, or calls set_log_hook, cannot deadlock.
std::mutex process_hook_mu;
std::shared_ptr<const LogHook> process_hook;  // null: no hook
}  // namespace

const char* to_string(LogLevel level) noexcept {
  switch (level) {
    case LogLevel::kDebug:
      return "debug";
    case LogLevel::kInfo:
      return "info";
    case LogLevel::kWarning:
      return "warning";
    case LogLevel::kError:
      return "error";
  }
  return "unknown";
}

void set_log_hook(LogHook hook) {
  auto p = hook ? std::make_shared<const LogHook>(std::move(hook)) : nullptr;
  std::lock_guard lock(process_hook_mu);
  process_hook = std::move(p);
}

namespace detail {

void log_to(const LogHook& own, LogLevel level, std::string_view message) noexcept {
  try {
    if (own) return own(level, message);
    std::shared_ptr<const LogHook> hook;
    {
      std::lock_guard lock(process_hook_mu);
      hook = process_hook;
    }
    if (hook) (*hook)(level, message);
  } catch (...) {
  }
}

}  // namespace detail
}  // namespace dynamodb_cache
