"""MultiLayerCache: caches read in order, written together, as in dynamodb_cache 0.1.1, and
better: a hit in a lower layer is written back into the layers above (with the TTL it has
left), and clear() clears every layer. Over this package's caches it is the C++
LayeredBackend; values are encoded once, with the last (most durable, shared) layer's
_serialize, and stored as those bytes in every layer."""
import typing as T

from . import _native
from ._base import NativeCache
from ._json import JsonValues
from .abstract import AbstractCache

VT = T.TypeVar("VT")


class MultiLayerCache(NativeCache[VT]):
    """``MultiLayerCache([memory_cache, dynamodb_cache])``: fastest layer first."""

    def __init__(self, caches: T.Sequence[T.Any]) -> None:
        self.caches = list(caches)
        foreign = [c for c in self.caches if not isinstance(c, NativeCache)]
        if foreign:
            raise TypeError(f"MultiLayerCache layers must be caches of dynamodb_cache, not {foreign[0]!r}")
        self._native = _native.layered_backend([c._native for c in self.caches])

    def _serialize(self, value: VT) -> bytes:
        return self.caches[-1]._serialize(value)

    def _deserialize(self, value: bytes) -> VT:
        return self.caches[-1]._deserialize(value)


class JsonDictMultiLayerCache(JsonValues, MultiLayerCache[dict], AbstractCache[dict]):
    """Layers of dicts, stored as UTF-8 JSON."""


class JsonListMultiLayerCache(JsonValues, MultiLayerCache[list], AbstractCache[list]):
    """Layers of lists, stored as UTF-8 JSON."""
