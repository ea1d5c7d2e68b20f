"""InMemoryBackend: a process-local cache. As in dynamodb_cache 0.1.1, every InMemoryBackend of
a process shares one store, and clear() on any of them empties it; the store is the C++
MemoryBackend (sharded, TTL, bounded: 100,000 entries and 64 MiB by default, least recently
used first out), shared unless a cache is given options of its own."""
import threading
import typing as T
from dataclasses import dataclass

from .. import _native
from .._base import NativeCache, RecordHooks
from .._json import JsonValues
from ..abstract import AbstractCache
from ..utils import utc_now

VT = T.TypeVar("VT")

_shared: T.Any = None
_shared_lock = threading.Lock()


def _shared_store() -> T.Any:
    global _shared
    with _shared_lock:
        if _shared is None:
            _shared = _native.memory_backend()
        return _shared


@dataclass
class InMemoryBackendRecord:
    key: str
    value: bytes
    expire: float
    update_ts: T.Any


class InMemoryBackend(RecordHooks[VT], NativeCache[VT]):
    """``InMemoryBackend()`` uses the process's shared store; ``InMemoryBackend(max_entries=...,
    max_bytes=..., shards=...)`` a store of its own with those bounds (defaults as the C++
    MemoryOptions)."""

    def __init__(self, **options: T.Any) -> None:
        self._native = _native.memory_backend(**options) if options else _shared_store()

    def _make_record(self, key: str, value: bytes, expire: float) -> InMemoryBackendRecord:
        return InMemoryBackendRecord(key=key, value=value, expire=expire, update_ts=utc_now())



class JsonDictInMemoryCache(JsonValues, InMemoryBackend[dict], AbstractCache[dict]):
    """Values are dicts, stored as UTF-8 JSON."""


class JsonListInMemoryCache(JsonValues, InMemoryBackend[list], AbstractCache[list]):
    """Values are lists, stored as UTF-8 JSON."""
