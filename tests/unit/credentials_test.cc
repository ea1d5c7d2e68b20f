// Credential providers, the chain, the cache, region and endpoint resolution. Container and
// IMDS providers talk to loopback servers started here.
#include <gtest/gtest.h>

#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <regex>
#include <thread>

#include "aws/parsers.h"
#include "aws/providers.h"
#include "dynamodb_cache/aws.h"
#include "dynamodb_cache/dynamodb.h"
#include "dynamodb_cache/errors.h"
#include "dynamodb_cache/log.h"
#include "scoped_env.h"
#include "temp_file.h"
#include "test_server.h"

using namespace dynamodb_cache;
using testing_support::TestRequest;
using testing_support::TestResponse;
using testing_support::TestServer;

namespace {

using testing_support::ScopedEnv;

// Every variable the providers read, cleared.
ScopedEnv clean_env() {
  return ScopedEnv{{"AWS_ACCESS_KEY_ID", nullptr}, {"AWS_SECRET_ACCESS_KEY", nullptr},
                   {"AWS_SESSION_TOKEN", nullptr}, {"AWS_PROFILE", nullptr},
                   {"AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/credentials"},
                   {"AWS_CONFIG_FILE", "/nonexistent/config"},
                   {"AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", nullptr},
                   {"AWS_CONTAINER_CREDENTIALS_FULL_URI", nullptr},
                   {"AWS_CONTAINER_AUTHORIZATION_TOKEN", nullptr},
                   {"AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE", nullptr},
                   {"AWS_EC2_METADATA_DISABLED", "true"}, {"AWS_EC2_METADATA_SERVICE_ENDPOINT", nullptr},
                   {"AWS_REGION", nullptr}, {"AWS_DEFAULT_REGION", nullptr},
                   {"AWS_ENDPOINT_URL", nullptr}, {"AWS_ENDPOINT_URL_DYNAMODB", nullptr},
                   {"AWS_ENDPOINT_URL_STS", nullptr}, {"AWS_ENDPOINT_URL_SSO", nullptr},
                   {"AWS_IGNORE_CONFIGURED_ENDPOINT_URLS", nullptr}, {"AWS_WEB_IDENTITY_TOKEN_FILE", nullptr},
                   {"AWS_ROLE_ARN", nullptr}, {"AWS_ROLE_SESSION_NAME", nullptr}, {"AWS_CA_BUNDLE", nullptr},
                   {"AWS_SDK_UA_APP_ID", nullptr}};
}

using testing_support::temp_file;

std::string creds_json(const std::string& id, const std::string& expiration) {
  return R"({"Code":"Success","AccessKeyId":")" + id +
         R"(","SecretAccessKey":"SECRET-)" + id + R"(","Token":"TOKEN-)" + id + R"(","Expiration":")" +
         expiration + R"("})";
}

}  // namespace

TEST(Credentials, EnvironmentProvider) {
  auto env = clean_env();
  EXPECT_THROW(aws::make_environment_provider()->get(), CredentialsError);
  ScopedEnv set{{"AWS_ACCESS_KEY_ID", "AKIDENV"}, {"AWS_SECRET_ACCESS_KEY", "secretenv"},
                {"AWS_SESSION_TOKEN", "tokenenv"}};
  auto c = aws::make_environment_provider()->get();
  EXPECT_EQ(c.access_key_id, "AKIDENV");
  EXPECT_EQ(c.secret_access_key, "secretenv");
  EXPECT_EQ(c.session_token, "tokenenv");
  ScopedEnv half{{"AWS_SECRET_ACCESS_KEY", nullptr}};
  try {
    aws::make_environment_provider()->get();
    ADD_FAILURE();
  } catch (const CredentialsError& e) {
    EXPECT_NE(std::string(e.what()).find("AWS_SECRET_ACCESS_KEY"), std::string::npos);
  }
}

TEST(Credentials, ProfileFromCredentialsAndConfigFiles) {
  auto env = clean_env();
  auto creds = temp_file("credentials",
                         "[default]\naws_access_key_id = AKIDDEFAULT\naws_secret_access_key = s1\n"
                         "# comment\n[work]\naws_access_key_id=AKIDWORK\naws_secret_access_key=s2\n"
                         "aws_session_token=t2\n");
  auto config = temp_file("config",
                          "[default]\nregion = eu-west-1\n[profile dev]\nregion = ap-south-1\n"
                          "aws_access_key_id = AKIDDEV\naws_secret_access_key = s3\n"
                          "s3 =\n  max_concurrent_requests = 10\n");
  ScopedEnv files{{"AWS_SHARED_CREDENTIALS_FILE", creds.c_str()}, {"AWS_CONFIG_FILE", config.c_str()}};
  EXPECT_EQ(aws::make_profile_provider()->get().access_key_id, "AKIDDEFAULT");
  auto work = aws::make_profile_provider({"work", "", ""})->get();
  EXPECT_EQ(work.access_key_id, "AKIDWORK");
  EXPECT_EQ(work.session_token, "t2");
  EXPECT_EQ(aws::make_profile_provider({"dev", "", ""})->get().access_key_id, "AKIDDEV");
  {
    ScopedEnv p{{"AWS_PROFILE", "dev"}};
    EXPECT_EQ(aws::make_profile_provider()->get().access_key_id, "AKIDDEV");
    EXPECT_EQ(aws::resolve_region(), "ap-south-1");
  }
  EXPECT_EQ(aws::resolve_region(), "eu-west-1");
  EXPECT_THROW(aws::make_profile_provider({"nope", "", ""})->get(), CredentialsError);
}

TEST(Credentials, ChainOrderEnvFirstThenProfile) {
  auto env = clean_env();
  auto creds = temp_file("credentials2", "[default]\naws_access_key_id=AKIDFILE\naws_secret_access_key=s\n");
  ScopedEnv files{{"AWS_SHARED_CREDENTIALS_FILE", creds.c_str()}};
  EXPECT_EQ(aws::make_default_chain()->get().access_key_id, "AKIDFILE");
  ScopedEnv e{{"AWS_ACCESS_KEY_ID", "AKIDENV"}, {"AWS_SECRET_ACCESS_KEY", "x"}};
  EXPECT_EQ(aws::make_default_chain()->get().access_key_id, "AKIDENV");
}

TEST(Credentials, ChainWithNothingNamesEveryProvider) {
  auto env = clean_env();
  try {
    aws::make_default_chain()->get();
    ADD_FAILURE();
  } catch (const CredentialsError& e) {
    std::string w = e.what();
    for (auto* part : {"environment", "profile", "container", "imds"})
      EXPECT_NE(w.find(part), std::string::npos) << part << " in " << w;
  }
}

TEST(Credentials, ContainerProviderFullUriWithTokenFile) {
  auto env = clean_env();
  std::atomic<int> hits{0};
  TestServer server([&](const TestRequest& r) {
    ++hits;
    TestResponse resp;
    if (r.target != "/creds" || !r.header("authorization") || *r.header("authorization") != "Bearer abc") {
      resp.status = 401;
      return resp;
    }
    resp.body = creds_json("AKIDCONTAINER", "2099-01-01T00:00:00Z");
    return resp;
  });
  auto token_file = temp_file("token", "Bearer abc\n");
  std::string url = server.url() + "/creds";
  ScopedEnv e{{"AWS_CONTAINER_CREDENTIALS_FULL_URI", url.c_str()},
              {"AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE", token_file.c_str()},
              {"AWS_CONTAINER_AUTHORIZATION_TOKEN", "Bearer wrong"}};  // the file wins
  auto c = aws::make_container_provider()->get();
  EXPECT_EQ(c.access_key_id, "AKIDCONTAINER");
  EXPECT_EQ(c.session_token, "TOKEN-AKIDCONTAINER");
  ASSERT_TRUE(c.expiration);
  // Through the default chain too (env and profile have nothing).
  EXPECT_EQ(aws::make_default_chain()->get().access_key_id, "AKIDCONTAINER");

  ScopedEnv wrong{{"AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE", nullptr}};
  try {
    aws::make_container_provider()->get();
    ADD_FAILURE();
  } catch (const CredentialsError& e) {
    EXPECT_NE(std::string(e.what()).find("401"), std::string::npos);
  }
}

TEST(Credentials, ContainerFullUriMustBeLoopbackOrHttps) {
  auto env = clean_env();
  ScopedEnv e{{"AWS_CONTAINER_CREDENTIALS_FULL_URI", "http://192.0.2.10/creds"}};
  EXPECT_THROW(aws::make_container_provider()->get(), CredentialsError);
}

namespace {
// A scripted IMDSv2: tokens, a role, credentials; tokens can be revoked to force a 401.
struct FakeImds {
  std::mutex mu;
  int token_requests = 0;
  std::string valid_token;
  std::string role = "cache-role";
  std::string expiration = "2099-01-01T00:00:00Z";
  int cred_version = 0;
  TestServer server{[this](const TestRequest& r) { return handle(r); }};

  TestResponse handle(const TestRequest& r) {
    std::lock_guard lock(mu);
    TestResponse resp;
    if (r.method == "PUT" && r.target == "/latest/api/token") {
      if (!r.header("x-aws-ec2-metadata-token-ttl-seconds")) { resp.status = 400; return resp; }
      valid_token = "tok" + std::to_string(++token_requests);
      resp.body = valid_token;
      return resp;
    }
    const std::string* tok = r.header("x-aws-ec2-metadata-token");
    if (!tok || *tok != valid_token) { resp.status = 401; return resp; }
    const std::string base = "/latest/meta-data/iam/security-credentials/";
    if (r.target == base) {
      if (role.empty()) { resp.status = 404; return resp; }
      resp.body = role + "\n";
      return resp;
    }
    if (r.target == base + role) {
      resp.body = creds_json("AKIDIMDS" + std::to_string(++cred_version), expiration);
      return resp;
    }
    resp.status = 404;
    return resp;
  }
};
}  // namespace

