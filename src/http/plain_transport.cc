// A lean HTTP/1.1 client for plain-http endpoints (a local DynamoDB, a sidecar proxy):
// keep-alive connections in a pool, one writev() per request, blocking reads with a socket
// timeout. It exists because libcurl's per-request cost (connection-cache checks, three
// poll() calls, header bookkeeping: ~20 us of CPU per request measured here) dominated a
// cache get; see bench/README.md. HTTPS and proxied requests always go through libcurl.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <strings.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <mutex>
#include <vector>

#include "dynamodb_cache/errors.h"
#include "http/transports.h"

namespace dynamodb_cache::http {

namespace {

struct Endpoint {
  std::string host;  // as in the URL, for messages
  std::string port;
  std::string path;  // request target
};

// REQUIRES: url starts with "http://".
Endpoint parse_url(const std::string& url) {
  Endpoint e;
  size_t start = 7;
  size_t slash = url.find_first_of("/?", start);
  std::string authority = url.substr(start, slash == std::string::npos ? std::string::npos : slash - start);
  e.path = slash == std::string::npos ? "/" : url.substr(slash);
  if (e.path[0] == '?') e.path = "/" + e.path;
  if (!authority.empty() && authority[0] == '[') {  // [v6]:port
    auto close = authority.find(']');
    e.host = authority.substr(1, close - 1);
    e.port = close + 1 < authority.size() && authority[close + 1] == ':' ? authority.substr(close + 2) : "80";
  } else {
    auto colon = authority.rfind(':');
    e.host = authority.substr(0, colon);
    e.port = colon == std::string::npos ? "80" : authority.substr(colon + 1);
  }
  return e;
}

bool iequals(std::string_view a, std::string_view b) {
  return a.size() == b.size() && strncasecmp(a.data(), b.data(), a.size()) == 0;
}

struct Conn {
  int fd = -1;
  std::string key;  // host:port it is connected to
};

class PlainTransport final : public Transport {
 public:
  explicit PlainTransport(HttpOptions o) : options_(std::move(o)) {}
  ~PlainTransport() override {
    for (auto& c : idle_) ::close(c.fd);
  }

  Response send(const Request& request) override {
    Endpoint ep = parse_url(request.url);
    std::string key = ep.host + ":" + ep.port;
    std::string head = build_head(request, ep);
    auto deadline = std::chrono::steady_clock::now() + options_.request_timeout;
    // A pooled connection may have been closed by the server while idle; if it fails before
    // any byte of an answer arrived, the request never reached the server: try a new one.
    for (int attempt = 0;; ++attempt) {
      bool reused = false;
      Conn c = acquire(key, ep, deadline, reused);
      try {
        bool keep = true;
        Response r = exchange(c, head, request.body, deadline, keep);
        release(std::move(c), keep);
        return r;
      } catch (const StaleConnection&) {
        ::close(c.fd);
        if (!reused || attempt > 0)
          throw TransportError("HTTP " + request.method + " http://" + key + ": connection closed by the server");
      } catch (...) {
        ::close(c.fd);
        throw;
      }
    }
  }

 private:
  struct StaleConnection {};

  std::string build_head(const Request& r, const Endpoint& ep) const {
    std::string h;
    h.reserve(256 + r.headers.size() * 64);
    h.append(r.method).append(" ").append(ep.path).append(" HTTP/1.1\r\n");
    bool has_host = false;
    for (const auto& hd : r.headers) {
      if (iequals(hd.name, "host")) has_host = true;
      h.append(hd.name).append(": ").append(hd.value).append("\r\n");
    }
    if (!has_host) h.append("Host: ").append(ep.host).append(":").append(ep.port).append("\r\n");
    h.append("User-Agent: ").append(options_.user_agent).append("\r\n");
    if (r.method != "GET" || !r.body.empty()) h.append("Content-Length: ").append(std::to_string(r.body.size())).append("\r\n");
    h.append("\r\n");
    return h;
  }

