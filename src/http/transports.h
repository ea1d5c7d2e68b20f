// Transport factories (private); the public ones are in http.h.
#pragma once

#include "dynamodb_cache/http.h"

namespace dynamodb_cache::http {

// Plain-http (no TLS, no proxy) HTTP/1.1 client. REQUIRES: request URLs start with http://.
std::shared_ptr<Transport> make_plain_transport(const HttpOptions& options);

}  // namespace dynamodb_cache::http
