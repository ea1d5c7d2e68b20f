// Credentials as the client uses them under stress (issue 28): a refresh never runs on an
// event loop, ExpiredTokenException does not make every request fetch, and the operation
// deadline holds over credential fetches (a credential_process, STS), a timed-out
// credential_process being killed with the processes it started. Loopback servers only.
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <future>
#include <thread>

#include "dynamodb_cache/aws.h"
#include "dynamodb_cache/dynamodb.h"
#include "dynamodb_cache/errors.h"
#include "scoped_env.h"
#include "temp_file.h"
#include "test_server.h"

using namespace dynamodb_cache;
using namespace std::chrono_literals;
using testing_support::ScopedEnv;
using testing_support::TestRequest;
using testing_support::TestResponse;
using testing_support::TestServer;
using Steady = std::chrono::steady_clock;

namespace {

using Cached = aws::CredentialsProvider::Cached;

// Returns "AKID<n>" on its n-th call, expiring at `expiration`, after `delay` from the
// second call on (the first fills the cache at once).
class SlowProvider : public aws::CredentialsProvider {
 public:
  std::atomic<int> calls{0};
  std::chrono::milliseconds delay{0};
  aws::SystemClock::time_point expiration = aws::SystemClock::now() + std::chrono::hours(1);
  aws::Credentials get() override {
    int n = ++calls;
    if (n > 1) std::this_thread::sleep_for(delay);
    return aws::Credentials{"AKID" + std::to_string(n), "secret", "token", expiration, "slow"};
  }
};

// A provider cached on a clock the test moves (base + t seconds).
struct Cache {
  std::shared_ptr<SlowProvider> inner = std::make_shared<SlowProvider>();
  std::atomic<int64_t> t{0};
  aws::SystemClock::time_point base{std::chrono::seconds(1'000'000)};
  std::shared_ptr<aws::CredentialsProvider> cache;
  Cache() {
    inner->expiration = base + std::chrono::minutes(60);
    cache = aws::make_caching_provider(inner, std::chrono::minutes(5),
                                       [this] { return base + std::chrono::seconds(t.load()); });
  }
};

// The access key id a request was signed with.
std::string key_of(const TestRequest& r) {
  const std::string* auth = r.header("authorization");
  if (!auth) return "<unsigned>";
  auto b = auth->find("Credential=") + 11;
  return auth->substr(b, auth->find('/', b) - b);
}

// A DynamoDB stand-in: answers every request with `answer`, and records the keys that signed.
struct Dynamo {
  std::mutex mu;
  std::vector<std::string> keys;
  std::function<TestResponse()> answer = [] {
    TestResponse r;
    r.headers.push_back({"Content-Type", "application/x-amz-json-1.0"});
    r.body = "{}";
    return r;
  };
  TestServer server{[this](const TestRequest& r) {
    std::lock_guard lock(mu);
    keys.push_back(key_of(r));
    return answer();
  }};
  std::vector<std::string> seen() {
    std::lock_guard lock(mu);
    return keys;
  }
};

TestResponse expired_token() {
  TestResponse r;
  r.status = 400;
  r.headers.push_back({"Content-Type", "application/x-amz-json-1.0"});
  r.body = R"({"__type":"com.amazon.coral.service#ExpiredTokenException",)"
           R"("message":"The security token included in the request is expired"})";
  return r;
}

dynamodb::ClientOptions options_for(const std::string& url, std::shared_ptr<aws::CredentialsProvider> creds) {
  dynamodb::ClientOptions o;
  o.region = "us-east-1";
  o.endpoint = url;
  o.credentials = std::move(creds);
  o.io_threads = 1;
  return o;
}

dynamodb::GetItemRequest get_k() {
  dynamodb::GetItemRequest g;
  g.table_name = "t";
  g.key = {{"key", dynamodb::AttributeValue::S("k")}};
  return g;
}

double seconds_since(Steady::time_point start) {
  return std::chrono::duration<double>(Steady::now() - start).count();
}

using testing_support::temp_file;

// Whether process `pid` still runs (a zombie waiting for its reaper does not).
bool running(pid_t pid) {
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  std::string line;
  if (!std::getline(stat, line)) return false;
  auto paren = line.rfind(')');
  return paren != std::string::npos && paren + 2 < line.size() && line[paren + 2] != 'Z';
}

// Waits up to 2 s for `pid` to be gone.
bool gone(pid_t pid) {
  for (int i = 0; i < 200 && running(pid); ++i) std::this_thread::sleep_for(10ms);
  return !running(pid);
}

// A credential_process script that starts a child which keeps our pipe open, writes the
// child's pid to `pid_file`, then sleeps itself.
std::string sleeping_script(const std::string& pid_file) {
  return temp_file("sleeper-" + std::to_string(std::hash<std::string>{}(pid_file)) + ".sh",
                   "#!/bin/sh\nsleep 30 &\necho $! > '" + pid_file + "'\nsleep 30\n");
}

pid_t read_pid(const std::string& file) {
  pid_t pid = 0;
  for (int i = 0; i < 200 && pid == 0; ++i) {
    std::ifstream(file) >> pid;
    if (pid == 0) std::this_thread::sleep_for(10ms);
  }
  return pid;
}

}  // namespace

