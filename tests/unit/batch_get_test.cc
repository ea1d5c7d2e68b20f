// Asynchronous GetItems merged into BatchGetItems (ClientOptions::batch_gets): the wire
// helpers (src/dynamodb/get_batch.h), and the client against a loopback DynamoDB stand-in
// that answers GetItem and BatchGetItem from a map: each caller gets its own item, miss or
// error, keys left unprocessed are retried, consistencies are never mixed, duplicates are
// read once, nothing over 100 keys goes in one request, and a refused batch goes again as
// single GetItems.
#include <gtest/gtest.h>

#include <future>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <set>

#include "dynamodb/get_batch.h"
#include "dynamodb/wire.h"
#include "dynamodb_cache/dynamodb.h"
#include "dynamodb_cache/dynamodb_backend.h"
#include "dynamodb_cache/errors.h"
#include "io/event_loop.h"
#include "test_server.h"
#include "util/crypto.h"

using namespace dynamodb_cache;
using namespace dynamodb_cache::dynamodb;
using namespace std::chrono_literals;
using json = nlohmann::json;
using testing_support::TestRequest;
using testing_support::TestResponse;
using testing_support::TestServer;

namespace {

TestResponse answer(int status, const std::string& body) {
  TestResponse r;
  r.status = status;
  r.headers.push_back({"x-amz-crc32", std::to_string(util::crc32(body))});
  r.headers.push_back({"Content-Type", "application/x-amz-json-1.0"});
  r.body = body;
  return r;
}
TestResponse refusal(int status, const std::string& name) {
  return answer(status, R"({"__type":"com.amazonaws.dynamodb.v20120810#)" + name + R"(","message":"m"})");
}

json item_json(const std::string& key, const std::string& value) {
  return {{"key", {{"S", key}}}, {"value", {{"S", value}}}};
}

// GetItem and BatchGetItem of table "t" (key attribute "key") from a map; records what it was
// asked. `script(target, body, n)` may answer the n-th request (0-based) instead.
class Stand {
 public:
  using Script = std::function<std::optional<TestResponse>(const std::string&, const json&, int)>;
  explicit Stand(Script script = nullptr)
      : script_(std::move(script)), server_([this](const TestRequest& r) { return handle(r); }) {
    for (int i = 0; i < 300; i += 2) items_["k" + std::to_string(i)] = "v" + std::to_string(i);
  }
  ClientOptions options(bool batch = true) const {
    ClientOptions o;
    o.region = "us-west-2";
    o.endpoint = server_.url();
    o.credentials = aws::make_static_provider({"AKIDTEST", "SECRETKEYVALUE", "", std::nullopt, ""});
    o.retry.jitter_seed = 7;
    o.retry.base_delay = 1ms;
    o.retry.throttling_base_delay = 1ms;
    o.batch_gets = batch;
    return o;
  }
  // (operation, body) of every request, in order.
  std::vector<std::pair<std::string, json>> seen() {
    std::lock_guard lock(mu_);
    return seen_;
  }
  // The bodies of the GetItems asked for `key`, as sent.
  std::vector<std::string> get_item_bodies(const std::string& key) {
    std::lock_guard lock(mu_);
    std::vector<std::string> out;
    for (size_t i = 0; i < seen_.size(); ++i)
      if (seen_[i].first == "GetItem" && seen_[i].second["Key"]["key"]["S"] == key) out.push_back(raw_[i]);
    return out;
  }
  std::vector<json> batches() {
    std::vector<json> out;
    for (auto& [op, body] : seen())
      if (op == "BatchGetItem") out.push_back(body);
    return out;
  }

 private:
  TestResponse handle(const TestRequest& r) {
    const std::string* target = r.header("x-amz-target");
    std::string op = target ? target->substr(target->find('.') + 1) : "";
    json body = json::parse(r.body);
    int n;
    {
      std::lock_guard lock(mu_);
      n = static_cast<int>(seen_.size());
      seen_.emplace_back(op, body);
      raw_.push_back(r.body);
    }
    if (script_)
      if (auto scripted = script_(op, body, n)) return *scripted;
    if (op == "GetItem") {
      if (body.contains("Key") && body["Key"].contains("bad")) return refusal(400, "ValidationException");
      auto it = items_.find(body["Key"]["key"]["S"].get<std::string>());
      json out = json::object();
      if (it != items_.end()) out["Item"] = item_json(it->first, it->second);
      if (body.contains("ReturnConsumedCapacity"))
        out["ConsumedCapacity"] = {{"TableName", "t"}, {"CapacityUnits", 0.5}};
      return answer(200, out.dump());
    }
    if (op == "BatchGetItem") {
      json found = json::array();
      for (auto& k : body["RequestItems"]["t"]["Keys"]) {
        if (k.contains("bad")) return refusal(400, "ValidationException");
        auto it = items_.find(k["key"]["S"].get<std::string>());
        if (it != items_.end()) found.push_back(item_json(it->first, it->second));
      }
      json out = {{"Responses", {{"t", found}}}, {"UnprocessedKeys", json::object()}};
      if (body.contains("ReturnConsumedCapacity"))
        out["ConsumedCapacity"] = json::array(
            {{{"TableName", "t"},
              {"CapacityUnits", 0.5 * static_cast<double>(body["RequestItems"]["t"]["Keys"].size())}}});
      return answer(200, out.dump());
    }
    return refusal(400, "UnknownOperationException");
  }

  Script script_;
  std::map<std::string, std::string> items_;  // read only once serving
  std::mutex mu_;
  std::vector<std::pair<std::string, json>> seen_;
  std::vector<std::string> raw_;  // seen_[i]'s body as sent
  TestServer server_;  // last: stopped first
};

GetItemRequest get(const std::string& key, bool consistent = false) {
  GetItemRequest r;
  r.table_name = "t";
  r.key = {{"key", AttributeValue::S(key)}};
  r.consistent_read = consistent;
  return r;
}

// Starts `requests` from within a callback on the client's loop, so that all of them are
// queued in the same turn of the loop; returns their outcomes once all completed.
std::vector<Outcome<GetItemResult>> all_at_once(Client& c, std::vector<GetItemRequest> requests) {
  const size_t n = requests.size();
  std::vector<std::promise<Outcome<GetItemResult>>> promises(n);
  std::vector<std::future<Outcome<GetItemResult>>> futures;
  for (auto& p : promises) futures.push_back(p.get_future());
  std::promise<void> started;
  // The trigger: a DescribeTable-like call would do as well; any answer starts the gets.
  c.get_item_async(get("trigger"), [&](Outcome<GetItemResult>) {
    for (size_t i = 0; i < n; ++i)
      c.get_item_async(std::move(requests[i]),
                       [&promises, i](Outcome<GetItemResult> o) { promises[i].set_value(std::move(o)); });
    started.set_value();
  });
  started.get_future().wait();
  std::vector<Outcome<GetItemResult>> out;
  for (auto& f : futures) {
    EXPECT_EQ(f.wait_for(30s), std::future_status::ready);
    out.push_back(f.get());
  }
  return out;
}

std::string value_of(Outcome<GetItemResult>& o) {
  if (!o.ok()) {
    try {
      std::rethrow_exception(o.error());
    } catch (const std::exception& e) {
      return std::string("error: ") + e.what();
    }
  }
  auto& r = o.value();
  return r.item ? r.item->at("value").scalar : "miss";
}

std::string expected(int i) { return i % 2 == 0 ? "v" + std::to_string(i) : "miss"; }

// The cache gets of `keys`, started in one turn of c's loop (as all_at_once); each is a miss.
void misses_in_one_turn(Client& c, Backend& b, const std::vector<std::string>& keys) {
  std::vector<std::promise<std::optional<Hit>>> ps(keys.size());
  std::promise<void> started;
  c.get_item_async(get("trigger"), [&](Outcome<GetItemResult>) {
    for (size_t i = 0; i < keys.size(); ++i)
      b.get_entry_async(keys[i], [&ps, i](Outcome<std::optional<Hit>> h) {
        if (h.ok())
          ps[i].set_value(std::move(h).value());
        else
          ps[i].set_exception(std::move(h).error());
      });
    started.set_value();
  });
  started.get_future().wait();
  for (size_t i = 0; i < keys.size(); ++i) {
    auto f = ps[i].get_future();
    ASSERT_EQ(f.wait_for(30s), std::future_status::ready);
    EXPECT_FALSE(f.get().has_value()) << keys[i];
  }
}

}  // namespace

TEST(GetBatchWire, ParsesWhatTheCacheSendsAndNothingElse) {
  wire::BatchableGet g;
  ASSERT_TRUE(wire::parse_batchable_get(
      wire::encode_get_item("t", "key", "a\"b", true, ReturnConsumedCapacity::kTotal), g));
  EXPECT_EQ(g.table, "t");
  EXPECT_TRUE(g.consistent);
  EXPECT_EQ(g.capacity, "TOTAL");
  ASSERT_EQ(g.key.size(), 1u);
  EXPECT_EQ(g.key[0], (std::pair<std::string, std::string>("key", "a\"b")));
  GetItemRequest projected = get("k");
  projected.projection_expression = "#v";
  projected.names = {{"#v", "value"}};
  EXPECT_FALSE(wire::parse_batchable_get(wire::encode(projected), g));
  GetItemRequest numeric;
  numeric.table_name = "t";
  numeric.key = {{"id", AttributeValue::N("1")}};
  EXPECT_FALSE(wire::parse_batchable_get(wire::encode(numeric), g));
  EXPECT_FALSE(wire::parse_batchable_get("not json", g));
  EXPECT_FALSE(wire::parse_batchable_get(R"({"Key":{"key":{"S":"k"}}})", g));  // no table
}

TEST(GetBatchWire, AKeyHandedOverIsWhatItsBodyReadsAs) {
  for (auto rcc : {ReturnConsumedCapacity::kNone, ReturnConsumedCapacity::kTotal, ReturnConsumedCapacity::kIndexes})
    for (bool consistent : {false, true}) {
      wire::BatchableGet read;
      ASSERT_TRUE(wire::parse_batchable_get(wire::encode_get_item("t\"1", "key", "a\"b\u00e9c", consistent, rcc), read));
      auto made = wire::batchable_get("t\"1", "key", "a\"b\u00e9c", consistent, rcc);
      EXPECT_EQ(made.table, read.table);
      EXPECT_EQ(made.consistent, read.consistent);
      EXPECT_EQ(made.capacity, read.capacity);
      EXPECT_EQ(made.key, read.key);
      EXPECT_EQ(made.identity, read.identity);
    }
}

TEST(GetBatchWire, SplitsAnAnswerByKey) {
  wire::BatchableGet a, b;
  ASSERT_TRUE(wire::parse_batchable_get(wire::encode(get("a")), a));
  ASSERT_TRUE(wire::parse_batchable_get(wire::encode(get("b")), b));
  const wire::BatchableGet* keys[] = {&a, &b};
  EXPECT_EQ(json::parse(wire::encode_batch_get("t", true, "TOTAL", keys)),
            json::parse(R"({"RequestItems":{"t":{"Keys":[{"key":{"S":"a"}},{"key":{"S":"b"}}],
                            "ConsistentRead":true}},"ReturnConsumedCapacity":"TOTAL"})"));
  const std::string names[] = {"key"};
  std::string body =
      R"({"Responses":{"t":[{"key":{"S":"a"},"value":{"B":"aGk="}}, {"key":{"S":"z"}}]},"UnprocessedKeys":{"t":{"Keys":[{"key":{"S":"b"}}]}},
          "ConsumedCapacity":[{"TableName":"t","CapacityUnits":1.5},{"TableName":"u","CapacityUnits":2}]})";
  auto split = wire::split_batch_get(body, "t", names, keys);
  ASSERT_EQ(split.items.size(), 2u);
  EXPECT_EQ(json::parse(split.items[0]), json::parse(R"({"key":{"S":"a"},"value":{"B":"aGk="}})"));
  EXPECT_TRUE(split.items[1].empty());
  EXPECT_EQ(split.unprocessed, (std::vector<char>{0, 1}));
  EXPECT_EQ(split.capacity_units, 1.5);
  std::string answer = "left over";
  wire::get_item_answer(answer, split.items[0], "t", "TOTAL", 0.5);
  auto one = wire::decode_get_item(answer);
  ASSERT_TRUE(one.item);
  EXPECT_EQ(one.item->at("value").scalar, "hi");
  ASSERT_TRUE(one.consumed);
  EXPECT_EQ(one.consumed->capacity_units, 0.5);
  wire::get_item_answer(answer, {}, "t", "", 0);
  EXPECT_EQ(answer, "{}");
  // Escaped key text is read as its characters, as the key was asked; an item is handed on as
  // written, also when the path to it is written with escapes.
  body = R"({"Responses":{"t":[{"\u006bey":{"S":"\u0062"}}]}})";
  EXPECT_EQ(wire::split_batch_get(body, "t", names, keys).items[1], R"({"\u006bey":{"S":"\u0062"}})");
  body = R"({"UnprocessedKeys":{}, "Respons\u0065s" : { "u":[{"key":{"S":"a"}}], "t" : [ {"key":{"S":"b"}} , {"key":{"S":"a"}, "v":{"S":"\"]}"}} ] } })";
  auto escaped = wire::split_batch_get(body, "t", names, keys);
  EXPECT_EQ(json::parse(escaped.items[0]), json::parse(R"({"key":{"S":"a"}, "v":{"S":"\"]}"}})"));
  EXPECT_EQ(json::parse(escaped.items[1]), json::parse(R"({"key":{"S":"b"}})"));
  body = R"({"UnprocessedKeys":{}, "Responses" : { "u":[{"key":{"S":"a"}}], "t" : [ {"key":{"S":"b"}} , {"key":{"S":"a"}, "v":{"S":"\\\"]}"}} ] } })";
  auto spaced = wire::split_batch_get(body, "t", names, keys);
  EXPECT_TRUE(spaced.serialised.empty());
  EXPECT_EQ(json::parse(spaced.items[0]), json::parse(R"({"key":{"S":"a"}, "v":{"S":"\\\"]}"}})"));
  EXPECT_EQ(json::parse(spaced.items[1]), json::parse(R"({"key":{"S":"b"}})"));
  // An item's text ends where it does, whitespace after it left out, on either reading (the
  // scanner's, and simdjson's, which reads an answer with unprocessed keys).
  for (std::string unprocessed : {"", R"(,"UnprocessedKeys":{"t":{"Keys":[{"key":{"S":"b"}}]}})"}) {
    body = R"({"Responses":{"t":[{"key":{"S":"a"}} ]})" + unprocessed + "}";
    EXPECT_EQ(wire::split_batch_get(body, "t", names, keys).items[0], R"({"key":{"S":"a"}})") << unprocessed;
  }
  for (std::string bad : {R"({"Responses":{"t":[{"value":{"S":"x"}}]}})", R"({"Responses":[1]})",
                          R"({"Responses":{"t":[{"key":{"S":"a","N":"1"}}]}})", R"({"Responses":{"t":{}}})",
                          R"({"UnprocessedKeys":{"t":{"Keys":[{}]}}})", R"([1])", "not json"})
    EXPECT_THROW(wire::split_batch_get(bad, "t", names, keys), ProtocolError) << bad;
}

