// A Transport that forwards to a real one and counts requests per DynamoDB operation (the
// X-Amz-Target header), so tests can check request counts on the wire; for BatchGetItem also
// the most keys one call asked and the items answered. Thread-safe.
#pragma once

#include <nlohmann/json.hpp>

#include <algorithm>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <utility>

#include "dynamodb_cache/http.h"

namespace testing_support {

class CountingTransport : public dynamodb_cache::http::Transport {
 public:
  explicit CountingTransport(
      std::shared_ptr<dynamodb_cache::http::Transport> inner = dynamodb_cache::http::make_default_transport())
      : inner_(std::move(inner)) {}
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
    if (!op.empty()) ++counts_[op];
    if (!op.empty() && res.status == 200) ++answered_[op];
    max_keys_asked_ = std::max(max_keys_asked_, keys_asked);
    if (op == "BatchGetItem" && res.status == 200) {
      auto body = nlohmann::json::parse(res.body);
      for (const auto& items : body.at("Responses")) items_answered_ += items.size();
    }
    return res;
  }
  // Requests of one operation ("GetItem", "Scan", ...) since the last reset.
  int count(const std::string& op) {
    std::lock_guard lock(mu_);
    auto it = counts_.find(op);
    return it == counts_.end() ? 0 : it->second;
  }
  // Requests of one operation answered 200 since the last reset. Through the fault proxy an
  // operation may take several attempts (a 500, a throttle, then the answer); one that reached
  // DynamoDB and returned ends in exactly one 200, so this counts operations, not attempts.
  int answered(const std::string& op) {
    std::lock_guard lock(mu_);
    auto it = answered_.find(op);
    return it == answered_.end() ? 0 : it->second;
  }
  int total() {
    std::lock_guard lock(mu_);
    int n = 0;
    for (auto& [op, c] : counts_) n += c;
    return n;
  }
  void reset() { take(); }
  // The counts since the last take() or reset(), which starts over.
  std::map<std::string, int> take() {
    std::lock_guard lock(mu_);
    max_keys_asked_ = items_answered_ = 0;
    answered_.clear();
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
  std::shared_ptr<dynamodb_cache::http::Transport> inner_;
  std::mutex mu_;
  std::map<std::string, int> counts_, answered_;
  size_t max_keys_asked_ = 0, items_answered_ = 0;
};

}  // namespace testing_support
