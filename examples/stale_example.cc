// A cache that keeps answering while its source is down (get_or_set's stale_if_error): the
// value expires after 1 s, the source then fails, and the callers get the last good value,
// marked stale, until the source is back. Run against a local DynamoDB:
//   scripts/with-dynalite build/examples/stale_example
#include <chrono>
#include <cstdlib>
#include <iostream>
#include <stdexcept>
#include <thread>

#include "dynamodb_cache/dynamodb_cache.h"

int main() try {
  using namespace dynamodb_cache;
  using namespace std::chrono_literals;
  const char* t = std::getenv("DYNAMODB_CACHE_TABLE");
  auto cache = make_cache<std::string>(t && *t ? t : "stale-example", {.create_table = true});

  bool source_up = true;
  int version = 0;
  auto fetch_price = [&]() -> std::string {  // the slow, fragile source
    if (!source_up) throw std::runtime_error("price service unavailable");
    return "price v" + std::to_string(++version);
  };
  GetOrSetOptions o;
  o.stale_if_error = 60s;  // serve the last good value up to a minute past its TTL

  auto ask = [&](const char* when) {
    auto e = cache.get_or_set_entry("price", fetch_price, 1s, o);
    std::cout << when << ": " << e.value << (e.stale ? " (stale: the source is down)" : "") << "\n";
  };
  cache.erase("price");
  ask("source up        ");
  source_up = false;
  std::this_thread::sleep_for(2100ms);  // the 1 s TTL passes (whole seconds in the table)
  ask("source down      ");
  ask("still down       ");  // backing off: the source is not even asked
  std::this_thread::sleep_for(1100ms);  // past the first backoff, the source is tried again
  source_up = true;
  ask("source back      ");
  std::cout << "stale answers served: " << cache.backend().stats().stale_served.load() << "\n";
  cache.erase("price");
  return 0;
} catch (const dynamodb_cache::Error& e) {
  std::cerr << "error: " << e.what() << std::endl;
  return 2;
}
