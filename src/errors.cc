#include "dynamodb_cache/errors.h"

namespace dynamodb_cache {

const char* to_string(ErrorKind kind) noexcept {
  switch (kind) {
    case ErrorKind::kInvalidArgument: return "invalid_argument";
    case ErrorKind::kCodec: return "codec";
    case ErrorKind::kConfig: return "config";
    case ErrorKind::kCredentials: return "credentials";
    case ErrorKind::kTransport: return "transport";
    case ErrorKind::kTimeout: return "timeout";
    case ErrorKind::kThrottling: return "throttling";
    case ErrorKind::kServiceTransient: return "service_transient";
    case ErrorKind::kService: return "service";
    case ErrorKind::kConditionFailed: return "condition_failed";
    case ErrorKind::kResourceNotFound: return "resource_not_found";
    case ErrorKind::kProtocol: return "protocol";
    case ErrorKind::kCancelled: return "cancelled";
    case ErrorKind::kOverloaded: return "overloaded";
    case ErrorKind::kWrongType: return "wrong_type";
    case ErrorKind::kUnknownOutcome: return "unknown_outcome";
  }
  return "unknown";
}

Error::Error(ErrorKind kind, const std::string& message, bool retryable)
    : std::runtime_error(message), kind_(kind), retryable_(retryable) {}

namespace {
std::string service_what(int status, const std::string& name, const std::string& msg,
                         const std::string& request_id) {
  std::string w = name.empty() ? "HTTP " + std::to_string(status) : name;
  if (!msg.empty()) w += ": " + msg;
  w += " (HTTP " + std::to_string(status);
  if (!request_id.empty()) w += ", request id " + request_id;
  w += ")";
  return w;
}
}  // namespace

ServiceError::ServiceError(ErrorKind kind, int http_status, std::string name,
                           std::string service_message, std::string request_id)
    : Error(kind, service_what(http_status, name, service_message, request_id),
            kind == ErrorKind::kThrottling || kind == ErrorKind::kServiceTransient),
      http_status_(http_status),
      name_(std::move(name)),
      service_message_(std::move(service_message)),
      request_id_(std::move(request_id)) {}

}  // namespace dynamodb_cache
