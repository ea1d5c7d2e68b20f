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

// A failure below HTTP: the request may or may not have reached the service.
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
  TransportError(ErrorKind kind, const std::string& message, bool request_sent)
      : Error(kind, message, true), request_sent_(request_sent) {}

 private:
  bool request_sent_ = true;
};

// No connection could be made (refused, unreachable, a name that does not resolve, a failed
// TLS handshake): the request was certainly not sent (request_sent() is false).
class ConnectError : public TransportError {
 public:
  explicit ConnectError(const std::string& message) : TransportError(ErrorKind::kTransport, message, false) {}
};

// request_sent false: it timed out connecting (or in the TLS handshake), before sending.
class TimeoutError : public TransportError {
 public:
  explicit TimeoutError(const std::string& message, bool request_sent = true)
      : TransportError(ErrorKind::kTimeout, message, request_sent) {}
};

// The TLS peer's certificate could not be verified (untrusted or self-signed CA, wrong host
// name, expired): kind kTransport but final, never retried, and not a TransportError (which
// is transient). The message says how to trust a private CA (AWS_CA_BUNDLE, the profile's
// ca_bundle, --ca-bundle).
class CertificateError : public Error {
 public:
  explicit CertificateError(const std::string& message) : Error(ErrorKind::kTransport, message, false) {}
};

// The response could not be understood (bad JSON, missing fields, CRC32 mismatch).
class ProtocolError : public Error {
 public:
  ProtocolError(const std::string& message, bool retryable)
      : Error(ErrorKind::kProtocol, message, retryable) {}
};

// An error answer from DynamoDB (or an endpoint speaking its protocol).
class ServiceError : public Error {
 public:
  // name: the part of "__type" after '#', e.g. "ValidationException".
  ServiceError(ErrorKind kind, int http_status, std::string name, std::string service_message,
               std::string request_id);
  int http_status() const noexcept { return http_status_; }
  const std::string& name() const noexcept { return name_; }
  const std::string& service_message() const noexcept { return service_message_; }
  const std::string& request_id() const noexcept { return request_id_; }

 private:
  int http_status_;
  std::string name_;
  std::string service_message_;
  std::string request_id_;
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
