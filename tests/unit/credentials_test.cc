// Credential providers, the chain, the cache, region and endpoint resolution. Container and
// IMDS providers talk to loopback servers started here.
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <thread>

#include "dynamodb_cache/aws.h"
#include "dynamodb_cache/errors.h"
#include "test_server.h"

using namespace dynamodb_cache;
using testing_support::TestRequest;
using testing_support::TestResponse;
using testing_support::TestServer;

namespace {

// Sets (or unsets, with nullptr) environment variables for one scope.
class ScopedEnv {
 public:
  ScopedEnv(std::initializer_list<std::pair<const char*, const char*>> vars) {
    for (auto [k, v] : vars) {
      const char* old = std::getenv(k);
      saved_.emplace_back(k, old ? std::optional<std::string>(old) : std::nullopt);
      if (v) setenv(k, v, 1); else unsetenv(k);
    }
  }
  ~ScopedEnv() {
    for (auto& [k, v] : saved_) {
      if (v) setenv(k.c_str(), v->c_str(), 1); else unsetenv(k.c_str());
    }
  }

 private:
  std::vector<std::pair<std::string, std::optional<std::string>>> saved_;
};

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
                   {"AWS_ENDPOINT_URL", nullptr}, {"AWS_ENDPOINT_URL_DYNAMODB", nullptr}};
}

std::string temp_file(const std::string& name, const std::string& content) {
  auto dir = std::filesystem::temp_directory_path() / ("ddbc-test-" + std::to_string(getpid()));
  std::filesystem::create_directories(dir);
  auto p = dir / name;
  std::ofstream(p) << content;
  return p.string();
}

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
}  // namespace

TEST(Credentials, CachingProviderRefreshesOnceForAllThreads) {
  auto inner = std::make_shared<CountingProvider>();
  std::atomic<int64_t> t{0};
  auto base = std::chrono::system_clock::time_point(std::chrono::seconds(1'000'000));
  inner->expiration = base + std::chrono::minutes(60);
  auto cache = aws::make_caching_provider(inner, std::chrono::minutes(5),
                                          [&] { return base + std::chrono::seconds(t.load()); });
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

  // A failed refresh keeps credentials that are still valid; once they expire it throws.
  t = 116 * 60;
  inner->fail = true;
  EXPECT_EQ(cache->get().access_key_id, "AKID2");
  t = 121 * 60;
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
