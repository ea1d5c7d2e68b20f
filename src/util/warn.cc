#include "util/warn.h"

#include <cstdio>
#include <mutex>
#include <set>

namespace dynamodb_cache::util {

bool warn_once(const std::string& message) {
  // Bounded by the program's distinct warning texts, which are few.
  static std::mutex mu;
  static std::set<std::string> said;
  std::lock_guard lock(mu);
  if (!said.insert(message).second) return false;
  // One fputs of the whole line: lines from concurrent writers do not interleave.
  std::string line = "warning: " + message + "\n";
  std::fputs(line.c_str(), stderr);
  return true;
}

}  // namespace dynamodb_cache::util
