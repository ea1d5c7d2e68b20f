// Both transports (libcurl, and the lean plain-http client) against loopback servers: reuse,
// concurrency, and failures below HTTP.
#include <gtest/gtest.h>

#include <mutex>
#include <random>
#include <thread>

#include "dynamodb_cache/aws.h"
#include "dynamodb_cache/dynamodb.h"
#include "dynamodb_cache/errors.h"
#include "dynamodb_cache/http.h"
#include "http/response_parser.h"
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

// send_into reuses the caller's Response: each answer's status, fields and body, nothing of
// the previous one.
TEST_P(Transport, SendIntoReusesTheResponse) {
  TestServer server([](const TestRequest& r) {
    TestResponse resp;
    if (r.body == "long") {
      resp.status = 400;
      resp.headers = {{"X-Amzn-RequestId", "a request id longer than fifteen"}, {"X-Extra", "1"}};
      resp.body = std::string(5000, 'x');
    } else {
      resp.headers = {{"X-Amzn-RequestId", "R"}};
      resp.body = "short";
    }
    return resp;
  });
  auto t = make();
  http::Response out;
  for (const char* body : {"long", "short", "long", "short"}) {
    t->send_into(post(server.url(), body), out);
    const bool is_long = std::string(body) == "long";
    EXPECT_EQ(out.status, is_long ? 400 : 200);
    EXPECT_EQ(out.body, is_long ? std::string(5000, 'x') : "short");
    ASSERT_NE(out.header("x-amzn-requestid"), nullptr);
    EXPECT_EQ(*out.header("x-amzn-requestid"), is_long ? "a request id longer than fifteen" : "R");
    EXPECT_EQ(out.header("x-extra") != nullptr, is_long);
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

// A connection refused is a ConnectError: the request was never sent (a write may be resent).
TEST_P(Transport, ConnectionRefusedIsAConnectError) {
  int port;
  {
    TestServer s([](const TestRequest&) { return TestResponse{}; });
    port = s.port();
  }
  EXPECT_THROW(make()->send(post("http://127.0.0.1:" + std::to_string(port), "{}")), ConnectError);
}

// A kept-alive connection closed after the request went out and before any byte of the
// answer: resent on a new connection by default (the server most likely closed it while
// idle), but never a request that must not apply twice (resend_if_stale = false): that one
// is a TransportError, and the server saw it once.
TEST_P(Transport, ARequestThatMustNotApplyTwiceIsNotResentOnAStaleConnection) {
  std::atomic<int> writes{0};
  TestServer server([&](const TestRequest& r) {
    TestResponse resp;
    if (r.body == "write") {
      if (writes.fetch_add(1) == 0) resp.raw = "";  // processed, then closed without an answer
    }
    resp.body = "ok";
    return resp;
  });
  auto t = make();
  for (bool resend : {true, false}) {
    writes = 0;
    EXPECT_EQ(t->send(post(server.url(), "warm")).status, 200);  // the connection the write reuses
    http::Request w = post(server.url(), "write");
    w.resend_if_stale = resend;
    if (resend) {
      EXPECT_EQ(t->send(w).status, 200);
      EXPECT_EQ(writes.load(), 2);
    } else {
      try {
        t->send(w);
        ADD_FAILURE() << "resent";
      } catch (const TransportError& e) {
        EXPECT_EQ(dynamic_cast<const ConnectError*>(&e), nullptr);
      }
      EXPECT_EQ(writes.load(), 1);
    }
  }
}

// A pooled connection the server closed while idle (its answer was whole and kept alive, then
// the server hung up): a request that must not be sent twice notices before sending and takes
// a new connection, instead of failing with an unknown outcome.
TEST_P(Transport, ARequestThatMustNotApplyTwiceSkipsAConnectionClosedWhileIdle) {
  std::atomic<int> writes{0};
  TestServer server([&](const TestRequest& r) {
    TestResponse resp;
    if (r.body == "write") ++writes;
    resp.raw = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";  // kept alive, then closed
    return resp;
  });
  auto t = make();
  EXPECT_EQ(t->send(post(server.url(), "warm")).body, "ok");
  std::this_thread::sleep_for(std::chrono::milliseconds(100));  // the server's FIN arrives
  http::Request w = post(server.url(), "write");
  w.resend_if_stale = false;
  EXPECT_EQ(t->send(w).body, "ok");
  EXPECT_EQ(writes.load(), 1);
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
// chunking give an answer, a TransportError, or a ProtocolError (bad framing, not retryable),
// never a crash or a hang.
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
    } catch (const ProtocolError& e) {
      EXPECT_FALSE(e.retryable());
      ++failed;
    }
  }
  EXPECT_EQ(answered + failed, 300);
  EXPECT_GT(failed, 0);
}

