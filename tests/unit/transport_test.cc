// Both transports (libcurl, and the lean plain-http client) against loopback servers: reuse,
// concurrency, and failures below HTTP.
#include <gtest/gtest.h>

#include <mutex>
#include <random>
#include <thread>

#include "dynamodb_cache/errors.h"
#include "dynamodb_cache/http.h"
#include "test_server.h"

using namespace dynamodb_cache;
using testing_support::TestRequest;
using testing_support::TestResponse;
using testing_support::TestServer;

namespace {
http::Request post(const std::string& url, std::string body) {
  http::Request r;
  r.url = url + "/";
  r.headers = {{"Content-Type", "application/x-amz-json-1.0"}, {"X-Amz-Target", "DynamoDB_20120810.GetItem"}};
  r.body = std::move(body);
  return r;
}

using Factory = std::shared_ptr<http::Transport> (*)(const http::HttpOptions&);
struct Kind {
  const char* name;
  Factory make;
};
std::shared_ptr<http::Transport> plain(const http::HttpOptions& o) { return http::make_default_transport(o); }
std::shared_ptr<http::Transport> curl(const http::HttpOptions& o) { return http::make_curl_transport(o); }

class Transport : public ::testing::TestWithParam<Kind> {
 protected:
  std::shared_ptr<http::Transport> make(const http::HttpOptions& o = {}) { return GetParam().make(o); }
};
}  // namespace

TEST_P(Transport, ReusesOneConnectionForSequentialCalls) {
  TestServer server([](const TestRequest& r) {
    TestResponse resp;
    resp.headers = {{"X-Amzn-RequestId", "RID"}};
    resp.body = "echo:" + r.body;
    return resp;
  });
  auto t = make();
  for (int i = 0; i < 20; ++i) {
    auto resp = t->send(post(server.url(), "b" + std::to_string(i)));
    EXPECT_EQ(resp.status, 200);
    EXPECT_EQ(resp.body, "echo:b" + std::to_string(i));
    ASSERT_NE(resp.header("x-amzn-requestid"), nullptr);
    EXPECT_EQ(*resp.header("x-amzn-requestid"), "RID");
  }
  EXPECT_EQ(server.connections(), 1);
}

TEST_P(Transport, PoolsConnectionsAcrossThreads) {
  TestServer server([](const TestRequest&) {
    TestResponse resp;
    resp.body = "{}";
    return resp;
  });
  auto t = make();
  std::vector<std::thread> threads;
  for (int i = 0; i < 4; ++i)
    threads.emplace_back([&] {
      for (int j = 0; j < 50; ++j) EXPECT_EQ(t->send(post(server.url(), "{}")).status, 200);
    });
  for (auto& th : threads) th.join();
  EXPECT_EQ(server.requests(), 200);
  EXPECT_LE(server.connections(), 4);
}

TEST_P(Transport, StatusesAreNotErrors) {
  TestServer server([](const TestRequest&) {
    TestResponse resp;
    resp.status = 503;
    resp.body = "{\"__type\":\"x#ServiceUnavailable\"}";
    return resp;
  });
  auto resp = make()->send(post(server.url(), "{}"));
  EXPECT_EQ(resp.status, 503);
  EXPECT_NE(resp.body.find("ServiceUnavailable"), std::string::npos);
}

TEST_P(Transport, TimeoutIsATimeoutError) {
  TestServer server([](const TestRequest&) {
    TestResponse resp;
    resp.delay = std::chrono::milliseconds(1500);
    return resp;
  });
  http::HttpOptions o;
  o.request_timeout = std::chrono::milliseconds(300);
  auto t = make(o);
  auto start = std::chrono::steady_clock::now();
  EXPECT_THROW(t->send(post(server.url(), "{}")), TimeoutError);
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::milliseconds(1400));
}

TEST_P(Transport, TruncatedBodyAndDroppedConnectionAreTransportErrors) {
  TestServer server([](const TestRequest& r) {
    TestResponse resp;
    if (r.body == "truncate") resp.raw = "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{\"Item\":";
    else resp.raw = "";  // close without a word
    return resp;
  });
  auto t = make();
  try {
    t->send(post(server.url(), "truncate"));
    ADD_FAILURE();
  } catch (const TransportError& e) {
    EXPECT_TRUE(e.retryable());
    EXPECT_EQ(e.kind(), ErrorKind::kTransport);
  }
  EXPECT_THROW(t->send(post(server.url(), "drop")), TransportError);
}

