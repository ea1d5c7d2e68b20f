"""NativeCache: the methods every cache of this package has, over one C++ backend
(``self._native``, a ``_native.Backend``). Values go through the user's ``_serialize`` /
``_deserialize`` with the GIL held; the engine's calls release it while they wait."""
import asyncio
import json
import threading
import typing as T

from . import _native, errors

VT = T.TypeVar("VT")
VT_co = T.TypeVar("VT_co", covariant=True)

# The (backend, key) pairs whose loader runs on this thread: a get_or_set of the same pair from
# inside its own loader would wait for itself forever in the engine's single flight.
_loading = threading.local()


def _loading_pairs() -> T.Set[T.Tuple[int, str]]:
    pairs: T.Set[T.Tuple[int, str]] = _loading.__dict__.setdefault("pairs", set())
    return pairs


class Loaded(T.Generic[VT_co]):
    """What a ``get_or_set`` loader may return instead of a bare value, to decide (the C++
    ``LoadResult``): ``Loaded(value, expire=30)`` caches ``value`` for its own ``expire``
    seconds (0: never expires) instead of the call's; ``Loaded.uncached(value)`` hands
    ``value`` to the caller and those waiting on the load without storing it;
    ``Loaded.missing()`` says the source has no value: ``get_or_set`` answers None and, with
    ``cache_misses_for``, remembers the miss. Immutable."""

    __slots__ = ("_value", "_expire", "_cache", "_found")

    def __init__(self, value: VT_co, expire: T.Optional[float] = None) -> None:
        if expire is not None and (isinstance(expire, bool) or not isinstance(expire, (int, float))):
            raise TypeError(f"Loaded's expire is seconds (a number) or None, not {type(expire).__name__}")
        self._value = value
        self._expire = expire
        self._cache = True
        self._found = True

    @staticmethod
    def missing() -> "Loaded[T.Any]":
        """The source has no value for the key."""
        out: "Loaded[T.Any]" = Loaded(None)
        out._found = False
        return out

    @staticmethod
    def uncached(value: VT) -> "Loaded[VT]":
        """``value`` for the callers, not stored."""
        out = Loaded(value)
        out._cache = False
        return out

    @property
    def value(self) -> T.Optional[VT_co]:
        """The value; None for ``missing()``."""
        return self._value

    @property
    def expire(self) -> T.Optional[float]:
        """The value's own TTL in seconds; None: the call's ``expire``."""
        return self._expire

    @property
    def cache(self) -> bool:
        """False for ``uncached()``."""
        return self._cache

    @property
    def found(self) -> bool:
        """False for ``missing()``."""
        return self._found

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Loaded) and (self._value, self._expire, self._cache, self._found) == (
            other._value, other._expire, other._cache, other._found)

    def __hash__(self) -> int:
        return hash((self._expire, self._cache, self._found))

    def __repr__(self) -> str:
        if not self._found:
            return "Loaded.missing()"
        if not self._cache:
            return f"Loaded.uncached({self._value!r})"
        return f"Loaded({self._value!r})" if self._expire is None else f"Loaded({self._value!r}, expire={self._expire!r})"


class GetOrSetResult(T.NamedTuple):
    """``get_or_set_entry``'s answer: the value, and whether it is stale (the loader failed or
    timed out, and the value is past its TTL within ``stale_if_error``)."""
    value: T.Any
    stale: bool


def _settle(fut: "asyncio.Future", err: T.Optional[BaseException], result: T.Any) -> None:
    if fut.cancelled():
        return
    if err is not None:
        fut.set_exception(err)
    else:
        fut.set_result(result)


def _future(start: T.Callable[[T.Callable[[T.Any, T.Any], None]], None]) -> "asyncio.Future":
    """A future of the running loop that ``start(callback)``'s C++ completion settles: the
    callback runs on the engine's I/O thread and hands the result over with
    call_soon_threadsafe, so no thread waits per request."""
    loop = asyncio.get_running_loop()
    fut = loop.create_future()

    def done(err: T.Any, result: T.Any) -> None:
        try:
            loop.call_soon_threadsafe(_settle, fut, err, result)
        except RuntimeError:
            pass  # the loop was closed before the answer came: nobody awaits it any more

    start(done)
    return fut


