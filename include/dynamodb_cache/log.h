// What the library has to say, and where it goes. The library never writes to standard error
// itself: without a hook, nothing is said.
#pragma once

#include <functional>
#include <string_view>

namespace dynamodb_cache {

enum class LogLevel { kDebug, kInfo, kWarning, kError };
const char* to_string(LogLevel level) noexcept;

// The logging hook: called from any thread, one call per event, never with a secret (messages
// are built from error messages, which carry none, and key names). Keep it fast and make it
// thread-safe; exceptions it throws are swallowed.
using LogHook = std::function<void(LogLevel, std::string_view message)>;

// The process-wide hook: it hears everything the library says where no hook of the object's
// own is set (DynamodbOptions::log, TableOptions::log), and what belongs to no object (the
// credentials cache using expired credentials for a while, aws.h). One call with a hook is
// all a program needs to hear everything; an empty hook (the default) silences it again.
// Thread-safe; a call in progress on another thread may still reach the previous hook.
void set_log_hook(LogHook hook);

}  // namespace dynamodb_cache
