#include <curl/curl.h>
#include <dlfcn.h>

#include <algorithm>
#include <cctype>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include "dynamodb_cache/errors.h"
#include "dynamodb_cache/http.h"
#include "http/response_parser.h"
#include "util/text.h"

namespace dynamodb_cache::http {

const std::string* Response::header(std::string_view lower_name) const noexcept {
  for (const auto& h : headers)
    if (h.name == lower_name) return &h.value;
  return nullptr;
}

namespace {

// libcurl is loaded on first use (dlopen), not linked: only requests through a proxy and the
// credential endpoints' transport need it, while linking it mapped libcurl and what it links
// (GnuTLS through librtmp and libldap, Kerberos, LDAP, libssh2, p11-kit, nghttp2) into every
// process, proxy or not: 3.7 MB of resident pages at c=16 in the CLI bench, more than a
// quarter of its peak RSS (bench/README.md, issue 9).
struct CurlApi {
  decltype(&::curl_global_init) global_init;
  decltype(&::curl_easy_init) easy_init;
  CURLcode (*easy_setopt)(CURL*, CURLoption, ...);
  decltype(&::curl_easy_perform) easy_perform;
  CURLcode (*easy_getinfo)(CURL*, CURLINFO, ...);
  decltype(&::curl_easy_strerror) easy_strerror;
  decltype(&::curl_easy_cleanup) easy_cleanup;
  decltype(&::curl_slist_append) slist_append;
  decltype(&::curl_slist_free_all) slist_free_all;
  std::string error;  // why libcurl could not be loaded; empty when loaded
};

// Loads libcurl and initialises it, once per process (never unloaded). Throws TransportError
// when it cannot be loaded. Thread-safe.
const CurlApi& curl_api() {
  static const CurlApi api = [] {
    CurlApi a{};
    void* lib = ::dlopen("libcurl.so.4", RTLD_NOW | RTLD_LOCAL);
    if (!lib) {
      const char* why = ::dlerror();
      a.error = why ? why : "dlopen failed";
      return a;
    }
    auto sym = [&](auto& fn, const char* name) {
      void* p = ::dlsym(lib, name);
      if (!p && a.error.empty()) a.error = std::string("libcurl.so.4 has no ") + name;
      fn = reinterpret_cast<std::remove_reference_t<decltype(fn)>>(p);
    };
    sym(a.global_init, "curl_global_init");
    sym(a.easy_init, "curl_easy_init");
    sym(a.easy_setopt, "curl_easy_setopt");
    sym(a.easy_perform, "curl_easy_perform");
    sym(a.easy_getinfo, "curl_easy_getinfo");
    sym(a.easy_strerror, "curl_easy_strerror");
    sym(a.easy_cleanup, "curl_easy_cleanup");
    sym(a.slist_append, "curl_slist_append");
    sym(a.slist_free_all, "curl_slist_free_all");
    if (a.error.empty() && a.global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) a.error = "curl_global_init failed";
    return a;
  }();
  if (!api.error.empty())
    throw TransportError("cannot load libcurl, which requests through a proxy and credential endpoints need: " +
                         api.error);
  return api;
}

// What one transfer collects; the callbacks stop it (return 0: CURLE_WRITE_ERROR) past the
// bounds, so a peer cannot make it hold more than about max_body + kMaxHeaderBytes.
// Framing is checked as strictly as the plain transport does (response_parser.h): libcurl
// lets a few things through (conflicting Content-Length values, unknown transfer codings).
struct Sink {
  Response* resp = nullptr;
  size_t max_body = 0;
  size_t header_bytes = 0;  // all header sections of the transfer: 1xx, CONNECT, final
  size_t header_count = 0;
  std::optional<uint64_t> content_length;  // of the current header section
  const char* failure = nullptr;           // why a callback stopped the transfer, or null
};
constexpr size_t kMaxHeaderBytes = 64 * 1024;
constexpr size_t kMaxHeaderCount = 128;

size_t on_body(char* data, size_t size, size_t n, void* user) {
  auto* sink = static_cast<Sink*>(user);
  if (!append_bounded(sink->resp->body, data, size * n, sink->max_body)) {
    sink->failure = "body";
    return 0;
  }
  return size * n;
}

size_t on_header(char* data, size_t size, size_t n, void* user) {
  auto* sink = static_cast<Sink*>(user);
  sink->header_bytes += size * n;
  if (sink->header_bytes > kMaxHeaderBytes || ++sink->header_count > kMaxHeaderCount) {
    sink->failure = "response headers too large";
    return 0;
  }
  Response* resp = sink->resp;
  std::string_view line(data, size * n);
  while (!line.empty() && (line.back() == '\r' || line.back() == '\n')) line.remove_suffix(1);
  if (line.starts_with("HTTP/")) {  // a new status line (e.g. after 100-continue): start over
    if (line.starts_with("HTTP/1.") && parse_status_line(line) < 0) {
      sink->failure = "malformed status line";
      return 0;
    }
    resp->headers.clear();
    sink->content_length.reset();
    return size * n;
  }
  auto colon = line.find(':');
  if (colon == std::string_view::npos) return size * n;
  std::string name(line.substr(0, colon));
  for (auto& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  auto value = line.substr(colon + 1);
  while (!value.empty() && (value.front() == ' ' || value.front() == '\t')) value.remove_prefix(1);
  while (!value.empty() && (value.back() == ' ' || value.back() == '\t')) value.remove_suffix(1);
  if (name == "content-length") {
    auto v = parse_content_length(value);
    if (!v || (sink->content_length && *sink->content_length != *v)) {
      sink->failure = v ? "conflicting Content-Length values" : "malformed Content-Length";
      return 0;
    }
    sink->content_length = v;
  } else if (name == "transfer-encoding" && !is_chunked_only(value)) {
    sink->failure = "unsupported Transfer-Encoding";
    return 0;
  }
  resp->headers.push_back({std::move(name), std::string(value)});
  return size * n;
}

class CurlTransport final : public Transport {
 public:
  explicit CurlTransport(HttpOptions options) : curl_(curl_api()), options_(std::move(options)) {}
  ~CurlTransport() override {
    for (CURL* h : idle_) curl_.easy_cleanup(h);
  }

  Response send(const Request& request) override {
    const Url url = parse_url(request.url);  // ConfigError for a malformed URL; origin for messages
    CURL* h = acquire();
    struct Release {
      CurlTransport* self;
      CURL* h;
      bool keep = true;
      ~Release() { self->release(h, keep); }
    } release{this, h};

    Response resp;
    resp.body.reserve(1024);
    curl_slist* headers = nullptr;
    for (const auto& hd : request.headers) {
      std::string line;
      line.reserve(hd.name.size() + hd.value.size() + 2);
      line.append(hd.name).append(": ").append(hd.value);
      headers = curl_.slist_append(headers, line.c_str());
    }
    headers = curl_.slist_append(headers, "Expect:");  // no 100-continue round trip
    struct FreeList {
      const CurlApi& curl;
      curl_slist* l;
      ~FreeList() { curl.slist_free_all(l); }
    } free_list{curl_, headers};

    curl_.easy_setopt(h, CURLOPT_URL, request.url.c_str());
    // Per request: a pooled handle may hold another request's shorter timeouts.
    const auto budget = request.timeout.count() > 0 ? std::min(request.timeout, options_.request_timeout)
                                                    : options_.request_timeout;
    curl_.easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS,
                      static_cast<long>(std::min(options_.connect_timeout, budget).count()));
    curl_.easy_setopt(h, CURLOPT_TIMEOUT_MS, static_cast<long>(budget.count()));
    // libcurl sends a request again by itself when a reused connection dies before the answer.
    curl_.easy_setopt(h, CURLOPT_FRESH_CONNECT, request.resend_if_stale ? 0L : 1L);
    curl_.easy_setopt(h, CURLOPT_HTTPHEADER, headers);
    if (request.method == "GET") {
      curl_.easy_setopt(h, CURLOPT_HTTPGET, 1L);
      curl_.easy_setopt(h, CURLOPT_CUSTOMREQUEST, nullptr);
    } else {
      curl_.easy_setopt(h, CURLOPT_POST, 1L);
      curl_.easy_setopt(h, CURLOPT_POSTFIELDS, request.body.data());
      curl_.easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(request.body.size()));
      curl_.easy_setopt(h, CURLOPT_CUSTOMREQUEST,
                       request.method == "POST" ? nullptr : request.method.c_str());
    }
    Sink sink;
    sink.resp = &resp;
    sink.max_body = options_.max_response_bytes;
    curl_.easy_setopt(h, CURLOPT_WRITEDATA, &sink);
    curl_.easy_setopt(h, CURLOPT_HEADERDATA, &sink);

    char errbuf[CURL_ERROR_SIZE] = {0};
    curl_.easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
    CURLcode rc = curl_.easy_perform(h);
    curl_.easy_setopt(h, CURLOPT_ERRORBUFFER, nullptr);
    curl_.easy_setopt(h, CURLOPT_HTTPHEADER, nullptr);
    if (rc != CURLE_OK) {
      release.keep = false;  // the connection state is unknown: do not reuse the handle
      const std::string where = "HTTP " + request.method + " " + url.origin + ": ";
      // libcurl's message may quote what the peer sent
      const std::string detail =
          util::printable(errbuf[0] ? errbuf : curl_.easy_strerror(rc), CURL_ERROR_SIZE);
      throw_error(rc, where, detail, sink);
    }
    long status = 0;
    curl_.easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
    resp.status = static_cast<int>(status);
    return resp;
  }