// Gets queued in one turn go as one BatchGetItem; each caller gets its own item or miss.
TEST(GetBatch, MergesTheGetsOfOneTurn) {
  Stand stand;
  Client c(stand.options());
  std::vector<GetItemRequest> reqs;
  for (int i = 0; i < 50; ++i) reqs.push_back(get("k" + std::to_string(i)));
  auto out = all_at_once(c, reqs);
  for (int i = 0; i < 50; ++i) EXPECT_EQ(value_of(out[i]), expected(i)) << i;
  auto batches = stand.batches();
  ASSERT_EQ(batches.size(), 1u);
  EXPECT_EQ(batches[0]["RequestItems"]["t"]["Keys"].size(), 50u);
  EXPECT_EQ(c.stats().batches.load(), 1u);
  EXPECT_EQ(c.stats().batched_keys.load(), 50u);
  EXPECT_EQ(stand.seen().size(), 2u);  // the trigger's GetItem and the batch
}

TEST(GetBatch, OffSendsEachAlone) {
  Stand stand;
  Client c(stand.options(false));
  std::vector<GetItemRequest> reqs;
  for (int i = 0; i < 20; ++i) reqs.push_back(get("k" + std::to_string(i)));
  auto out = all_at_once(c, reqs);
  for (int i = 0; i < 20; ++i) EXPECT_EQ(value_of(out[i]), expected(i));
  EXPECT_TRUE(stand.batches().empty());
  EXPECT_EQ(c.stats().batches.load(), 0u);
}

