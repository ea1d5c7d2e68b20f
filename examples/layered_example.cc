// A two-layer cache: an in-process LRU in front of DynamoDB. Reads hit memory first; a
// value found only in DynamoDB is copied into memory with the TTL it has left.
#include <cstdlib>
#include <iostream>

#include "dynamodb_cache/dynamodb_cache.h"

int main() try {
  using namespace dynamodb_cache;
  using namespace std::chrono_literals;
  const char* t = std::getenv("DYNAMODB_CACHE_TABLE");
  std::string table_name = t && *t ? t : "dynamodb-cache";
  auto client = std::make_shared<dynamodb::Client>();
  TableOptions table;
  table.name = table_name;
  Table(client, table).create(true);

  DynamodbOptions d;
  d.table = table_name;
  auto shared = std::make_shared<DynamodbBackend>(client, d);
  MemoryOptions m;
  m.max_entries = 10000;
  m.max_bytes = 16 << 20;
  auto local = std::make_shared<MemoryBackend>(m);
  Cache<std::string> cache(std::make_shared<LayeredBackend>(std::vector<std::shared_ptr<Backend>>{local, shared}));

  // Another process put this in DynamoDB five minutes' worth of TTL ago...
  shared->set("greeting", "hello from DynamoDB", 300s);
  // ...so the first read goes to DynamoDB and back-fills memory; the second stays local.
  std::cout << "1st read: " << *cache.get("greeting") << " (memory now holds " << local->size() << " entry)\n";
  auto calls = client->stats().calls.load();
  std::cout << "2nd read: " << *cache.get("greeting") << " (DynamoDB calls for it: "
            << client->stats().calls.load() - calls << ")\n";
  auto left = local->get_entry("greeting")->ttl_left;
  std::cout << "memory copy expires in " << std::chrono::duration_cast<std::chrono::seconds>(*left).count()
            << " s, with the DynamoDB item\n";
  cache.erase("greeting");
  return 0;
} catch (const dynamodb_cache::Error& e) {
  std::cerr << "error: " << e.what() << std::endl;
  return 2;
}