TEST(Credentials, ImdsV2TokenRoleCredentialsAndTokenRenewal) {
  auto env = clean_env();
  FakeImds imds;
  std::string ep = imds.server.url();
  ScopedEnv e{{"AWS_EC2_METADATA_DISABLED", nullptr}, {"AWS_EC2_METADATA_SERVICE_ENDPOINT", ep.c_str()}};
  auto p = aws::make_imds_provider();
  auto c = p->get();
  EXPECT_EQ(c.access_key_id, "AKIDIMDS1");
  EXPECT_EQ(c.secret_access_key, "SECRET-AKIDIMDS1");
  EXPECT_EQ(imds.token_requests, 1);
  p->get();
  EXPECT_EQ(imds.token_requests, 1);  // token reused while valid
  {
    std::lock_guard lock(imds.mu);
    imds.valid_token = "revoked";  // token expired server-side
  }
  EXPECT_EQ(p->get().access_key_id, "AKIDIMDS3");
  EXPECT_EQ(imds.token_requests, 2);  // a 401 fetched a new token once
}

TEST(Credentials, ImdsWithoutRoleAndDisabled) {
  auto env = clean_env();
  FakeImds imds;
  imds.role = "";
  std::string ep = imds.server.url();
  ScopedEnv e{{"AWS_EC2_METADATA_DISABLED", nullptr}, {"AWS_EC2_METADATA_SERVICE_ENDPOINT", ep.c_str()}};
  try {
    aws::make_imds_provider()->get();
    ADD_FAILURE();
  } catch (const CredentialsError& e) {
    EXPECT_NE(std::string(e.what()).find("no IAM role"), std::string::npos) << e.what();
  }
  ScopedEnv off{{"AWS_EC2_METADATA_DISABLED", "true"}};
  int before = imds.server.requests();
  EXPECT_THROW(aws::make_imds_provider()->get(), CredentialsError);
  EXPECT_EQ(imds.server.requests(), before);  // disabled means no traffic at all
}

TEST(Credentials, ImdsThroughDefaultChainRefreshesBeforeExpiry) {
  auto env = clean_env();
  FakeImds imds;
  std::string ep = imds.server.url();
  ScopedEnv e{{"AWS_EC2_METADATA_DISABLED", nullptr}, {"AWS_EC2_METADATA_SERVICE_ENDPOINT", ep.c_str()}};
  // Credentials that expire 2 minutes from "now": inside the 5-minute refresh window.
  auto now = std::chrono::system_clock::now();
  auto exp = std::chrono::floor<std::chrono::seconds>(now + std::chrono::minutes(2));
  std::time_t t = std::chrono::system_clock::to_time_t(exp);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", std::gmtime(&t));
  imds.expiration = buf;
  auto fake_now = std::make_shared<std::atomic<int64_t>>(0);
  auto provider = aws::make_caching_provider(
      aws::make_imds_provider(), std::chrono::minutes(5),
      [=] { return now + std::chrono::seconds(fake_now->load()); });
  EXPECT_EQ(provider->get().access_key_id, "AKIDIMDS1");
  EXPECT_EQ(provider->get().access_key_id, "AKIDIMDS1");  // no refresh within 10 s of the last
  fake_now->store(11);
  EXPECT_EQ(provider->get().access_key_id, "AKIDIMDS2");  // refreshed ahead of expiry
}

namespace {
class CountingProvider : public aws::CredentialsProvider {
 public:
  std::atomic<int> calls{0};
  std::atomic<bool> fail{false};
  std::chrono::system_clock::time_point expiration;
  aws::Credentials get() override {
    int n = ++calls;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    if (fail) throw CredentialsError("refresh failed", true);
    return aws::Credentials{"AKID" + std::to_string(n), "s", "t", expiration, "counting"};
  }
};

// A CountingProvider whose credentials expire at base + 60 min, cached with a 5-minute
// refresh window, on a clock at base + t seconds.
struct CountedCache {
  std::shared_ptr<CountingProvider> inner = std::make_shared<CountingProvider>();
  std::atomic<int64_t> t{0};
  std::chrono::system_clock::time_point base{std::chrono::seconds(1'000'000)};
  std::shared_ptr<aws::CredentialsProvider> cache;
  CountedCache() {
    inner->expiration = base + std::chrono::minutes(60);
    cache = aws::make_caching_provider(inner, std::chrono::minutes(5),
                                       [this] { return base + std::chrono::seconds(t.load()); });
  }
};
}  // namespace

// get_into (the client's call per request) follows get()'s rules: fresh credentials from the
// cache, a refresh inside the window, a fetch again after invalidate().
TEST(Credentials, CachingProviderGetIntoFollowsGet) {
  CountedCache f;
  auto& [inner, t, base, cache] = f;
  aws::Credentials out;
  cache->get_into(out);
  EXPECT_EQ(out.access_key_id, "AKID1");
  EXPECT_EQ(out.secret_access_key, "s");
  EXPECT_EQ(out.session_token, "t");
  cache->get_into(out);
  EXPECT_EQ(inner->calls.load(), 1);
  t = 56 * 60;  // inside the refresh window
  inner->expiration = base + std::chrono::minutes(120);
  cache->get_into(out);
  EXPECT_EQ(out.access_key_id, "AKID2");
  cache->invalidate();
  cache->get_into(out);
  EXPECT_EQ(out.access_key_id, "AKID3");
  EXPECT_EQ(inner->calls.load(), 3);
}

TEST(Credentials, CachingProviderRefreshesOnceForAllThreads) {
  CountedCache f;
  // References, not a structured binding: the lambdas below capture `cache`, and clang 14
  // cannot capture a structured binding (C++20 allows it; clang 16 implements it).
  auto& inner = f.inner;
  auto& t = f.t;
  auto& base = f.base;
  auto& cache = f.cache;
  std::vector<std::thread> threads;
  for (int i = 0; i < 8; ++i)
    threads.emplace_back([&] { for (int j = 0; j < 50; ++j) EXPECT_EQ(cache->get().access_key_id, "AKID1"); });
  for (auto& th : threads) th.join();
  EXPECT_EQ(inner->calls.load(), 1);

  // Inside the refresh window: one thread refreshes, the others keep the valid old ones.
  t = 56 * 60;
  inner->expiration = base + std::chrono::minutes(120);
  threads.clear();
  for (int i = 0; i < 8; ++i) threads.emplace_back([&] { cache->get(); });
  for (auto& th : threads) th.join();
  EXPECT_EQ(inner->calls.load(), 2);
  EXPECT_EQ(cache->get().access_key_id, "AKID2");

  // A failed refresh keeps credentials that are still valid; once they expire and the
  // refresh still fails, they are used 5-10 more minutes (static stability), then dropped.
  t = 116 * 60;
  inner->fail = true;
  EXPECT_EQ(cache->get().access_key_id, "AKID2");
  t = 121 * 60;
  EXPECT_EQ(cache->get().access_key_id, "AKID2");
  t = 131 * 60 + 1;
  EXPECT_THROW(cache->get(), CredentialsError);
}

TEST(Config, RegionAndEndpointResolution) {
  auto env = clean_env();
  EXPECT_THROW(aws::resolve_region(), ConfigError);
  EXPECT_EQ(aws::resolve_region("ca-central-1"), "ca-central-1");
  {
    ScopedEnv e{{"AWS_DEFAULT_REGION", "us-west-1"}};
    EXPECT_EQ(aws::resolve_region(), "us-west-1");
    ScopedEnv r{{"AWS_REGION", "us-east-2"}};
    EXPECT_EQ(aws::resolve_region(), "us-east-2");
  }
  EXPECT_EQ(aws::resolve_dynamodb_endpoint("eu-central-1"), "https://dynamodb.eu-central-1.amazonaws.com");
  EXPECT_EQ(aws::resolve_dynamodb_endpoint("cn-north-1"), "https://dynamodb.cn-north-1.amazonaws.com.cn");
  EXPECT_EQ(aws::resolve_dynamodb_endpoint("x", "http://127.0.0.1:8000/"), "http://127.0.0.1:8000");
  ScopedEnv g{{"AWS_ENDPOINT_URL", "http://127.0.0.1:1"}};
  EXPECT_EQ(aws::resolve_dynamodb_endpoint("us-east-1"), "http://127.0.0.1:1");
  ScopedEnv d{{"AWS_ENDPOINT_URL_DYNAMODB", "http://127.0.0.1:2"}};
  EXPECT_EQ(aws::resolve_dynamodb_endpoint("us-east-1"), "http://127.0.0.1:2");
  EXPECT_EQ(aws::resolve_dynamodb_endpoint("us-east-1", "http://127.0.0.1:3"), "http://127.0.0.1:3");
}

// ---- the rest of the SDK chain: credential_process, AssumeRole, web identity, SSO ----

namespace {

std::string iso8601_in(std::chrono::seconds from_now) {
  std::time_t t = std::chrono::system_clock::to_time_t(std::chrono::system_clock::now() + from_now);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", std::gmtime(&t));
  return buf;
}

// Every error a provider throws is checked for these: no secret may ever appear in one.
void expect_no_secret(const std::string& message) {
  for (const char* secret : {"SECRET-", "TOKEN-", "web-identity-token-value", "sso-access-token-value",
                             "source-secret", "process-secret", "refresh-token-value", "client-secret-value",
                             "old-access-token"})
    EXPECT_EQ(message.find(secret), std::string::npos) << message;
}

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const CredentialsError& e) {
    expect_no_secret(e.what());
    return e.what();
  } catch (const Error& e) {
    return std::string("other error: ") + e.what();
  }
  return "no error";
}