// At most 100 distinct keys a request; the same key asked for twice is read once.
TEST(GetBatch, SplitsPast100KeysAndReadsADuplicateOnce) {
  Stand stand;
  Client c(stand.options());
  std::vector<GetItemRequest> reqs;
  for (int i = 0; i < 150; ++i) reqs.push_back(get("k" + std::to_string(i)));
  for (int i = 0; i < 10; ++i) reqs.push_back(get("k" + std::to_string(i)));  // again
  auto out = all_at_once(c, reqs);
  for (int i = 0; i < 160; ++i) EXPECT_EQ(value_of(out[i]), expected(i % 150)) << i;
  std::multiset<size_t> sizes;
  for (auto& b : stand.batches()) sizes.insert(b["RequestItems"]["t"]["Keys"].size());
  EXPECT_EQ(sizes, (std::multiset<size_t>{50, 100}));
  EXPECT_EQ(c.stats().batched_keys.load(), 150u);
}

// Consistent and eventually consistent reads never share a request, nor do two tables.
TEST(GetBatch, NeverMixesConsistencyOrTables) {
  Stand stand;
  Client c(stand.options());
  std::vector<GetItemRequest> reqs;
  for (int i = 0; i < 20; ++i) reqs.push_back(get("k" + std::to_string(i), i % 2 == 0));
  GetItemRequest other = get("k0");
  other.table_name = "other";
  reqs.push_back(other);  // alone for its table: a GetItem of its own (the stand refuses it: no matter)
  auto out = all_at_once(c, reqs);
  for (int i = 0; i < 20; ++i) EXPECT_EQ(value_of(out[i]), expected(i));
  auto batches = stand.batches();
  ASSERT_EQ(batches.size(), 2u);
  for (auto& b : batches) {
    ASSERT_EQ(b["RequestItems"].size(), 1u);
    ASSERT_TRUE(b["RequestItems"].contains("t"));
    const bool consistent = b["RequestItems"]["t"].value("ConsistentRead", false);
    for (auto& k : b["RequestItems"]["t"]["Keys"]) {
      const int i = std::stoi(k["key"]["S"].get<std::string>().substr(1));
      EXPECT_EQ(i % 2 == 0, consistent) << k;
    }
  }
  int alone = 0;
  for (auto& [op, body] : stand.seen())
    if (op == "GetItem" && body["TableName"] == "other") ++alone;
  EXPECT_EQ(alone, 1);
}

