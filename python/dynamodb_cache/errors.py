"""The errors of dynamodb_cache, mirroring the C++ library's tree (errors.h).

Every failure of the engine is an ``Error`` with ``kind`` (a stable lower-case name:
"invalid_argument", "codec", "config", "credentials", "transport", "timeout", "throttling",
"service_transient", "service", "condition_failed", "resource_not_found", "protocol",
"cancelled", "overloaded", "wrong_type", "unknown_outcome") and ``retryable`` (whether the
same call may succeed later; the client has already retried what it could). A cache miss is
``None``, never an error. An exception raised by your own code (``_serialize``,
``_deserialize``, a loader) reaches you unchanged, not wrapped in one of these.
Messages never contain secret keys or session tokens.
"""
import builtins


class Error(Exception):
    """Base class: ``kind`` (str) and ``retryable`` (bool)."""

    kind: str = "internal"
    retryable: bool = False


DynamodbCacheError = Error


class InvalidArgumentError(Error, ValueError):
    """The caller's input: empty or oversized key, oversized value, negative TTL, bad option."""

    kind = "invalid_argument"


class CodecError(Error):
    """A stored value could not be decoded (or encoded)."""


class ConfigError(Error):
    """Configuration: no region, a bad endpoint, an unknown profile, a table of another schema."""


class CredentialsError(Error):
    """No credentials could be found, or a provider failed."""


class WrongTypeError(Error, TypeError):
    """A counter operation on a cached value under the same key, or the reverse."""


class TransportError(Error, ConnectionError):
    """A failure below HTTP. ``request_sent``: False when the request certainly never left."""

    request_sent: bool = True


class ConnectError(TransportError):
    """No connection could be made: the request was not sent."""


class TimeoutError(TransportError, builtins.TimeoutError):  # noqa: A001 - the C++ name; also the builtin
    """A connect or request timeout, or the operation's deadline passed."""


class CertificateError(TransportError):
    """The TLS peer's certificate could not be verified (final, not retried; the request was
    not sent)."""


class ProtocolError(Error):
    """The answer could not be understood (bad JSON, a CRC32 mismatch: retryable)."""


class ServiceError(Error):
    """An error answer from DynamoDB: ``name`` (e.g. "ValidationException"), ``status`` (HTTP),
    ``request_id`` and ``service_message``. ``kind`` tells throttling, service_transient,
    condition_failed, resource_not_found and service apart."""

    name: str = ""
    status: int = 0
    request_id: str = ""
    service_message: str = ""


class ResourceNotFoundError(ServiceError):
    """The table does not exist (kind resource_not_found); ``table``: its name, when the request
    named one."""

    table: str = ""


class ThrottlingError(ServiceError):
    """DynamoDB throttled the request, after the client's own retries (kind throttling, retryable)."""


class ConditionFailedError(ServiceError):
    """A conditional write's condition did not hold (kind condition_failed)."""


class UnknownOutcomeError(Error):
    """A write whose answer was lost: it may or may not have been applied."""


class CancelledError(Error):
    """An asynchronous operation ended unfinished: its client was destroyed."""


class OverloadedError(Error):
    """Too many asynchronous operations in flight (``max_in_flight`` with ``fail_when_full``)."""


__all__ = [
    "Error", "DynamodbCacheError", "InvalidArgumentError", "CodecError", "ConfigError",
    "CredentialsError", "WrongTypeError", "TransportError", "ConnectError", "TimeoutError",
    "CertificateError", "ProtocolError", "ServiceError", "ResourceNotFoundError", "ThrottlingError",
    "ConditionFailedError", "UnknownOutcomeError", "CancelledError",
    "OverloadedError",
]