 private:
  // Maps a failed transfer to the error types of http.h. Only scheme://host:port goes into
  // messages (`where`): paths and queries could carry tokens.
  [[noreturn]] void throw_error(CURLcode rc, const std::string& where, const std::string& detail,
                                const Sink& sink) const {
    if (rc == CURLE_FILESIZE_EXCEEDED || (sink.failure && std::string_view(sink.failure) == "body"))
      throw ProtocolError(where + "response too large (over the limit of " +
                              std::to_string(options_.max_response_bytes) + " bytes)",
                          false);
    if (sink.failure) {
      std::string what = sink.failure;
      if (what == "response headers too large")
        what += " (more than " + std::to_string(kMaxHeaderBytes) + " bytes or " + std::to_string(kMaxHeaderCount) +
                " fields)";
      throw ProtocolError(where + what, false);
    }
    switch (rc) {
      case CURLE_OPERATION_TIMEDOUT: throw TimeoutError(where + detail);
      case CURLE_PEER_FAILED_VERIFICATION:
#if LIBCURL_VERSION_NUM >= 0x074400  // 7.68.0
      case CURLE_SSL_ISSUER_ERROR:
#endif
        throw CertificateError(where + "TLS certificate verification failed (" + detail +
                               "); to trust a private CA, name its PEM bundle in AWS_CA_BUNDLE, the profile's "
                               "ca_bundle or --ca-bundle (HttpOptions::ca_file)");
      case CURLE_SSL_CACERT_BADFILE:
        throw ConfigError(where + "cannot use the CA bundle (" + detail +
                          "): check AWS_CA_BUNDLE, the profile's ca_bundle or --ca-bundle");
      case CURLE_COULDNT_RESOLVE_PROXY:
      case CURLE_COULDNT_RESOLVE_HOST:
      case CURLE_COULDNT_CONNECT:
      case CURLE_SSL_CONNECT_ERROR:  // the request was not sent
        throw ConnectError(where + detail);
      case CURLE_WEIRD_SERVER_REPLY:
      case CURLE_BAD_CONTENT_ENCODING:
      case CURLE_UNSUPPORTED_PROTOCOL:
        throw ProtocolError(where + detail, false);
      default: break;
    }
    // libcurl reports a malformed chunked body as a receive error; it would recur.
    if (rc == CURLE_RECV_ERROR && detail.find("chunked-encoding") != std::string::npos)
      throw ProtocolError(where + detail, false);
    throw TransportError(where + detail);
  }

