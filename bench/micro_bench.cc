// Micro-benchmarks of the hot paths (Google Benchmark). Figures and the command that
// produced them: bench/README.md.
#include <benchmark/benchmark.h>
#include <simdjson.h>

#include <nlohmann/json.hpp>
#include <random>
#ifdef HAVE_RAPIDJSON
#include <rapidjson/document.h>
#endif

#include "dynamodb/wire.h"
#include "dynamodb_cache/dynamodb_cache.h"
#include "util/crypto.h"

using namespace dynamodb_cache;
namespace ddb = dynamodb_cache::dynamodb;

namespace {

std::string letters(size_t n, uint64_t seed = 1) {
  std::mt19937_64 rng(seed);
  std::string s(n, 'a');
  for (auto& c : s) c = static_cast<char>('a' + rng() % 26);
  return s;
}

ddb::Item cache_item(size_t value_size) {
  return {{"key", ddb::AttributeValue::S("bench-00000042")},
          {"value", ddb::AttributeValue::B(letters(value_size))},
          {"expire", ddb::AttributeValue::N(3600)},
          {"update_ts", ddb::AttributeValue::N(1700000000)},
          {"expire_at", ddb::AttributeValue::N(1700003600)},
          {"fmt", ddb::AttributeValue::N(1)}};
}

// A GetItem response body for an item with a value of `value_size` bytes.
std::string get_item_response(size_t value_size) {
  ddb::PutItemRequest p;
  p.table_name = "t";
  p.item = cache_item(value_size);
  std::string put = ddb::wire::encode(p);
  std::string item = put.substr(put.find("\"Item\":") + 7);
  item.pop_back();
  std::string body = "{\"Item\":" + item + "}";
  body.reserve(body.size() + 64);
  return body;
}

void BM_SignPutItem(benchmark::State& state) {
  ddb::PutItemRequest p;
  p.table_name = "dynamodb-cache";
  p.item = cache_item(100);
  std::string body = ddb::wire::encode(p);
  std::vector<http::Header> headers{{"Host", "dynamodb.us-east-1.amazonaws.com"},
                                    {"Content-Type", "application/x-amz-json-1.0"},
                                    {"X-Amz-Target", "DynamoDB_20120810.PutItem"}};
  aws::Credentials creds{"AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", "", std::nullopt, ""};
  aws::SigningParams sp;
  sp.method = "POST";
  sp.path = "/";
  sp.headers = &headers;
  sp.body = body;
  sp.credentials = &creds;
  sp.region = "us-east-1";
  sp.service = "dynamodb";
  sp.time = std::chrono::system_clock::now();
  for (auto _ : state) benchmark::DoNotOptimize(aws::sign_v4(sp));
}
BENCHMARK(BM_SignPutItem);

void BM_EncodePutItem(benchmark::State& state) {
  ddb::PutItemRequest p;
  p.table_name = "dynamodb-cache";
  p.item = cache_item(static_cast<size_t>(state.range(0)));
  for (auto _ : state) benchmark::DoNotOptimize(ddb::wire::encode(p));
  state.SetBytesProcessed(state.iterations() * state.range(0));
}
BENCHMARK(BM_EncodePutItem)->Arg(100)->Arg(10 * 1024)->Arg(300 * 1024);

void BM_DecodeGetItem(benchmark::State& state) {
  std::string body = get_item_response(static_cast<size_t>(state.range(0)));
  for (auto _ : state) benchmark::DoNotOptimize(ddb::wire::decode_get_item(body));
  state.SetBytesProcessed(state.iterations() * state.range(0));
}
BENCHMARK(BM_DecodeGetItem)->Arg(100)->Arg(10 * 1024)->Arg(300 * 1024);

// The JSON library choice for the wire: parse a 10 KB GetItem response and reach the value.
void BM_JsonChoice_simdjson(benchmark::State& state) {
  std::string body = get_item_response(10 * 1024);
  simdjson::dom::parser parser;
  for (auto _ : state) {
    simdjson::dom::element doc = parser.parse(body);
    std::string_view v = doc["Item"]["value"]["B"];
    benchmark::DoNotOptimize(v);
  }
}
BENCHMARK(BM_JsonChoice_simdjson);
#ifdef HAVE_RAPIDJSON
void BM_JsonChoice_rapidjson(benchmark::State& state) {
  std::string body = get_item_response(10 * 1024);
  for (auto _ : state) {
    rapidjson::Document d;
    d.Parse(body.c_str(), body.size());
    const char* v = d["Item"]["value"]["B"].GetString();
    benchmark::DoNotOptimize(v);
  }
}
BENCHMARK(BM_JsonChoice_rapidjson);
#endif
void BM_JsonChoice_nlohmann(benchmark::State& state) {
  std::string body = get_item_response(10 * 1024);
  for (auto _ : state) {
    auto d = nlohmann::json::parse(body);
    benchmark::DoNotOptimize(d["Item"]["value"]["B"].get_ref<const std::string&>().data());
  }
}
BENCHMARK(BM_JsonChoice_nlohmann);

std::shared_ptr<MemoryBackend> g_memory;

void BM_MemoryGetHit(benchmark::State& state) {
  if (state.thread_index() == 0) {
    g_memory = std::make_shared<MemoryBackend>();
    for (int i = 0; i < 10000; ++i) g_memory->set("key-" + std::to_string(i), std::string(100, 'v'), Ttl(0));
  }
  std::vector<std::string> keys;
  for (int i = 0; i < 1024; ++i) keys.push_back("key-" + std::to_string((i * 7919 + state.thread_index()) % 10000));
  size_t i = 0;
  for (auto _ : state) benchmark::DoNotOptimize(g_memory->get_entry(keys[i++ & 1023]));
}
BENCHMARK(BM_MemoryGetHit)->Threads(1)->Threads(2)->UseRealTime();

void BM_MemoryGetMiss(benchmark::State& state) {
  if (state.thread_index() == 0) g_memory = std::make_shared<MemoryBackend>();
  std::vector<std::string> keys;
  for (int i = 0; i < 1024; ++i) keys.push_back("absent-" + std::to_string(i + state.thread_index() * 1024));
  size_t i = 0;
  for (auto _ : state) benchmark::DoNotOptimize(g_memory->get_entry(keys[i++ & 1023]));
}
BENCHMARK(BM_MemoryGetMiss)->Threads(1)->Threads(2)->UseRealTime();

void BM_MemorySet(benchmark::State& state) {
  if (state.thread_index() == 0) g_memory = std::make_shared<MemoryBackend>();
  std::vector<std::string> keys;
  for (int i = 0; i < 1024; ++i) keys.push_back("key-" + std::to_string(i + state.thread_index() * 1024));
  std::string value(100, 'v');
  size_t i = 0;
  for (auto _ : state) g_memory->set(keys[i++ & 1023], value, Ttl(60000));
}
BENCHMARK(BM_MemorySet)->Threads(1)->Threads(2)->UseRealTime();

// A DynamoDB layer that must never be reached: an L1 hit answers alone.
struct Unreachable : Backend {
  std::optional<Hit> get_entry(std::string_view) override { std::abort(); }
  void set(std::string_view, std::string_view, Ttl) override {}
  void erase(std::string_view) override {}
  void clear(const std::function<void(uint64_t)>&) override {}
  bool touch(std::string_view, Ttl) override { std::abort(); }
  bool add(std::string_view, std::string_view, Ttl) override { std::abort(); }
  int64_t increment(std::string_view, int64_t, Ttl) override { std::abort(); }
};

void BM_LayeredL1Hit(benchmark::State& state) {
  auto l1 = std::make_shared<MemoryBackend>();
  LayeredBackend layered({l1, std::make_shared<Unreachable>()});
  for (int i = 0; i < 1000; ++i) l1->set("key-" + std::to_string(i), std::string(100, 'v'), Ttl(0));
  std::vector<std::string> keys;
  for (int i = 0; i < 1000; ++i) keys.push_back("key-" + std::to_string(i));
  size_t i = 0;
  for (auto _ : state) benchmark::DoNotOptimize(layered.get_entry(keys[i++ % 1000]));
}
BENCHMARK(BM_LayeredL1Hit);

// The whole client side of a cache get, minus the network: key check, request encoding,
// signing, response CRC check and decoding, liveness. An in-process transport answers.
struct CannedTransport : http::Transport {
  http::Response resp;
  http::Response send(const http::Request&) override { return resp; }
};

void BM_CacheGetClientSide(benchmark::State& state) {
  auto t = std::make_shared<CannedTransport>();
  ddb::Item item = cache_item(static_cast<size_t>(state.range(0)));
  item["update_ts"] = ddb::AttributeValue::N(std::chrono::duration_cast<std::chrono::seconds>(
      std::chrono::system_clock::now().time_since_epoch()).count());
  ddb::PutItemRequest p;
  p.item = item;
  std::string put = ddb::wire::encode(p);
  t->resp.status = 200;
  t->resp.body = "{\"Item\":" + put.substr(put.find("\"Item\":") + 7);
  t->resp.headers = {{"x-amz-crc32", std::to_string(util::crc32(t->resp.body))}, {"x-amzn-requestid", "r"}};
  ddb::ClientOptions o;
  o.region = "us-east-1";
  o.endpoint = "http://127.0.0.1:9";
  o.credentials = aws::make_caching_provider(aws::make_static_provider({"AKID", "secret", "", std::nullopt, ""}));
  o.transport = t;
  DynamodbBackend b(std::make_shared<ddb::Client>(o));
  for (auto _ : state) benchmark::DoNotOptimize(b.get_entry("bench-00000042"));
}
BENCHMARK(BM_CacheGetClientSide)->Arg(1000)->Arg(10 * 1024);

}  // namespace

BENCHMARK_MAIN();