// Keys left in UnprocessedKeys are asked for again (after backoff, in a batch or alone) until
// answered.
TEST(GetBatch, RetriesUnprocessedKeys) {
  auto mu = std::make_shared<std::mutex>();
  auto asked = std::make_shared<std::map<std::string, int>>();
  Stand stand([mu, asked](const std::string& op, const json& body, int) -> std::optional<TestResponse> {
    if (op != "BatchGetItem") return std::nullopt;
    // Keys k10 and above left unprocessed the first two times a batch asks for them.
    std::lock_guard lock(*mu);
    json found = json::array(), left = json::array();
    for (auto& k : body["RequestItems"]["t"]["Keys"]) {
      const std::string key = k["key"]["S"];
      const int i = std::stoi(key.substr(1));
      if (i >= 10 && (*asked)[key]++ < 2)
        left.push_back(k);
      else if (i % 2 == 0)
        found.push_back(item_json(key, "v" + std::to_string(i)));
    }
    json out = {{"Responses", {{"t", found}}}};
    if (!left.empty()) out["UnprocessedKeys"] = {{"t", {{"Keys", left}}}};
    return answer(200, out.dump());
  });
  Client c(stand.options());
  std::vector<GetItemRequest> reqs;
  for (int i = 0; i < 30; ++i) reqs.push_back(get("k" + std::to_string(i)));
  auto out = all_at_once(c, reqs);
  for (int i = 0; i < 30; ++i) EXPECT_EQ(value_of(out[i]), expected(i)) << i;
  std::map<std::string, int> requested;  // every time a key was asked for, batched or alone
  for (auto& [op, body] : stand.seen()) {
    if (op == "BatchGetItem")
      for (auto& k : body["RequestItems"]["t"]["Keys"]) ++requested[k["key"]["S"]];
    else if (op == "GetItem")
      ++requested[body["Key"]["key"]["S"]];
  }
  for (int i = 0; i < 30; ++i) EXPECT_EQ(requested["k" + std::to_string(i)] > 1, i >= 10) << i;
  EXPECT_GE(c.stats().retries.load(), 20u);
}

