// A Transport that forwards to a real one and counts requests per DynamoDB operation (the
// X-Amz-Target header), so tests can check request counts on the wire. Thread-safe.
#pragma once

#include <map>
#include <memory>
#include <mutex>
#include <string>

#include "dynamodb_cache/http.h"

namespace testing_support {

class CountingTransport : public dynamodb_cache::http::Transport {
 public:
  explicit CountingTransport(
      std::shared_ptr<dynamodb_cache::http::Transport> inner = dynamodb_cache::http::make_default_transport())
      : inner_(std::move(inner)) {}
  dynamodb_cache::http::Response send(const dynamodb_cache::http::Request& r) override {
    for (const auto& h : r.headers)
      if (h.name == "X-Amz-Target") {
        std::lock_guard lock(mu_);
        ++counts_[h.value.substr(h.value.find('.') + 1)];
      }
    return inner_->send(r);
  }
  // Requests of one operation ("GetItem", "Scan", ...) since the last reset.
  int count(const std::string& op) {
    std::lock_guard lock(mu_);
    auto it = counts_.find(op);
    return it == counts_.end() ? 0 : it->second;
  }
  int total() {
    std::lock_guard lock(mu_);
    int n = 0;
    for (auto& [op, c] : counts_) n += c;
    return n;
  }
  void reset() {
    std::lock_guard lock(mu_);
    counts_.clear();
  }

 private:
  std::shared_ptr<dynamodb_cache::http::Transport> inner_;
  std::mutex mu_;
  std::map<std::string, int> counts_;
};

}  // namespace testing_support