  Conn acquire(const std::string& key, const Endpoint& ep, std::chrono::steady_clock::time_point deadline,
               bool& reused) {
    {
      std::lock_guard lock(mu_);
      for (size_t i = idle_.size(); i-- > 0;) {
        if (idle_[i].key == key) {
          Conn c = std::move(idle_[i]);
          idle_.erase(idle_.begin() + static_cast<std::ptrdiff_t>(i));
          reused = true;
          return c;
        }
      }
    }
    return Conn{connect_to(ep, deadline), key};
  }

  void release(Conn c, bool keep) {
    if (keep) {
      std::lock_guard lock(mu_);
      if (idle_.size() < options_.max_idle_connections) {
        idle_.push_back(std::move(c));
        return;
      }
    }
    ::close(c.fd);
  }

  int connect_to(const Endpoint& ep, std::chrono::steady_clock::time_point deadline) {
    const std::string where = "http://" + ep.host + ":" + ep.port;
    addrinfo hints{};
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICSERV;
    addrinfo* res = nullptr;
    if (int rc = getaddrinfo(ep.host.c_str(), ep.port.c_str(), &hints, &res); rc != 0)
      throw TransportError("HTTP " + where + ": cannot resolve host: " + gai_strerror(rc));
    std::string last = "no address";
    for (addrinfo* a = res; a; a = a->ai_next) {
      int fd = ::socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, a->ai_protocol);
      if (fd < 0) continue;
      int rc = ::connect(fd, a->ai_addr, a->ai_addrlen);
      if (rc != 0 && errno == EINPROGRESS) {
        auto budget = std::min(options_.connect_timeout, std::chrono::duration_cast<std::chrono::milliseconds>(
                                                             deadline - std::chrono::steady_clock::now()));
        pollfd p{fd, POLLOUT, 0};
        rc = ::poll(&p, 1, static_cast<int>(std::max<int64_t>(0, budget.count())));
        if (rc == 0) {
          ::close(fd);
          freeaddrinfo(res);
          throw TimeoutError("HTTP " + where + ": connect timed out after " +
                             std::to_string(options_.connect_timeout.count()) + " ms");
        }
        int err = 0;
        socklen_t len = sizeof err;
        getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
        if (err != 0) errno = err;
        rc = err == 0 ? 0 : -1;
      }
      if (rc != 0) {
        last = std::strerror(errno);
        ::close(fd);
        continue;
      }
      // Back to blocking. Each send and receive is bounded by request_timeout (set once per
      // connection: a syscall per request would cost more than it is worth); exchange()
      // checks the whole-request deadline between reads, so a trickling server is cut off
      // within two request_timeouts at worst.
      ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) & ~O_NONBLOCK);
      auto us = std::chrono::duration_cast<std::chrono::microseconds>(options_.request_timeout).count();
      timeval tv{static_cast<time_t>(us / 1000000), static_cast<suseconds_t>(us % 1000000)};
      ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
      ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
      int one = 1;
      ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
      ::setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof one);
      freeaddrinfo(res);
      return fd;
    }
    freeaddrinfo(res);
    throw TransportError("HTTP " + where + ": cannot connect: " + last);
  }

  Response exchange(Conn& c, const std::string& head, const std::string& body,
                    std::chrono::steady_clock::time_point deadline, bool& keep) {
    const std::string where = "http://" + c.key;
    auto check_deadline = [&] {
      if (std::chrono::steady_clock::now() > deadline)
        throw TimeoutError("HTTP " + where + ": request timed out after " +
                           std::to_string(options_.request_timeout.count()) + " ms");
    };
    // Send: header and body in one writev, continuing after partial writes.
    iovec iov[2] = {{const_cast<char*>(head.data()), head.size()}, {const_cast<char*>(body.data()), body.size()}};
    size_t total = head.size() + body.size(), sent = 0;
    int first = 0;
    while (sent < total) {
      msghdr msg{};
      msg.msg_iov = iov + first;
      msg.msg_iovlen = static_cast<size_t>(2 - first);
      ssize_t n = ::sendmsg(c.fd, &msg, MSG_NOSIGNAL);
      if (n < 0) {
        if (errno == EINTR) continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) throw TimeoutError("HTTP " + where + ": request timed out while sending");
        if (sent == 0 && (errno == EPIPE || errno == ECONNRESET)) throw StaleConnection{};
        throw TransportError("HTTP " + where + ": send failed: " + std::strerror(errno));
      }
      sent += static_cast<size_t>(n);
      size_t left = static_cast<size_t>(n);
      while (first < 2 && left >= iov[first].iov_len) left -= iov[first++].iov_len;
      if (first < 2) {
        iov[first].iov_base = static_cast<char*>(iov[first].iov_base) + left;
        iov[first].iov_len -= left;
      }
    }

    // Receive: headers, then Content-Length bytes or a chunked body.
    Response resp;
    resp.headers.reserve(8);
    // The receive buffer is per thread and keeps its size: no allocation or zero-fill per
    // request. It only grows (for large answers).
    thread_local std::string buf;
    if (buf.size() > 256 * 1024) {  // a large answer grew it last time: give the memory back
      buf.resize(16384);
      buf.shrink_to_fit();
    }
    if (buf.size() < 16384) buf.resize(16384);
    size_t have = 0, header_end = std::string::npos;
    auto read_more = [&](bool first_read) {
      if (buf.size() - have < 4096) buf.resize(buf.size() * 2);
      for (;;) {
        ssize_t n = ::recv(c.fd, buf.data() + have, buf.size() - have, 0);
        if (n > 0) {
          have += static_cast<size_t>(n);
          if (!first_read) check_deadline();
          return;
        }
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
          throw TimeoutError("HTTP " + where + ": request timed out after " +
                             std::to_string(options_.request_timeout.count()) + " ms");
        if (first_read && (n == 0 || errno == ECONNRESET)) throw StaleConnection{};
        throw TransportError("HTTP " + where + (n == 0 ? ": connection closed before the whole response arrived"
                                                       : std::string(": receive failed: ") + std::strerror(errno)));
      }
    };
    bool first_read = true;
    while ((header_end = std::string_view(buf.data(), have).find("\r\n\r\n")) == std::string::npos) {
      if (have > 64 * 1024) throw TransportError("HTTP " + where + ": response headers too large");
      read_more(first_read);
      first_read = false;
    }
    std::string_view hv(buf.data(), header_end);
    size_t eol = hv.find("\r\n");
    std::string_view status_line = hv.substr(0, eol);
    if (status_line.size() < 12 || status_line.substr(0, 5) != "HTTP/")
      throw TransportError("HTTP " + where + ": malformed status line");
    resp.status = std::atoi(std::string(status_line.substr(9, 3)).c_str());
    bool http10 = status_line.substr(5, 3) == "1.0";
    keep = !http10;
    std::optional<size_t> content_length;
    bool chunked = false;
    size_t pos = eol == std::string_view::npos ? hv.size() : eol + 2;
    while (pos < hv.size()) {
      size_t e = hv.find("\r\n", pos);
      if (e == std::string_view::npos) e = hv.size();
      std::string_view line = hv.substr(pos, e - pos);
      pos = e + 2;
      size_t colon = line.find(':');
      if (colon == std::string_view::npos) continue;
      std::string name(line.substr(0, colon));
      for (auto& ch : name)
        if (ch >= 'A' && ch <= 'Z') ch = static_cast<char>(ch + ('a' - 'A'));
      std::string_view value = line.substr(colon + 1);
      while (!value.empty() && (value.front() == ' ' || value.front() == '\t')) value.remove_prefix(1);
      while (!value.empty() && (value.back() == ' ' || value.back() == '\t')) value.remove_suffix(1);
      if (name == "content-length") content_length = std::strtoull(std::string(value).c_str(), nullptr, 10);
      else if (name == "transfer-encoding" && value.find("chunked") != std::string_view::npos) chunked = true;
      else if (name == "connection") {
        if (iequals(value, "close")) keep = false;
        if (iequals(value, "keep-alive")) keep = true;
      }
      resp.headers.push_back({std::move(name), std::string(value)});
    }
    size_t body_start = header_end + 4;
    if (resp.status == 204 || resp.status == 304 || (resp.status >= 100 && resp.status < 200)) {
      if (have > body_start) keep = false;  // no body by definition; anything more is unexpected
    } else if (chunked) {
      resp.body = read_chunked(buf, have, body_start, read_more, where);
    } else if (content_length) {
      if (*content_length > (256u << 20)) throw TransportError("HTTP " + where + ": response body too large");
      while (have - body_start < *content_length) {
        if (buf.size() < body_start + *content_length) buf.resize(body_start + *content_length + 64);
        read_more(false);
      }
      if (have - body_start > *content_length) keep = false;  // unexpected extra bytes: do not reuse
      // Spare capacity after the body lets the JSON parser skip a copy.
      resp.body.reserve(*content_length + 64);
      resp.body.assign(buf.data() + body_start, *content_length);
    } else {
      // No length: the body runs to the end of the connection.
      keep = false;
      for (;;) {
        if (buf.size() - have < 4096) buf.resize(buf.size() * 2);
        ssize_t n = ::recv(c.fd, buf.data() + have, buf.size() - have, 0);
        if (n == 0) break;
        if (n < 0) {
          if (errno == EINTR) continue;
          if (errno == EAGAIN || errno == EWOULDBLOCK)
            throw TimeoutError("HTTP " + where + ": request timed out after " +
                               std::to_string(options_.request_timeout.count()) + " ms");
          throw TransportError("HTTP " + where + ": receive failed: " + std::strerror(errno));
        }
        have += static_cast<size_t>(n);
        check_deadline();
      }
      resp.body.assign(buf.data() + body_start, have - body_start);
    }
    return resp;
  }

  template <class ReadMore>
  static std::string read_chunked(std::string& buf, size_t& have, size_t pos, ReadMore& read_more,
                                  const std::string& where) {
    std::string out;
    for (;;) {
      size_t eol;
      while ((eol = std::string_view(buf.data(), have).find("\r\n", pos)) == std::string::npos) read_more(false);
      size_t size = std::strtoull(std::string(buf.data() + pos, eol - pos).c_str(), nullptr, 16);
      pos = eol + 2;
      if (size == 0) {
        while (std::string_view(buf.data(), have).find("\r\n", pos) == std::string::npos) read_more(false);
        return out;
      }
      if (size > (256u << 20)) throw TransportError("HTTP " + where + ": chunk too large");
      while (have < pos + size + 2) {
        if (buf.size() < pos + size + 2) buf.resize(pos + size + 2 + 4096);
        read_more(false);
      }
      out.append(buf.data() + pos, size);
      pos += size + 2;
    }
  }

  const HttpOptions options_;
  std::mutex mu_;
  std::vector<Conn> idle_;  // guarded by mu_; LIFO
};

