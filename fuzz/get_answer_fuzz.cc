// libFuzzer target: a cache get's answer read without an Item (detail::read_answer, over
// wire::decode_get_item_fields) against the generic path (decode_get_item, holds_key,
// read_entry). Input: byte 0 picks the key asked for, the rest is the GetItem answer body.
// Contract checked: both give the same hit or miss (value, TTL left, counter flag), or throw
// the same exception type with the same message; anything else aborts.
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <optional>
#include <string>
#include <typeinfo>

#include "cache/chunked.h"
#include "cache/dynamodb_backend_impl.h"
#include "dynamodb/wire.h"
#include "dynamodb_cache/backend.h"
#include "dynamodb_cache/errors.h"

namespace ddb = dynamodb_cache::dynamodb;
namespace detail = dynamodb_cache::detail;
using dynamodb_cache::Hit;

namespace {

// Every request fails at once (a chunked head's chunks are never there), without a retry.
struct NoNetwork : dynamodb_cache::http::Transport {
  dynamodb_cache::http::Response send(const dynamodb_cache::http::Request&) override {
    throw dynamodb_cache::TransportError("no network in the fuzzer", false);
  }
};

struct Env {
  std::shared_ptr<ddb::Client> client;
  dynamodb_cache::DynamodbOptions options;
  Env() {
    ddb::ClientOptions o;
    o.region = "us-east-1";
    o.endpoint = "http://127.0.0.1:9";
    o.credentials = dynamodb_cache::aws::make_static_provider({"a", "b", "", std::nullopt, ""});
    o.transport = std::make_shared<NoNetwork>();
    o.retry.max_attempts = 1;
    client = std::make_shared<ddb::Client>(o);
    options.table = "t";
    options.now = [] {
      return dynamodb_cache::SystemClock::time_point(std::chrono::milliseconds(1700000000250));
    };
  }
};

struct Result {
  bool threw = false;
  std::string type, what;
  std::optional<Hit> hit;
};

template <class F>
Result run(F&& f) {
  Result r;
  try {
    r.hit = f();
  } catch (const std::exception& e) {
    r.threw = true;
    r.type = typeid(e).name();
    r.what = e.what();
  } catch (const dynamodb_cache::chunked::ChunksGone&) {
    r.threw = true;
    r.type = "ChunksGone";
  }
  return r;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static Env env;
  if (size < 1) return 0;
  static const char* const kKeys[] = {"k", "canned", "", "#sha256:x"};
  const std::string key = kKeys[data[0] % 4];
  const std::string body(reinterpret_cast<const char*>(data) + 1, size - 1);
  std::atomic<double> units{0};
  Result fast = run([&] { return detail::read_answer(env.options, env.client.get(), body, key, units); });
  Result generic = run([&]() -> std::optional<Hit> {
    auto res = ddb::wire::decode_get_item(body);
    if (!res.item || !detail::holds_key(*res.item, key)) return std::nullopt;
    return detail::read_entry(env.options, *env.client, *res.item);
  });
  if (fast.threw != generic.threw || fast.type != generic.type || fast.what != generic.what ||
      fast.hit.has_value() != generic.hit.has_value())
    std::abort();
  if (fast.hit && (fast.hit->value != generic.hit->value || fast.hit->ttl_left != generic.hit->ttl_left ||
                   fast.hit->counter != generic.hit->counter))
    std::abort();
  return 0;
}