// A key that stays unprocessed (and then, retried alone as a GetItem, throttled) ends, past
// the attempts, with a throttling error; the other keys of its batch are answered.
TEST(GetBatch, AKeyUnprocessedToTheEndIsAThrottlingError) {
  Stand stand([](const std::string& op, const json& body, int) -> std::optional<TestResponse> {
    if (op == "GetItem" && body["Key"]["key"]["S"] == "k2")
      return refusal(400, "ProvisionedThroughputExceededException");
    if (op != "BatchGetItem") return std::nullopt;
    json found = json::array(), left = json::array();
    for (auto& k : body["RequestItems"]["t"]["Keys"])
      if (k["key"]["S"] == "k2")
        left.push_back(k);
      else if (k["key"]["S"] == "k0")
        found.push_back(item_json("k0", "v0"));
    return answer(200,
                  json{{"Responses", {{"t", found}}}, {"UnprocessedKeys", {{"t", {{"Keys", left}}}}}}.dump());
  });
  auto o = stand.options();
  o.retry.max_attempts = 3;
  Client c(o);
  auto out = all_at_once(c, {get("k0"), get("k1"), get("k2")});
  EXPECT_EQ(value_of(out[0]), "v0");
  EXPECT_EQ(value_of(out[1]), "miss");
  ASSERT_FALSE(out[2].ok());
  try {
    std::rethrow_exception(out[2].error());
  } catch (const ThrottlingError& e) {  // the class a GetItem's caller catches
    EXPECT_EQ(e.kind(), ErrorKind::kThrottling);
  } catch (...) {
    ADD_FAILURE() << "not a ThrottlingError";
  }
}

