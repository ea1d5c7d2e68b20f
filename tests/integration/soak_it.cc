// Soak test (issue 8): 16 threads of mixed get/set/erase for about a minute through a faulty
// proxy on 127.0.0.1 in front of dynalite, while the credentials rotate every ~3 s.
//
// The proxy answers throttles and 5xx without forwarding, drops connections before and after
// forwarding a request (so a write may have happened though its answer was lost), truncates
// answers and corrupts their bodies under an intact x-amz-crc32. It also checks every
// request's signature (dynalite checks none) against the credentials the rotating provider
// issued for that access key, and that they had not expired when the request was signed.
//
// Each thread owns its keys and keeps what it wrote, so every read is checked: every
// acknowledged write reads back, and no wrong value is ever returned. Leaks are ASan's
// (scripts/test's sanitizer pass); races TSan's. SOAK_SECONDS (default 40) sets the length.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <ctime>
#include <map>
#include <mutex>
#include <random>
#include <thread>

#include "dynamodb_cache/dynamodb_cache.h"
#include "it_env.h"
#include "test_server.h"

using namespace dynamodb_cache;
using testing_support::TestRequest;
using testing_support::TestResponse;
using testing_support::TestServer;

namespace {

// Issues new session credentials on every get(), each valid for 3 s, and remembers them all
// so the proxy can check signatures. Thread-safe.
class RotatingProvider : public aws::CredentialsProvider {
 public:
  aws::Credentials get() override {
    std::lock_guard lock(mu_);
    int n = static_cast<int>(issued_.size());
    aws::Credentials c{"ASIASOAK" + std::to_string(n), "soak-secret-" + std::to_string(rng_()),
                       "soak-token-" + std::to_string(n), aws::SystemClock::now() + std::chrono::seconds(3),
                       "rotating"};
    issued_[c.access_key_id] = c;
    return c;
  }
  std::optional<aws::Credentials> find(const std::string& akid) {
    std::lock_guard lock(mu_);
    auto it = issued_.find(akid);
    if (it == issued_.end()) return std::nullopt;
    return it->second;
  }
  size_t issued() {
    std::lock_guard lock(mu_);
    return issued_.size();
  }

 private:
  std::mutex mu_;
  std::mt19937_64 rng_{42};
  std::map<std::string, aws::Credentials> issued_;
};

std::optional<aws::SystemClock::time_point> parse_amz_date(const std::string& s) {
  std::tm tm{};
  const char* end = strptime(s.c_str(), "%Y%m%dT%H%M%SZ", &tm);
  if (!end || *end) return std::nullopt;
  return aws::SystemClock::from_time_t(timegm(&tm));
}

// Why a request's signature is not what the issued credentials give, or "" when it is.
std::string check_signature(const TestRequest& r, RotatingProvider& creds) {
  const std::string* auth = r.header("authorization");
  const std::string* date = r.header("x-amz-date");
  if (!auth || !date) return "unsigned request";
  auto cred_at = auth->find("Credential="), signed_at = auth->find("SignedHeaders="), sig_at = auth->find("Signature=");
  if (cred_at == std::string::npos || signed_at == std::string::npos || sig_at == std::string::npos)
    return "malformed Authorization";
  std::string akid = auth->substr(cred_at + 11, auth->find('/', cred_at) - cred_at - 11);
  std::string signed_headers = auth->substr(signed_at + 14, auth->find(',', signed_at) - signed_at - 14);
  auto c = creds.find(akid);
  if (!c) return "unknown access key " + akid;
  auto t = parse_amz_date(*date);
  if (!t) return "bad X-Amz-Date";
  if (*t >= *c->expiration) return "signed with credentials " + akid + " after they expired";
  const std::string* token = r.header("x-amz-security-token");
  if (!token || *token != c->session_token) return "session token does not belong to " + akid;
  // Re-sign what the client signed (sign_v4 adds X-Amz-Date and the token itself).
  std::vector<http::Header> headers;
  for (auto& h : r.headers)
    if (h.name != "x-amz-date" && h.name != "x-amz-security-token" &&
        (";" + signed_headers + ";").find(";" + h.name + ";") != std::string::npos)
      headers.push_back(h);
  aws::SigningParams p;
  p.method = "POST";
  p.path = "/";
  p.headers = &headers;
  p.body = r.body;
  p.credentials = &*c;
  p.region = "us-east-1";
  p.service = "dynamodb";
  p.time = *t;
  auto want = aws::sign_v4(p);
  if (*auth != want.authorization) return "signature mismatch for " + akid;
  return "";
}

struct ProxyStats {
  std::atomic<int> requests{0}, forwarded{0}, throttles{0}, errors5xx{0}, reset_before{0}, reset_after{0},
      truncated{0}, bad_crc{0}, bad_signatures{0};
};

}  // namespace

