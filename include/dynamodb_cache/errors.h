// Error types of dynamodb_cache.
//
// Every failure is thrown as a subclass of dynamodb_cache::Error. A cache miss is never an
// error: it is std::nullopt. Each error says whether retrying the same call could help
// (retryable()); the DynamoDB client has already retried those it could before throwing.
// Messages never contain secret keys or session tokens.
//
// Thread-safety: error objects are immutable values.
#pragma once

#include <stdexcept>
#include <string>
#include <utility>

namespace dynamodb_cache {

enum class ErrorKind {
  kInvalidArgument,  // caller's input: empty/oversized key, oversized value, bad option
  kCodec,            // a codec failed to encode or decode a value
  kConfig,           // configuration: no region, bad endpoint, unknown profile
  kCredentials,      // no credentials could be found, or a provider failed
  kTransport,        // connection refused/reset, DNS, truncated body (transient)
  kTimeout,          // connect or request timeout (transient)
  kThrottling,       // DynamoDB throttled the request (transient)
  kServiceTransient, // DynamoDB 5xx, InternalServerError, ServiceUnavailable (transient)
  kService,          // any other DynamoDB error: final
  kConditionFailed,  // ConditionalCheckFailedException: an answer, not a fault
  kResourceNotFound, // the table (or index) does not exist
  kProtocol,         // malformed response; a CRC32 mismatch is kProtocol but retryable
  kCancelled,        // an asynchronous operation ended unfinished: its client was destroyed
  kOverloaded,       // too many asynchronous operations in flight (ClientOptions::max_in_flight)
  kWrongType,        // a counter operation on a cached value under the same key, or the reverse
  kUnknownOutcome,   // a write whose answer was lost: it may or may not have been applied
  // (stats.h kErrorKindCount counts the kinds: keep the last kind last there)
};

// Returns a stable lower-case name for kind ("throttling", "transport", ...).
const char* to_string(ErrorKind kind) noexcept;

class Error : public std::runtime_error {
 public:
  Error(ErrorKind kind, const std::string& message, bool retryable);
  ErrorKind kind() const noexcept { return kind_; }
  // True when the same call may succeed if tried again later.
  bool retryable() const noexcept { return retryable_; }

 private:
  ErrorKind kind_;
  bool retryable_;
};

class InvalidArgumentError : public Error {
 public:
  explicit InvalidArgumentError(const std::string& message)
      : Error(ErrorKind::kInvalidArgument, message, false) {}
};

class CodecError : public Error {
 public:
  explicit CodecError(const std::string& message) : Error(ErrorKind::kCodec, message, false) {}
};

class ConfigError : public Error {
 public:
  explicit ConfigError(const std::string& message) : Error(ErrorKind::kConfig, message, false) {}
};

class CredentialsError : public Error {
 public:
  explicit CredentialsError(const std::string& message, bool retryable = false)
      : Error(ErrorKind::kCredentials, message, retryable) {}
};

// A key holds a counter where a value was expected, or a value where a counter was
// (increment() on a key set with set()). Nothing was changed.
class WrongTypeError : public Error {
 public:
  explicit WrongTypeError(const std::string& message)
      : Error(ErrorKind::kWrongType, message, false) {}
};

// A failure below HTTP: the request may or may not have reached the service. Its kind is
// kTransport (kTimeout for a TimeoutError); retryable unless it will recur (the constructor's
// flag; a CertificateError is never retryable).
class TransportError : public Error {
 public:
  // retryable false: a failure that will recur (an answer too large, a malformed status
  // line, bad framing, a certificate the peer cannot be trusted with).
  explicit TransportError(const std::string& message, bool retryable = true)
      : Error(ErrorKind::kTransport, message, retryable) {}
  // False when the request certainly never left this process (no connection could be made,
  // or it timed out connecting): sending it again cannot apply it twice.
  bool request_sent() const noexcept { return request_sent_; }

 protected:
  TransportError(ErrorKind kind, const std::string& message, bool request_sent, bool retryable = true)
      : Error(kind, message, retryable), request_sent_(request_sent) {}

 private:
  bool request_sent_ = true;
};

// No connection could be made (refused, unreachable, a name that does not resolve, a failed
// TLS handshake): the request was certainly not sent (request_sent() is false).
class ConnectError : public TransportError {
 public:
  explicit ConnectError(const std::string& message, bool refused = false)
      : TransportError(ErrorKind::kTransport, message, false), refused_(refused) {}
  // True when the peer refused the connection (nothing listens on the endpoint's port): the
  // client retries it at most 3 times, as the AWS SDKs' standard retry mode retries anything.
  bool refused() const noexcept { return refused_; }

