"""dynamodb_cache: Amazon DynamoDB as a cache, on the C++ engine of the same name.

A drop-in for the Python package dynamodb_cache 0.1.1 (same names, module paths and table
items), plus get_or_set with leases, atomic operations, namespaces, batches, stats, fail-open
and ``*_async`` forms for asyncio.
"""
from . import _native
from ._base import GetOrSetResult, Loaded
from .abstract import AbstractCache
from .backend.dynamodb import (
    DynamodbBackend,
    DynamodbBackendRecord,
    JsonDictDynamodbCache,
    JsonListDynamodbCache,
)
from .backend.in_memory import InMemoryBackend, JsonDictInMemoryCache, JsonListInMemoryCache
from .multi_layer import JsonDictMultiLayerCache, JsonListMultiLayerCache, MultiLayerCache

DynamodbTable = DynamodbBackendRecord
__version__: str = _native.version

__all__ = [
    "AbstractCache", "InMemoryBackend", "JsonDictInMemoryCache", "JsonListInMemoryCache", "DynamodbTable",
    "DynamodbBackend", "JsonDictDynamodbCache", "JsonListDynamodbCache", "MultiLayerCache",
    "JsonDictMultiLayerCache", "JsonListMultiLayerCache", "Loaded", "GetOrSetResult", "__version__",
]