class NativeCache(T.Generic[VT]):
    """The API beyond 0.1.1, shared by every backend and the layered cache. ``expire`` and
    the other durations are seconds (floats allowed); 0 means never expires."""

    _native: T.Any

    # --- the 0.1.1 API ------------------------------------------------------------------
    def set(self, key: str, value: VT, expire: float = 0) -> None:
        self._store(key, self._serialize(value), expire)  # type: ignore[attr-defined]

    def _store(self, key: str, data: bytes, expire: float) -> None:
        # 0.1.1 takes a negative expire and stores an entry that is already expired (reads
        # miss); the engine refuses negative TTLs, so the key is emptied instead: same reads.
        if expire < 0:
            self._native.delete(key)
        else:
            self._native.set(key, data, expire)

    def get(self, key: str) -> T.Optional[VT]:
        raw = self._native.get(key)
        return None if raw is None else self._deserialize(raw)  # type: ignore[attr-defined]

    def clear(self) -> None:
        self._native.clear()

    # --- beyond 0.1.1 -------------------------------------------------------------------
    @T.overload
    def get_or_set(self, key: str, loader: T.Callable[[], VT], expire: float = 0, *, lease: float = 0,
                   lease_wait: float = 10, refresh_ahead: float = 0, stale_if_error: float = 0,
                   load_timeout: float = 0, cache_misses_for: float = 0) -> VT: ...

    @T.overload
    def get_or_set(self, key: str, loader: T.Callable[[], T.Union[VT, Loaded[VT]]], expire: float = 0, *,
                   lease: float = 0, lease_wait: float = 10, refresh_ahead: float = 0,
                   stale_if_error: float = 0, load_timeout: float = 0,
                   cache_misses_for: float = 0) -> T.Optional[VT]: ...

    def get_or_set(self, key: str, loader: T.Callable[[], T.Any], expire: float = 0, *, lease: float = 0,
                   lease_wait: float = 10, refresh_ahead: float = 0, stale_if_error: float = 0,
                   load_timeout: float = 0, cache_misses_for: float = 0) -> T.Optional[VT]:
        """The cached value, or ``loader()``'s, then cached for ``expire`` seconds. One load
        per key at a time in this process (others wait for it); with ``lease`` (seconds, a
        DynamoDB backend only) one per fleet; ``refresh_ahead``: a hit with less than that
        left is reloaded in the background (a failure is counted and logged, never raised
        here) while every caller, the one that noticed it too, gets the current value. What
        ``loader`` raises reaches every caller waiting on it, and nothing is cached. A loader
        that calls get_or_set for its own key on the same cache gets InvalidArgumentError.

        The loader may decide by returning a ``Loaded``: ``Loaded(value, expire=...)`` (its
        own TTL), ``Loaded.uncached(value)`` (returned, not stored) or ``Loaded.missing()``
        (the source has none: the answer is None, for the callers waiting on that load too).
        ``cache_misses_for`` (seconds, a DynamoDB backend or layers over one, else
        InvalidArgumentError): such a miss is remembered that long, and callers passing it
        get None without calling the loader; a set, add or delete of the key ends it.

        ``stale_if_error`` (seconds, a DynamoDB backend): the value is kept that long past
        ``expire``, and when ``loader`` raises (or takes longer than ``load_timeout``) the
        callers get that stale value instead of the error (see ``get_or_set_entry``; counted
        in ``stats()["stale_served"]``); the key is then retried with backoff. A loader that
        may run on after the call returned (a refresh, a load past ``load_timeout``) runs on
        the engine's threads: it must not rely on the caller's thread."""
        return T.cast(T.Optional[VT], self.get_or_set_entry(
            key, loader, expire, lease=lease, lease_wait=lease_wait, refresh_ahead=refresh_ahead,
            stale_if_error=stale_if_error, load_timeout=load_timeout,
            cache_misses_for=cache_misses_for).value)

    def get_or_set_entry(self, key: str, loader: T.Callable[[], T.Any], expire: float = 0, *,
                         lease: float = 0, lease_wait: float = 10, refresh_ahead: float = 0,
                         stale_if_error: float = 0, load_timeout: float = 0,
                         cache_misses_for: float = 0) -> GetOrSetResult:
        """``get_or_set``, saying whether the value is stale: the loader failed or timed out
        and the value is past its TTL, within ``stale_if_error``. The value is None when the
        source has none (``Loaded.missing()``)."""
        load, loaded = self._engine_loader(key, loader)
        raw, stale = self._native.get_or_set(key, load, expire, lease=lease, lease_wait=lease_wait,
                                             refresh_ahead=refresh_ahead, stale_if_error=stale_if_error,
                                             load_timeout=load_timeout, cache_misses_for=cache_misses_for)
        return GetOrSetResult(None if raw is None else self._answer(raw, loaded), stale)

    def _engine_loader(self, key: str, loader: T.Callable[[], T.Any]
                       ) -> T.Tuple[T.Callable[[], T.Any], T.List[T.Tuple[T.Any, bytes]]]:
        """The engine's loader for ``loader`` (bytes or a ``_native.Loaded``), and the list it
        appends (value, bytes) to when it has loaded a value. Refuses a call from the key's own
        loader."""
        pair = (id(self._native), key)
        if pair in _loading_pairs():
            raise errors.InvalidArgumentError(
                f"get_or_set({key!r}) called from its own loader: it would wait for itself")
        loaded: T.List[T.Tuple[T.Any, bytes]] = []

        def load() -> T.Any:
            active = _loading_pairs()  # the pairs of the thread running the load (a refresh: a pool thread)
            active.add(pair)
            try:
                result = loader()
            finally:
                active.discard(pair)
            if isinstance(result, Loaded):
                if not result.found:
                    return _native.Loaded.missing()
                value = result.value
                data = self._loaded_bytes(value)
                loaded.append((value, data))
                if not result.cache:
                    return _native.Loaded.uncached(data)
                return _native.Loaded.found(data, result.expire)
            data = self._loaded_bytes(result)
            loaded.append((result, data))
            return data

        return load, loaded

    def _loaded_bytes(self, value: T.Any) -> bytes:
        data = self._serialize(value)  # type: ignore[attr-defined]
        if not isinstance(data, bytes):
            raise TypeError(f"a get_or_set loader must return bytes or a Loaded, not {type(data).__name__} "
                            f"(what {type(self).__name__}._serialize made of its value)")
        return data

    def _answer(self, raw: bytes, loaded: T.List[T.Tuple[T.Any, bytes]]) -> VT:
        """The value of get_or_set's answer ``raw``: the object this call's loader returned when
        ``raw`` is what it loaded (not a stale value, nor the current one while it refreshes)."""
        for value, data in loaded:
            if data == raw:
                return T.cast(VT, value)
        return self._deserialize(raw)  # type: ignore[attr-defined]

    def get_or_set_many(self, keys: T.Iterable[str],
                        loader: T.Callable[[T.List[str]], T.Mapping[str, VT]],
                        expire: float = 0) -> T.Dict[str, VT]:
        """The values of ``keys``: one batch read; ``loader`` is called once, with the keys that
        missed (and that no other caller in this process is loading), and returns a mapping of
        the ones the source has; those are stored in one batch write for ``expire`` seconds. A
        key neither cached nor returned by the loader is left out of the result, and not
        cached. What ``loader`` raises reaches this caller and every caller waiting on its keys."""
        keys = list(keys)

        def load(missing: T.List[str]) -> T.List[T.Optional[bytes]]:
            found = loader(list(missing))
            if any(isinstance(found.get(k), Loaded) for k in missing):
                raise TypeError("a get_or_set_many loader maps keys to values (a key the source has none "
                                "of is left out); a Loaded is for get_or_set")
            return [None if k not in found else self._serialize(found[k])  # type: ignore[attr-defined]
                    for k in missing]

        out: T.Dict[str, VT] = {}
        for k, raw in zip(keys, self._native.get_or_set_many(keys, load, expire)):
            if raw is not None and k not in out:
                out[k] = self._deserialize(raw)  # type: ignore[attr-defined]
        return out

    def add(self, key: str, value: VT, expire: float = 0) -> bool:
        """Stores ``value`` only if ``key`` has no live entry; True if it did (atomic)."""
        return self._native.add(key, self._serialize(value), expire)  # type: ignore[attr-defined]

    def incr(self, key: str, delta: int = 1, expire: float = 0) -> int:
        """Adds ``delta`` to the counter under ``key`` (a missing one starts at 0 and lives for
        ``expire``) and returns the new value, atomically. A key holding a value: WrongTypeError."""
        return self._native.incr(key, delta, expire)

    def decr(self, key: str, delta: int = 1, expire: float = 0) -> int:
        return self._native.incr(key, -delta, expire)

    def touch(self, key: str, expire: float = 0) -> bool:
        """Gives a live entry a new TTL from now; False if there was none."""
        return self._native.touch(key, expire)

    def delete(self, key: str) -> None:
        self._native.delete(key)

    def delete_many(self, keys: T.Iterable[str]) -> None:
        self._native.delete_many(list(keys))

    def contains(self, key: str) -> bool:
        return self._native.contains(key)

    def __contains__(self, key: str) -> bool:
        return self.contains(key)

    def get_many(self, keys: T.Iterable[str]) -> T.Dict[str, VT]:
        """The live values among ``keys`` (misses are left out); DynamoDB: batched reads."""
        keys = list(keys)
        out: T.Dict[str, VT] = {}
        for k, raw in zip(keys, self._native.get_many(keys)):
            if raw is not None:
                out[k] = self._deserialize(raw)  # type: ignore[attr-defined]
        return out

    def set_many(self, items: T.Mapping[str, VT], expire: float = 0) -> None:
        self._native.set_many([(k, self._serialize(v)) for k, v in items.items()],  # type: ignore[attr-defined]
                              expire)

    def stats(self) -> T.Dict[str, T.Any]:
        """Counters, consumed capacity, errors by kind and latency percentiles (as the C++
        CacheStats::to_json)."""
        return json.loads(self._native.stats_json())

    # --- asyncio ------------------------------------------------------------------------
    async def get_async(self, key: str) -> T.Optional[VT]:
        raw = await _future(lambda cb: self._native.get_async(key, cb))
        return None if raw is None else self._deserialize(raw)  # type: ignore[attr-defined]

    async def set_async(self, key: str, value: VT, expire: float = 0) -> None:
        data = self._serialize(value)  # type: ignore[attr-defined]
        await _future(lambda cb: self._native.set_async(key, data, expire, cb))

    async def delete_async(self, key: str) -> None:
        await _future(lambda cb: self._native.delete_async(key, cb))

    async def get_many_async(self, keys: T.Iterable[str]) -> T.Dict[str, VT]:
        keys = list(keys)
        raws = await _future(lambda cb: self._native.get_many_async(keys, cb))
        return {k: self._deserialize(r) for k, r in zip(keys, raws) if r is not None}  # type: ignore[attr-defined]

    async def set_many_async(self, items: T.Mapping[str, VT], expire: float = 0) -> None:
        entries = [(k, self._serialize(v)) for k, v in items.items()]  # type: ignore[attr-defined]
        await _future(lambda cb: self._native.set_many_async(entries, expire, cb))

    async def clear_async(self) -> None:
        await _future(lambda cb: self._native.clear_async(cb))


