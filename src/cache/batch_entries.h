// What the backends' batch writes share. Private.
#pragma once

#include <cstddef>
#include <string>
#include <utility>
#include <vector>

namespace dynamodb_cache::detail {

// The entries a batch of writes sends: the index of each key's last entry (the last value for
// a key wins, as with set()), in order. One batch may not name a key twice.
std::vector<size_t> last_of_each_key(const std::vector<std::pair<std::string, std::string>>& entries);

}  // namespace dynamodb_cache::detail