// The query-string value of `name` in a form body, percent-decoded.
std::string form_value(const std::string& body, const std::string& name) {
  std::string key = name + "=";
  size_t at = 0;
  while ((at = body.find(key, at)) != std::string::npos) {
    if (at == 0 || body[at - 1] == '&') break;
    at += key.size();
  }
  if (at == std::string::npos) return "<absent>";
  std::string raw = body.substr(at + key.size(), body.find('&', at) - at - key.size()), out;
  for (size_t i = 0; i < raw.size(); ++i) {
    if (raw[i] == '%' && i + 2 < raw.size() + 0) {
      out += static_cast<char>(std::stoi(raw.substr(i + 1, 2), nullptr, 16));
      i += 2;
    } else {
      out += raw[i] == '+' ? ' ' : raw[i];
    }
  }
  return out;
}

// A loopback STS: answers AssumeRole and AssumeRoleWithWebIdentity with numbered credentials
// (ASIASTS1, ASIASTS2, ...), records each request; `error` makes it answer an ErrorResponse.
struct FakeSts {
  std::mutex mu;
  std::vector<TestRequest> requests;
  std::optional<std::string> error;  // an STS error code to answer with
  std::string expiration = iso8601_in(std::chrono::hours(1));
  TestServer server{[this](const TestRequest& r) { return handle(r); }};

  TestResponse handle(const TestRequest& r) {
    std::lock_guard lock(mu);
    requests.push_back(r);
    TestResponse resp;
    resp.headers.push_back({"Content-Type", "text/xml"});
    if (error) {
      resp.status = 403;
      resp.body = "<ErrorResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\"><Error><Type>Sender</Type><Code>" +
                  *error + "</Code><Message>Not authorized to perform sts:AssumeRole &amp; more</Message></Error>"
                  "<RequestId>r-1</RequestId></ErrorResponse>";
      return resp;
    }
    std::string action = form_value(r.body, "Action");
    std::string id = "ASIASTS" + std::to_string(requests.size());
    resp.body = "<" + action + "Response xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\"><" + action +
                "Result><Credentials><AccessKeyId>" + id + "</AccessKeyId><SecretAccessKey>SECRET-" + id +
                "</SecretAccessKey><SessionToken>TOKEN-" + id + "&amp;x</SessionToken><Expiration>" + expiration +
                "</Expiration></Credentials></" + action + "Result></" + action + "Response>";
    return resp;
  }
  TestRequest request(size_t i) {
    std::lock_guard lock(mu);
    return requests.at(i);
  }
  size_t count() {
    std::lock_guard lock(mu);
    return requests.size();
  }
};

// The access key id in a SigV4 Authorization header, and its scope's region and service.
std::string credential_scope(const TestRequest& r) {
  const std::string* auth = r.header("authorization");
  if (!auth) return "<unsigned>";
  auto b = auth->find("Credential=") + 11;
  return auth->substr(b, auth->find(',', b) - b);
}

}  // namespace

TEST(ParseIni, SubPropertiesContinuationsAndComments) {
  auto ini = aws::detail::parse_ini(
      "# top comment\nstray = ignored\n[profile a]  \n Region = us-west-2\nkey=v=w\n; c\n"
      "s3 =\n  max_concurrent_requests = 10\n  addressing_style: path\nname = x\n  more\n"
      "[services local]\ndynamodb =\n  endpoint_url = http://127.0.0.1:1\n[broken\nk = v\n[b]\nsecret = a#b\n");
  ASSERT_EQ(ini.count("profile a"), 1u);
  auto& a = ini["profile a"];
  EXPECT_EQ(a["region"], "us-west-2");
  EXPECT_EQ(a["key"], "v=w");
  EXPECT_EQ(a["s3.max_concurrent_requests"], "10");
  EXPECT_EQ(a["s3.addressing_style"], "path");
  EXPECT_EQ(a["name"], "x\nmore");
  EXPECT_EQ(ini["services local"]["dynamodb.endpoint_url"], "http://127.0.0.1:1");
  EXPECT_EQ(ini["b"]["secret"], "a#b");  // no inline comments, as in the AWS CLI
  EXPECT_EQ(ini["b"].count("k"), 0u);    // a broken header's lines belong to no section
  EXPECT_EQ(ini.size(), 3u);
}

TEST(CredentialProcess, JsonVersion1WithExpiration) {
  auto env = clean_env();
  auto exp = iso8601_in(std::chrono::hours(1));
  auto script = temp_file("process.sh",
                          "#!/bin/sh\nprintf '%s' '{\"Version\": 1, \"AccessKeyId\": "
                          "\"AKIDPROC\", \"SecretAccessKey\": \"process-secret\", \"SessionToken\": \"TOKEN-p\", "
                          "\"Expiration\": \"" + exp + "\"}'\n");
  auto c = aws::make_process_provider("sh " + script)->get();
  EXPECT_EQ(c.access_key_id, "AKIDPROC");
  EXPECT_EQ(c.secret_access_key, "process-secret");
  EXPECT_EQ(c.session_token, "TOKEN-p");
  ASSERT_TRUE(c.expiration);
  EXPECT_GT(*c.expiration, std::chrono::system_clock::now() + std::chrono::minutes(59));
  // Without Expiration they do not expire.
  auto nexp = aws::make_process_provider(
                  R"(echo '{"Version":1,"AccessKeyId":"AKIDP2","SecretAccessKey":"process-secret"}')")
                  ->get();
  EXPECT_EQ(nexp.access_key_id, "AKIDP2");
  EXPECT_FALSE(nexp.expiration);
  // A "never" far beyond what system_clock holds is clamped, not overflowed (a fuzz finding).
  auto far = aws::make_process_provider(
                 R"(echo '{"Version":1,"AccessKeyId":"A","SecretAccessKey":"s","Expiration":"9999-12-31T23:59:59Z"}')")
                 ->get();
  ASSERT_TRUE(far.expiration);
  EXPECT_GT(*far.expiration, std::chrono::system_clock::now() + std::chrono::hours(24 * 365 * 200));
  auto sso = aws::detail::parse_sso_role_credentials(
      R"({"roleCredentials":{"accessKeyId":"A","secretAccessKey":"s","expiration":253402300799000}})", "sso");
  EXPECT_GT(*sso.expiration, std::chrono::system_clock::now() + std::chrono::hours(24 * 365 * 200));
}

TEST(CredentialProcess, FailuresAreClearAndQuoteNothing) {
  auto env = clean_env();
  // Its standard error never reaches the message, nor our standard error unless that is a
  // terminal (here it is a capture file, as a service's log would be).
  testing::internal::CaptureStderr();
  auto e = error_of([] {
    aws::make_process_provider("echo process-secret >&2; echo process-secret; exit 3", "credential_process of p")->get();
  });
  EXPECT_EQ(testing::internal::GetCapturedStderr(), "");
  EXPECT_NE(e.find("run it by hand"), std::string::npos) << e;
  EXPECT_NE(e.find("credential_process of p"), std::string::npos) << e;
  EXPECT_NE(e.find("status 3"), std::string::npos) << e;
  e = error_of([] { aws::make_process_provider(R"(echo '{"Version":2,"AccessKeyId":"A","SecretAccessKey":"process-secret"}')")->get(); });
  EXPECT_NE(e.find("Version"), std::string::npos) << e;
  e = error_of([] { aws::make_process_provider("echo not json process-secret")->get(); });
  EXPECT_NE(e.find("not a JSON object"), std::string::npos) << e;
  e = error_of([] { aws::make_process_provider(R"(echo '{"Version":1,"AccessKeyId":"A"}')")->get(); });
  EXPECT_NE(e.find("SecretAccessKey"), std::string::npos) << e;
  // Bounded in time and size.
  auto start = std::chrono::steady_clock::now();
  e = error_of([] { aws::make_process_provider("sleep 30", "slow", std::chrono::milliseconds(300))->get(); });
  EXPECT_NE(e.find("timed out"), std::string::npos) << e;
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(10));
  e = error_of([] { aws::make_process_provider("yes process-secret | head -c 3000000")->get(); });
  EXPECT_NE(e.find("more than 1 MiB"), std::string::npos) << e;
}

TEST(CredentialProcess, FromAProfileThroughTheDefaultChain) {
  auto env = clean_env();
  auto config = temp_file("config-process",
                          "[profile proc]\ncredential_process = echo '{\"Version\":1,\"AccessKeyId\":\"AKIDCHAIN\","
                          "\"SecretAccessKey\":\"process-secret\"}'\n"
                          "aws_access_key_id = AKIDSTATIC\naws_secret_access_key = s\n");
  ScopedEnv files{{"AWS_CONFIG_FILE", config.c_str()}, {"AWS_PROFILE", "proc"}};
  // credential_process outranks static keys in the same profile (the SDKs' order).
  EXPECT_EQ(aws::make_default_chain()->get().access_key_id, "AKIDCHAIN");
}

namespace {
// A config with a role chain: role-b assumes its role with role-a's credentials, which come
// from assuming role-a with static keys of `base`.
std::string role_config(const std::string& extra = "") {
  return "[profile base]\naws_access_key_id = AKIDSOURCE\naws_secret_access_key = source-secret\n"
         "[profile role-a]\nrole_arn = arn:aws:iam::123456789012:role/a\nsource_profile = base\n"
         "external_id = ext-1\nrole_session_name = sess-a\nduration_seconds = 1800\n"
         "[profile role-b]\nrole_arn = arn:aws:iam::123456789012:role/b\nsource_profile = role-a\n"
         "region = eu-west-1\n" + extra;
}
}  // namespace

