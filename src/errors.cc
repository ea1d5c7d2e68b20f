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
// "Name: message (HTTP 400, request id R)". Without a name (not a DynamoDB answer), the
// message alone says what happened and names the status itself.
std::string service_what(int status, const std::string& name, const std::string& msg,
                         const std::string& request_id) {
  if (name.empty() && !msg.empty())
    return request_id.empty() ? msg : msg + " (request id " + request_id + ")";
  std::string w = name.empty() ? "HTTP " + std::to_string(status) : name;
  if (!msg.empty()) w += ": " + msg;
  w += " (HTTP " + std::to_string(status);
  if (!request_id.empty()) w += ", request id " + request_id;
  w += ")";
  return w;
}

std::string not_found_what(int status, const std::string& name, const std::string& msg,
                           const std::string& request_id, const std::string& table,
                           const std::string& operation) {
  std::string w = operation.empty() ? std::string() : operation + ": ";
  if (table.empty()) return w + service_what(status, name, msg, request_id);
  return w + "table '" + table + "' does not exist [" + service_what(status, name, msg, request_id) +
         "]; create it with `dynamodb-cache create-table --table " + table +
         "` (in C++: Table::create, or make_cache's create_table; in Python: the record class's "
         "create_table(wait=True)), "
         "or check the table name, region and endpoint";
}
}  // namespace

ServiceError::ServiceError(ErrorKind kind, int http_status, std::string name, std::string service_message,
                           std::string request_id)
    : ServiceError(kind, http_status, name, service_message, request_id,
                   service_what(http_status, name, service_message, request_id)) {}

ServiceError::ServiceError(ErrorKind kind, int http_status, std::string name, std::string service_message,
                           std::string request_id, const std::string& what)
    : Error(kind, what, kind == ErrorKind::kThrottling || kind == ErrorKind::kServiceTransient),
      http_status_(http_status),
      name_(std::move(name)),
      service_message_(std::move(service_message)),
      request_id_(std::move(request_id)) {}

ResourceNotFoundError::ResourceNotFoundError(int http_status, std::string name, std::string service_message,
                                             std::string request_id, std::string table,
                                             const std::string& operation)
    : ServiceError(ErrorKind::kResourceNotFound, http_status, name, service_message, request_id,
                   not_found_what(http_status, name, service_message, request_id, table, operation)),
      table_(std::move(table)) {}

}  // namespace dynamodb_cache
