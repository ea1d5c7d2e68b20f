// make_backend: the backends of the common case, built from one table name.
#include "dynamodb_cache/make_cache.h"

#include <cstdlib>

namespace dynamodb_cache {

std::shared_ptr<Backend> make_backend(std::string_view table, CacheOptions o) {
  // Checked before any network call: a bound for a layer that is not there is a mistake.
  if (!o.memory && o.memory_max_age.count() != 0)
    throw InvalidArgumentError(
        "CacheOptions::memory_max_age is set without CacheOptions::memory: set memory "
        "(e.g. .memory = MemoryOptions{}) for a memory layer, or drop memory_max_age");
  std::string name(table);
  if (name.empty()) {
    const char* env = std::getenv("DYNAMODB_CACHE_TABLE");
    name = env && *env ? env : "dynamodb-cache";
  }
  auto client = o.shared_client ? o.shared_client : std::make_shared<dynamodb::Client>(std::move(o.client));
  if (o.create_table) {
    o.table_options.name = name;
    Table(client, std::move(o.table_options)).create(/*wait=*/true);
  }
  // The memory layer takes every key the table takes (long keys are stored as digests).
  if (o.memory && o.backend.long_keys) o.memory->max_key_bytes = kMaxLongKeyBytes;
  o.backend.table = name;
  o.backend.key_namespace = std::move(o.ns);
  auto dynamodb = std::make_shared<DynamodbBackend>(std::move(client), std::move(o.backend));
  if (!o.memory) return dynamodb;
  return make_layered(LayeredOptions{.upper_max_age = o.memory_max_age},
                      std::make_shared<MemoryBackend>(std::move(*o.memory)), std::move(dynamodb));
}

}  // namespace dynamodb_cache