class RecordHooks(T.Generic[VT]):
    """0.1.1's ``_value_to_record`` / ``_record_to_value`` hooks. The engine stores and reads
    records itself; a subclass that overrides a hook has it called on each set / get hit
    (the record it makes is stored: its key, value bytes and expire)."""

    def _make_record(self, key: str, value: bytes, expire: float) -> T.Any:
        raise NotImplementedError

    def _value_to_record(self, key: str, value: VT, expire: float = 0) -> T.Any:
        return self._make_record(key, self._serialize(value), expire)  # type: ignore[attr-defined]

    def _record_to_value(self, record: T.Any) -> VT:
        return self._deserialize(record.value)  # type: ignore[attr-defined]

    def set(self, key: str, value: VT, expire: float = 0) -> None:
        if type(self)._value_to_record is RecordHooks._value_to_record:
            NativeCache.set(self, key, value, expire)  # type: ignore[arg-type]
            return
        record = self._value_to_record(key, value, expire)
        self._store(record.key, bytes(record.value), record.expire)  # type: ignore[attr-defined]

    def get(self, key: str) -> T.Optional[VT]:
        if type(self)._record_to_value is RecordHooks._record_to_value:
            return NativeCache.get(self, key)  # type: ignore[arg-type]
        raw = self._native.get(key)  # type: ignore[attr-defined]
        return None if raw is None else self._record_to_value(self._make_record(key, raw, 0))