// A whole batch throttled: each get retries as its own GetItem would, and succeeds.
TEST(GetBatch, AThrottledBatchIsRetriedForEachGet) {
  Stand stand([](const std::string& op, const json&, int n) -> std::optional<TestResponse> {
    if (op == "BatchGetItem" && n == 1) return refusal(400, "ProvisionedThroughputExceededException");
    return std::nullopt;
  });
  Client c(stand.options());
  std::vector<GetItemRequest> reqs;
  for (int i = 0; i < 10; ++i) reqs.push_back(get("k" + std::to_string(i)));
  auto out = all_at_once(c, reqs);
  for (int i = 0; i < 10; ++i) EXPECT_EQ(value_of(out[i]), expected(i)) << i;
  EXPECT_EQ(c.stats().retries.load(), 10u);
}

// Out of attempts, each caller gets its own error, typed as a GetItem's.
TEST(GetBatch, EachGetGetsItsOwnError) {
  Stand stand([](const std::string& op, const json&, int) -> std::optional<TestResponse> {
    if (op == "BatchGetItem") return refusal(400, "ProvisionedThroughputExceededException");
    return std::nullopt;
  });
  auto o = stand.options();
  o.retry.max_attempts = 1;
  Client c(o);
  auto out = all_at_once(c, {get("k0"), get("k1"), get("k2")});
  std::set<const void*> objects;
  for (auto& r : out) {
    ASSERT_FALSE(r.ok());
    try {
      std::rethrow_exception(r.error());
    } catch (const ThrottlingError& e) {  // copied per caller without slicing its class
      EXPECT_EQ(e.kind(), ErrorKind::kThrottling);
      EXPECT_EQ(e.name(), "ProvisionedThroughputExceededException");
      objects.insert(&e);
    } catch (...) {
      ADD_FAILURE() << "not a ThrottlingError";
    }
  }
  EXPECT_EQ(objects.size(), 3u);  // no exception object shared between callers
}

// One key DynamoDB refuses makes the batch a ValidationException: each get goes again alone,
// and only that key's caller gets the error.
TEST(GetBatch, ARefusedBatchGoesAgainAsSingleGets) {
  Stand stand;
  Client c(stand.options());
  GetItemRequest bad = get("x");
  bad.key = {{"bad", AttributeValue::S("x")}};
  auto out = all_at_once(c, {get("k0"), bad, get("k1")});
  EXPECT_EQ(value_of(out[0]), "v0");
  EXPECT_EQ(value_of(out[2]), "miss");
  ASSERT_FALSE(out[1].ok());
  try {
    std::rethrow_exception(out[1].error());
  } catch (const ServiceError& e) {
    EXPECT_EQ(e.name(), "ValidationException");
  }
  EXPECT_EQ(stand.batches().size(), 1u);
}