TEST(AssumeRole, SourceProfileSignedWithSigV4AtTheStsEndpoint) {
  auto env = clean_env();
  FakeSts sts;
  auto config = temp_file("config-role", role_config());
  std::string url = sts.server.url();
  ScopedEnv e{{"AWS_CONFIG_FILE", config.c_str()}, {"AWS_ENDPOINT_URL_STS", url.c_str()},
              {"AWS_REGION", "us-west-2"}};
  auto c = aws::make_profile_provider({"role-a", "", ""})->get();
  EXPECT_EQ(c.access_key_id, "ASIASTS1");
  EXPECT_EQ(c.secret_access_key, "SECRET-ASIASTS1");
  EXPECT_EQ(c.session_token, "TOKEN-ASIASTS1&x");  // XML entities decoded
  ASSERT_TRUE(c.expiration);
  ASSERT_EQ(sts.count(), 1u);
  auto r = sts.request(0);
  EXPECT_EQ(r.method, "POST");
  EXPECT_EQ(form_value(r.body, "Action"), "AssumeRole");
  EXPECT_EQ(form_value(r.body, "Version"), "2011-06-15");
  EXPECT_EQ(form_value(r.body, "RoleArn"), "arn:aws:iam::123456789012:role/a");
  EXPECT_EQ(form_value(r.body, "RoleSessionName"), "sess-a");
  EXPECT_EQ(form_value(r.body, "ExternalId"), "ext-1");
  EXPECT_EQ(form_value(r.body, "DurationSeconds"), "1800");
  // Signed by the source profile's keys, for STS in the resolved region.
  EXPECT_NE(credential_scope(r).find("AKIDSOURCE/"), std::string::npos) << credential_scope(r);
  EXPECT_NE(credential_scope(r).find("/us-west-2/sts/aws4_request"), std::string::npos) << credential_scope(r);
  ASSERT_TRUE(r.header("x-amz-date"));
  EXPECT_EQ(*r.header("content-type"), "application/x-www-form-urlencoded; charset=utf-8");
}

TEST(AssumeRole, ChainedProfilesEachSignedByThePrevious) {
  auto env = clean_env();
  FakeSts sts;
  auto config = temp_file("config-chain", role_config());
  std::string url = sts.server.url();
  ScopedEnv e{{"AWS_CONFIG_FILE", config.c_str()}, {"AWS_ENDPOINT_URL_STS", url.c_str()}};
  auto provider = aws::make_profile_provider({"role-b", "", ""});
  EXPECT_EQ(provider->get().access_key_id, "ASIASTS2");
  ASSERT_EQ(sts.count(), 2u);
  EXPECT_EQ(form_value(sts.request(0).body, "RoleArn"), "arn:aws:iam::123456789012:role/a");
  EXPECT_EQ(form_value(sts.request(1).body, "RoleArn"), "arn:aws:iam::123456789012:role/b");
  // role-b's call is signed with role-a's session, its token sent; the region is role-b's.
  EXPECT_NE(credential_scope(sts.request(1)).find("ASIASTS1/"), std::string::npos);
  EXPECT_NE(credential_scope(sts.request(1)).find("/eu-west-1/sts/"), std::string::npos);
  ASSERT_TRUE(sts.request(1).header("x-amz-security-token"));
  EXPECT_EQ(*sts.request(1).header("x-amz-security-token"), "TOKEN-ASIASTS1&x");
  // A session name is made up when none is configured.
  EXPECT_EQ(form_value(sts.request(1).body, "RoleSessionName").rfind("dynamodb-cache-", 0), 0u);
  // Cached: asking again within the hour calls nobody.
  EXPECT_EQ(provider->get().access_key_id, "ASIASTS2");
  EXPECT_EQ(sts.count(), 2u);
}

TEST(AssumeRole, LoopsMfaAndBadConfigurationAreClearErrors) {
  auto env = clean_env();
  FakeSts sts;
  auto config = temp_file(
      "config-bad",
      role_config(
          "[profile loop-a]\nrole_arn = arn:aws:iam::1:role/x\nsource_profile = loop-b\n"
          "[profile loop-b]\nrole_arn = arn:aws:iam::1:role/y\nsource_profile = loop-a\n"
          "[profile mfa]\nrole_arn = arn:aws:iam::1:role/m\nsource_profile = base\nmfa_serial = arn:aws:iam::1:mfa/u\n"
          "[profile both]\nrole_arn = arn:aws:iam::1:role/m\nsource_profile = base\ncredential_source = Environment\n"
          "[profile missing]\nrole_arn = arn:aws:iam::1:role/m\nsource_profile = nope\n"
          "[profile badsrc]\nrole_arn = arn:aws:iam::1:role/m\ncredential_source = Somewhere\n"
          "[profile dur]\nrole_arn = arn:aws:iam::1:role/m\nsource_profile = base\nduration_seconds = 60\n"
          "[profile self]\nrole_arn = arn:aws:iam::1:role/s\nsource_profile = self\n"
          "aws_access_key_id = AKIDSELF\naws_secret_access_key = source-secret\n"
          "[profile envsrc]\nrole_arn = arn:aws:iam::1:role/e\ncredential_source = Environment\n"));
  std::string url = sts.server.url();
  ScopedEnv e{{"AWS_CONFIG_FILE", config.c_str()}, {"AWS_ENDPOINT_URL_STS", url.c_str()}};
  auto err = [](const char* profile) { return error_of([&] { aws::make_profile_provider({profile, "", ""})->get(); }); };
  EXPECT_NE(err("loop-a").find("source_profile loop: loop-a -> loop-b -> loop-a"), std::string::npos) << err("loop-a");
  EXPECT_NE(err("mfa").find("mfa_serial"), std::string::npos);
  EXPECT_NE(err("both").find("both source_profile and credential_source"), std::string::npos);
  EXPECT_NE(err("missing").find("source_profile 'nope' does not exist"), std::string::npos);
  EXPECT_NE(err("badsrc").find("credential_source must be"), std::string::npos);
  EXPECT_NE(err("dur").find("duration_seconds"), std::string::npos);
  EXPECT_EQ(sts.count(), 0u);
  // A profile that is its own source signs with its own static keys.
  EXPECT_EQ(aws::make_profile_provider({"self", "", ""})->get().access_key_id, "ASIASTS1");
  EXPECT_NE(credential_scope(sts.request(0)).find("AKIDSELF/"), std::string::npos);
  // credential_source = Environment.
  EXPECT_NE(err("envsrc").find("AWS_ACCESS_KEY_ID"), std::string::npos) << err("envsrc");
  // Through the chain too: a missing source is an error, not a reason to try the next provider.
  auto chain_err = error_of([] { aws::make_default_chain({"envsrc", "", ""})->get(); });
  EXPECT_NE(chain_err.find("no source credentials"), std::string::npos) << chain_err;
  EXPECT_EQ(chain_err.find("no AWS credentials found"), std::string::npos) << chain_err;
  ScopedEnv keys{{"AWS_ACCESS_KEY_ID", "AKIDFROMENV"}, {"AWS_SECRET_ACCESS_KEY", "source-secret"}};
  EXPECT_EQ(aws::make_profile_provider({"envsrc", "", ""})->get().access_key_id, "ASIASTS2");
  EXPECT_NE(credential_scope(sts.request(1)).find("AKIDFROMENV/"), std::string::npos);
  // STS's refusal is named, with its code and message, and nothing secret.
  sts.error = "AccessDenied";
  auto denied = err("role-a");
  EXPECT_NE(denied.find("AccessDenied"), std::string::npos) << denied;
  EXPECT_NE(denied.find("sts:AssumeRole & more"), std::string::npos) << denied;
  EXPECT_NE(denied.find("arn:aws:iam::123456789012:role/a"), std::string::npos) << denied;
}

// Issue 28 item 10: an STS that echoes its request in an error message gets none of the
// request's secrets printed (the source's session token, the signature, the web identity
// token), nor the part of one that cutting the message to length would leave.
TEST(AssumeRole, AnStsEchoingItsRequestGetsNoSecretPrinted) {
  auto env = clean_env();
  const std::string token = "SOURCE-TOKEN-" + std::string(300, 'T');
  const std::string web_token = "WEB-IDENTITY-" + std::string(300, 'W');
  std::atomic<int> status{403};
  std::atomic<int> echo{0};  // 0: the session token, 1: the signature, 2: the web identity token
  TestServer sts([&](const TestRequest& r) {
    std::string said;
    if (echo == 0 && r.header("x-amz-security-token")) said = *r.header("x-amz-security-token");
    if (echo == 1 && r.header("authorization"))
      said = r.header("authorization")->substr(r.header("authorization")->rfind('=') + 1);
    if (echo == 2) said = form_value(r.body, "WebIdentityToken");
    TestResponse resp;
    resp.status = status;
    resp.body = "<ErrorResponse><Error><Code>InvalidClientTokenId</Code><Message>" + std::string(40, '.') +
                " you sent " + said + "</Message></Error></ErrorResponse>";
    return resp;
  });
  auto config = temp_file("config-echo",
                          "[profile base]\naws_access_key_id = AKIDSOURCE\n"
                          "aws_secret_access_key = source-secret\naws_session_token = " +
                              token +
                              "\n[profile role]\nrole_arn = arn:aws:iam::1:role/r\n"
                              "source_profile = base\n");
  auto web_file = temp_file("web-token-echo", web_token);
  std::string url = sts.url();
  ScopedEnv e{{"AWS_CONFIG_FILE", config.c_str()},
              {"AWS_ENDPOINT_URL_STS", url.c_str()},
              {"AWS_REGION", "us-east-1"}};
  auto check = [&](const std::string& err, const std::string& secret) {
    EXPECT_NE(err.find("InvalidClientTokenId"), std::string::npos) << err;
    EXPECT_NE(err.find("you sent [redacted]"), std::string::npos) << err;
    EXPECT_EQ(err.find(secret.substr(0, 12)), std::string::npos) << err;
  };
  auto role_err = [] { return error_of([] { aws::make_profile_provider({"role", "", ""})->get(); }); };
  check(role_err(), token);
  status = 200;  // an <ErrorResponse> in a 200 answer is quoted the same way
  check(role_err(), token);
  status = 403;
  echo = 1;
  auto err = role_err();
  EXPECT_NE(err.find("you sent [redacted]"), std::string::npos) << err;
  EXPECT_FALSE(std::regex_search(err, std::regex("[0-9a-f]{64}"))) << err;
  echo = 2;
  ScopedEnv w{{"AWS_WEB_IDENTITY_TOKEN_FILE", web_file.c_str()}, {"AWS_ROLE_ARN", "arn:aws:iam::1:role/w"}};
  check(error_of([] { aws::make_web_identity_provider()->get(); }), web_token);
}