// ---------- the response parser (src/http/response_parser.h), fed byte by byte and whole ----------

namespace {
struct Parsed {
  http::Response resp;
  bool keep = false;
  size_t used = 0;
};
// Feeds `bytes` in pieces of `step` bytes (0: whole); end of connection after the last byte.
Parsed parse(const std::string& bytes, size_t step = 0, http::ResponseLimits limits = {}) {
  Parsed out;
  http::ResponseParser p(limits);
  p.reset(&out.resp);
  size_t at = 0;
  while (at < bytes.size() && !p.done()) {
    size_t n = step == 0 ? bytes.size() - at : std::min(step, bytes.size() - at);
    size_t used = p.feed(bytes.data() + at, n);
    at += used;
    if (used < n) break;
  }
  out.used = at;
  if (!p.done() && !p.on_eof()) throw TransportError("truncated");
  out.keep = p.keep_alive();
  return out;
}
}  // namespace

TEST(ResponseParser, SameAnswerWhateverTheReadSizes) {
  const std::string chunked =
      "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nX-Amz-Crc32: 7\r\n\r\n5;x=y\r\nhello\r\n7\r\n, world\r\n"
      "0\r\nTrailer-Field: 1\r\n\r\n";
  for (size_t step : {0, 1, 2, 3, 7}) {
    auto p = parse(chunked, step);
    EXPECT_EQ(p.resp.status, 200);
    EXPECT_EQ(p.resp.body, "hello, world");
    ASSERT_NE(p.resp.header("x-amz-crc32"), nullptr);
    EXPECT_EQ(p.resp.header("trailer-field"), nullptr);  // trailers are not kept
    EXPECT_TRUE(p.keep);
    EXPECT_EQ(p.used, chunked.size());
  }
}

// A reused Response holds exactly the new answer's fields: the parser overwrites the entries a
// previous answer left and drops the rest (longer and shorter fields, interim answers first).
TEST(ResponseParser, AReusedResponseHoldsOnlyTheNewAnswer) {
  http::Response r;
  http::ResponseParser p;
  p.reset(&r);
  const std::string first = "HTTP/1.1 500 Oops\r\nA: 1\r\nB: two\r\nC-Long-Header-Name: a value longer than fifteen\r\n"
                            "Content-Length: 5\r\n\r\nerror";
  ASSERT_EQ(p.feed(first.data(), first.size()), first.size());
  ASSERT_TRUE(p.done());
  EXPECT_EQ(r.headers.size(), 4u);
  p.reset(&r);
  const std::string second = "HTTP/1.1 100 Continue\r\nX-Interim: 1\r\n\r\nHTTP/1.1 200 OK\r\nb: 2\r\nContent-Length: 2\r\n\r\n{}";
  ASSERT_EQ(p.feed(second.data(), second.size()), second.size());
  ASSERT_TRUE(p.done());
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body, "{}");
  ASSERT_EQ(r.headers.size(), 2u);
  EXPECT_EQ(r.headers[0].name, "b");
  EXPECT_EQ(r.headers[0].value, "2");
  EXPECT_EQ(r.headers[1].name, "content-length");
  EXPECT_EQ(r.header("a"), nullptr);
  EXPECT_EQ(r.header("c-long-header-name"), nullptr);
  EXPECT_EQ(r.header("x-interim"), nullptr);
}

TEST(ResponseParser, InterimAnswersAreSkipped) {
  const std::string s = "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n"
                        "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}NEXT";
  for (size_t step : {0, 1, 5}) {
    auto p = parse(s, step);
    EXPECT_EQ(p.resp.status, 200);
    EXPECT_EQ(p.resp.body, "{}");
    EXPECT_EQ(p.resp.header("link"), nullptr);
    EXPECT_EQ(p.used, s.size() - 4);  // "NEXT" is not this answer's: the caller closes
  }
}

