// Micro-benchmarks of the hot paths (Google Benchmark). Figures and the command that
// produced them: bench/README.md.
#include <arpa/inet.h>
#include <benchmark/benchmark.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <simdjson.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <thread>

#include <nlohmann/json.hpp>
#include <random>
#ifdef HAVE_RAPIDJSON
#include <rapidjson/document.h>
#endif

#include "cache/dynamodb_backend_impl.h"
#include "dynamodb/wire.h"
#include "dynamodb_cache/dynamodb_cache.h"
#include "util/crypto.h"
#include "util/json_writer.h"

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

// A cache get's answer to a hit (the Python package's layout: base64 text in `value`, decoded
// twice), read as the backend reads it: straight from the JSON (detail::read_answer,
// range(1) = 1), or through an Item (decode_get_item + holds_key + read_entry, range(1) = 0).
void BM_ReadGetAnswer(benchmark::State& state) {
  const std::string value = letters(static_cast<size_t>(state.range(0)));
  std::string body = "{\"Item\":{\"key\":{\"S\":\"bench-00000042\"},\"value\":{\"B\":\"" +
                     util::base64_encode(util::base64_encode(value)) +
                     "\"},\"expire\":{\"N\":\"3600\"},\"update_ts\":{\"N\":\"1700000000\"}}}";
  body.reserve(body.size() + 64);
  ddb::ClientOptions o;
  o.region = "us-east-1";
  o.endpoint = "http://127.0.0.1:9";
  o.credentials = aws::make_static_provider({"AKID", "secret", "", std::nullopt, ""});
  ddb::Client client(o);
  DynamodbOptions options;
  options.table = "t";
  options.now = [] { return SystemClock::time_point(std::chrono::seconds(1700000010)); };
  std::atomic<double> units{0};
  for (auto _ : state) {
    if (state.range(1)) {
      benchmark::DoNotOptimize(detail::read_answer(options, &client, body, "bench-00000042", units));
    } else {
      auto res = ddb::wire::decode_get_item(body);
      if (res.item && detail::holds_key(*res.item, "bench-00000042"))
        benchmark::DoNotOptimize(detail::read_entry(options, client, *res.item));
    }
  }
  state.SetBytesProcessed(state.iterations() * state.range(0));
}
BENCHMARK(BM_ReadGetAnswer)->ArgsProduct({{1000, 300 * 1024}, {0, 1}})->ArgNames({"bytes", "fields"});

// The x-amz-crc32 check over a whole response body (ISA-L's when built with it, else zlib's).
void BM_Crc32(benchmark::State& state) {
  std::string body = get_item_response(static_cast<size_t>(state.range(0)));
  for (auto _ : state) benchmark::DoNotOptimize(util::crc32(body));
  state.SetBytesProcessed(state.iterations() * static_cast<int64_t>(body.size()));
}
BENCHMARK(BM_Crc32)->Arg(1000)->Arg(300 * 1024);

// The Python package's layout decodes base64 twice per get (the B attribute, then the text in
// it): a 1000-byte value is 1336 characters of text in 1780 of B. range(0) is the decoded
// size in bytes.
// _Scalar: the portable loop CPUs without AVX2 run.
template <std::optional<std::string> (*Decode)(std::string_view)>
void BM_Base64Decode(benchmark::State& state) {
  const std::string text = util::base64_encode(letters(static_cast<size_t>(state.range(0))));
  for (auto _ : state) benchmark::DoNotOptimize(Decode(text));
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations()) * static_cast<int64_t>(text.size()));
  state.counters["chars"] = static_cast<double>(text.size());
}
BENCHMARK(BM_Base64Decode<util::base64_decode>)->Name("BM_Base64Decode")->Arg(1000)->Arg(1335)->Arg(300 * 1024);
BENCHMARK(BM_Base64Decode<util::detail::base64_decode_scalar>)->Name("BM_Base64Decode_Scalar")->Arg(1000)->Arg(1335);