TEST(AssumeRole, RegionalEndpointByDefault) {
  auto env = clean_env();
  ScopedEnv r{{"AWS_REGION", "ap-southeast-2"}};
  EXPECT_EQ(aws::resolve_service_endpoint("STS", "sts", "ap-southeast-2"), "https://sts.ap-southeast-2.amazonaws.com");
  EXPECT_EQ(aws::resolve_service_endpoint("SSO", "portal.sso", "eu-west-1"), "https://portal.sso.eu-west-1.amazonaws.com");
}

// Issue 28, item 7: a chain of N source_profile links, p0 -> p1 -> ... -> pN (static keys).
namespace {
std::string chain_config(int links) {
  std::string out;
  for (int i = 0; i < links; ++i)
    out += "[profile p" + std::to_string(i) + "]\nrole_arn = arn:aws:iam::123456789012:role/r" +
           std::to_string(i) + "\nsource_profile = p" + std::to_string(i + 1) + "\n";
  return out + "[profile p" + std::to_string(links) +
         "]\naws_access_key_id = AKIDSOURCE\naws_secret_access_key = source-secret\n";
}
}  // namespace

TEST(AssumeRole, DeepSourceProfileChainsAreRefusedFastNotACrash) {
  auto env = clean_env();
  FakeSts sts;
  std::string url = sts.server.url();
  auto config = temp_file("config-deep-chain", chain_config(8000));
  ScopedEnv e{{"AWS_CONFIG_FILE", config.c_str()}, {"AWS_ENDPOINT_URL_STS", url.c_str()}};
  auto start = std::chrono::steady_clock::now();
  auto err = error_of([] { aws::make_profile_provider({"p0", "", ""})->get(); });
  EXPECT_NE(err.find("profile 'p0': its source_profile chain is longer than 150 links"), std::string::npos)
      << err;
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(5));  // it took 19 s for 4,000
  EXPECT_EQ(sts.count(), 0u);
  // Through the default chain too: an error, not "no credentials here".
  auto chain_err = error_of([] { aws::make_default_chain({"p0", "", ""})->get(); });
  EXPECT_NE(chain_err.find("longer than 150 links"), std::string::npos) << chain_err;
  // One link past the limit is refused; at the limit (beyond what the AWS CLI can follow),
  // every role is assumed, each signed by the one before.
  auto over = temp_file("config-chain-151", chain_config(151));
  ScopedEnv o{{"AWS_CONFIG_FILE", over.c_str()}};
  EXPECT_NE(error_of([] {
              aws::make_profile_provider({"p0", "", ""})->get();
            }).find("longer than 150"),
            std::string::npos);
  EXPECT_EQ(sts.count(), 0u);
  auto at = temp_file("config-chain-150", chain_config(150));
  ScopedEnv a{{"AWS_CONFIG_FILE", at.c_str()}};
  EXPECT_EQ(aws::make_profile_provider({"p0", "", ""})->get().access_key_id, "ASIASTS150");
  ASSERT_EQ(sts.count(), 150u);
  EXPECT_EQ(form_value(sts.request(0).body, "RoleArn"), "arn:aws:iam::123456789012:role/r149");
  EXPECT_NE(credential_scope(sts.request(0)).find("AKIDSOURCE/"), std::string::npos);
  EXPECT_EQ(form_value(sts.request(149).body, "RoleArn"), "arn:aws:iam::123456789012:role/r0");
  EXPECT_NE(credential_scope(sts.request(149)).find("ASIASTS149/"), std::string::npos);
}

TEST(WebIdentity, EnvironmentUnsignedWithTheTokenFromTheFile) {
  auto env = clean_env();
  FakeSts sts;
  auto token = temp_file("web-token", "web-identity-token-value\n");
  std::string url = sts.server.url();
  ScopedEnv e{{"AWS_ENDPOINT_URL_STS", url.c_str()}, {"AWS_WEB_IDENTITY_TOKEN_FILE", token.c_str()},
              {"AWS_ROLE_ARN", "arn:aws:iam::123456789012:role/eks"}, {"AWS_ROLE_SESSION_NAME", "pod-1"}};
  // Through the default chain: env and profile have nothing, web identity comes next.
  auto chain = aws::make_default_chain();
  auto c = chain->get();
  EXPECT_EQ(c.access_key_id, "ASIASTS1");
  ASSERT_EQ(sts.count(), 1u);
  auto r = sts.request(0);
  EXPECT_EQ(form_value(r.body, "Action"), "AssumeRoleWithWebIdentity");
  EXPECT_EQ(form_value(r.body, "RoleArn"), "arn:aws:iam::123456789012:role/eks");
  EXPECT_EQ(form_value(r.body, "RoleSessionName"), "pod-1");
  EXPECT_EQ(form_value(r.body, "WebIdentityToken"), "web-identity-token-value");
  EXPECT_FALSE(r.header("authorization"));  // AssumeRoleWithWebIdentity is not signed
  // A refusal quotes STS's code, never the token.
  sts.error = "InvalidIdentityToken";
  auto err = error_of([] { aws::make_web_identity_provider()->get(); });
  EXPECT_NE(err.find("InvalidIdentityToken"), std::string::npos) << err;
  // Only one of the two variables: the chain moves on and says why.
  ScopedEnv half{{"AWS_ROLE_ARN", nullptr}};
  err = error_of([] { aws::make_default_chain()->get(); });
  EXPECT_NE(err.find("web identity: AWS_ROLE_ARN is not set"), std::string::npos) << err;
}

TEST(WebIdentity, ProfileKeys) {
  auto env = clean_env();
  FakeSts sts;
  auto token = temp_file("web-token2", "web-identity-token-value");
  auto config = temp_file("config-web", "[profile web]\nrole_arn = arn:aws:iam::1:role/w\nweb_identity_token_file = " +
                                            token + "\nrole_session_name = s-web\n");
  std::string url = sts.server.url();
  ScopedEnv e{{"AWS_CONFIG_FILE", config.c_str()}, {"AWS_ENDPOINT_URL_STS", url.c_str()}};
  EXPECT_EQ(aws::make_profile_provider({"web", "", ""})->get().access_key_id, "ASIASTS1");
  auto r = sts.request(0);
  EXPECT_EQ(form_value(r.body, "RoleSessionName"), "s-web");
  EXPECT_EQ(form_value(r.body, "WebIdentityToken"), "web-identity-token-value");
  // An unreadable token file is named.
  auto bad = temp_file("config-web-bad", "[profile web]\nrole_arn = arn:aws:iam::1:role/w\n"
                                         "web_identity_token_file = /nonexistent/token\n");
  ScopedEnv b{{"AWS_CONFIG_FILE", bad.c_str()}};
  auto err = error_of([] { aws::make_profile_provider({"web", "", ""})->get(); });
  EXPECT_NE(err.find("/nonexistent/token"), std::string::npos) << err;
}

namespace {
struct FakeSso {
  std::mutex mu;
  std::vector<TestRequest> requests;
  TestServer server{[this](const TestRequest& r) {
    std::lock_guard lock(mu);
    requests.push_back(r);
    TestResponse resp;
    if (r.method == "POST" && r.target == "/token") {  // SSO OIDC CreateToken
      if (r.body.find(R"("grantType":"refresh_token")") == std::string::npos ||
          r.body.find(R"("refreshToken":"refresh-token-value")") == std::string::npos ||
          r.body.find(R"("clientSecret":"client-secret-value")") == std::string::npos) {
        resp.status = 400;
        resp.body = R"({"error":"invalid_grant"})";
        return resp;
      }
      resp.body = R"({"accessToken":"sso-access-token-value","expiresIn":3600,"refreshToken":"refresh-token-2",)"
                  R"("tokenType":"Bearer"})";
      return resp;
    }
    const std::string* tok = r.header("x-amz-sso_bearer_token");
    if (!tok || *tok != "sso-access-token-value") {
      resp.status = 401;
      resp.body = R"({"message":"Session token not found or invalid"})";
      return resp;
    }
    auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                  (std::chrono::system_clock::now() + std::chrono::hours(1)).time_since_epoch())
                  .count();
    resp.body = R"({"roleCredentials":{"accessKeyId":"ASIASSO","secretAccessKey":"SECRET-sso",)"
                R"("sessionToken":"TOKEN-sso","expiration":)" + std::to_string(ms) + "}}";
    return resp;
  }};
};
}  // namespace

