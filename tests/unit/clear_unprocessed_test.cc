// DynamodbBackend::clear_async when BatchWriteItem leaves deletes unprocessed (a throttled
// table): the leftovers are sent again until none is left, or the clear fails saying how
// many are left; never a success with items silently kept. dynalite always processes every
// delete, so only a scripted transport reaches this path.
#include <gtest/gtest.h>

#include <future>
#include <map>
#include <mutex>
#include <regex>
#include <set>

#include "dynamodb_cache/backend.h"
#include "dynamodb_cache/errors.h"
#include "fake_transport.h"

using namespace dynamodb_cache;
using namespace dynamodb_cache::dynamodb;
using testing_support::ddb_response;
using testing_support::FakeTransport;
using testing_support::RecordingSleeper;

namespace {

constexpr int kItems = 60;  // three BatchWriteItem calls of at most 25 deletes

std::string target_of(const http::Request& r) {
  for (const auto& h : r.headers)
    if (h.name == "X-Amz-Target") return h.value;
  return {};
}

// The keys of a BatchWriteItem body's DeleteRequests, in order.
std::vector<std::string> delete_keys(const std::string& body) {
  static const std::regex key(R"re("DeleteRequest":\{"Key":\{"key":\{"S":"([^"]*)"\}\}\})re");
  std::vector<std::string> out;
  for (std::sregex_iterator it(body.begin(), body.end(), key), end; it != end; ++it) out.push_back((*it)[1]);
  return out;
}

std::string delete_requests(const std::vector<std::string>& keys) {
  std::string s = "[";
  for (const auto& k : keys) s += (s.size() > 1 ? "," : "") + std::string(R"({"DeleteRequest":{"Key":{"key":{"S":")") + k + "\"}}}}";
  return s + "]";
}

// A table of kItems items behind a scripted transport. Each Scan segment returns its share of
// the items in one page; BatchWriteItem processes at most `per_call` deletes of each call and
// hands the rest back as UnprocessedItems.
struct ThrottledTable {
  std::mutex mu;
  std::map<std::string, int> deleted;  // key -> times a processed delete reached it
  size_t per_call;
  std::shared_ptr<FakeTransport> transport;
  std::shared_ptr<RecordingSleeper> sleeper = std::make_shared<RecordingSleeper>();
  std::shared_ptr<Client> client;

  explicit ThrottledTable(size_t processed_per_call) : per_call(processed_per_call) {
    transport = std::make_shared<FakeTransport>([this](const http::Request& r, int) { return answer(r); });
    ClientOptions o;
    o.region = "us-east-1";
    o.endpoint = "http://127.0.0.1:9";
    o.credentials = aws::make_static_provider({"a", "b", "", std::nullopt, ""});
    o.transport = transport;
    o.retry.max_attempts = 3;
    o.retry.sleeper = sleeper;
    client = std::make_shared<Client>(o);
  }

  http::Response answer(const http::Request& r) {
    const std::string t = target_of(r);
    if (t == "DynamoDB_20120810.Scan") {
      std::smatch m;
      std::regex_search(r.body, m, std::regex(R"("Segment":(\d+))"));
      const int segment = m.empty() ? 0 : std::stoi(m[1]);
      std::string items;
      for (int i = segment; i < kItems; i += DynamodbOptions{}.clear_segments)
        items += (items.empty() ? "" : ",") + std::string(R"({"key":{"S":"k)") + std::to_string(i) + "\"}}";
      return ddb_response(200, "{\"Items\":[" + items + "],\"Count\":1,\"ScannedCount\":1}");
    }
    if (t == "DynamoDB_20120810.BatchWriteItem") {
      auto keys = delete_keys(r.body);
      EXPECT_LE(keys.size(), 25u);
      const size_t done = std::min(per_call, keys.size());
      {
        std::lock_guard lock(mu);
        for (size_t i = 0; i < done; ++i) ++deleted[keys[i]];
      }
      std::vector<std::string> left(keys.begin() + static_cast<std::ptrdiff_t>(done), keys.end());
      if (left.empty()) return ddb_response(200, "{\"UnprocessedItems\":{}}");
      return ddb_response(200, "{\"UnprocessedItems\":{\"cache\":" + delete_requests(left) + "}}");
    }
    ADD_FAILURE() << "unexpected request " << t;
    return ddb_response(400, "{}");
  }

  // clear_async's outcome: nullptr on success.
  std::exception_ptr clear() {
    DynamodbOptions o;
    o.table = "cache";
    DynamodbBackend b(client, o);
    std::promise<std::exception_ptr> p;
    b.clear_async([&](Outcome<void> out) { p.set_value(std::move(out).error()); });
    return p.get_future().get();
  }
};

}  // namespace

TEST(ClearUnprocessed, LeftoversAreSentAgainUntilEveryItemIsDeletedOnce) {
  ThrottledTable table(2);  // each call deletes 2 of a segment's 15 and hands the rest back
  EXPECT_EQ(table.clear(), nullptr);
  std::lock_guard lock(table.mu);
  ASSERT_EQ(table.deleted.size(), static_cast<size_t>(kItems));
  for (const auto& [key, times] : table.deleted) EXPECT_EQ(times, 1) << key;
  // The first resend of a call's leftovers goes at once (as boto3's batch writer does); every
  // call after it that still leaves some waits a backoff: 4 segments x 6 waits.
  EXPECT_EQ(table.sleeper->sleeps().size(), 24u);
}

TEST(ClearUnprocessed, AClearThatMakesNoProgressFailsSayingHowManyAreLeft) {
  ThrottledTable table(0);  // a table that processes nothing
  std::exception_ptr e = table.clear();
  ASSERT_NE(e, nullptr);
  try {
    std::rethrow_exception(e);
  } catch (const ServiceError& se) {
    EXPECT_EQ(se.kind(), ErrorKind::kThrottling);
    EXPECT_EQ(se.name(), "UnprocessedItems");
    EXPECT_NE(std::string(se.what()).find("still unprocessed"), std::string::npos) << se.what();
  }
  std::lock_guard lock(table.mu);
  EXPECT_TRUE(table.deleted.empty());
}
