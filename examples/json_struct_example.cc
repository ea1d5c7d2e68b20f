// Caching a user struct as JSON with no hand-written codec, plus the JSON dict cache of the
// Python package (JsonDictDynamodbCache).
#include <cstdlib>
#include <iostream>

#include "dynamodb_cache/dynamodb_cache.h"
#include "dynamodb_cache/json_codec.h"

namespace shop {
struct Order {
  int id = 0;
  std::string customer;
  std::vector<std::string> items;
  double total = 0;
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(Order, id, customer, items, total)
}  // namespace shop

int main() try {
  using namespace dynamodb_cache;
  const char* t = std::getenv("DYNAMODB_CACHE_TABLE");
  DynamodbOptions d;
  d.table = t && *t ? t : "dynamodb-cache";
  auto client = std::make_shared<dynamodb::Client>();
  TableOptions table;
  table.name = d.table;
  Table(client, table).create(true);
  auto backend = std::make_shared<DynamodbBackend>(client, d);

  JsonObjectCache<shop::Order> orders(backend);
  orders.set("order:42", {42, "alice", {"book", "pen"}, 17.5}, std::chrono::minutes(10));
  auto o = orders.get("order:42");
  std::cout << "order " << o->id << " for " << o->customer << ": " << o->items.size() << " items, total "
            << o->total << "\n";

  JsonCache docs(backend);  // any JSON value: objects, arrays, scalars
  docs.set("config", {{"feature_x", true}, {"limits", {10, 20}}});
  std::cout << "config: " << docs.get("config")->dump() << "\n";
  orders.erase("order:42");
  docs.erase("config");
  return 0;
} catch (const dynamodb_cache::Error& e) {
  std::cerr << "error: " << e.what() << std::endl;
  return 2;
}