// ---- the non-blocking query ----

TEST(CredentialsRefresh, TryGetIntoAnswersFromTheCacheAndNeverFetches) {
  Cache f;
  aws::Credentials out;
  EXPECT_EQ(f.cache->try_get_into(out), Cached::kNone);  // nothing cached yet
  EXPECT_EQ(f.inner->calls.load(), 0);
  f.cache->get();
  EXPECT_EQ(f.cache->try_get_into(out), Cached::kReady);
  EXPECT_EQ(out.access_key_id, "AKID1");
  f.t = 56 * 60;  // inside the refresh window: still valid, a refresh is due
  out = {};
  EXPECT_EQ(f.cache->try_get_into(out), Cached::kRefreshDue);
  EXPECT_EQ(out.access_key_id, "AKID1");
  EXPECT_EQ(f.inner->calls.load(), 1);
  f.t = 61 * 60;  // expired: only a fetch can help
  EXPECT_EQ(f.cache->try_get_into(out), Cached::kNone);
  EXPECT_EQ(f.inner->calls.load(), 1);
  // Static credentials need no fetch; a provider of one's own is asked where it may block.
  auto fixed = aws::make_static_provider({"AKIDSTATIC", "s", "", std::nullopt, ""});
  EXPECT_EQ(fixed->try_get_into(out), Cached::kReady);
  EXPECT_EQ(out.access_key_id, "AKIDSTATIC");
  EXPECT_EQ(SlowProvider().try_get_into(out), Cached::kNone);
}

// ---- item 2: a refresh never stalls the event loop ----

// Inside the refresh window, with a refresh that takes 1.5 s: requests made by `get` keep
// leaving with the still-valid credentials while the refresh runs off the caller (and off
// the loop), then use the new ones.
void requests_do_not_wait_for_a_refresh_ahead(
    const std::function<void(dynamodb::Client&, const dynamodb::GetItemRequest&)>& get) {
  Cache f;
  f.cache->get();
  f.inner->delay = 1500ms;
  f.t = 56 * 60;
  Dynamo ddb;
  dynamodb::Client c(options_for(ddb.server.url(), f.cache));
  for (int i = 0; i < 5; ++i) {
    auto start = Steady::now();
    get(c, get_k());
    EXPECT_LT(seconds_since(start), 0.5) << "request " << i << " waited for the refresh";
  }
  // The refresh ran once, in the background, and the next requests sign with its result.
  auto start = Steady::now();
  while (f.inner->calls.load() < 2 || ddb.seen().back() != "AKID2") {
    ASSERT_LT(seconds_since(start), 5.0) << "the refresh never happened";
    std::this_thread::sleep_for(20ms);
    get(c, get_k());
  }
  EXPECT_EQ(f.inner->calls.load(), 2);
  EXPECT_EQ(ddb.seen().front(), "AKID1");
}

