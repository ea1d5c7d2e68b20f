// Integration tests run under scripts/with-dynalite or scripts/with-ddblocal, which export the
// endpoint, a region and dummy credentials for a fresh local DynamoDB on 127.0.0.1.
#pragma once

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "dynamodb_cache/dynamodb_cache.h"

namespace it {

inline std::shared_ptr<dynamodb_cache::dynamodb::Client> client() {
  const char* ep = std::getenv("AWS_ENDPOINT_URL_DYNAMODB");
  if (!ep || std::string(ep).rfind("http://127.0.0.1:", 0) != 0) {
    ADD_FAILURE() << "AWS_ENDPOINT_URL_DYNAMODB must point at a loopback local DynamoDB "
                     "(run under scripts/with-dynalite or scripts/with-ddblocal)";
    std::abort();
  }
  return std::make_shared<dynamodb_cache::dynamodb::Client>();
}

// Whether the test runs through the fault proxy (scripts/with-faults): then answers to
// eventually consistent reads may be stale, and errors and throttling make the client retry,
// so requests on the wire are not counted exactly.
inline bool under_faults() { return std::getenv("FAULT_PROXY_URL") != nullptr; }

// A table name no other test uses.
inline std::string unique_table(const std::string& prefix) {
  static std::atomic<int> n{0};
  return prefix + "-" + std::to_string(::getpid()) + "-" + std::to_string(n++);
}

// What the full-clear tests clear: namespace "keepgen" (backend `ns`) at its second generation, with
// "x" written in both generations, and 300 plain 100-byte entries through `b`. The clear
// must delete 302 items and keep "keepgen:generation".
inline void fill_for_full_clear(dynamodb_cache::DynamodbBackend& b, dynamodb_cache::DynamodbBackend& ns) {
  using namespace std::chrono_literals;
  ns.set("x", "v", 0s);
  ns.clear();  // the second generation
  ns.set("x", "gen 1", 0s);
  std::vector<std::pair<std::string, std::string>> entries;
  for (int i = 0; i < 300; ++i) entries.emplace_back("k" + std::to_string(i), std::string(100, 'v'));
  b.set_many(entries, 0s);
}

inline dynamodb_cache::Table make_cache_table(const std::shared_ptr<dynamodb_cache::dynamodb::Client>& c,
                                              const std::string& name) {
  dynamodb_cache::TableOptions o;
  o.name = name;
  o.poll_interval = std::chrono::milliseconds(20);
  dynamodb_cache::Table t(c, o);
  t.create(true);
  return t;
}

}  // namespace it