TEST(ResponseParser, KeepAliveOnlyWhenTheAnswerSaysSo) {
  EXPECT_TRUE(parse("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n").keep);
  EXPECT_FALSE(parse("HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n").keep);
  EXPECT_FALSE(parse("HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n").keep);
  EXPECT_TRUE(parse("HTTP/1.0 200 OK\r\nConnection: Keep-Alive\r\nContent-Length: 0\r\n\r\n").keep);
  auto eof = parse("HTTP/1.1 200 OK\r\n\r\nto the end");
  EXPECT_EQ(eof.resp.body, "to the end");
  EXPECT_FALSE(eof.keep);
  EXPECT_EQ(parse("HTTP/1.1 200 OK\r\nContent-Length: 2, 2\r\nContent-Length: 2\r\n\r\n{}").resp.body, "{}");
  EXPECT_EQ(parse("HTTP/1.1 204 No Content\r\n\r\n").resp.status, 204);
  EXPECT_EQ(parse("HTTP/1.1 200\r\nContent-Length: 0\r\n\r\n").resp.status, 200);  // empty reason
}

TEST(ResponseParser, BadFramingIsAProtocolErrorNotRetryable) {
  const char* bad[] = {
      "HTTP/1.1 abc OK\r\n\r\n",
      "HTTP/1.1 20 OK\r\n\r\n",
      "HTTP/2.0 200 OK\r\n\r\n",
      "ICY 200 OK\r\n\r\n",
      "HTTP/1.1 101 Switching Protocols\r\n\r\n",
      "HTTP/1.1 200 OK\nContent-Length: 0\n\n",
      "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 5\r\n\r\nhello",
      "HTTP/1.1 200 OK\r\nContent-Length: 2, 5\r\n\r\nhello",
      "HTTP/1.1 200 OK\r\nContent-Length: abc\r\n\r\nhello",
      "HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\nhello",
      "HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999999\r\n\r\n",
      "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\nhello",
      "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n",
      "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n",
      "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n\r\n",
      "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello, world\r\n0\r\n\r\n",
      "HTTP/1.1 200 OK\r\nBad Name: x\r\n\r\n",
      "HTTP/1.1 200 OK\r\n folded: x\r\n\r\n",
      "HTTP/1.1 200 OK\r\nNoColon\r\n\r\n",
  };
  for (const char* s : bad) {
    for (size_t step : {0, 1}) {
      try {
        parse(s, step);
        ADD_FAILURE() << s;
      } catch (const ProtocolError& e) {
        EXPECT_FALSE(e.retryable()) << s;
      }
    }
  }
}

