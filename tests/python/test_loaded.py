"""Loaders that decide (Loaded: a TTL of their own, not to cache, the source has none), against
dynalite: the C++ get_or_set's LoadResult through the package."""
import threading
import time

import pytest

from dynamodb_cache import JsonDictDynamodbCache, JsonDictInMemoryCache, Loaded, MultiLayerCache
from dynamodb_cache.errors import InvalidArgumentError
from conftest import BytesCache


def wait_for(check, seconds=5.0):
    deadline = time.monotonic() + seconds
    while not check() and time.monotonic() < deadline:
        time.sleep(0.05)
    return check()


def test_the_loaders_own_ttl_wins_over_the_calls(table):
    cache = JsonDictDynamodbCache(table)
    assert cache.get_or_set("short", lambda: Loaded({"v": 1}, expire=2), 3600) == {"v": 1}
    assert cache.get_or_set("long", lambda: Loaded({"v": 2}), 3600) == {"v": 2}  # no expire: the call's
    assert cache.get("short") == {"v": 1} and cache.get("long") == {"v": 2}
    time.sleep(2.1)  # past its own 2 s TTL
    assert cache.get("short") is None
    assert cache.get("long") == {"v": 2}
    calls = []
    assert cache.get_or_set("short", lambda: calls.append(1) or {"v": 3}, 3600) == {"v": 3} and calls == [1]


def test_missing_answers_none_and_cache_misses_for_remembers_it(table):
    cache = JsonDictDynamodbCache(table)
    calls = []

    def load():
        calls.append(1)
        return Loaded.missing()

    # Not remembered without cache_misses_for: each call asks the source.
    assert cache.get_or_set("gone", load, 60) is None
    assert cache.get_or_set("gone", load, 60) is None
    assert len(calls) == 2 and cache.get("gone") is None
    assert cache.get_or_set_entry("gone", load, 60) == (None, False) and len(calls) == 3

    calls.clear()
    start = time.monotonic()
    assert cache.get_or_set("absent", load, 60, cache_misses_for=2) is None and calls == [1]
    assert cache.get_or_set("absent", load, 60, cache_misses_for=2) is None and calls == [1]
    assert cache.get_or_set_entry("absent", load, 60, cache_misses_for=2) == (None, False) and calls == [1]
    assert cache.get("absent") is None and "absent" not in cache  # other reads see no value
    assert time.monotonic() - start < 2  # the calls above were within the window
    time.sleep(2.1)  # past the window
    assert cache.get_or_set("absent", load, 60, cache_misses_for=2) is None and calls == [1, 1]
    # A value loaded later is stored over the negative entry.
    assert cache.get_or_set("absent", lambda: {"now": 1}, 60) == {"now": 1}
    assert cache.get("absent") == {"now": 1}