TEST(Soak, SixteenThreadsThroughAFaultyProxyWithRotatingCredentials) {
  const char* secs_env = std::getenv("SOAK_SECONDS");
  const auto duration = std::chrono::seconds(secs_env ? std::atoi(secs_env) : 40);
  auto direct = it::client();  // no faults: table setup and the final check
  const std::string upstream = direct->endpoint() + "/";
  auto table = it::make_cache_table(direct, it::unique_table("soak"));

  auto creds = std::make_shared<RotatingProvider>();
  auto forward = http::make_default_transport();
  ProxyStats stats;
  std::mutex rng_mu, err_mu;
  std::mt19937 rng(20261125);
  std::string first_bad_signature;
  TestServer proxy([&](const TestRequest& r) {
    stats.requests++;
    if (auto why = check_signature(r, *creds); !why.empty()) {
      if (stats.bad_signatures++ == 0) {
        std::lock_guard lock(err_mu);
        first_bad_signature = why;
      }
    }
    int roll;
    {
      std::lock_guard lock(rng_mu);
      roll = static_cast<int>(rng() % 1000);
    }
    TestResponse out;
    auto error = [&](int status, const char* name) {
      out.status = status;
      out.headers.push_back({"Content-Type", "application/x-amz-json-1.0"});
      out.body = std::string(R"({"__type":"com.amazonaws.dynamodb.v20120810#)") + name + R"(","message":"injected"})";
      return out;
    };
    if (roll < 40) {
      stats.throttles++;
      return error(400, "ThrottlingException");
    }
    if (roll < 70) {
      stats.errors5xx++;
      return roll < 55 ? error(500, "InternalServerError") : error(503, "ServiceUnavailable");
    }
    if (roll < 75) {
      stats.reset_before++;
      out.raw.emplace();  // the connection closes, nothing forwarded
      return out;
    }
    try {
      out = testing_support::forward_dynamodb(*forward, upstream, r);
    } catch (const Error&) {
      return error(500, "InternalServerError");
    }
    stats.forwarded++;
    if (roll < 80) {  // the write happened, its answer is lost
      stats.reset_after++;
      out.raw.emplace();
    } else if (roll < 85 && out.body.size() > 1) {
      stats.truncated++;
      std::string raw = "HTTP/1.1 " + std::to_string(out.status) + " OK\r\n";
      for (auto& h : out.headers) raw += h.name + ": " + h.value + "\r\n";
      raw += "Content-Length: " + std::to_string(out.body.size()) + "\r\n\r\n" + out.body.substr(0, out.body.size() / 2);
      out.raw.emplace(std::move(raw));
    } else if (roll < 105 && !out.body.empty()) {
      stats.bad_crc++;
      out.body[out.body.size() / 2] ^= 0x01;  // x-amz-crc32 left as it was
    }
    return out;
  });

  dynamodb::ClientOptions o;
  o.region = "us-east-1";
  o.endpoint = proxy.url();
  o.credentials = aws::make_caching_provider(creds, std::chrono::seconds(1));
  o.retry.max_attempts = 10;
  auto client = std::make_shared<dynamodb::Client>(o);
  DynamodbOptions bo;
  bo.table = table.options().name;
  bo.consistent_read = true;
  DynamodbBackend cache(client, bo);

  constexpr int kThreads = 16, kKeys = 40;
  std::atomic<int> ops{0}, failed{0}, wrong{0};
  std::string first_problem;
  auto problem = [&](const std::string& what) {
    std::lock_guard lock(err_mu);
    if (first_problem.empty()) first_problem = what;
  };
  // What each key may hold: exactly one value after an acknowledged write or erase; after a
  // failed one, the old possibilities plus the new (nullopt: absent).
  using Possible = std::vector<std::optional<std::string>>;
  std::vector<std::map<int, Possible>> models(kThreads);
  const auto stop_at = std::chrono::steady_clock::now() + duration;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      std::mt19937 r(static_cast<unsigned>(t) * 7919u + 1u);
      auto& model = models[static_cast<size_t>(t)];
      for (int k = 0; k < kKeys; ++k) model[k] = {std::nullopt};
      for (int seq = 0; std::chrono::steady_clock::now() < stop_at; ++seq) {
        int k = static_cast<int>(r() % kKeys), op = static_cast<int>(r() % 100);
        std::string key = "soak-" + std::to_string(t) + "-" + std::to_string(k);
        Possible& possible = model[k];
        ops++;
        try {
          if (op < 45) {
            auto got = cache.get(key);
            if (std::find(possible.begin(), possible.end(), got) == possible.end()) {
              wrong++;
              problem(key + ": read a value never written there (or lost an acknowledged write)");
            }
            possible = {got};
          } else if (op < 85) {
            std::string value = key + "#" + std::to_string(seq) + "#" + std::string(r() % 2000, static_cast<char>('a' + seq % 26));
            try {
              cache.set(key, value, Ttl(0));
              possible = {value};
            } catch (const Error&) {
              possible.push_back(value);
              throw;
            }
          } else {
            try {
              cache.erase(key);
              possible = {std::nullopt};
            } catch (const Error&) {
              possible.push_back(std::nullopt);
              throw;
            }
          }
        } catch (const Error& e) {
          failed++;
          problem(std::string("operation failed: ") + e.what());
        }
        // A pause between operations keeps the proxy's thread-per-connection count (every
        // dropped connection is a new one) within what the sanitizers allow.
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
      }
    });
  }
  for (auto& th : threads) th.join();

  // Every key as its owner last knew it, read without faults.
  DynamodbBackend check(direct, bo);
  int checked = 0;
  for (int t = 0; t < kThreads; ++t)
    for (auto& [k, possible] : models[static_cast<size_t>(t)]) {
      std::string key = "soak-" + std::to_string(t) + "-" + std::to_string(k);
      auto got = check.get(key);
      ++checked;
      if (std::find(possible.begin(), possible.end(), got) == possible.end()) {
        wrong++;
        problem(key + ": final value is not the last acknowledged one");
      }
    }

  std::printf("soak: %d ops, %d requests at the proxy (%d forwarded; injected: %d throttles, %d 5xx, "
              "%d resets before and %d after forwarding, %d truncated, %d bad CRC), %zu credentials issued, "
              "%llu retries\n",
              ops.load(), stats.requests.load(), stats.forwarded.load(), stats.throttles.load(), stats.errors5xx.load(),
              stats.reset_before.load(), stats.reset_after.load(), stats.truncated.load(), stats.bad_crc.load(),
              creds->issued(), static_cast<unsigned long long>(client->stats().retries.load()));
  EXPECT_EQ(checked, kThreads * kKeys);
  EXPECT_EQ(wrong.load(), 0) << first_problem;
  EXPECT_EQ(failed.load(), 0) << first_problem;
  EXPECT_EQ(stats.bad_signatures.load(), 0) << first_bad_signature;
  // The faults and the rotation really happened.
  EXPECT_GT(ops.load(), 1000);
  for (int n : {stats.throttles.load(), stats.errors5xx.load(), stats.reset_before.load(), stats.reset_after.load(),
                stats.truncated.load(), stats.bad_crc.load()})
    EXPECT_GT(n, 0);
  // New credentials at the latest every 3 s (expiry), the first one after the table setup.
  EXPECT_GE(creds->issued(), static_cast<size_t>(duration.count() / 4));
  table.drop(true);
}
