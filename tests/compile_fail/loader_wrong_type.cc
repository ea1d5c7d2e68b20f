// A get_or_set loader that returns an int for a Cache<std::string>: the error says what the
// loader must be.
#include <dynamodb_cache/cache.h>
#include <dynamodb_cache/memory_backend.h>

int main() {
  dynamodb_cache::Cache<std::string> cache(std::make_shared<dynamodb_cache::MemoryBackend>());
  auto v = cache.get_or_set("k", [] { return 42; });
  (void)v;
}
