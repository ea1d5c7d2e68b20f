// A transport that counts DynamoDB requests on the wire, and a table whose client uses it.
#pragma once

#include <nlohmann/json.hpp>

#include <algorithm>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <utility>

#include "it_env.h"

namespace it {

// Counts requests by operation (X-Amz-Target), and for BatchGetItem the keys asked and the
// items answered, then passes them on. Thread-safe.
class CountingTransport : public dynamodb_cache::http::Transport {
 public:
  dynamodb_cache::http::Response send(const dynamodb_cache::http::Request& r) override {
    std::string op;
    for (const auto& h : r.headers)
      if (h.name == "X-Amz-Target" || h.name == "x-amz-target") op = h.value.substr(h.value.find('.') + 1);
    size_t keys_asked = 0;
    if (op == "BatchGetItem") {
      auto body = nlohmann::json::parse(r.body);  // a local: a range-for over a temporary's member dangles
      for (const auto& ask : body.at("RequestItems")) keys_asked += ask.at("Keys").size();
    }
    auto res = inner_->send(r);
    std::lock_guard lock(mu_);
    ++counts_[op];
    max_keys_asked_ = std::max(max_keys_asked_, keys_asked);
    if (op == "BatchGetItem" && res.status == 200) {
      auto body = nlohmann::json::parse(res.body);
      for (const auto& items : body.at("Responses")) items_answered_ += items.size();
    }
    return res;
  }
  std::map<std::string, int> take() {
    std::lock_guard lock(mu_);
    max_keys_asked_ = items_answered_ = 0;
    return std::exchange(counts_, {});
  }
  size_t max_keys_asked() {
    std::lock_guard lock(mu_);
    return max_keys_asked_;
  }
  size_t items_answered() {
    std::lock_guard lock(mu_);
    return items_answered_;
  }

 private:
  std::shared_ptr<dynamodb_cache::http::Transport> inner_ = dynamodb_cache::http::make_default_transport();
  std::mutex mu_;
  std::map<std::string, int> counts_;
  size_t max_keys_asked_ = 0, items_answered_ = 0;
};

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
    client();  // checks the endpoint is a loopback dynalite
    dynamodb_cache::dynamodb::ClientOptions o;
    o.transport = wire;
    c = std::make_shared<dynamodb_cache::dynamodb::Client>(o);
    table.emplace(make_cache_table(c, name));
    wire->take();
  }
  ~CountedTable() { table->drop(false); }
  dynamodb_cache::DynamodbOptions opts() {
    dynamodb_cache::DynamodbOptions o;
    o.table = name;
    return o;
  }
  // Every item in the table: key -> its size as DynamoDB counts it (names + values).
  std::map<std::string, size_t> scan() {
    std::map<std::string, size_t> out;
    dynamodb_cache::dynamodb::ScanRequest r;
    r.table_name = name;
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
