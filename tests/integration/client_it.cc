// Every DynamoDB operation of the client that dynalite implements, against dynalite.
#include <unistd.h>

#include "it_env.h"

using namespace dynamodb_cache;
using namespace dynamodb_cache::dynamodb;

namespace {

Item key_of(const std::string& pk, const std::string& sk = "") {
  Item k{{"pk", AttributeValue::S(pk)}};
  if (!sk.empty()) k["sk"] = AttributeValue::S(sk);
  return k;
}

// A table with a hash and a range key, for Query.
struct TwoKeyTable {
  std::shared_ptr<Client> c = it::client();
  std::string name = it::unique_table("it-client");
  TwoKeyTable() {
    CreateTableRequest r;
    r.table_name = name;
    r.attribute_definitions = {{"pk", "S"}, {"sk", "S"}};
    r.key_schema = {{"pk", KeyType::kHash}, {"sk", KeyType::kRange}};
    r.billing_mode = BillingMode::kProvisioned;
    r.read_capacity_units = 5;
    r.write_capacity_units = 5;
    auto d = c->create_table(r);
    EXPECT_EQ(d.table_name, name);
    for (int i = 0; i < 200 && c->describe_table(name).table_status != "ACTIVE"; ++i) usleep(20000);
  }
  ~TwoKeyTable() { c->delete_table(name); }
};

}  // namespace

TEST(ClientIT, DescribeTable) {
  TwoKeyTable t;
  auto d = t.c->describe_table(t.name);
  EXPECT_EQ(d.table_status, "ACTIVE");
  ASSERT_EQ(d.key_schema.size(), 2u);
  EXPECT_EQ(d.key_schema[1].key_type, KeyType::kRange);
  EXPECT_EQ(d.read_capacity_units, 5);
  EXPECT_EQ(d.billing_mode, BillingMode::kProvisioned);
}

TEST(ClientIT, PutGetUpdateDeleteWithExpressionsAndCapacity) {
  TwoKeyTable t;
  PutItemRequest put;
  put.table_name = t.name;
  put.item = key_of("a", "1");
  put.item["value"] = AttributeValue::B(std::string("\0\1\2", 3));
  put.item["n"] = AttributeValue::N(5);
  put.item["m"] = AttributeValue::M({{"l", AttributeValue::L({AttributeValue::S("x"), AttributeValue::Bool(true)})}});
  put.item["ss"] = AttributeValue::SS({"p", "q"});
  put.item["nul"] = AttributeValue::Null();
  put.return_consumed_capacity = ReturnConsumedCapacity::kTotal;
  auto pr = t.c->put_item(put);
  ASSERT_TRUE(pr.consumed);
  EXPECT_GE(pr.consumed->capacity_units, 1.0);

  // Conditional put on an existing key: an answer, typed.
  PutItemRequest again = put;
  again.condition_expression = "attribute_not_exists(#pk)";
  again.names = {{"#pk", "pk"}};
  try {
    t.c->put_item(again);
    ADD_FAILURE();
  } catch (const ServiceError& e) {
    EXPECT_EQ(e.kind(), ErrorKind::kConditionFailed);
    EXPECT_EQ(e.name(), "ConditionalCheckFailedException");
  }

  GetItemRequest get;
  get.table_name = t.name;
  get.key = key_of("a", "1");
  get.consistent_read = true;
  get.return_consumed_capacity = ReturnConsumedCapacity::kTotal;
  auto gr = t.c->get_item(get);
  ASSERT_TRUE(gr.item);
  for (auto& [k, v] : put.item) EXPECT_EQ(gr.item->at(k), v) << k;
  ASSERT_TRUE(gr.consumed);

  get.projection_expression = "#v";
  get.names = {{"#v", "value"}};
  auto proj = t.c->get_item(get);
  ASSERT_TRUE(proj.item);
  EXPECT_EQ(proj.item->size(), 1u);

  UpdateItemRequest up;
  up.table_name = t.name;
  up.key = key_of("a", "1");
  up.update_expression = "ADD #n :inc SET #s = :s";
  up.names = {{"#n", "n"}, {"#s", "status"}};
  up.values = {{":inc", AttributeValue::N(3)}, {":s", AttributeValue::S("ok")}};
  up.return_values = ReturnValues::kAllNew;
  auto ur = t.c->update_item(up);
  ASSERT_TRUE(ur.attributes);
  EXPECT_EQ(ur.attributes->at("n").scalar, "8");
  EXPECT_EQ(ur.attributes->at("status").scalar, "ok");

  DeleteItemRequest del;
  del.table_name = t.name;
  del.key = key_of("a", "1");
  del.return_values = ReturnValues::kAllOld;
  auto dr = t.c->delete_item(del);
  ASSERT_TRUE(dr.attributes);
  EXPECT_EQ(dr.attributes->at("n").scalar, "8");
  EXPECT_FALSE(t.c->get_item(get).item);
}

