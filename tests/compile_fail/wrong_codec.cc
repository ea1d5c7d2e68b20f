// A codec whose decode takes std::string (the contract says std::string_view): the error says
// what a codec must have.
#include <dynamodb_cache/cache.h>
#include <dynamodb_cache/memory_backend.h>

struct GuessedCodec {
  std::string encode(int v) const { return std::to_string(v); }
  int decode(const std::string& s) const { return std::stoi(s); }
};

int main() {
  dynamodb_cache::Cache<int, GuessedCodec> cache(std::make_shared<dynamodb_cache::MemoryBackend>());
  (void)cache;
}
