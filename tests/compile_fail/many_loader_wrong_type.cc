// A get_or_set_many loader that returns one value instead of one per key: the error says what
// the loader must be.
#include <dynamodb_cache/cache.h>
#include <dynamodb_cache/memory_backend.h>

int main() {
  dynamodb_cache::Cache<std::string> cache(std::make_shared<dynamodb_cache::MemoryBackend>());
  auto v =
      cache.get_or_set_many({"a", "b"}, [](const std::vector<std::string>&) { return std::string("x"); });
  (void)v;
}
