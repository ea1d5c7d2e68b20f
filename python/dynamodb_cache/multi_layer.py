"""MultiLayerCache: caches read in order, written together, as in dynamodb_cache 0.1.1, and
better: a hit in a lower layer is written back into the layers above (with the TTL it has
left), and clear() clears every layer. Over this package's caches it is the C++
LayeredBackend; values are encoded once, with the last (most durable, shared) layer's
_serialize, and stored as those bytes in every layer (0.1.1 had each layer encode its own:
the same bytes wherever the layers store one format, as caches of one value type do)."""
import typing as T

from . import _native
from ._base import NativeCache, RecordHooks

VT = T.TypeVar("VT")


class _PythonLayers:
    """The ``_native`` of a MultiLayerCache over a layer the engine cannot stand in for."""

    def __getattr__(self, name: str) -> T.Any:
        if name.startswith("__"):
            raise AttributeError(name)
        raise TypeError("this MultiLayerCache has a layer of your own (or one overriding get, set or a "
                        "record hook): it has 0.1.1's get, set and clear only")


class MultiLayerCache(NativeCache[VT]):
    """``MultiLayerCache([memory_cache, dynamodb_cache])``: fastest layer first. If a layer is a
    cache of your own (an AbstractCache with its own get/set/clear) or overrides get, set or a
    record hook, the layers are used as 0.1.1 uses them, through their own get, set and clear
    (no back-fill, none of the extras)."""

    def __init__(self, cache_list: T.Sequence[T.Any]) -> None:
        self.cache_list = list(cache_list)
        if all(_on_engine(c) for c in self.cache_list):
            self._native = _native.layered_backend([c._native for c in self.cache_list])
        else:
            self._native = _PythonLayers()

    def get(self, key: str) -> T.Optional[VT]:
        if not isinstance(self._native, _PythonLayers):
            return super().get(key)
        for cache in self.cache_list:
            value = cache.get(key)
            if value is not None:
                return value
        return None

    def set(self, key: str, value: VT, expire: float = 0) -> None:
        if not isinstance(self._native, _PythonLayers):
            return super().set(key, value, expire)
        for cache in self.cache_list:
            cache.set(key, value, expire)

    def clear(self) -> None:
        if not isinstance(self._native, _PythonLayers):
            return super().clear()
        for cache in self.cache_list:
            cache.clear()

    def _serialize(self, value: VT) -> bytes:
        return self.cache_list[-1]._serialize(value)

    def _deserialize(self, value: bytes) -> VT:
        return self.cache_list[-1]._deserialize(value)


class JsonDictMultiLayerCache(MultiLayerCache[dict]):
    """Layers of dicts (the layers' own JSON caches encode them)."""


class JsonListMultiLayerCache(MultiLayerCache[list]):
    """Layers of lists (the layers' own JSON caches encode them)."""


_OWN_METHODS = {cls.__dict__[m] for cls in (NativeCache, RecordHooks, MultiLayerCache) for m in ("get", "set", "clear")
                if m in cls.__dict__}


def _on_engine(cache: T.Any) -> bool:
    """Whether the engine's layered backend may read and write ``cache``'s store directly: a
    cache of this package whose get, set, clear and record hooks are the package's own."""
    t = type(cache)
    return (isinstance(cache, NativeCache) and not isinstance(cache._native, _PythonLayers)
            and all(getattr(t, m) in _OWN_METHODS for m in ("get", "set", "clear"))
            and (not isinstance(cache, RecordHooks)
                 or (t._value_to_record is RecordHooks._value_to_record
                     and t._record_to_value is RecordHooks._record_to_value)))
