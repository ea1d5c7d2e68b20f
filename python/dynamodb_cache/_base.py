"""NativeCache: the methods every cache of this package has, over one C++ backend
(``self._native``, a ``_native.Backend``). Values go through the user's ``_serialize`` /
``_deserialize`` with the GIL held; the engine's calls release it while they wait."""
import asyncio
import json
import threading
import typing as T

from . import errors

VT = T.TypeVar("VT")

# The (backend, key) pairs whose loader runs on this thread: a get_or_set of the same pair from
# inside its own loader would wait for itself forever in the engine's single flight.
_loading = threading.local()


def _loading_pairs() -> T.Set[T.Tuple[int, str]]:
    pairs: T.Set[T.Tuple[int, str]] = _loading.__dict__.setdefault("pairs", set())
    return pairs


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
    def get_or_set(self, key: str, loader: T.Callable[[], VT], expire: float = 0, *, lease: float = 0,
                   lease_wait: float = 10, refresh_ahead: float = 0, stale_if_error: float = 0,
                   load_timeout: float = 0) -> VT:
        """The cached value, or ``loader()``'s, then cached for ``expire`` seconds. One load
        per key at a time in this process (others wait for it); with ``lease`` (seconds, a
        DynamoDB backend only) one per fleet; ``refresh_ahead``: a hit with less than that
        left is reloaded in the background (a failure is counted and logged, never raised
        here) while every caller, the one that noticed it too, gets the current value. What
        ``loader`` raises reaches every caller waiting on it, and nothing is cached. A loader
        that calls get_or_set for its own key on the same cache gets InvalidArgumentError.

        ``stale_if_error`` (seconds, a DynamoDB backend): the value is kept that long past
        ``expire``, and when ``loader`` raises (or takes longer than ``load_timeout``) the
        callers get that stale value instead of the error (see ``get_or_set_entry``; counted
        in ``stats()["stale_served"]``); the key is then retried with backoff. A loader that
        may run on after the call returned (a refresh, a load past ``load_timeout``) runs on
        the engine's threads: it must not rely on the caller's thread."""
        return self.get_or_set_entry(key, loader, expire, lease=lease, lease_wait=lease_wait,
                                     refresh_ahead=refresh_ahead, stale_if_error=stale_if_error,
                                     load_timeout=load_timeout).value

    def get_or_set_entry(self, key: str, loader: T.Callable[[], VT], expire: float = 0, *, lease: float = 0,
                         lease_wait: float = 10, refresh_ahead: float = 0, stale_if_error: float = 0,
                         load_timeout: float = 0) -> GetOrSetResult:
        """``get_or_set``, saying whether the value is stale: the loader failed or timed out
        and the value is past its TTL, within ``stale_if_error``."""
        pair = (id(self._native), key)
        if pair in _loading_pairs():
            raise errors.InvalidArgumentError(
                f"get_or_set({key!r}) called from its own loader: it would wait for itself")
        loaded: T.List[VT] = []

        def load() -> bytes:
            active = _loading_pairs()  # the pairs of the thread running the load (a refresh: a pool thread)
            active.add(pair)
            try:
                value = loader()
            finally:
                active.discard(pair)
            loaded.append(value)
            return self._serialize(value)  # type: ignore[attr-defined]

        raw, stale = self._native.get_or_set(key, load, expire, lease=lease, lease_wait=lease_wait,
                                             refresh_ahead=refresh_ahead, stale_if_error=stale_if_error,
                                             load_timeout=load_timeout)
        value = loaded[0] if loaded and not stale else self._deserialize(raw)  # type: ignore[attr-defined]
        return GetOrSetResult(value, stale)

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