TEST(Sso, TokenCacheOfBothFormatsThenGetRoleCredentials) {
  auto env = clean_env();
  FakeSso sso;
  auto home = std::filesystem::temp_directory_path() / ("ddbc-sso-home-" + std::to_string(getpid()));
  std::filesystem::create_directories(home / ".aws/sso/cache");
  auto token = R"({"accessToken":"sso-access-token-value","expiresAt":")" + iso8601_in(std::chrono::hours(1)) +
               R"(","region":"eu-west-1"})";
  // sha1("my-sso") and sha1("https://example.awsapps.com/start"): the names `aws sso login` uses.
  std::ofstream(home / ".aws/sso/cache/0ad374308c5a4e22f723adf10145eafad7c4031c.json") << token;
  std::ofstream(home / ".aws/sso/cache/e8be5486177c5b5392bd9aa76563515b29358e6e.json") << token;
  auto config = temp_file("config-sso",
                          "[profile new]\nsso_session = my-sso\nsso_account_id = 111122223333\nsso_role_name = Dev\n"
                          "[sso-session my-sso]\nsso_start_url = https://other.example/start\nsso_region = eu-west-1\n"
                          "[profile legacy]\nsso_start_url = https://example.awsapps.com/start\nsso_region = eu-west-1\n"
                          "sso_account_id = 111122223333\nsso_role_name = Ops\n"
                          "[profile nosession]\nsso_session = gone\nsso_account_id = 1\nsso_role_name = r\n");
  std::string url = sso.server.url(), home_s = home.string();
  ScopedEnv e{{"AWS_CONFIG_FILE", config.c_str()}, {"AWS_ENDPOINT_URL_SSO", url.c_str()}, {"HOME", home_s.c_str()}};
  auto c = aws::make_profile_provider({"new", "", ""})->get();
  EXPECT_EQ(c.access_key_id, "ASIASSO");
  EXPECT_EQ(c.session_token, "TOKEN-sso");
  ASSERT_TRUE(c.expiration);
  EXPECT_GT(*c.expiration, std::chrono::system_clock::now() + std::chrono::minutes(59));
  EXPECT_EQ(sso.requests.at(0).method, "GET");
  EXPECT_EQ(sso.requests.at(0).target, "/federation/credentials?account_id=111122223333&role_name=Dev");
  EXPECT_EQ(aws::make_profile_provider({"legacy", "", ""})->get().access_key_id, "ASIASSO");
  EXPECT_EQ(sso.requests.at(1).target, "/federation/credentials?account_id=111122223333&role_name=Ops");
  auto err = error_of([] { aws::make_profile_provider({"nosession", "", ""})->get(); });
  EXPECT_NE(err.find("[sso-session gone]"), std::string::npos) << err;
  // An expired token: no call, and the fix is named.
  std::ofstream(home / ".aws/sso/cache/0ad374308c5a4e22f723adf10145eafad7c4031c.json")
      << R"({"accessToken":"sso-access-token-value","expiresAt":")" << iso8601_in(-std::chrono::hours(1)) << "\"}";
  err = error_of([] { aws::make_profile_provider({"new", "", ""})->get(); });
  EXPECT_NE(err.find("aws sso login --profile new"), std::string::npos) << err;
  EXPECT_NE(err.find("expired"), std::string::npos) << err;
  // A token the portal refuses.
  std::ofstream(home / ".aws/sso/cache/0ad374308c5a4e22f723adf10145eafad7c4031c.json")
      << R"({"accessToken":"revoked","expiresAt":")" << iso8601_in(std::chrono::hours(1)) << "\"}";
  err = error_of([] { aws::make_profile_provider({"new", "", ""})->get(); });
  EXPECT_NE(err.find("HTTP 401"), std::string::npos) << err;
  EXPECT_EQ(err.find("revoked"), std::string::npos) << err;
  std::filesystem::remove_all(home);
}

// Issue 28, item 1: every value that becomes a header is checked where it enters, whatever its
// source, and refused naming the source, never quoting the value.
namespace {
const std::string kInjected = "tok\r\nX-Injected: yes";

void expect_refused(const std::string& err, const std::string& source_and_field) {
  EXPECT_NE(err.find(source_and_field + " contains a line break or control character"), std::string::npos)
      << err;
  EXPECT_EQ(err.find("X-Injected"), std::string::npos) << err;
}
}  // namespace

TEST(HeaderInjection, EveryCredentialSourceRefusesLineBreaksAndControlCharacters) {
  auto env = clean_env();
  {
    ScopedEnv e{{"AWS_ACCESS_KEY_ID", "AKIDENV"},
                {"AWS_SECRET_ACCESS_KEY", "secretenv"},
                {"AWS_SESSION_TOKEN", kInjected.c_str()}};
    expect_refused(error_of([] { aws::make_environment_provider()->get(); }),
                   "environment: AWS_SESSION_TOKEN");
    expect_refused(error_of([] { aws::make_default_chain()->get(); }), "environment: AWS_SESSION_TOKEN");
    ScopedEnv id{{"AWS_ACCESS_KEY_ID", "AKID\x01"}, {"AWS_SESSION_TOKEN", nullptr}};
    expect_refused(error_of([] { aws::make_environment_provider()->get(); }),
                   "environment: AWS_ACCESS_KEY_ID");
  }
  // An INI continuation line puts a line break into the value.
  auto creds = temp_file("credentials-injected",
                         "[cont]\naws_access_key_id = AKIDCONT\naws_secret_access_key = s\n"
                         "aws_session_token = tok\n  X-Injected: yes\n");
  {
    ScopedEnv f{{"AWS_SHARED_CREDENTIALS_FILE", creds.c_str()}};
    expect_refused(error_of([] {
                     aws::make_profile_provider({"cont", "", ""})->get();
                   }),
                   "profile 'cont': aws_session_token");
  }
  expect_refused(error_of([] {
                   aws::make_process_provider(
                       R"(printf '%s' '{"Version":1,"AccessKeyId":"A","SecretAccessKey":"process-secret",)"
                       R"("SessionToken":"tok\r\nX-Injected: yes"}')",
                       "credential_process of p")
                       ->get();
                 }),
                 "credential_process of p: SessionToken");
  expect_refused(error_of([] {
                   aws::detail::parse_metadata_credentials(
                       R"({"AccessKeyId":"A\u0000B","SecretAccessKey":"SECRET-x","Token":"t"})", "imds");
                 }),
                 "imds: AccessKeyId");
  {
    TestServer container([](const TestRequest&) {
      TestResponse resp;
      resp.body = R"({"AccessKeyId":"A","SecretAccessKey":"SECRET-c","Token":"tok\r\nX-Injected: yes"})";
      return resp;
    });
    std::string url = container.url() + "/creds";
    ScopedEnv e{{"AWS_CONTAINER_CREDENTIALS_FULL_URI", url.c_str()}};
    expect_refused(error_of([] { aws::make_container_provider()->get(); }), "container: Token");
    ScopedEnv t{{"AWS_CONTAINER_AUTHORIZATION_TOKEN", kInjected.c_str()}};
    expect_refused(error_of([] { aws::make_container_provider()->get(); }), "container: authorization token");
    ScopedEnv u{{"AWS_CONTAINER_CREDENTIALS_FULL_URI", "http://127.0.0.1:1/\r\nX-Injected: yes"}};
    expect_refused(error_of([] { aws::make_container_provider()->get(); }),
                   "container: AWS_CONTAINER_CREDENTIALS_FULL_URI");
  }
  {
    ScopedEnv e{{"AWS_EC2_METADATA_DISABLED", nullptr},
                {"AWS_EC2_METADATA_SERVICE_ENDPOINT", "http://127.0.0.1\r\nX-Injected: yes:1"}};
    expect_refused(error_of([] { aws::make_imds_provider()->get(); }),
                   "imds: AWS_EC2_METADATA_SERVICE_ENDPOINT");
  }
  // STS answers are XML: character references decode to CR and LF.
  expect_refused(error_of([] {
                   aws::detail::parse_sts_credentials(
                       "<AssumeRoleResponse><AssumeRoleResult><Credentials><AccessKeyId>ASIA</AccessKeyId>"
                       "<SecretAccessKey>SECRET-s</SecretAccessKey><SessionToken>tok&#13;&#10;X-Injected: yes"
                       "</SessionToken><Expiration>2099-01-01T00:00:00Z</Expiration></Credentials>"
                       "</AssumeRoleResult></AssumeRoleResponse>",
                       "assume role r");
                 }),
                 "assume role r: SessionToken");
  expect_refused(error_of([] {
                   aws::detail::parse_sso_role_credentials(
                       R"({"roleCredentials":{"accessKeyId":"A","secretAccessKey":"SECRET-s",)"
                       R"("sessionToken":"tok\nX-Injected: yes","expiration":4102444800000}})",
                       "sso (profile 'x')");
                 }),
                 "sso (profile 'x'): sessionToken");
  expect_refused(error_of([] {
                   aws::detail::parse_sso_token(
                       R"({"accessToken":"tok\r\nX-Injected: yes","expiresAt":"2099-01-01T00:00:00Z"})");
                 }),
                 "sso: the cached token (aws sso login): accessToken");
  expect_refused(
      error_of([] {
        aws::detail::parse_sso_oidc_token(R"({"accessToken":"tok\u007fX-Injected","expiresIn":3600})");
      }),
      "sso: the CreateToken answer: accessToken");
  expect_refused(error_of([] {
                   aws::make_static_provider({"AKID", "s", kInjected, std::nullopt, "mine"});
                 }),
                 "mine: session token");
  // A tab is a valid header character; so is everything printable.
  EXPECT_EQ(aws::detail::parse_metadata_credentials(
                R"({"AccessKeyId":"A","SecretAccessKey":"s","Token":"a\tb ~!\"#"})", "imds")
                .session_token,
            "a\tb ~!\"#");
}

