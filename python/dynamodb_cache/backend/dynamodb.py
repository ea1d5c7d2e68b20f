"""DynamodbBackend over a DynamoDB table described as in dynamodb_cache 0.1.1: a subclass of
DynamodbBackendRecord (exported as DynamodbTable) with an inner ``class Meta``. Items keep
0.1.1's layout (key, value as PynamoDB 5 stores it, expire, update_ts): the C++
DynamodbBackend writes and reads it, so 0.1.1 programs share the table both ways."""
import threading
import time
import typing as T

from .. import _native
from .._base import NativeCache, RecordHooks
from .._json import JsonValues
from ..abstract import AbstractCache

VT = T.TypeVar("VT")

PAY_PER_REQUEST_BILLING_MODE = "PAY_PER_REQUEST"
PROVISIONED_BILLING_MODE = "PROVISIONED"

_clients: T.Dict[T.Tuple[str, str], T.Any] = {}
_clients_lock = threading.Lock()


class DynamodbBackendRecord:
    """One cache item, and (as a class) its table. ``Meta``: ``table_name``, ``region``,
    optional ``host`` (the endpoint URL), ``billing_mode`` ("PAY_PER_REQUEST" or
    "PROVISIONED"), ``read_capacity_units``, ``write_capacity_units``. Without ``host`` the
    endpoint, and always the credentials, come from the AWS configuration chain
    (AWS_ENDPOINT_URL_DYNAMODB, AWS_PROFILE, ~/.aws/..., as the C++ client)."""

    class Meta:
        table_name = ""

    def __init__(self, key: str = "", value: bytes = b"", expire: float = 0,
                 update_ts: T.Optional[float] = None) -> None:
        self.key = key
        self.value = value
        self.expire = expire
        self.update_ts = int(time.time()) if update_ts is None else update_ts

    @classmethod
    def _table_name(cls) -> str:
        name = getattr(cls.Meta, "table_name", "")
        if not name:
            raise _errors().ConfigError(f"{cls.__name__}.Meta has no table_name")
        return name

    @classmethod
    def _client(cls) -> T.Any:
        """The engine's client for Meta's region and host, one per process for each pair."""
        where = (getattr(cls.Meta, "region", "") or "", getattr(cls.Meta, "host", "") or "")
        with _clients_lock:
            client = _clients.get(where)
            if client is None:
                client = _clients[where] = _native.Client(region=where[0], endpoint=where[1])
            return client

    @classmethod
    def create_table(cls, wait: bool = False, read_capacity_units: T.Optional[int] = None,
                     write_capacity_units: T.Optional[int] = None, billing_mode: T.Optional[str] = None,
                     ignore_update_ttl: bool = False) -> None:
        """Creates the table (hash key ``key``); an existing one is fine. With wait, returns once
        it is ACTIVE. Native TTL on ``expire_at`` is turned on where the service has it."""
        meta = cls.Meta
        rcu = read_capacity_units or getattr(meta, "read_capacity_units", None)
        wcu = write_capacity_units or getattr(meta, "write_capacity_units", None)
        mode = billing_mode or getattr(meta, "billing_mode", None)
        if mode is None:
            mode = PROVISIONED_BILLING_MODE if rcu or wcu else PAY_PER_REQUEST_BILLING_MODE
        _native.table_create(cls._client(), cls._table_name(), str(mode), int(rcu or 5), int(wcu or 5), bool(wait))

    @classmethod
    def exists(cls) -> bool:
        return _native.table_exists(cls._client(), cls._table_name())

    @classmethod
    def delete_table(cls) -> None:
        _native.table_drop(cls._client(), cls._table_name(), True)

    @classmethod
    def delete_all(cls) -> int:
        """Deletes every item (parallel Scan and batched deletes); returns how many."""
        return _native.dynamodb_backend(cls._client(), cls._table_name()).clear()


def _errors() -> T.Any:
    from .. import errors
    return errors


class DynamodbBackend(RecordHooks[VT], NativeCache[VT]):
    """A cache in the table ``dynamodb_table`` (a DynamodbBackendRecord subclass): ``MyCache(MyTable)``.

    ``python_compat`` (default True, unlike the C++ default): values written as 0.1.1 writes
    them, so programs still on 0.1.1 read them; False stores raw or zstd-compressed bytes
    (smaller; 0.1.1 cannot read them). Every other option of the C++ DynamodbOptions is a
    keyword argument with the same default: consistent_read, compress_min_bytes,
    compress_level, namespace, namespace_refresh (seconds), long_keys, fail_open,
    track_capacity, clear_segments. Client options (a client of its own instead of the
    table's shared one): max_attempts, operation_timeout (seconds), io_threads,
    max_in_flight, fail_when_full, profile."""

    _CLIENT_OPTIONS = ("max_attempts", "operation_timeout", "io_threads", "max_in_flight", "fail_when_full",
                       "profile")

    def __init__(self, dynamodb_table: T.Type[DynamodbBackendRecord], *, python_compat: bool = True,
                 **options: T.Any) -> None:
        table = self.dynamodb_table = dynamodb_table
        client_options = {k: options.pop(k) for k in self._CLIENT_OPTIONS if k in options}
        if client_options:
            meta = table.Meta
            client = _native.Client(region=getattr(meta, "region", "") or "",
                                    endpoint=getattr(meta, "host", "") or "", **client_options)
        else:
            client = table._client()
        self._native = _native.dynamodb_backend(client, table._table_name(), python_compat=python_compat,
                                                **options)

    def _make_record(self, key: str, value: bytes, expire: float) -> DynamodbBackendRecord:
        return self.dynamodb_table(key=key, value=value, expire=expire)



class JsonDictDynamodbCache(JsonValues, DynamodbBackend[dict], AbstractCache[dict]):
    """Values are dicts, stored as UTF-8 JSON."""


class JsonListDynamodbCache(JsonValues, DynamodbBackend[list], AbstractCache[list]):
    """Values are lists, stored as UTF-8 JSON."""
