// The libcurl transport against loopback servers: reuse, concurrency, and failures below HTTP.
#include <gtest/gtest.h>

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
}  // namespace

TEST(CurlTransport, ReusesOneConnectionForSequentialCalls) {
  TestServer server([](const TestRequest& r) {
    TestResponse resp;
    resp.headers = {{"X-Amzn-RequestId", "RID"}};
    resp.body = "echo:" + r.body;
    return resp;
  });
  auto t = http::make_curl_transport();
  for (int i = 0; i < 20; ++i) {
    auto resp = t->send(post(server.url(), "b" + std::to_string(i)));
    EXPECT_EQ(resp.status, 200);
    EXPECT_EQ(resp.body, "echo:b" + std::to_string(i));
    ASSERT_NE(resp.header("x-amzn-requestid"), nullptr);
    EXPECT_EQ(*resp.header("x-amzn-requestid"), "RID");
  }
  EXPECT_EQ(server.connections(), 1);
}

TEST(CurlTransport, PoolsConnectionsAcrossThreads) {
  TestServer server([](const TestRequest&) {
    TestResponse resp;
    resp.body = "{}";
    return resp;
  });
  auto t = http::make_curl_transport();
  std::vector<std::thread> threads;
  for (int i = 0; i < 4; ++i)
    threads.emplace_back([&] {
      for (int j = 0; j < 50; ++j) EXPECT_EQ(t->send(post(server.url(), "{}")).status, 200);
    });
  for (auto& th : threads) th.join();
  EXPECT_EQ(server.requests(), 200);
  EXPECT_LE(server.connections(), 4);
}

TEST(CurlTransport, StatusesAreNotErrors) {
  TestServer server([](const TestRequest&) {
    TestResponse resp;
    resp.status = 503;
    resp.body = "{\"__type\":\"x#ServiceUnavailable\"}";
    return resp;
  });
  auto resp = http::make_curl_transport()->send(post(server.url(), "{}"));
  EXPECT_EQ(resp.status, 503);
  EXPECT_NE(resp.body.find("ServiceUnavailable"), std::string::npos);
}

TEST(CurlTransport, TimeoutIsATimeoutError) {
  TestServer server([](const TestRequest&) {
    TestResponse resp;
    resp.delay = std::chrono::milliseconds(1500);
    return resp;
  });
  http::CurlOptions o;
  o.request_timeout = std::chrono::milliseconds(300);
  auto t = http::make_curl_transport(o);
  auto start = std::chrono::steady_clock::now();
  EXPECT_THROW(t->send(post(server.url(), "{}")), TimeoutError);
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::milliseconds(1400));
}

TEST(CurlTransport, TruncatedBodyAndDroppedConnectionAreTransportErrors) {
  TestServer server([](const TestRequest& r) {
    TestResponse resp;
    if (r.body == "truncate") resp.raw = "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{\"Item\":";
    else resp.raw = "";  // close without a word
    return resp;
  });
  auto t = http::make_curl_transport();
  try {
    t->send(post(server.url(), "truncate"));
    ADD_FAILURE();
  } catch (const TransportError& e) {
    EXPECT_TRUE(e.retryable());
    EXPECT_EQ(e.kind(), ErrorKind::kTransport);
  }
  EXPECT_THROW(t->send(post(server.url(), "drop")), TransportError);
}

TEST(CurlTransport, ConnectionRefusedIsATransportErrorWithoutPathOrQuery) {
  int port;
  {
    TestServer s([](const TestRequest&) { return TestResponse{}; });
    port = s.port();
  }  // closed: nothing listens there now
  http::Request r = post("http://127.0.0.1:" + std::to_string(port), "{}");
  r.url += "?X-Amz-Security-Token=SECRET";
  try {
    http::make_curl_transport()->send(r);
    ADD_FAILURE();
  } catch (const TransportError& e) {
    EXPECT_EQ(std::string(e.what()).find("SECRET"), std::string::npos) << e.what();
  }
}

TEST(CurlTransport, LargeBodiesBothWays) {
  TestServer server([](const TestRequest& r) {
    TestResponse resp;
    resp.body = std::string(r.body.rbegin(), r.body.rend());
    return resp;
  });
  std::string big(400 * 1024, 'x');
  big[0] = 'a';
  auto resp = http::make_curl_transport()->send(post(server.url(), big));
  EXPECT_EQ(resp.body.size(), big.size());
  EXPECT_EQ(resp.body.back(), 'a');
}