TEST(ResponseParser, EverythingIsBounded) {
  http::ResponseLimits l;
  l.max_body_bytes = 100;
  l.max_header_bytes = 200;
  l.max_header_count = 5;
  l.max_chunk_line = 16;
  auto too_large = [&](const std::string& s) {
    try {
      parse(s, 0, l);
      ADD_FAILURE() << s;
    } catch (const ProtocolError& e) {
      EXPECT_FALSE(e.retryable());
      EXPECT_NE(std::string(e.what()).find("too "), std::string::npos) << e.what();  // too large, long, many
    }
  };
  too_large("HTTP/1.1 200 OK\r\nContent-Length: 101\r\n\r\n");
  too_large("HTTP/1.1 200 OK\r\n\r\n" + std::string(101, 'x'));
  too_large("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n32\r\n" + std::string(50, 'x') + "\r\n33\r\n");
  too_large("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + std::string(30, '0'));
  too_large("HTTP/1.1 200 OK\r\nX: " + std::string(300, 'a'));
  too_large(std::string(300, 'H'));
  too_large("HTTP/1.1 200 OK\r\nA: 1\r\nB: 1\r\nC: 1\r\nD: 1\r\nE: 1\r\nF: 1\r\n\r\n");
  std::string interims;
  for (int i = 0; i < 20; ++i) interims += "HTTP/1.1 100 Continue\r\n\r\n";
  too_large(interims);
  EXPECT_EQ(parse("HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n" + std::string(100, 'x'), 0, l).resp.body.size(),
            100u);
}

TEST(ResponseParser, TruncatedIsNotAnAnswer) {
  EXPECT_THROW(parse("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc"), TransportError);
  EXPECT_THROW(parse("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhel"), TransportError);
  EXPECT_THROW(parse("HTTP/1.1 200 OK\r\nContent-Len"), TransportError);
}

// ---------- URLs ----------

TEST(Url, MalformedUrlsAreConfigErrorsWithoutUserInfo) {
  auto u = http::parse_url("http://127.0.0.1:8000/prefix/?a=b");
  EXPECT_EQ(u.host, "127.0.0.1");
  EXPECT_EQ(u.port, 8000);
  EXPECT_EQ(u.path, "/prefix/?a=b");
  EXPECT_EQ(u.origin, "http://127.0.0.1:8000");
  EXPECT_EQ(http::parse_url("https://[::1]/").port, 443);
  EXPECT_EQ(http::parse_url("https://[::1]/").host, "::1");
  EXPECT_EQ(http::parse_url("http://h?x=1").path, "/?x=1");
  for (const char* bad : {"http://127.0.0.1:99999", "http://127.0.0.1:0", "http://127.0.0.1:-1", "http://h:80x",
                          "http://:80", "http://", "ftp://h", "http://h:", "http://h /", "http://h/a b",
                          "http://h/a\r\nX: y", "http://[::1", "http://h#frag", "localhost:8000"}) {
    try {
      http::parse_url(bad, "endpoint");
      ADD_FAILURE() << bad;
    } catch (const ConfigError& e) {
      EXPECT_NE(std::string(e.what()).find("endpoint"), std::string::npos) << e.what();
    }
  }
  try {
    http::parse_url("https://user:s3cret@dynamodb.example:8000/", "endpoint");
    ADD_FAILURE();
  } catch (const ConfigError& e) {
    EXPECT_EQ(std::string(e.what()).find("s3cret"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("user information"), std::string::npos) << e.what();
  }
}

// An endpoint with a path: the client posts to that path and signs that same path (issue 8
// item 10), so a service behind a path-routing proxy can check the signature.
TEST(Url, AnEndpointWithAPathIsSignedWithIt) {
  std::mutex mu;
  TestRequest seen;
  TestServer server([&](const TestRequest& r) {
    std::lock_guard lock(mu);
    seen = r;
    TestResponse resp;
    resp.body = "{}";
    return resp;
  });
  const auto fixed = aws::SystemClock::time_point(std::chrono::seconds(1700000000));
  aws::Credentials creds;
  creds.access_key_id = "AKIDPATHTEST";
  creds.secret_access_key = "path-test-secret";
  dynamodb::ClientOptions o;
  o.region = "us-east-1";
  o.endpoint = server.url() + "/prefix";
  o.credentials = aws::make_static_provider(creds);
  o.now = [&] { return fixed; };
  dynamodb::Client client(o);
  dynamodb::GetItemRequest g;
  g.table_name = "t";
  g.key.emplace("key", dynamodb::AttributeValue::S("k"));
  EXPECT_FALSE(client.get_item(g).item.has_value());

  std::lock_guard lock(mu);
  EXPECT_EQ(seen.target, "/prefix/");
  // Re-sign what arrived, with the path it arrived on: the signatures must agree.
  std::vector<http::Header> signed_headers;
  for (const auto& h : seen.headers)
    if (h.name == "host" || h.name == "content-type" || h.name == "x-amz-target") signed_headers.push_back(h);
  aws::SigningParams p;
  p.method = "POST";
  p.path = seen.target;
  p.headers = &signed_headers;
  p.body = seen.body;
  p.credentials = &creds;
  p.region = "us-east-1";
  p.service = "dynamodb";
  p.time = fixed;
  ASSERT_NE(seen.header("authorization"), nullptr);
  EXPECT_EQ(*seen.header("authorization"), aws::sign_v4(p).authorization);
}

TEST(Url, AMalformedEndpointIsAConfigErrorBeforeAnyRequest) {
  dynamodb::ClientOptions o;
  o.region = "us-east-1";
  o.credentials = aws::make_static_provider(aws::Credentials{"AKID", "secret", "", std::nullopt, "test"});
  for (const char* bad : {"http://127.0.0.1:99999", "https://user:pw@dynamodb.example", "http://h/a b"}) {
    o.endpoint = bad;
    try {
      dynamodb::Client c(o);
      ADD_FAILURE() << bad;
    } catch (const ConfigError& e) {
      EXPECT_EQ(std::string(e.what()).find("pw@"), std::string::npos) << e.what();
    }
  }
}
