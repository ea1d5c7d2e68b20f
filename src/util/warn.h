// Process-wide warnings on stderr. Thread-safe.
#pragma once

#include <string>

namespace dynamodb_cache::util {

// Writes "warning: <message>" as one line on stderr, the first time this process warns with
// this exact message; later calls with the same message print nothing, so a warning about
// the environment (a server without native TTL, ...) is said once, not once per object.
// Returns whether it printed.
bool warn_once(const std::string& message);

}  // namespace dynamodb_cache::util