// A proxy for http:// URLs is configured: leave the request to libcurl, which applies
// no_proxy and the proxy protocols.
bool proxy_configured() {
  for (const char* v : {"http_proxy", "HTTP_PROXY", "all_proxy", "ALL_PROXY"}) {
    const char* p = std::getenv(v);
    if (p && *p) return true;
  }
  return false;
}

// http:// without a proxy: the lean client; anything else: libcurl.
class DefaultTransport final : public Transport {
 public:
  // The proxy environment is read once, here.
  explicit DefaultTransport(const HttpOptions& o)
      : plain_(proxy_configured() ? nullptr : make_plain_transport(o)), options_(o) {}
  Response send(const Request& r) override {
    if (plain_ && r.url.rfind("http://", 0) == 0) return plain_->send(r);
    std::call_once(curl_once_, [&] { curl_ = make_curl_transport(options_); });
    return curl_->send(r);
  }

 private:
  std::shared_ptr<Transport> plain_;
  HttpOptions options_;
  std::once_flag curl_once_;
  std::shared_ptr<Transport> curl_;
};

}  // namespace

std::shared_ptr<Transport> make_plain_transport(const HttpOptions& options) {
  return std::make_shared<PlainTransport>(options);
}

std::shared_ptr<Transport> make_default_transport(const HttpOptions& options) {
  return std::make_shared<DefaultTransport>(options);
}

}  // namespace dynamodb_cache::http
