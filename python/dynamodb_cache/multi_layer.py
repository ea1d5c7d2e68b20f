"""MultiLayerCache: caches read in order, written together, as in dynamodb_cache 0.1.1, and
better: a hit in a lower layer is written back into the layers above (with the TTL it has
left), and clear() clears every layer. Over this package's caches it is the C++
LayeredBackend; values are encoded once, with the last (most durable, shared) layer's
_serialize, and stored as those bytes in every layer (0.1.1 had each layer encode its own:
the same bytes wherever the layers store one format, as caches of one value type do)."""
import typing as T

from . import _native
from ._base import NativeCache

VT = T.TypeVar("VT")


class MultiLayerCache(NativeCache[VT]):
    """``MultiLayerCache([memory_cache, dynamodb_cache])``: fastest layer first."""

    def __init__(self, cache_list: T.Sequence[T.Any]) -> None:
        self.cache_list = list(cache_list)
        foreign = [c for c in self.cache_list if not isinstance(c, NativeCache)]
        if foreign:
            raise TypeError(f"MultiLayerCache layers must be caches of dynamodb_cache, not {foreign[0]!r}")
        self._native = _native.layered_backend([c._native for c in self.cache_list])

    def _serialize(self, value: VT) -> bytes:
        return self.cache_list[-1]._serialize(value)

    def _deserialize(self, value: bytes) -> VT:
        return self.cache_list[-1]._deserialize(value)


class JsonDictMultiLayerCache(MultiLayerCache[dict]):
    """Layers of dicts (the layers' own JSON caches encode them)."""


class JsonListMultiLayerCache(MultiLayerCache[list]):
    """Layers of lists (the layers' own JSON caches encode them)."""
