// A small HTTP/1.1 server on 127.0.0.1 for tests: keep-alive, scripted answers, and the
// faults a transport must survive (delays, truncated bodies, dropped connections).
// Thread-safe; stops and joins its threads in the destructor.
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "dynamodb_cache/http.h"

namespace testing_support {

struct TestRequest {
  std::string method;
  std::string target;  // path plus query
  std::vector<dynamodb_cache::http::Header> headers;  // names lower-cased
  std::string body;
  const std::string* header(const std::string& lower) const {
    for (auto& h : headers)
      if (h.name == lower) return &h.value;
    return nullptr;
  }
};

struct TestResponse {
  int status = 200;
  std::vector<dynamodb_cache::http::Header> headers;
  std::string body;
  std::chrono::milliseconds delay{0};  // wait before answering
  bool close = false;                  // close the connection after answering
  std::optional<std::string> raw;      // send these bytes as the whole answer, then close
};

class TestServer {
 public:
  using Handler = std::function<TestResponse(const TestRequest&)>;
  explicit TestServer(Handler handler);
  ~TestServer();
  TestServer(const TestServer&) = delete;
  TestServer& operator=(const TestServer&) = delete;

  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_); }
  int port() const { return port_; }
  int connections() const { return connections_.load(); }
  int requests() const { return requests_.load(); }

 private:
  void accept_loop();
  void serve(int fd);

  Handler handler_;
  int listen_fd_ = -1;
  int port_ = 0;
  std::atomic<bool> stop_{false};
  std::atomic<int> connections_{0};
  std::atomic<int> requests_{0};
  std::thread acceptor_;
  std::mutex mu_;
  std::vector<std::thread> workers_;
  std::vector<int> open_fds_;
};

// A proxy's forwarding of a DynamoDB request: `r` sent to `upstream_url` (ending in "/") with
// its content type, target, signature and date, and the answer with its content type, CRC and
// request id. Throws the transport's errors.
TestResponse forward_dynamodb(dynamodb_cache::http::Transport& t, const std::string& upstream_url,
                              const TestRequest& r);

}  // namespace testing_support