TEST(CredentialsRefresh, AsyncRequestsDoNotWaitForARefreshAhead) {
  requests_do_not_wait_for_a_refresh_ahead(
      [](dynamodb::Client& c, const dynamodb::GetItemRequest& g) { c.get_item_async(g).get(); });
}

TEST(CredentialsRefresh, BlockingRequestsDoNotWaitForARefreshAhead) {
  requests_do_not_wait_for_a_refresh_ahead(
      [](dynamodb::Client& c, const dynamodb::GetItemRequest& g) { c.get_item(g); });
}

// With no credentials at all and a fetch slower than the operation deadline, the operation
// ends at its deadline (the loop does not wait for the fetch), and the loop keeps serving
// operations that need no fetch meanwhile.
TEST(CredentialsRefresh, AsyncWaitForCredentialsEndsAtTheDeadline) {
  auto slow = std::make_shared<SlowProvider>();
  slow->calls = 1;  // every call is slow
  slow->delay = 2000ms;
  Dynamo ddb;
  auto o = options_for(ddb.server.url(), aws::make_caching_provider(slow));
  o.operation_timeout = 400ms;
  dynamodb::Client c(o);
  auto start = Steady::now();
  auto pending = c.get_item_async(get_k());
  try {
    pending.get();
    ADD_FAILURE() << "no error";
  } catch (const TimeoutError& e) {
    EXPECT_NE(std::string(e.what()).find("operation deadline"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("credentials"), std::string::npos) << e.what();
  }
  EXPECT_LT(seconds_since(start), 1.2);
  EXPECT_TRUE(ddb.seen().empty());
}

// ---- item 3: ExpiredTokenException is not a fetch storm ----

// A service that refuses every request with ExpiredTokenException: 300 operations one after
// another, then 100 at once, then blocking ones, cause a handful of fetches, not one each.
TEST(CredentialsRefresh, ExpiredTokenStormFetchesOncePerBackoffInterval) {
  auto counting = std::make_shared<SlowProvider>();
  Dynamo ddb;
  ddb.answer = expired_token;
  auto o = options_for(ddb.server.url(), aws::make_caching_provider(counting));
  o.retry.sleeper = nullptr;
  dynamodb::Client c(o);
  auto start = Steady::now();
  for (int i = 0; i < 300; ++i) EXPECT_THROW(c.get_item_async(get_k()).get(), ServiceError);
  std::vector<std::future<dynamodb::GetItemResult>> all;
  for (int i = 0; i < 100; ++i) all.push_back(c.get_item_async(get_k()));
  for (auto& p : all) EXPECT_THROW(p.get(), ServiceError);
  for (int i = 0; i < 50; ++i) EXPECT_THROW(c.get_item(get_k()), ServiceError);
  // One refetch per backoff interval (1, 2, 4... s) over the test's time, plus the first fetch.
  const double took = seconds_since(start);
  EXPECT_LE(counting->calls.load(), 2 + static_cast<int>(took)) << "in " << took << " s";
  EXPECT_GE(counting->calls.load(), 2);  // the first refusal did ask for new credentials
}

// The cache's side: invalidations are honoured once per backoff interval, growing while they
// keep coming.
TEST(CredentialsRefresh, InvalidationsAreHonouredOncePerBackoffInterval) {
  Cache f;
  f.cache->get();
  auto invalidate_and_get = [&] {
    f.cache->invalidate();
    f.cache->get();
    return f.inner->calls.load();
  };
  EXPECT_EQ(invalidate_and_get(), 2);
  EXPECT_EQ(invalidate_and_get(), 2);  // same second: ignored
  f.t += 1;
  EXPECT_EQ(invalidate_and_get(), 3);  // 1 s later: honoured
  f.t += 1;
  EXPECT_EQ(invalidate_and_get(), 3);  // the gap is 2 s now
  f.t += 1;
  EXPECT_EQ(invalidate_and_get(), 4);
  f.t += 100;
  EXPECT_EQ(invalidate_and_get(), 5);  // after a quiet spell, at once again
}

// ---- item 6: deadlines hold over credential fetches ----

namespace {
// One GetItem that must end in a TimeoutError: its message ("" after reporting a failure).
std::string timeout_of_get(dynamodb::Client& c) {
  try {
    c.get_item(get_k());
    ADD_FAILURE() << "no error";
  } catch (const TimeoutError& e) {
    return e.what();
  }
  return "";
}
}  // namespace

// A credential_process that hangs (with a child holding its output open): a blocking call
// with a 1 s operation deadline fails after about 1 s, not the process's 60 s timeout, saying
// so, and the process and its child are killed.
TEST(CredentialsRefresh, HungCredentialProcessIsKilledWithItsChildAtTheDeadline) {
  const std::string pid_file = temp_file("child-deadline.pid", "");
  std::filesystem::remove(pid_file);
  auto process = aws::make_caching_provider(aws::make_process_provider("sh " + sleeping_script(pid_file)));
  Dynamo ddb;
  auto o = options_for(ddb.server.url(), process);
  o.operation_timeout = 1000ms;
  dynamodb::Client c(o);
  auto start = Steady::now();
  std::string w = timeout_of_get(c);
  EXPECT_NE(w.find("operation deadline of 1 s"), std::string::npos) << w;
  EXPECT_NE(
      w.find("credential_process: the command did not finish in time: stopped at the operation deadline"),
      std::string::npos)
      << w;
  EXPECT_LT(seconds_since(start), 2.5);
  pid_t child = read_pid(pid_file);
  ASSERT_GT(child, 0);
  EXPECT_TRUE(gone(child)) << "the credential_process's child outlived it";
  EXPECT_TRUE(ddb.seen().empty());
}

// Its own timeout kills the whole process group too, and says which timeout it was.
TEST(CredentialsRefresh, CredentialProcessTimeoutKillsItsChildren) {
  const std::string pid_file = temp_file("child-timeout.pid", "");
  std::filesystem::remove(pid_file);
  auto process = aws::make_process_provider("sh " + sleeping_script(pid_file), "credential_process", 500ms);
  auto start = Steady::now();
  try {
    process->get();
    ADD_FAILURE() << "no error";
  } catch (const CredentialsError& e) {
    EXPECT_NE(std::string(e.what()).find("timed out after 500 ms"), std::string::npos) << e.what();
  }
  EXPECT_LT(seconds_since(start), 2.0);
  pid_t child = read_pid(pid_file);
  ASSERT_GT(child, 0);
  EXPECT_TRUE(gone(child)) << "the credential_process's child outlived it";
}

// A role assumed from an STS that answers after 4 s: a call with a 1 s deadline fails after
// about 1 s, naming the deadline, instead of waiting for STS's 10 s request timeout.
TEST(CredentialsRefresh, SlowStsHoldsTheOperationDeadline) {
  TestServer sts([](const TestRequest&) {
    TestResponse r;
    r.delay = 4000ms;
    r.status = 500;
    return r;
  });
  auto config =
      temp_file("config-slow-sts",
                "[profile base]\naws_access_key_id = AKIDSOURCE\naws_secret_access_key = source-secret\n"
                "[profile role]\nrole_arn = arn:aws:iam::123456789012:role/a\nsource_profile = base\n");
  const std::string url = sts.url();
  ScopedEnv env{{"AWS_CONFIG_FILE", config.c_str()},
                {"AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/credentials"},
                {"AWS_ENDPOINT_URL_STS", url.c_str()},
                {"AWS_ENDPOINT_URL", nullptr},
                {"AWS_PROFILE", nullptr},
                {"AWS_ACCESS_KEY_ID", nullptr},
                {"AWS_SECRET_ACCESS_KEY", nullptr}};
  Dynamo ddb;
  auto o = options_for(ddb.server.url(), aws::make_profile_provider({"role", "", ""}));
  o.operation_timeout = 1000ms;
  dynamodb::Client c(o);
  auto start = Steady::now();
  std::string w = timeout_of_get(c);
  EXPECT_NE(w.find("operation deadline of 1 s"), std::string::npos) << w;
  EXPECT_NE(w.find("assume role"), std::string::npos) << w;
  EXPECT_LT(seconds_since(start), 2.0);
  EXPECT_TRUE(ddb.seen().empty());
}