def test_a_remembered_miss_is_shared_by_the_waiters_and_ended_by_a_set(table):
    cache = JsonDictDynamodbCache(table)
    calls = []

    def load():
        calls.append(1)
        time.sleep(0.3)  # the other threads join this load (single flight)
        return Loaded.missing()

    results = []
    threads = [threading.Thread(target=lambda: results.append(cache.get_or_set("m", load, 60, cache_misses_for=60)))
               for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == [None] * 3 and calls == [1]
    cache.set("m", {"set": 1})
    assert cache.get_or_set("m", load, 60, cache_misses_for=60) == {"set": 1} and calls == [1]


def test_uncached_is_returned_and_not_stored(table):
    cache = JsonDictDynamodbCache(table)
    calls = []

    def load():
        calls.append(1)
        return Loaded.uncached({"u": len(calls)})

    assert cache.get_or_set("u", load, 60) == {"u": 1}
    assert cache.get("u") is None and "u" not in cache
    assert cache.get_or_set_entry("u", load, 60) == ({"u": 2}, False)
    assert cache.get("u") is None and calls == [1, 1]


def test_a_plain_loader_works_unchanged_and_its_caller_gets_its_object(table):
    cache = JsonDictDynamodbCache(table)
    obj = {"p": 1}
    assert cache.get_or_set("p", lambda: obj, 60) is obj
    got = cache.get_or_set("p", lambda: {"p": 2}, 60)
    assert got == {"p": 1} and got is not obj  # a hit: decoded from the table
    loaded = Loaded(obj)
    assert cache.get_or_set("p2", lambda: loaded, 60) is obj and cache.get("p2") == obj


def test_a_loader_of_the_wrong_type_gets_a_clear_type_error(table):
    cache = BytesCache(table)
    with pytest.raises(TypeError, match="must return bytes or a Loaded, not str"):
        cache.get_or_set("w", lambda: "text", 60)
    with pytest.raises(TypeError, match="must return bytes or a Loaded, not int"):
        cache.get_or_set("w", lambda: Loaded.uncached(5), 60)
    with pytest.raises(TypeError, match="expire is seconds"):
        cache.get_or_set("w", lambda: Loaded(b"x", expire="soon"), 60)
    assert cache.get("w") is None
    # A TTL below zero is the engine's InvalidArgumentError, and nothing is stored.
    with pytest.raises(InvalidArgumentError):
        cache.get_or_set("w", lambda: Loaded(b"x", expire=-1), 60)
    assert cache.get("w") is None
    with pytest.raises(TypeError, match="a Loaded is for get_or_set"):
        cache.get_or_set_many(["w"], lambda keys: {k: Loaded(b"x") for k in keys}, 60)
    assert cache.get_or_set("w", lambda: Loaded(b"ok"), 60) == b"ok"


def test_stale_if_error_with_a_deciding_loader(table):
    cache = JsonDictDynamodbCache(table)
    assert cache.get_or_set("s", lambda: Loaded({"v": 1}, expire=1), 3600, stale_if_error=60) == {"v": 1}
    time.sleep(2.1)  # past its own 1 s TTL, within the grace
    assert cache.get("s") is None

    def fail():
        raise RuntimeError("the source is down")

    assert cache.get_or_set("s", fail, 3600, stale_if_error=60) == {"v": 1}
    assert cache.stats()["stale_served"] == 1
    # In the backoff that follows, the stale value answers without a load.
    assert cache.get_or_set("s", lambda: Loaded({"v": 9}), 3600, stale_if_error=60) == {"v": 1}
    assert cache.stats()["stale_served"] == 2
    # get_or_set_entry takes every decision with stale_if_error, and says which answer is stale.
    assert cache.get_or_set_entry("e", lambda: Loaded({"e": 1}, expire=1), 3600,
                                  stale_if_error=60) == ({"e": 1}, False)
    assert cache.get("e") == {"e": 1}
    time.sleep(2.1)
    assert cache.get_or_set_entry("e", fail, 3600, stale_if_error=60) == ({"e": 1}, True)
    assert cache.get_or_set_entry("e2", lambda: Loaded.missing(), 60, stale_if_error=5,
                                  cache_misses_for=5) == (None, False)
    assert cache.get_or_set_entry("e2", fail, 60, stale_if_error=5, cache_misses_for=5) == (None, False)
    assert cache.get("e2") is None


def test_a_deciding_load_past_load_timeout_stores_with_its_own_ttl(table):
    cache = JsonDictDynamodbCache(table)
    cache.get_or_set("t", lambda: Loaded({"v": 1}, expire=1), 3600, stale_if_error=60)
    time.sleep(2.1)
    release = threading.Event()

    def slow():
        release.wait(10)
        return Loaded({"v": 2}, expire=2)

    assert cache.get_or_set("t", slow, 3600, stale_if_error=60, load_timeout=0.2) == {"v": 1}
    release.set()
    assert wait_for(lambda: cache.get("t") == {"v": 2})
    time.sleep(2.1)  # past its own 2 s TTL, not the call's hour
    assert cache.get("t") is None


def test_refresh_ahead_and_lease_with_a_deciding_loader(table):
    cache = JsonDictDynamodbCache(table)
    assert cache.get_or_set("l", lambda: Loaded({"l": 1}, expire=60), 1, lease=5) == {"l": 1}
    time.sleep(2.1)  # past the call's 1 s: the loader's 60 s holds
    assert cache.get("l") == {"l": 1}

    assert cache.get_or_set("r", lambda: Loaded({"r": 1}, expire=3), 3600, refresh_ahead=2.5) == {"r": 1}
    time.sleep(1.1)
    # Due for refresh: the caller gets the current value; the reload runs on the engine's pool.
    assert cache.get_or_set("r", lambda: Loaded({"r": 2}, expire=60), 3600, refresh_ahead=2.5) == {"r": 1}
    assert wait_for(lambda: cache.get("r") == {"r": 2})
    time.sleep(2.5)  # past the first value's 3 s
    assert cache.get("r") == {"r": 2}


def test_cache_misses_for_needs_a_dynamodb_backend(table):
    memory = JsonDictInMemoryCache(max_entries=10)
    with pytest.raises(InvalidArgumentError, match="cache_misses_for need a DynamodbBackend") as raised:
        memory.get_or_set("k", lambda: Loaded.missing(), 60, cache_misses_for=5)
    assert raised.value.kind == "invalid_argument"
    # Without it, a memory cache takes every decision.
    assert memory.get_or_set("k", lambda: Loaded.missing(), 60) is None
    assert memory.get_or_set("k", lambda: Loaded.uncached({"u": 1}), 60) == {"u": 1} and memory.get("k") is None
    # Layers over DynamoDB remember the miss in the table.
    layered = MultiLayerCache([JsonDictInMemoryCache(max_entries=10), JsonDictDynamodbCache(table)])
    calls = []

    def load():
        calls.append(1)
        return Loaded.missing()

    assert layered.get_or_set("lm", load, 60, cache_misses_for=60) is None
    assert layered.get_or_set("lm", load, 60, cache_misses_for=60) is None and calls == [1]


def test_a_deciding_loader_asking_for_its_own_key_gets_an_error_not_a_hang():
    c = JsonDictInMemoryCache(max_entries=10)
    with pytest.raises(InvalidArgumentError, match="own loader"):
        c.get_or_set("r", lambda: Loaded(c.get_or_set("r", lambda: Loaded({"inner": 1}))))
    assert c.get("r") is None
    assert c.get_or_set("r", lambda: Loaded({"o": c.get_or_set("s", lambda: Loaded({"s": 1}))})) == {"o": {"s": 1}}


def test_loaded_reads_as_what_it_says():
    assert Loaded(1, expire=5) == Loaded(1, expire=5) != Loaded(1)
    assert repr(Loaded(1, expire=5)) == "Loaded(1, expire=5)"
    assert repr(Loaded.missing()) == "Loaded.missing()" and not Loaded.missing().found
    u = Loaded.uncached("x")
    assert (u.value, u.expire, u.cache, u.found) == ("x", None, False, True)
