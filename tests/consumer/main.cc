// Uses the installed headers and library: a memory cache, a typed cache, an offline client,
// an exception thrown by the library and caught here (its type info crosses the library's
// boundary), and the version header. Prints the version for the test to compare.
#include <dynamodb_cache/dynamodb_cache.h>
#include <dynamodb_cache/version.h>

#include <iostream>

int main() {
  using namespace dynamodb_cache;
  Cache<std::string> cache(std::make_shared<MemoryBackend>());
  cache.set("k", "v", std::chrono::seconds(30));
  if (cache.get("k") != "v") return 1;
  dynamodb::ClientOptions o;
  o.region = "us-east-1";
  o.endpoint = "http://127.0.0.1:9";
  o.credentials = aws::make_static_provider({"AKID", "secret", "", std::nullopt, ""});
  dynamodb::Client client(o);  // constructing makes no request
  try {
    validate_key("");
    return 1;
  } catch (const InvalidArgumentError&) {
  }
  std::cout << "consumer ok: " << client.endpoint() << " version " << DYNAMODB_CACHE_VERSION << "\n";
  return 0;
}