  CURL* acquire() {
    {
      std::lock_guard lock(mu_);
      if (!idle_.empty()) {
        CURL* h = idle_.back();
        idle_.pop_back();
        return h;
      }
    }
    CURL* h = curl_.easy_init();
    if (h == nullptr) throw TransportError("curl_easy_init failed");
    curl_.easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_.easy_setopt(h, CURLOPT_TCP_NODELAY, 1L);
    curl_.easy_setopt(h, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_.easy_setopt(h, CURLOPT_SSL_VERIFYPEER, options_.verify_tls ? 1L : 0L);
    curl_.easy_setopt(h, CURLOPT_SSL_VERIFYHOST, options_.verify_tls ? 2L : 0L);
    if (!options_.ca_file.empty()) curl_.easy_setopt(h, CURLOPT_CAINFO, options_.ca_file.c_str());
    curl_.easy_setopt(h, CURLOPT_USERAGENT, options_.user_agent.c_str());
    curl_.easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
    curl_.easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
    curl_.easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
    curl_.easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_.easy_setopt(h, CURLOPT_ACCEPT_ENCODING, nullptr);
    // A declared Content-Length over the cap fails before any body byte; on_body catches the rest.
    curl_.easy_setopt(h, CURLOPT_MAXFILESIZE_LARGE, static_cast<curl_off_t>(options_.max_response_bytes));
    return h;
  }

  void release(CURL* h, bool keep) {
    if (keep) {
      std::lock_guard lock(mu_);
      if (idle_.size() < options_.max_idle_connections) {
        idle_.push_back(h);
        return;
      }
    }
    curl_.easy_cleanup(h);
  }

  const CurlApi& curl_;
  const HttpOptions options_;
  std::mutex mu_;
  std::vector<CURL*> idle_;  // guarded by mu_; LIFO so the warmest connection is reused first
};

}  // namespace

std::shared_ptr<Transport> make_curl_transport(const HttpOptions& options) {
  return std::make_shared<CurlTransport>(options);
}

}  // namespace dynamodb_cache::http