// And a set encodes it twice (range(0) bytes in). _Scalar: OpenSSL's EVP_EncodeBlock.
template <void (*Append)(std::string&, std::string_view)>
void BM_Base64Encode(benchmark::State& state) {
  const std::string bytes = letters(static_cast<size_t>(state.range(0)));
  std::string out;
  for (auto _ : state) {
    out.clear();
    Append(out, bytes);
    benchmark::DoNotOptimize(out.data());
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations()) * state.range(0));
}
BENCHMARK(BM_Base64Encode<util::base64_append>)->Name("BM_Base64Encode")->Arg(1000)->Arg(1335)->Arg(300 * 1024);
BENCHMARK(BM_Base64Encode<util::detail::base64_append_scalar>)->Name("BM_Base64Encode_Scalar")->Arg(1000)->Arg(1335);

// The names and short strings of a GetItem body, quoted and escaped by util::JsonWriter (a
// batched get writes these for every key).
void BM_JsonWriterShortStrings(benchmark::State& state) {
  std::string out;
  for (auto _ : state) {
    out.clear();
    util::JsonWriter w(out);
    w.begin_object();
    w.field("TableName", "dynamodb-cache-bench");
    w.key("Key");
    w.begin_object();
    w.key("key");
    w.begin_object();
    w.field("S", "bench-000123");
    w.end_object();
    w.end_object();
    w.key("ConsistentRead");
    w.boolean(false);
    w.field("ReturnConsumedCapacity", "TOTAL");
    w.end_object();
    benchmark::DoNotOptimize(out.data());
  }
  state.counters["strings"] = 8;
}
BENCHMARK(BM_JsonWriterShortStrings);

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

// ---- Allocations per request of the built-in HTTP/1.1 client, http and https (issue 9) ----
//
// malloc, calloc and realloc are replaced in this program by counting forwarders to glibc's
// (C++'s operator new and OpenSSL's CRYPTO_malloc both end there); the count is per thread,
// so a loopback server thread's allocations are not counted. Not under a sanitizer, which
// brings its own malloc. The benchmarks report `allocs_per_req`.
#if !defined(__SANITIZE_ADDRESS__) && !defined(__SANITIZE_THREAD__)
#define COUNT_ALLOCATIONS 1
static __thread uint64_t t_allocations;  // initial-exec TLS: counting never allocates
extern "C" {
void* __libc_malloc(size_t) noexcept;
void* __libc_calloc(size_t, size_t) noexcept;
void* __libc_realloc(void*, size_t) noexcept;
void* malloc(size_t n) noexcept {
  ++t_allocations;
  return __libc_malloc(n);
}
void* calloc(size_t n, size_t size) noexcept {
  ++t_allocations;
  return __libc_calloc(n, size);
}
void* realloc(void* p, size_t n) noexcept {
  ++t_allocations;
  return __libc_realloc(p, n);
}
}
uint64_t allocations() { return t_allocations; }
#else
uint64_t allocations() { return 0; }
#endif

namespace {

// A server SSL_CTX (into `ctx`) with a fresh self-signed P-256 certificate for 127.0.0.1;
// returns the path of the certificate's PEM file, for the client to trust (removed by the caller).
std::string self_signed_server(SSL_CTX*& ctx) {
  EVP_PKEY* key = EVP_EC_gen("P-256");
  X509* x = X509_new();
  X509_set_version(x, 2);
  ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
  X509_gmtime_adj(X509_getm_notBefore(x), -60);
  X509_gmtime_adj(X509_getm_notAfter(x), 24 * 3600);
  X509_set_pubkey(x, key);
  X509_NAME* name = X509_get_subject_name(x);
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, reinterpret_cast<const unsigned char*>("127.0.0.1"), -1, -1, 0);
  X509_set_issuer_name(x, name);
  X509V3_CTX v3;
  X509V3_set_ctx_nodb(&v3);
  X509V3_set_ctx(&v3, x, x, nullptr, nullptr, 0);
  for (auto [nid, value] : {std::pair{NID_subject_alt_name, "IP:127.0.0.1"}, {NID_basic_constraints, "critical,CA:TRUE"}}) {
    X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &v3, nid, value);
    X509_add_ext(x, ext, -1);
    X509_EXTENSION_free(ext);
  }
  X509_sign(x, key, EVP_sha256());
  char path[] = "/tmp/micro_bench_ca_XXXXXX";
  int fd = ::mkstemp(path);
  FILE* f = ::fdopen(fd, "w");
  PEM_write_X509(f, x);
  std::fclose(f);
  ctx = SSL_CTX_new(TLS_server_method());
  if (SSL_CTX_use_certificate(ctx, x) != 1 || SSL_CTX_use_PrivateKey(ctx, key) != 1) std::abort();
  X509_free(x);
  EVP_PKEY_free(key);
  return path;
}