TEST(ClientIT, BatchWriteAndBatchGetBeyondOneCall) {
  TwoKeyTable t;
  std::vector<WriteRequest> writes;
  for (int i = 0; i < 130; ++i) {
    WriteRequest w;
    w.put_item = key_of(std::string("p").append(std::to_string(i)), "s");
    (*w.put_item)["i"] = AttributeValue::N(i);
    writes.push_back(std::move(w));
  }
  std::vector<ConsumedCapacity> consumed;
  t.c->batch_write_all(t.name, writes, &consumed);
  EXPECT_FALSE(consumed.empty());
  std::vector<Item> keys;
  for (int i = 0; i < 130; ++i) keys.push_back(key_of(std::string("p").append(std::to_string(i)), "s"));
  keys.push_back(key_of("absent", "s"));
  auto items = t.c->batch_get_all(t.name, keys, true);
  EXPECT_EQ(items.size(), 130u);
  std::vector<WriteRequest> deletes;
  for (int i = 0; i < 130; i += 2) {
    WriteRequest w;
    w.delete_key = key_of(std::string("p").append(std::to_string(i)), "s");
    deletes.push_back(std::move(w));
  }
  t.c->batch_write_all(t.name, deletes);
  EXPECT_EQ(t.c->batch_get_all(t.name, keys).size(), 65u);
}

TEST(ClientIT, QueryAndPaginatedScan) {
  TwoKeyTable t;
  std::vector<WriteRequest> writes;
  for (int i = 0; i < 40; ++i) {
    WriteRequest w;
    w.put_item = key_of(i < 25 ? "q" : "other", std::string("s").append(std::to_string(100 + i)));
    writes.push_back(std::move(w));
  }
  t.c->batch_write_all(t.name, writes);

  QueryRequest q;
  q.table_name = t.name;
  q.key_condition_expression = "#pk = :pk AND begins_with(#sk, :pre)";
  q.names = {{"#pk", "pk"}, {"#sk", "sk"}};
  q.values = {{":pk", AttributeValue::S("q")}, {":pre", AttributeValue::S("s1")}};
  q.scan_index_forward = false;
  q.limit = 10;
  size_t total = 0;
  std::string last_sk = "~";
  for (;;) {
    auto page = t.c->query(q);
    for (auto& item : page.items) {
      EXPECT_LT(item.at("sk").scalar, last_sk);  // descending
      last_sk = item.at("sk").scalar;
    }
    total += page.items.size();
    if (!page.last_evaluated_key) break;
    q.exclusive_start_key = page.last_evaluated_key;
  }
  EXPECT_EQ(total, 25u);

  ScanRequest s;
  s.table_name = t.name;
  s.limit = 7;
  int pages = 0;
  size_t scanned = 0;
  t.c->scan_all(s, [&](PageResult& p) {
    ++pages;
    scanned += p.items.size();
    return true;
  });
  EXPECT_EQ(scanned, 40u);
  EXPECT_GE(pages, 6);

  s.limit.reset();
  s.filter_expression = "#pk = :o";
  s.names = {{"#pk", "pk"}};
  s.values = {{":o", AttributeValue::S("other")}};
  size_t filtered = 0;
  t.c->scan_all(s, [&](PageResult& p) {
    filtered += p.items.size();
    return true;
  });
  EXPECT_EQ(filtered, 15u);
}

TEST(ClientIT, MissingTableIsResourceNotFound) {
  auto c = it::client();
  GetItemRequest g;
  g.table_name = "no-such-table";
  g.key = key_of("a");
  try {
    c->get_item(g);
    ADD_FAILURE();
  } catch (const ServiceError& e) {
    EXPECT_EQ(e.kind(), ErrorKind::kResourceNotFound);
    EXPECT_FALSE(e.request_id().empty());
    EXPECT_FALSE(e.retryable());
  }
  EXPECT_THROW(c->describe_table("no-such-table"), ServiceError);
}

TEST(ClientIT, ValidationErrorsAreFinal) {
  TwoKeyTable t;
  PutItemRequest put;
  put.table_name = t.name;
  put.item = {{"pk", AttributeValue::S("only-hash")}};  // range key missing
  try {
    t.c->put_item(put);
    ADD_FAILURE();
  } catch (const ServiceError& e) {
    EXPECT_EQ(e.kind(), ErrorKind::kService);
    EXPECT_EQ(e.name(), "ValidationException");
  }
  EXPECT_EQ(t.c->stats().retries.load(), 0u);
}

TEST(ClientIT, TimeToLiveOperationsAnswerOrFailTyped) {
  TwoKeyTable t;
  // dynalite implements neither TTL operation; real DynamoDB does. Either way the answer is
  // typed: a description, or a ServiceError naming the missing operation.
  try {
    auto d = t.c->describe_time_to_live(t.name);
    EXPECT_FALSE(d.status.empty());
    auto u = t.c->update_time_to_live(t.name, "expire_at", true);
    EXPECT_EQ(u.attribute_name, "expire_at");
  } catch (const ServiceError& e) {
    EXPECT_EQ(e.name(), "UnknownOperationException");
    EXPECT_FALSE(e.retryable());
  }
}
