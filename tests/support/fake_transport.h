// A scripted Transport for client tests: every send() is recorded and answered by a
// function. Thread-safe.
#pragma once

#include <functional>
#include <mutex>
#include <vector>

#include "dynamodb_cache/dynamodb.h"
#include "dynamodb_cache/http.h"

namespace testing_support {

class FakeTransport : public dynamodb_cache::http::Transport {
 public:
  using Handler = std::function<dynamodb_cache::http::Response(const dynamodb_cache::http::Request&, int call)>;
  explicit FakeTransport(Handler h) : handler_(std::move(h)) {}
  dynamodb_cache::http::Response send(const dynamodb_cache::http::Request& r) override {
    int n;
    {
      std::lock_guard lock(mu_);
      requests_.push_back(r);
      n = static_cast<int>(requests_.size());
    }
    return handler_(r, n);
  }
  std::vector<dynamodb_cache::http::Request> requests() {
    std::lock_guard lock(mu_);
    return requests_;
  }
  int calls() {
    std::lock_guard lock(mu_);
    return static_cast<int>(requests_.size());
  }

 private:
  Handler handler_;
  std::mutex mu_;
  std::vector<dynamodb_cache::http::Request> requests_;
};

// A DynamoDB-style answer with x-amz-crc32 set.
dynamodb_cache::http::Response ddb_response(int status, std::string body);
// An error answer: {"__type":"com.amazonaws.dynamodb.v20120810#NAME","message":MSG}.
dynamodb_cache::http::Response ddb_error(int status, const std::string& name, const std::string& msg = "m");

// Records sleeps instead of sleeping.
class RecordingSleeper : public dynamodb_cache::dynamodb::Sleeper {
 public:
  void sleep(std::chrono::microseconds d) override {
    std::lock_guard lock(mu_);
    sleeps_.push_back(d);
  }
  std::vector<std::chrono::microseconds> sleeps() {
    std::lock_guard lock(mu_);
    return sleeps_;
  }

 private:
  std::mutex mu_;
  std::vector<std::chrono::microseconds> sleeps_;
};

}  // namespace testing_support