// A keep-alive HTTP/1.1 server on 127.0.0.1 answering every request with the canned nginx's
// GetItem answer (bench/README.md), over TLS with a self-signed certificate for 127.0.0.1
// when asked. One connection at a time; a thread of its own.
class LoopbackServer {
 public:
  explicit LoopbackServer(bool tls, std::string body) : body_(std::move(body)) {
    listen_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    if (::bind(listen_, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 || ::listen(listen_, 8) != 0 ||
        ::getsockname(listen_, reinterpret_cast<sockaddr*>(&a), &len) != 0)
      std::abort();
    port_ = ntohs(a.sin_port);
    answer_ = "HTTP/1.1 200 OK\r\nServer: nginx\r\nDate: Wed, 25 Nov 2026 19:09:51 GMT\r\n"
              "Content-Type: application/x-amz-json-1.0\r\nContent-Length: " +
              std::to_string(body_.size()) + "\r\nConnection: keep-alive\r\nx-amzn-RequestId: canned\r\n" +
              "x-amz-crc32: " + std::to_string(util::crc32(body_)) + "\r\n\r\n" + body_;
    if (tls) ca_file_ = self_signed_server(ctx_);
    thread_ = std::thread([this] { serve(); });
  }
  ~LoopbackServer() {
    ::shutdown(listen_, SHUT_RDWR);
    ::close(listen_);
    thread_.join();
    if (ctx_) SSL_CTX_free(ctx_);
    if (!ca_file_.empty()) std::remove(ca_file_.c_str());
  }
  std::string url() const { return std::string(ctx_ ? "https" : "http") + "://127.0.0.1:" + std::to_string(port_); }
  const std::string& ca_file() const { return ca_file_; }

 private:
  void serve() {
    for (;;) {
      int fd = ::accept4(listen_, nullptr, nullptr, SOCK_CLOEXEC);
      if (fd < 0) return;
      int one = 1;
      ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
      SSL* ssl = nullptr;
      if (ctx_) {
        ssl = SSL_new(ctx_);
        SSL_set_fd(ssl, fd);
        if (SSL_accept(ssl) != 1) {
          SSL_free(ssl);
          ::close(fd);
          continue;
        }
      }
      auto rd = [&](char* b, size_t n) -> ssize_t { return ssl ? SSL_read(ssl, b, static_cast<int>(n)) : ::recv(fd, b, n, 0); };
      std::string in;
      char buf[16384];
      for (;;) {  // one request: head, then Content-Length bytes of body
        size_t end = in.find("\r\n\r\n");
        if (end != std::string::npos) {
          size_t cl = in.find("Content-Length: ");
          size_t need = end + 4 + (cl < end ? std::stoul(in.substr(cl + 16)) : 0);
          if (in.size() >= need) {
            in.erase(0, need);
            ssize_t w = ssl ? SSL_write(ssl, answer_.data(), static_cast<int>(answer_.size()))
                            : ::send(fd, answer_.data(), answer_.size(), MSG_NOSIGNAL);
            if (w <= 0) break;
            continue;
          }
        }
        ssize_t n = rd(buf, sizeof buf);
        if (n <= 0) break;
        in.append(buf, static_cast<size_t>(n));
      }
      if (ssl) SSL_free(ssl);
      ::close(fd);
    }
  }

  std::string body_, answer_, ca_file_;
  int listen_ = -1;
  uint16_t port_ = 0;
  SSL_CTX* ctx_ = nullptr;
  std::thread thread_;
};

// The canned GetItem answer's body (a 1000-byte value), with a fresh update_ts.
std::string canned_get_item_body() {
  ddb::Item item = cache_item(1000);
  item["update_ts"] = ddb::AttributeValue::N(std::chrono::duration_cast<std::chrono::seconds>(
      std::chrono::system_clock::now().time_since_epoch()).count());
  ddb::PutItemRequest p;
  p.item = item;
  std::string put = ddb::wire::encode(p);
  return "{\"Item\":" + put.substr(put.find("\"Item\":") + 7);
}

// Transport::send of a signed GetItem-shaped request over one keep-alive connection
// (range(0): 0 http, 1 https). The first request (connect, handshake) is not measured.
void BM_TransportKeepAlive(benchmark::State& state) {
  LoopbackServer server(state.range(0) == 1, canned_get_item_body());
  http::HttpOptions o;
  o.ca_file = server.ca_file();
  auto t = http::make_default_transport(o);
  http::Request req;
  req.url = server.url() + "/";
  req.headers = {{"Host", server.url().substr(server.url().find("://") + 3)},
                 {"Content-Type", "application/x-amz-json-1.0"},
                 {"X-Amz-Target", "DynamoDB_20120810.GetItem"},
                 {"X-Amz-Date", "20261125T190951Z"},
                 {"Authorization", "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20261125/us-east-1/dynamodb/aws4_request, "
                                   "SignedHeaders=content-type;host;x-amz-date;x-amz-target, Signature=" +
                                       std::string(64, 'f')}};
  req.body = R"({"TableName":"dynamodb-cache","Key":{"key":{"S":"bench-00000042"}},"ConsistentRead":false})";
  http::Response resp;
  t->send_into(req, resp);
  const uint64_t before = allocations();
  for (auto _ : state) {
    t->send_into(req, resp);
    if (resp.status != 200) state.SkipWithError("not 200");
  }
  state.counters["allocs_per_req"] = static_cast<double>(allocations() - before) / static_cast<double>(state.iterations());
}
BENCHMARK(BM_TransportKeepAlive)->Arg(0)->Arg(1)->ArgNames({"https"});

// A whole cache get (DynamodbBackend::get_entry) over one keep-alive loopback connection
// (range(0): 0 http, 1 https): key check, encoding, SigV4, HTTP, CRC, decoding.
void BM_CacheGetLoopback(benchmark::State& state) {
  LoopbackServer server(state.range(0) == 1, canned_get_item_body());
  http::HttpOptions ho;
  ho.ca_file = server.ca_file();
  ddb::ClientOptions o;
  o.region = "us-east-1";
  o.endpoint = server.url();
  o.credentials = aws::make_caching_provider(aws::make_static_provider({"AKID", "secret", "", std::nullopt, ""}));
  o.transport = http::make_default_transport(ho);
  DynamodbBackend b(std::make_shared<ddb::Client>(o));
  b.get_entry("bench-00000042");
  const uint64_t before = allocations();
  for (auto _ : state) benchmark::DoNotOptimize(b.get_entry("bench-00000042"));
  state.counters["allocs_per_req"] = static_cast<double>(allocations() - before) / static_cast<double>(state.iterations());
}
BENCHMARK(BM_CacheGetLoopback)->Arg(0)->Arg(1)->ArgNames({"https"});


// ---- What OpenSSL's record layer costs a get over https (issue 26) ----
//
// One get over https is one TLS record out (the request: ~600 bytes of head and body) and one
// in (the answer: ~1.5 KB), on top of everything a get over http costs. Here a client and a
// server SSL talk through memory BIO pairs (no kernel), and only the client's calls are timed
// (SSL_write_ex of the request, SSL_read_ex of the answer the server wrote), so the figure is
// the record layer's CPU per get, for the suite OpenSSL negotiates by default
// (TLS_AES_256_GCM_SHA384; range(0) 1: TLS_AES_128_GCM_SHA256; 2: TLS 1.2,
// ECDHE-ECDSA-AES256-GCM-SHA384). BM_AesGcmFloor is the AES-GCM work alone on the same bytes
// (one reused EVP_CIPHER_CTX, a fresh IV per record as TLS 1.3 makes it): what any record
// layer on this libcrypto pays, and the rest of BM_TlsRecordsPerGet is the layer's own.
constexpr size_t kTlsRequestBytes = 600, kTlsAnswerBytes = 1500;

void BM_TlsRecordsPerGet(benchmark::State& state) {
  SSL_CTX* server_ctx = nullptr;
  const std::string ca = self_signed_server(server_ctx);
  SSL_CTX* client_ctx = SSL_CTX_new(TLS_client_method());
  SSL_CTX_load_verify_locations(client_ctx, ca.c_str(), nullptr);
  SSL_CTX_set_verify(client_ctx, SSL_VERIFY_PEER, nullptr);
  if (state.range(0) == 1) SSL_CTX_set_ciphersuites(client_ctx, "TLS_AES_128_GCM_SHA256");
  if (state.range(0) == 2) SSL_CTX_set_max_proto_version(client_ctx, TLS1_2_VERSION);
  SSL* client = SSL_new(client_ctx);
  SSL* server = SSL_new(server_ctx);
  BIO *client_io = nullptr, *server_io = nullptr;
  BIO_new_bio_pair(&client_io, 64 * 1024, &server_io, 64 * 1024);
  SSL_set_bio(client, client_io, client_io);
  SSL_set_bio(server, server_io, server_io);
  SSL_set_connect_state(client);
  SSL_set_accept_state(server);
  SSL_set_read_ahead(client, 1);  // as the event loop reads (io/http_engine.cc), and with
  SSL_set_mode(client, SSL_MODE_RELEASE_BUFFERS);  // its buffers given back (http/tls.cc)
  for (int i = 0, c = 0, s = 0; i < 100 && (c != 1 || s != 1); ++i) {
    if (c != 1) c = SSL_do_handshake(client);
    if (s != 1) s = SSL_do_handshake(server);
  }
  const std::string request(kTlsRequestBytes, 'q'), answer(kTlsAnswerBytes, 'a');
  std::string got(16 * 1024, '\0');
  size_t n = 0;
  auto exchange = [&](bool timed, std::chrono::nanoseconds& spent) {
    auto t0 = std::chrono::steady_clock::now();
    if (SSL_write_ex(client, request.data(), request.size(), &n) != 1) std::abort();
    auto t1 = std::chrono::steady_clock::now();
    for (size_t in = 0; in < request.size(); in += n)
      if (SSL_read_ex(server, got.data(), got.size(), &n) != 1) std::abort();
    if (SSL_write_ex(server, answer.data(), answer.size(), &n) != 1) std::abort();
    auto t2 = std::chrono::steady_clock::now();
    for (size_t in = 0; in < answer.size(); in += n)
      if (SSL_read_ex(client, got.data(), got.size(), &n) != 1) std::abort();
    auto t3 = std::chrono::steady_clock::now();
    if (timed) spent = (t1 - t0) + (t3 - t2);
  };
  std::chrono::nanoseconds spent{};
  exchange(false, spent);  // the session ticket the server sends after the handshake
  if (!SSL_is_init_finished(client)) state.SkipWithError("no handshake");
  for (auto _ : state) {
    exchange(true, spent);
    state.SetIterationTime(std::chrono::duration<double>(spent).count());
  }
  state.SetLabel(std::string(SSL_get_version(client)) + " " + SSL_get_cipher_name(client));
  SSL_free(client);
  SSL_free(server);
  SSL_CTX_free(client_ctx);
  SSL_CTX_free(server_ctx);
  std::remove(ca.c_str());
}
BENCHMARK(BM_TlsRecordsPerGet)->Arg(0)->Arg(1)->Arg(2)->UseManualTime();

void BM_AesGcmFloor(benchmark::State& state) {
  const EVP_CIPHER* cipher = state.range(0) == 128 ? EVP_aes_128_gcm() : EVP_aes_256_gcm();
  unsigned char key[32] = {1}, iv[12] = {2}, tag[16];
  const std::string request(kTlsRequestBytes, 'q'), answer(kTlsAnswerBytes, 'a');
  std::string out(16 * 1024, '\0');
  EVP_CIPHER_CTX* ctx = EVP_CIPHER_CTX_new();
  EVP_EncryptInit_ex(ctx, cipher, nullptr, key, iv);
  int len = 0;
  const unsigned char aad[5] = {23, 3, 3, 0, 0};
  auto record = [&](const std::string& in) {
    ++iv[11];
    EVP_CipherInit_ex(ctx, nullptr, nullptr, nullptr, iv, 1);
    EVP_CipherUpdate(ctx, nullptr, &len, aad, sizeof aad);
    EVP_CipherUpdate(ctx, reinterpret_cast<unsigned char*>(out.data()), &len,
                     reinterpret_cast<const unsigned char*>(in.data()), static_cast<int>(in.size()));
    EVP_CipherFinal_ex(ctx, reinterpret_cast<unsigned char*>(out.data()) + len, &len);
    EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_GET_TAG, sizeof tag, tag);
  };
  for (auto _ : state) {
    record(request);
    record(answer);
    benchmark::DoNotOptimize(tag);
  }
  EVP_CIPHER_CTX_free(ctx);
}
BENCHMARK(BM_AesGcmFloor)->Arg(256)->Arg(128);

}  // namespace

BENCHMARK_MAIN();
