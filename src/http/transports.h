// Transport factories (private); the public ones are in http.h.
#pragma once

#include "dynamodb_cache/http.h"

namespace dynamodb_cache::http {

// The built-in HTTP/1.1 client, http:// and https:// (OpenSSL), no proxy.
std::shared_ptr<Transport> make_plain_transport(const HttpOptions& options);

}  // namespace dynamodb_cache::http
