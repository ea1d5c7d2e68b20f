// A table whose client counts its requests on the wire (CountingTransport), and test data.
#pragma once

#include <map>
#include <memory>
#include <optional>
#include <string>

#include "counting_transport.h"
#include "it_env.h"

namespace it {

using testing_support::CountingTransport;

// n incompressible bytes, the same for the same seed.
inline std::string random_bytes(size_t n, uint64_t seed) {
  std::string s(n, '\0');
  uint64_t x = seed * 0x9E3779B97F4A7C15ull + 88172645463325252ull;
  for (auto& ch : s) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    ch = static_cast<char>(x >> 32);
  }
  return s;
}

// A fresh cache table whose client counts its requests (`wire`). Dropped at the end.
struct CountedTable {
  std::shared_ptr<CountingTransport> wire = std::make_shared<CountingTransport>();
  std::shared_ptr<dynamodb_cache::dynamodb::Client> c;
  std::string name;
  std::optional<dynamodb_cache::Table> table;
  explicit CountedTable(const std::string& prefix) : name(unique_table(prefix)) {
    client();  // checks the endpoint is a loopback local DynamoDB
    dynamodb_cache::dynamodb::ClientOptions o;
    o.transport = wire;
    c = std::make_shared<dynamodb_cache::dynamodb::Client>(o);
    table.emplace(make_cache_table(c, name));
    wire->take();
  }
  ~CountedTable() { table->drop(false); }
  // Through the fault proxy, strongly consistent reads: the tests read their own writes (and
  // other backends'), which eventually consistent reads do not promise.
  dynamodb_cache::DynamodbOptions opts() {
    dynamodb_cache::DynamodbOptions o;
    o.table = name;
    o.consistent_read = under_faults();
    return o;
  }
  // The requests since the last take() are `want`; not checked through the fault proxy
  // (retries add requests).
  void expect_wire(const std::map<std::string, int>& want, int line) {
    auto got = wire->take();
    if (!under_faults()) {
      EXPECT_EQ(got, want) << "requests on the wire, line " << line;
    }
  }
  // Every item in the table: key -> its size as DynamoDB counts it (names + values).
  std::map<std::string, size_t> scan() {
    std::map<std::string, size_t> out;
    dynamodb_cache::dynamodb::ScanRequest r;
    r.table_name = name;
    r.consistent_read = true;  // the fault proxy answers others as of a moment ago
    c->scan_all(r, [&](dynamodb_cache::dynamodb::PageResult& page) {
      for (auto& item : page.items) {
        size_t size = 0;
        for (auto& [n, v] : item) size += n.size() + v.scalar.size();
        out[item.at("key").scalar] = size;
      }
      return true;
    });
    return out;
  }
};

}  // namespace it