// A transport failure of the batch (the connection closed without an answer) is each get's,
// retried.
TEST(GetBatch, ALostBatchIsRetried) {
  Stand stand([](const std::string& op, const json&, int n) -> std::optional<TestResponse> {
    if (op == "BatchGetItem" && n == 1) {
      TestResponse r;
      r.raw = "";
      return r;
    }
    return std::nullopt;
  });
  Client c(stand.options());
  std::vector<GetItemRequest> reqs;
  for (int i = 0; i < 8; ++i) reqs.push_back(get("k" + std::to_string(i)));
  auto out = all_at_once(c, reqs);
  for (int i = 0; i < 8; ++i) EXPECT_EQ(value_of(out[i]), expected(i)) << i;
  EXPECT_EQ(stand.batches().size(), 2u);
}

// The cache's asynchronous gets batch; DynamodbOptions::batch_gets false keeps them apart.
TEST(GetBatch, CacheGetsBatchUnlessTheBackendSaysNo) {
  for (bool allow : {true, false}) {
    Stand stand;
    auto c = std::make_shared<Client>(stand.options());
    DynamodbOptions o;
    o.table = "t";
    o.batch_gets = allow;
    DynamodbBackend b(c, o);
    std::vector<std::string> keys;  // odd: the stand has no such item
    for (int i = 0; i < 20; ++i) keys.push_back("k" + std::to_string(2 * i + 1));
    misses_in_one_turn(*c, b, keys);
    EXPECT_EQ(stand.batches().size(), allow ? 1u : 0u);
  }
}

// A cache get hands its key over without a GetItem body (detail::raw_get_async); when it goes
// alone (alone in its turn, retried alone after its batch left it unprocessed, or once more
// alone after a refused batch), the client sends the body the backend encodes for a blocking
// get, byte for byte.
TEST(GetBatch, ACacheGetSentAloneSendsTheBackendsGetItemBody) {
  for (bool consistent : {false, true}) {
    // Batches leave k"3 unprocessed, and one holding r0 is refused.
    Stand stand([](const std::string& op, const json& body, int) -> std::optional<TestResponse> {
      if (op != "BatchGetItem") return std::nullopt;
      json left = json::array();
      for (auto& k : body["RequestItems"]["t"]["Keys"]) {
        if (k["key"]["S"] == "r0") return refusal(400, "ValidationException");
        if (k["key"]["S"] == "k\"3") left.push_back(k);
      }
      return answer(200,
                    json{{"Responses", {{"t", json::array()}}}, {"UnprocessedKeys", {{"t", {{"Keys", left}}}}}}.dump());
    });
    auto c = std::make_shared<Client>(stand.options());
    DynamodbOptions o;
    o.table = "t";
    o.consistent_read = consistent;
    DynamodbBackend b(c, o);
    auto body_of = [&](const std::string& key) {
      return wire::encode_get_item("t", "key", key, consistent, ReturnConsumedCapacity::kTotal);
    };
    EXPECT_FALSE(b.get_entry_async("k\"1").get());  // alone in its turn
    EXPECT_EQ(stand.get_item_bodies("k\"1"), std::vector<std::string>{body_of("k\"1")});
    misses_in_one_turn(*c, b, {"k0", "k\"3", "k5"});
    EXPECT_EQ(stand.batches().size(), 1u);
    EXPECT_TRUE(stand.get_item_bodies("k0").empty());
    auto retried = stand.get_item_bodies("k\"3");
    EXPECT_FALSE(retried.empty());
    for (auto& sent : retried) EXPECT_EQ(sent, body_of("k\"3"));
    misses_in_one_turn(*c, b, {"r0", "r1"});
    EXPECT_EQ(stand.batches().size(), 2u);
    for (std::string key : {"r0", "r1"}) EXPECT_EQ(stand.get_item_bodies(key), std::vector<std::string>{body_of(key)});
  }
}

// A timer added by a before-wait hook (as a retry's backoff, started by an answer the engine's
// batched receive delivered) bounds the loop's wait: it runs long before a later timer.
TEST(EventLoopHooks, ATimerAddedByAHookBoundsTheWait) {
  io::EventLoop loop;
  std::promise<void> ran;
  std::atomic<bool> added{false};
  loop.post([&] {
    loop.add_timer(io::Clock::now() + 60s, [] {});  // what the wait would otherwise be
    loop.add_before_wait([&] {
      if (!added.exchange(true)) loop.add_timer(io::Clock::now() + 1ms, [&] { ran.set_value(); });
      return false;
    });
  });
  EXPECT_EQ(ran.get_future().wait_for(20s), std::future_status::ready);
  loop.join();
}
