// Integration tests run under scripts/with-dynalite, which exports the endpoint, a region
// and dummy credentials for a fresh local DynamoDB on 127.0.0.1.
#pragma once

#include <gtest/gtest.h>

#include <atomic>
#include <cstdlib>
#include <memory>
#include <string>

#include "dynamodb_cache/dynamodb_cache.h"

namespace it {

inline std::shared_ptr<dynamodb_cache::dynamodb::Client> client() {
  const char* ep = std::getenv("AWS_ENDPOINT_URL_DYNAMODB");
  if (!ep || std::string(ep).rfind("http://127.0.0.1:", 0) != 0) {
    ADD_FAILURE() << "AWS_ENDPOINT_URL_DYNAMODB must point at a loopback dynalite (run under scripts/with-dynalite)";
    std::abort();
  }
  return std::make_shared<dynamodb_cache::dynamodb::Client>();
}

// A table name no other test uses.
inline std::string unique_table(const std::string& prefix) {
  static std::atomic<int> n{0};
  return prefix + "-" + std::to_string(::getpid()) + "-" + std::to_string(n++);
}

inline dynamodb_cache::Table make_cache_table(const std::shared_ptr<dynamodb_cache::dynamodb::Client>& c,
                                              const std::string& name) {
  dynamodb_cache::TableOptions o;
  o.name = name;
  o.poll_interval = std::chrono::milliseconds(20);
  o.warn = [](const std::string&) {};
  dynamodb_cache::Table t(c, o);
  t.create(true);
  return t;
}

}  // namespace it