 private:
  bool refused_ = false;
};

// request_sent false: it timed out connecting (or in the TLS handshake), before sending.
class TimeoutError : public TransportError {
 public:
  explicit TimeoutError(const std::string& message, bool request_sent = true)
      : TransportError(ErrorKind::kTimeout, message, request_sent) {}
};

// The TLS peer's certificate could not be verified (untrusted or self-signed CA, wrong host
// name, expired): a TransportError of kind kTransport, but final (retryable() is false, it is
// never retried) and nothing was sent (request_sent() is false). The message says how to
// trust a private CA (AWS_CA_BUNDLE, the profile's ca_bundle, --ca-bundle).
class CertificateError : public TransportError {
 public:
  explicit CertificateError(const std::string& message)
      : TransportError(ErrorKind::kTransport, message, false, false) {}
};

// The response could not be understood (bad JSON, missing fields, CRC32 mismatch).
class ProtocolError : public Error {
 public:
  ProtocolError(const std::string& message, bool retryable)
      : Error(ErrorKind::kProtocol, message, retryable) {}
};

// An error answer from DynamoDB (or an endpoint speaking its protocol). The kinds callers
// branch on have classes of their own below (ResourceNotFoundError, ThrottlingError,
// ConditionFailedError); a catch of ServiceError catches them too.
class ServiceError : public Error {
 public:
  // name: the part of "__type" after '#', e.g. "ValidationException".
  ServiceError(ErrorKind kind, int http_status, std::string name, std::string service_message,
               std::string request_id);
  int http_status() const noexcept { return http_status_; }
  const std::string& name() const noexcept { return name_; }
  const std::string& service_message() const noexcept { return service_message_; }
  const std::string& request_id() const noexcept { return request_id_; }

 protected:
  // `what`: the message, in place of the one made of the fields.
  ServiceError(ErrorKind kind, int http_status, std::string name, std::string service_message,
               std::string request_id, const std::string& what);

 private:
  int http_status_;
  std::string name_;
  std::string service_message_;
  std::string request_id_;
};

// The table (or index) does not exist: kind kResourceNotFound, not retryable. When the request
// named its table, the message names it, the operation, and how to create the table.
class ResourceNotFoundError : public ServiceError {
 public:
  // table, operation: as the request named them ("" when unknown).
  ResourceNotFoundError(int http_status, std::string name, std::string service_message,
                        std::string request_id, std::string table = {}, const std::string& operation = {});
  // The table the request named; empty when it named none (or several).
  const std::string& table() const noexcept { return table_; }

 private:
  std::string table_;
};

// DynamoDB throttled the request (ProvisionedThroughputExceededException, ThrottlingException,
// RequestLimitExceeded, HTTP 429), or a batch's entries stayed unprocessed: kind kThrottling,
// retryable (later, or with less load). The client has already retried it.
class ThrottlingError : public ServiceError {
 public:
  ThrottlingError(int http_status, std::string name, std::string service_message, std::string request_id)
      : ServiceError(ErrorKind::kThrottling, http_status, std::move(name), std::move(service_message),
                     std::move(request_id)) {}
};

// A conditional write's condition did not hold (ConditionalCheckFailedException): kind
// kConditionFailed, an answer about the item rather than a fault; not retryable.
class ConditionFailedError : public ServiceError {
 public:
  ConditionFailedError(int http_status, std::string name, std::string service_message, std::string request_id)
      : ServiceError(ErrorKind::kConditionFailed, http_status, std::move(name), std::move(service_message),
                     std::move(request_id)) {}
};

// A write whose outcome is unknown: an attempt may have reached DynamoDB and been applied, but
// its answer was lost (a connection reset or timeout after sending, a 5xx, a damaged answer),
// and sending it again could apply it twice. The client throws it in place of resending when
// the request asks so (dynamodb::ConditionalWrite::resend_if_unknown = false); the cache's
// exactly-once writes then read the item back and settle the outcome, and throw it only when
// they cannot (README, "Exactly-once writes"). A write the client may resend (set, erase: the
// same item again) that was sent again and then failed ends with it too, retryable: applying
// it once more is harmless. Otherwise not retryable: the caller decides.
class UnknownOutcomeError : public Error {
 public:
  explicit UnknownOutcomeError(const std::string& message, bool retryable = false)
      : Error(ErrorKind::kUnknownOutcome, message, retryable) {}
};

// An asynchronous operation that was still pending when its client was destroyed: it may or
// may not have reached the service. Not retryable (the client is gone).
class CancelledError : public Error {
 public:
  explicit CancelledError(const std::string& message) : Error(ErrorKind::kCancelled, message, false) {}
};

// An asynchronous operation refused because the client already had max_in_flight
// operations under way (dynamodb::ClientOptions, InFlightPolicy::kFail). Retryable later.
class OverloadedError : public Error {
 public:
  explicit OverloadedError(const std::string& message) : Error(ErrorKind::kOverloaded, message, true) {}
};

}  // namespace dynamodb_cache