TEST(HeaderInjection, RegionAndEndpointsWithControlCharactersAreConfigErrors) {
  auto env = clean_env();
  auto config_error = [](const std::function<void()>& f) {
    try {
      f();
    } catch (const ConfigError& e) {
      EXPECT_EQ(std::string(e.what()).find("X-Injected"), std::string::npos) << e.what();
      return std::string(e.what());
    } catch (const std::exception& e) {
      return std::string("other error: ") + e.what();
    }
    return std::string("no error");
  };
  const std::string bad_region = "us-east-1\r\nX-Injected: yes";
  {
    ScopedEnv e{{"AWS_REGION", bad_region.c_str()}};
    auto err = config_error([] { aws::resolve_region(); });
    EXPECT_NE(err.find("environment: AWS_REGION is not a valid AWS region name"), std::string::npos) << err;
  }
  {
    ScopedEnv e{{"AWS_DEFAULT_REGION", bad_region.c_str()}};
    auto err = config_error([] { aws::resolve_region(); });
    EXPECT_NE(err.find("environment: AWS_DEFAULT_REGION is not"), std::string::npos) << err;
  }
  auto config = temp_file("config-region-injected",
                          "[profile cont]\nregion = us-east-1\n  X-Injected: yes\n"
                          "[profile ok]\nregion = eu-west-1\n");
  ScopedEnv f{{"AWS_CONFIG_FILE", config.c_str()}};
  auto err = config_error([] { aws::resolve_region({}, {"cont", "", ""}); });
  EXPECT_NE(err.find("the region of profile 'cont'"), std::string::npos) << err;
  EXPECT_EQ(aws::resolve_region({}, {"ok", "", ""}), "eu-west-1");
  // The AWS CLI's rule (botocore's validate_region_name): a host label.
  for (const char* r : {"bad region!", "-us", "us-", "123", "us.east", "a\tb"})
    EXPECT_NE(config_error([&] { aws::resolve_region(r); }).find("the region given is not"),
              std::string::npos)
        << r;
  for (const char* r : {"us-east-1", "local", "cn-north-1", "x"}) EXPECT_EQ(aws::resolve_region(r), r);
  // An invalid region is an error for STS too, not a reason to fall back to us-east-1.
  {
    ScopedEnv e{{"AWS_REGION", bad_region.c_str()}};
    EXPECT_NE(config_error([] { aws::detail::sts_target({}, {}, {}); }).find("AWS_REGION"),
              std::string::npos);
  }
  // Endpoints become the Host header and the request line.
  ScopedEnv d{{"AWS_ENDPOINT_URL_DYNAMODB", "http://127.0.0.1:1/\r\nX-Injected: yes"}};
  EXPECT_NE(config_error([] {
              aws::resolve_dynamodb_endpoint("us-east-1");
            }).find("the DynamoDB endpoint contains a line break"),
            std::string::npos);
  ScopedEnv s{{"AWS_ENDPOINT_URL_STS", "http://127.0.0.1\r\nX-Injected: yes:1"}};
  EXPECT_NE(config_error([] {
              aws::resolve_service_endpoint("STS", "sts", "us-east-1");
            }).find("the STS endpoint contains a line break"),
            std::string::npos);
}

// End to end: whatever the source, a loopback server never receives the request.
TEST(HeaderInjection, ClientNeverSendsAnInjectedHeaderLine) {
  auto env = clean_env();
  std::mutex mu;
  std::vector<TestRequest> seen;
  TestServer server([&](const TestRequest& r) {
    std::lock_guard lock(mu);
    seen.push_back(r);
    TestResponse resp;
    resp.body = "{}";
    return resp;
  });
  dynamodb::GetItemRequest g;
  g.table_name = "t";
  g.key = {{"key", dynamodb::AttributeValue::S("k")}};
  dynamodb::ClientOptions o;
  o.endpoint = server.url();
  o.region = "us-east-1";
  {
    ScopedEnv e{{"AWS_ACCESS_KEY_ID", "AKIDENV"},
                {"AWS_SECRET_ACCESS_KEY", "secretenv"},
                {"AWS_SESSION_TOKEN", kInjected.c_str()}};
    dynamodb::Client client(o);
    expect_refused(error_of([&] { client.get_item(g); }), "environment: AWS_SESSION_TOKEN");
  }
  // A provider of the caller's that hands over such a token: the signer refuses it.
  struct Hostile : aws::CredentialsProvider {
    aws::Credentials get() override { return {"AKID", "s", kInjected, std::nullopt, "hostile"}; }
  };
  o.credentials = std::make_shared<Hostile>();
  {
    dynamodb::Client client(o);
    auto err = error_of([&] { client.get_item(g); });
    EXPECT_NE(err.find("cannot sign: the credentials from hostile contain a line break"), std::string::npos)
        << err;
    EXPECT_EQ(err.find("X-Injected"), std::string::npos) << err;
  }
  {
    ScopedEnv e{{"AWS_REGION", "us-east-1\r\nX-Injected: yes"}};
    o.region.clear();
    EXPECT_THROW(dynamodb::Client{o}, ConfigError);
  }
  EXPECT_EQ(server.requests(), 0);
  std::lock_guard lock(mu);
  EXPECT_TRUE(seen.empty());
}

TEST(Config, ConfiguredEndpointsInTheAwsCliOrder) {
  auto env = clean_env();
  auto config = temp_file("config-endpoints",
                          "[default]\nendpoint_url = http://127.0.0.1:5\nservices = local\n"
                          "[services local]\nsts =\n  endpoint_url = http://127.0.0.1:6\n"
                          "[profile plain]\nendpoint_url = http://127.0.0.1:7\n"
                          "[profile ignoring]\nendpoint_url = http://127.0.0.1:7\nignore_configured_endpoint_urls = true\n");
  ScopedEnv f{{"AWS_CONFIG_FILE", config.c_str()}};
  aws::ProfileOptions plain{"plain", "", ""}, ignoring{"ignoring", "", ""};
  EXPECT_EQ(aws::resolve_dynamodb_endpoint("us-east-1"), "http://127.0.0.1:5");  // profile endpoint_url
  EXPECT_EQ(aws::resolve_service_endpoint("STS", "sts", "us-east-1"), "http://127.0.0.1:6");  // services section
  EXPECT_EQ(aws::resolve_dynamodb_endpoint("us-east-1", "", plain), "http://127.0.0.1:7");
  EXPECT_EQ(aws::resolve_dynamodb_endpoint("us-east-1", "", ignoring), "https://dynamodb.us-east-1.amazonaws.com");
  {
    ScopedEnv g{{"AWS_ENDPOINT_URL", "http://127.0.0.1:8"}};  // the global variable beats the profile's key
    EXPECT_EQ(aws::resolve_dynamodb_endpoint("us-east-1"), "http://127.0.0.1:8");
    EXPECT_EQ(aws::resolve_service_endpoint("STS", "sts", "us-east-1"), "http://127.0.0.1:6");  // but not services
    ScopedEnv s{{"AWS_ENDPOINT_URL_STS", "http://127.0.0.1:9"}};
    EXPECT_EQ(aws::resolve_service_endpoint("STS", "sts", "us-east-1"), "http://127.0.0.1:9");
    ScopedEnv i{{"AWS_IGNORE_CONFIGURED_ENDPOINT_URLS", "true"}};
    EXPECT_EQ(aws::resolve_service_endpoint("STS", "sts", "us-east-1"), "https://sts.us-east-1.amazonaws.com");
    EXPECT_EQ(aws::resolve_dynamodb_endpoint("us-east-1", "http://127.0.0.1:3"), "http://127.0.0.1:3");  // explicit
  }
  // The variable beats the profile's setting, both ways.
  ScopedEnv no{{"AWS_IGNORE_CONFIGURED_ENDPOINT_URLS", "false"}};
  EXPECT_EQ(aws::resolve_dynamodb_endpoint("us-east-1", "", ignoring), "http://127.0.0.1:7");
}

TEST(Config, CaBundleAndAppIdAsTheAwsCliReadsThem) {
  auto env = clean_env();
  auto ca = temp_file("ca.pem", "-----BEGIN CERTIFICATE-----\n");
  auto config = temp_file("config-http", "[default]\nca_bundle = " + ca + "\nsdk_ua_app_id = my app/1\n"
                                         "[profile missing]\nca_bundle = /nonexistent/ca.pem\n");
  ScopedEnv f{{"AWS_CONFIG_FILE", config.c_str()}};
  auto o = aws::resolve_http_options();
  EXPECT_EQ(o.ca_file, ca);
  EXPECT_EQ(o.user_agent, http::HttpOptions{}.user_agent + " app/my-app-1");
  try {
    aws::resolve_http_options({"missing", "", ""});
    ADD_FAILURE();
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("/nonexistent/ca.pem"), std::string::npos) << e.what();
  }
  auto other = temp_file("other.pem", "x");
  ScopedEnv v{{"AWS_CA_BUNDLE", other.c_str()}, {"AWS_SDK_UA_APP_ID", "svc-1"}};
  o = aws::resolve_http_options();
  EXPECT_EQ(o.ca_file, other);
  EXPECT_EQ(o.user_agent, http::HttpOptions{}.user_agent + " app/svc-1");
  http::HttpOptions explicit_ca;
  explicit_ca.ca_file = ca;
  EXPECT_EQ(aws::resolve_http_options({}, explicit_ca).ca_file, ca);
}

// Issue 8, item 3: credentials that come back already expired must not make every call fetch.
TEST(Credentials, ExpiredCredentialsAreNotFetchedByEveryCall) {
  auto inner = std::make_shared<CountingProvider>();
  auto base = std::chrono::system_clock::time_point(std::chrono::seconds(1'000'000));
  inner->expiration = base - std::chrono::minutes(1);  // already expired when fetched
  std::atomic<int64_t> t{0};
  auto cache = aws::make_caching_provider(inner, std::chrono::minutes(5),
                                          [&] { return base + std::chrono::seconds(t.load()); });
  std::vector<std::thread> threads;
  std::atomic<int> ok{0};
  for (int i = 0; i < 16; ++i)
    threads.emplace_back([&] {
      for (int j = 0; j < 200; ++j)
        if (cache->get().access_key_id == "AKID1") ++ok;
    });
  for (auto& th : threads) th.join();
  EXPECT_EQ(inner->calls.load(), 1);  // one fetch for 3,200 calls; the rest used its answer
  EXPECT_EQ(ok.load(), 16 * 200);
  // Asked again at most once per backoff interval (10 s) meanwhile.
  t = 5;
  cache->get();
  EXPECT_EQ(inner->calls.load(), 1);
  t = 11;
  for (int i = 0; i < 100; ++i) cache->get();
  EXPECT_EQ(inner->calls.load(), 2);
}

