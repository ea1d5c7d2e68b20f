// Cache<int> without a codec: one error saying there is no DefaultCodec<int> and what to do,
// not a second one about converting the backend's shared_ptr.
#include <dynamodb_cache/cache.h>
#include <dynamodb_cache/memory_backend.h>

int main() {
  dynamodb_cache::Cache<int> cache(std::make_shared<dynamodb_cache::MemoryBackend>());
  (void)cache;
}
