#include <curl/curl.h>

#include <algorithm>
#include <cctype>
#include <mutex>
#include <vector>

#include "dynamodb_cache/errors.h"
#include "dynamodb_cache/http.h"

namespace dynamodb_cache::http {

const std::string* Response::header(std::string_view lower_name) const noexcept {
  for (const auto& h : headers)
    if (h.name == lower_name) return &h.value;
  return nullptr;
}

namespace {

struct GlobalInit {
  GlobalInit() { curl_global_init(CURL_GLOBAL_DEFAULT); }
};

size_t on_body(char* data, size_t size, size_t n, void* user) {
  static_cast<std::string*>(user)->append(data, size * n);
  return size * n;
}

size_t on_header(char* data, size_t size, size_t n, void* user) {
  auto* resp = static_cast<Response*>(user);
  std::string_view line(data, size * n);
  if (line.starts_with("HTTP/")) {  // a new status line (e.g. after 100-continue): start over
    resp->headers.clear();
    return size * n;
  }
  auto colon = line.find(':');
  if (colon == std::string_view::npos) return size * n;
  std::string name(line.substr(0, colon));
  for (auto& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  auto value = line.substr(colon + 1);
  while (!value.empty() && (value.front() == ' ' || value.front() == '\t')) value.remove_prefix(1);
  while (!value.empty() && (value.back() == '\r' || value.back() == '\n' || value.back() == ' '))
    value.remove_suffix(1);
  resp->headers.push_back({std::move(name), std::string(value)});
  return size * n;
}

class CurlTransport final : public Transport {
 public:
  explicit CurlTransport(HttpOptions options) : options_(std::move(options)) {
    static GlobalInit init;
  }
  ~CurlTransport() override {
    for (CURL* h : idle_) curl_easy_cleanup(h);
  }

  Response send(const Request& request) override {
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
      headers = curl_slist_append(headers, line.c_str());
    }
    headers = curl_slist_append(headers, "Expect:");  // no 100-continue round trip
    struct FreeList {
      curl_slist* l;
      ~FreeList() { curl_slist_free_all(l); }
    } free_list{headers};

    curl_easy_setopt(h, CURLOPT_URL, request.url.c_str());
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, headers);
    if (request.method == "GET") {
      curl_easy_setopt(h, CURLOPT_HTTPGET, 1L);
      curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, nullptr);
    } else {
      curl_easy_setopt(h, CURLOPT_POST, 1L);
      curl_easy_setopt(h, CURLOPT_POSTFIELDS, request.body.data());
      curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(request.body.size()));
      curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST,
                       request.method == "POST" ? nullptr : request.method.c_str());
    }
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &resp.body);
    curl_easy_setopt(h, CURLOPT_HEADERDATA, &resp);

    char errbuf[CURL_ERROR_SIZE] = {0};
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
    CURLcode rc = curl_easy_perform(h);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, nullptr);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, nullptr);
    if (rc != CURLE_OK) {
      release.keep = false;  // the connection state is unknown: do not reuse the handle
      std::string what = std::string("HTTP ") + request.method + " " + host_of(request.url) + ": " +
                         (errbuf[0] ? errbuf : curl_easy_strerror(rc));
      if (rc == CURLE_OPERATION_TIMEDOUT) throw TimeoutError(what);
      throw TransportError(what);
    }
    long status = 0;
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
    resp.status = static_cast<int>(status);
    return resp;
  }

 private:
  // Only scheme://host:port goes into messages: paths and queries could carry tokens.
  static std::string host_of(const std::string& url) {
    auto start = url.find("://");
    start = start == std::string::npos ? 0 : start + 3;
    auto end = url.find_first_of("/?", start);
    return url.substr(0, end);
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
    CURL* h = curl_easy_init();
    if (h == nullptr) throw TransportError("curl_easy_init failed");
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_TCP_NODELAY, 1L);
    curl_easy_setopt(h, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, static_cast<long>(options_.connect_timeout.count()));
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, static_cast<long>(options_.request_timeout.count()));
    curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, options_.verify_tls ? 1L : 0L);
    curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, options_.verify_tls ? 2L : 0L);
    if (!options_.ca_file.empty()) curl_easy_setopt(h, CURLOPT_CAINFO, options_.ca_file.c_str());
    curl_easy_setopt(h, CURLOPT_USERAGENT, options_.user_agent.c_str());
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(h, CURLOPT_ACCEPT_ENCODING, nullptr);
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
    curl_easy_cleanup(h);
  }

  const HttpOptions options_;
  std::mutex mu_;
  std::vector<CURL*> idle_;  // guarded by mu_; LIFO so the warmest connection is reused first
};

}  // namespace

std::shared_ptr<Transport> make_curl_transport(const HttpOptions& options) {
  return std::make_shared<CurlTransport>(options);
}

}  // namespace dynamodb_cache::http