// Issue 25, item 8: the library writes nothing to stderr; the credentials cache's one
// warning (expired credentials kept in use) goes to the process-wide hook, after its lock is
// released (the hook may use the provider), and only once per provider.
TEST(Credentials, TheExpiredCredentialsWarningGoesToTheProcessHookOnce) {
  auto inner = std::make_shared<CountingProvider>();
  auto base = std::chrono::system_clock::time_point(std::chrono::seconds(1'000'000));
  inner->expiration = base - std::chrono::minutes(1);
  auto cache = aws::make_caching_provider(inner, std::chrono::minutes(5), [&] { return base; });
  std::vector<std::string> said;
  set_log_hook([&](LogLevel level, std::string_view m) {
    EXPECT_EQ(level, LogLevel::kWarning);
    said.emplace_back(m);
    cache->get();  // would deadlock if called with the provider's lock held
  });
  testing::internal::CaptureStderr();
  cache->get();
  cache->get();
  std::string err = testing::internal::GetCapturedStderr();
  set_log_hook(nullptr);
  EXPECT_EQ(err, "");
  ASSERT_EQ(said.size(), 1u);
  EXPECT_NE(said[0].find("came back already expired"), std::string::npos) << said[0];
}

TEST(Credentials, FailingSourceIsAskedOncePerBackoffAndFailsFast) {
  auto inner = std::make_shared<CountingProvider>();
  inner->fail = true;
  std::atomic<int64_t> t{0};
  auto base = std::chrono::system_clock::time_point(std::chrono::seconds(1'000'000));
  auto cache = aws::make_caching_provider(inner, std::chrono::minutes(5),
                                          [&] { return base + std::chrono::milliseconds(t.load()); });
  std::vector<std::thread> threads;
  std::atomic<int> failed{0};
  for (int i = 0; i < 8; ++i)
    threads.emplace_back([&] {
      for (int j = 0; j < 50; ++j) {
        try {
          cache->get();
        } catch (const CredentialsError& e) {
          if (std::string(e.what()) == "refresh failed") ++failed;
        }
      }
    });
  for (auto& th : threads) th.join();
  EXPECT_EQ(failed.load(), 400);       // every call got the source's own error
  EXPECT_EQ(inner->calls.load(), 1);   // from a single fetch
  t = 1000;                            // backoff 1 s, then 2 s
  EXPECT_THROW(cache->get(), CredentialsError);
  EXPECT_EQ(inner->calls.load(), 2);
  t = 2500;
  EXPECT_THROW(cache->get(), CredentialsError);
  EXPECT_EQ(inner->calls.load(), 2);
  inner->fail = false;
  t = 3000;
  EXPECT_EQ(cache->get().access_key_id, "AKID3");
}

// Issue 8, item 11: what IMDS sends back is checked before it becomes a header or a path.
TEST(Credentials, ImdsTokenWithLineBreakAndHostileRoleNameAreRefused) {
  auto env = clean_env();
  for (const std::string& bad_token : std::vector<std::string>{"tok\r\nX-Injected: 1", "tok\nx", std::string("tok\0x", 5), "tok\x7f"}) {
    TestServer imds([&](const TestRequest& r) {
      TestResponse resp;
      if (r.method == "PUT") resp.body = bad_token;
      else resp.status = 500;
      return resp;
    });
    std::string ep = imds.url();
    ScopedEnv e{{"AWS_EC2_METADATA_DISABLED", nullptr}, {"AWS_EC2_METADATA_SERVICE_ENDPOINT", ep.c_str()}};
    auto err = error_of([] { aws::make_imds_provider()->get(); });
    EXPECT_NE(err.find("not a valid header value"), std::string::npos) << err;
    EXPECT_EQ(imds.requests(), 1);  // the token was never sent
  }
  for (const std::string& role : std::vector<std::string>{"../../latest/api/token", "..", "a/b", "r%2f", std::string(65, 'r')}) {
    FakeImds imds;
    imds.role = role;
    std::string ep = imds.server.url();
    ScopedEnv e{{"AWS_EC2_METADATA_DISABLED", nullptr}, {"AWS_EC2_METADATA_SERVICE_ENDPOINT", ep.c_str()}};
    auto err = error_of([] { aws::make_imds_provider()->get(); });
    EXPECT_NE(err.find("not a valid IAM role name"), std::string::npos) << role << ": " << err;
    EXPECT_EQ(imds.server.requests(), 2);  // token and role list only
  }
}

TEST(Config, ClientSendsTheAppIdAndUsesTheProfileEndpoint) {
  auto env = clean_env();
  std::mutex mu;
  std::vector<std::string> agents;
  TestServer server([&](const TestRequest& r) {
    std::lock_guard lock(mu);
    const std::string* ua = r.header("user-agent");
    agents.push_back(ua ? *ua : "");
    TestResponse resp;
    resp.body = "{}";
    return resp;
  });
  auto config = temp_file("config-client", "[profile svc]\nendpoint_url = " + server.url() +
                                               "\nsdk_ua_app_id = billing-7\nregion = eu-north-1\n");
  ScopedEnv f{{"AWS_CONFIG_FILE", config.c_str()}};
  dynamodb::ClientOptions o;
  o.profile.profile = "svc";
  o.credentials = aws::make_static_provider({"AKID", "s", "", std::nullopt, "test"});
  dynamodb::Client client(o);
  EXPECT_EQ(client.endpoint(), server.url());
  EXPECT_EQ(client.region(), "eu-north-1");
  dynamodb::GetItemRequest g;
  g.table_name = "t";
  g.key = {{"key", dynamodb::AttributeValue::S("k")}};
  EXPECT_FALSE(client.get_item(g).item);
  std::lock_guard lock(mu);
  ASSERT_EQ(agents.size(), 1u);
  EXPECT_NE(agents[0].find(" app/billing-7"), std::string::npos) << agents[0];
}

TEST(Sso, SessionTokenRefreshedWithSsoOidcAndWrittenBack) {
  auto env = clean_env();
  FakeSso sso;
  auto home = std::filesystem::temp_directory_path() / ("ddbc-sso-refresh-" + std::to_string(getpid()));
  std::filesystem::create_directories(home / ".aws/sso/cache");
  auto cache = home / ".aws/sso/cache/0ad374308c5a4e22f723adf10145eafad7c4031c.json";  // sha1("my-sso")
  auto write = [&](const std::string& expires_in, bool with_refresh) {
    std::ofstream(cache) << R"({"startUrl":"https://x/start","region":"eu-west-1","accessToken":"old-access-token",)"
                         << R"("expiresAt":")" << expires_in << "\""
                         << (with_refresh ? R"(,"clientId":"cid","clientSecret":"client-secret-value",)"
                                            R"("registrationExpiresAt":"2099-01-01T00:00:00Z",)"
                                            R"("refreshToken":"refresh-token-value")"
                                          : "")
                         << "}";
  };
  auto config = temp_file("config-sso-refresh",
                          "[profile p]\nsso_session = my-sso\nsso_account_id = 1\nsso_role_name = Dev\n"
                          "[sso-session my-sso]\nsso_start_url = https://x/start\nsso_region = eu-west-1\n");
  std::string url = sso.server.url(), home_s = home.string();
  ScopedEnv e{{"AWS_CONFIG_FILE", config.c_str()}, {"AWS_ENDPOINT_URL_SSO", url.c_str()},
              {"AWS_ENDPOINT_URL_SSO_OIDC", url.c_str()}, {"HOME", home_s.c_str()}};
  // Ten minutes left: inside the 15-minute window, so refreshed first (the old token would
  // be refused by this portal).
  write(iso8601_in(std::chrono::minutes(10)), true);
  EXPECT_EQ(aws::make_profile_provider({"p", "", ""})->get().access_key_id, "ASIASSO");
  ASSERT_EQ(sso.requests.size(), 2u);
  EXPECT_EQ(sso.requests[0].target, "/token");
  std::ifstream in(cache);
  std::string saved((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  auto t = aws::detail::parse_sso_token(saved);
  EXPECT_EQ(t.access_token, "sso-access-token-value");
  EXPECT_EQ(t.refresh_token, "refresh-token-2");
  EXPECT_EQ(t.client_secret, "client-secret-value");
  EXPECT_GT(t.expires_at, std::chrono::system_clock::now() + std::chrono::minutes(59));
  EXPECT_EQ(std::filesystem::status(cache).permissions() & std::filesystem::perms::all,
            std::filesystem::perms::owner_read | std::filesystem::perms::owner_write);
  // Expired without a refresh token: the fix is named, nothing is called.
  write(iso8601_in(-std::chrono::minutes(1)), false);
  auto err = error_of([] { aws::make_profile_provider({"p", "", ""})->get(); });
  EXPECT_NE(err.find("no refresh token"), std::string::npos) << err;
  EXPECT_NE(err.find("aws sso login --profile p"), std::string::npos) << err;
  EXPECT_EQ(sso.requests.size(), 2u);
  std::filesystem::remove_all(home);
}

TEST(WebIdentity, AnOversizedStsAnswerIsRefused) {
  auto env = clean_env();
  TestServer sts([](const TestRequest&) {
    TestResponse resp;
    resp.body = "<AssumeRoleWithWebIdentityResponse>" + std::string(2 << 20, ' ');
    return resp;
  });
  auto token = temp_file("web-token3", "web-identity-token-value");
  std::string url = sts.url();
  ScopedEnv e{{"AWS_ENDPOINT_URL_STS", url.c_str()}, {"AWS_WEB_IDENTITY_TOKEN_FILE", token.c_str()},
              {"AWS_ROLE_ARN", "arn:aws:iam::1:role/r"}};
  auto err = error_of([] { aws::make_web_identity_provider()->get(); });
  EXPECT_NE(err.find("too large"), std::string::npos) << err;
}
