#include "fake_transport.h"

#include <zlib.h>

namespace testing_support {

dynamodb_cache::http::Response ddb_response(int status, std::string body) {
  dynamodb_cache::http::Response r;
  r.status = status;
  uLong crc = crc32(0L, reinterpret_cast<const Bytef*>(body.data()), static_cast<uInt>(body.size()));
  r.headers.push_back({"x-amz-crc32", std::to_string(crc)});
  r.headers.push_back({"x-amzn-requestid", "REQ" + std::to_string(body.size())});
  r.body = std::move(body);
  return r;
}

dynamodb_cache::http::Response ddb_error(int status, const std::string& name, const std::string& msg) {
  return ddb_response(status, "{\"__type\":\"com.amazonaws.dynamodb.v20120810#" + name +
                                  "\",\"message\":\"" + msg + "\"}");
}

}  // namespace testing_support
