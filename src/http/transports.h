// Transport factories (private); the public ones are in http.h.
#pragma once

#include <netdb.h>

#include <memory>

#include "dynamodb_cache/http.h"

namespace dynamodb_cache::http {

// The built-in HTTP/1.1 client, http:// and https:// (OpenSSL), no proxy.
std::shared_ptr<Transport> make_plain_transport(const HttpOptions& options);

// The request line and header section of `r` for `url` (Host added unless given, then
// User-Agent and Content-Length), ending in the blank line. Both built-in clients send it.
std::string build_request_head(const Request& r, const Url& url, const std::string& user_agent);
// The same appended to `out`.
void build_request_head(std::string& out, const Request& r, const Url& url, const std::string& user_agent);

// The addresses of url's host and port (getaddrinfo, blocking; stream sockets). Throws
// TransportError "WHERE: cannot resolve host: ...".
using AddrInfo = std::unique_ptr<addrinfo, void (*)(addrinfo*)>;
AddrInfo resolve_host(const Url& url, const std::string& where);

// True when a proxy variable (http_proxy, https_proxy, all_proxy, upper case too) applies to
// the scheme: such requests go through libcurl.
bool proxy_configured(bool https);

}  // namespace dynamodb_cache::http