TEST_P(Transport, ConnectionRefusedIsATransportErrorWithoutPathOrQuery) {
  int port;
  {
    TestServer s([](const TestRequest&) { return TestResponse{}; });
    port = s.port();
  }  // closed: nothing listens there now
  http::Request r = post("http://127.0.0.1:" + std::to_string(port), "{}");
  r.url += "?X-Amz-Security-Token=SECRET";
  try {
    make()->send(r);
    ADD_FAILURE();
  } catch (const TransportError& e) {
    EXPECT_EQ(std::string(e.what()).find("SECRET"), std::string::npos) << e.what();
  }
}

TEST_P(Transport, LargeBodiesBothWays) {
  TestServer server([](const TestRequest& r) {
    TestResponse resp;
    resp.body = std::string(r.body.rbegin(), r.body.rend());
    return resp;
  });
  std::string big(400 * 1024, 'x');
  big[0] = 'a';
  auto resp = make()->send(post(server.url(), big));
  EXPECT_EQ(resp.body.size(), big.size());
  EXPECT_EQ(resp.body.back(), 'a');
}

INSTANTIATE_TEST_SUITE_P(Both, Transport, ::testing::Values(Kind{"curl", curl}, Kind{"plain", plain}),
                         [](const auto& info) { return std::string(info.param.name); });

TEST(PlainTransport, ChunkedBodiesAndServerClosedIdleConnections) {
  std::atomic<int> n{0};
  TestServer server([&](const TestRequest&) {
    TestResponse resp;
    if (n++ % 2 == 0) {
      resp.raw = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
                 "5\r\nhello\r\n7\r\n, world\r\n0\r\n\r\n";
    } else {
      resp.body = "second";
      resp.close = true;  // the server drops the connection after answering
    }
    return resp;
  });
  auto t = http::make_default_transport();
  EXPECT_EQ(t->send(post(server.url(), "{}")).body, "hello, world");
  EXPECT_EQ(t->send(post(server.url(), "{}")).body, "second");
  EXPECT_EQ(t->send(post(server.url(), "{}")).body, "hello, world");  // a new connection, no error
}

// Bounded mutation fuzzing of the response parser: garbled status lines, headers, lengths and
// chunking give an answer or a TransportError, never a crash or a hang.
TEST(PlainTransport, MutatedResponsesNeverCrashOrHang) {
  const std::vector<std::string> seeds = {
      "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nx-amz-crc32: 1\r\n\r\nhello",
      "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
      "HTTP/1.0 400 Bad\r\nConnection: close\r\n\r\n{\"__type\":\"x#y\"}"};
  std::mt19937 rng(7);
  std::mutex mu;
  std::string next;
  TestServer server([&](const TestRequest&) {
    TestResponse r;
    std::lock_guard lock(mu);
    r.raw = next;
    return r;
  });
  http::HttpOptions o;
  o.request_timeout = std::chrono::milliseconds(2000);
  auto t = http::make_default_transport(o);
  int answered = 0, failed = 0;
  for (int i = 0; i < 300; ++i) {
    std::string s = seeds[rng() % seeds.size()];
    for (int e = 0; e < 3; ++e) {
      size_t at = rng() % s.size();
      switch (rng() % 3) {
        case 0: s[at] = "0123456789:\r\n -fx"[rng() % 18]; break;
        case 1: s.erase(at, 1 + rng() % 4); break;
        default: s.insert(at, "\r\n"); break;
      }
      if (s.empty()) s.assign(1, 'x');
    }
    {
      std::lock_guard lock(mu);
      next = s;
    }
    try {
      t->send(post(server.url(), "{}"));
      ++answered;
    } catch (const TransportError&) {
      ++failed;
    }
  }
  EXPECT_EQ(answered + failed, 300);
  EXPECT_GT(failed, 0);
}
