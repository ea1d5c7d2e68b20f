"""What the package adds to 0.1.1, against dynalite."""
import threading
import time

import pytest

from dynamodb_cache import JsonDictDynamodbCache, JsonDictInMemoryCache
from dynamodb_cache.errors import InvalidArgumentError, WrongTypeError
from conftest import BytesCache, stub_cache


def test_get_or_set_loads_once_and_caches(table):
    cache = JsonDictDynamodbCache(table)
    calls = []

    def load():
        calls.append(1)
        time.sleep(0.2)
        return {"v": len(calls)}

    results = []
    threads = [threading.Thread(target=lambda: results.append(cache.get_or_set("k", load, 60))) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == [{"v": 1}] * 4 and calls == [1]
    assert cache.get_or_set("k", load, 60) == {"v": 1} and calls == [1]
    assert cache.get_or_set("leased", lambda: {"l": 1}, 60, lease=5, refresh_ahead=1) == {"l": 1}
    assert cache.get("leased") == {"l": 1}


def test_get_or_set_serves_the_stale_value_when_the_loader_fails(table):
    cache = JsonDictDynamodbCache(table)
    assert cache.get_or_set("s", lambda: {"v": 1}, 1, stale_if_error=60) == {"v": 1}
    time.sleep(2.1)  # past the 1 s TTL (stored in whole seconds), well within the grace
    assert cache.get("s") is None  # a plain get sees it expired, as 0.1.1 does

    def fail():
        raise RuntimeError("the source is down")

    entry = cache.get_or_set_entry("s", fail, 1, stale_if_error=60)
    assert entry.value == {"v": 1} and entry.stale is True
    assert cache.stats()["stale_served"] == 1
    # Without a grace the loader's error reaches the caller.
    with pytest.raises(RuntimeError, match="the source is down"):
        cache.get_or_set("fresh-key", fail, 1, stale_if_error=60)
    # A loader that succeeds: not stale, stored.
    entry = cache.get_or_set_entry("s2", lambda: {"v": 2}, 60, stale_if_error=5)
    assert entry == ({"v": 2}, False) and cache.get("s2") == {"v": 2}


def test_a_load_past_load_timeout_goes_on_and_its_caller_may_ask_again(table):
    cache = JsonDictDynamodbCache(table)
    cache.get_or_set("t", lambda: {"v": 1}, 1, stale_if_error=60)
    time.sleep(2.1)
    release = threading.Event()

    def slow():
        release.wait(10)
        return {"v": 2}

    assert cache.get_or_set_entry("t", slow, 60, stale_if_error=60, load_timeout=0.2) == ({"v": 1}, True)
    # The load runs on on the engine's threads. The caller's thread is not inside a loader, so
    # asking again is no call from a loader: it gets the stale value while that load runs.
    assert cache.get_or_set_entry("t", slow, 60, stale_if_error=60, load_timeout=0.2) == ({"v": 1}, True)
    release.set()
    deadline = time.monotonic() + 5
    while cache.get("t") != {"v": 2} and time.monotonic() < deadline:
        time.sleep(0.05)
    assert cache.get("t") == {"v": 2}


def test_get_or_set_many_loads_only_the_missing_keys_once(table):
    cache = JsonDictDynamodbCache(table)
    cache.set("a", {"v": "cached"}, 60)
    calls = []

    def load(missing):
        calls.append(list(missing))
        return {k: {"v": k} for k in missing if k != "nowhere"}

    got = cache.get_or_set_many(["a", "b", "c", "b", "nowhere"], load, 60)
    assert calls == [["b", "c", "nowhere"]]
    assert got == {"a": {"v": "cached"}, "b": {"v": "b"}, "c": {"v": "c"}}
    assert cache.get("c") == {"v": "c"} and cache.get("nowhere") is None
    assert cache.get_or_set_many(["b", "c"], load, 60) == {"b": {"v": "b"}, "c": {"v": "c"}}
    assert len(calls) == 1

    def fail(missing):
        raise KeyError("no source")

    with pytest.raises(KeyError):
        cache.get_or_set_many(["d"], fail, 60)


def test_atomic_operations(table):
    cache = BytesCache(table)
    assert cache.add("a", b"1", 60) is True
    assert cache.add("a", b"2", 60) is False
    assert cache.get("a") == b"1"
    assert cache.incr("n") == 1 and cache.incr("n", 5) == 6 and cache.decr("n", 2) == 4
    with pytest.raises(WrongTypeError):
        cache.incr("a")
    assert cache.touch("a", 60) is True and cache.touch("missing", 60) is False
    assert cache.contains("a") and "a" in cache and not cache.contains("missing")
    cache.delete("a")
    assert cache.get("a") is None and not cache.contains("a")


def test_batches(table):
    cache = JsonDictDynamodbCache(table)
    cache.set_many({f"k{i}": {"i": i} for i in range(120)}, expire=60)
    got = cache.get_many([f"k{i}" for i in range(125)])
    assert got == {f"k{i}": {"i": i} for i in range(120)}
    cache.delete_many([f"k{i}" for i in range(100)])
    assert len(cache.get_many([f"k{i}" for i in range(120)])) == 20


def test_namespaces_clear_alone(table):
    a = JsonDictDynamodbCache(table, namespace="a")
    b = JsonDictDynamodbCache(table, namespace="b")
    a.set("k", {"a": 1})
    b.set("k", {"b": 1})
    a.clear()
    assert a.get("k") is None and b.get("k") == {"b": 1}


def test_stats_as_a_dict(table):
    cache = BytesCache(table)
    cache.set("k", b"v")
    cache.get("k")
    cache.get("missing")
    s = cache.stats()
    assert s["hits"] == 1 and s["misses"] == 1 and s["sets"] == 1
    assert s["latency_us"]["get"]["count"] == 2


def test_options_as_keyword_arguments(table):
    compact = BytesCache(table, python_compat=False, compress_min_bytes=16, consistent_read=True)
    compact.set("big", b"a" * 4000)
    assert compact.get("big") == b"a" * 4000
    with pytest.raises(TypeError):
        BytesCache(table, no_such_option=1)


def test_fail_open_turns_read_failures_into_misses(stub):
    stub.error(500, "InternalServerError")
    cache = stub_cache(stub.url, fail_open=True)
    assert cache.get("k") is None
    cache.set("k", b"v")  # dropped, not raised
    assert cache.stats()["fail_open"] == 2
    strict = stub_cache(stub.url)
    with pytest.raises(Exception):
        strict.get("k")


def test_big_values(table):
    cache = BytesCache(table, python_compat=False)
    big = bytes(range(256)) * 4096  # 1 MiB: past one item, stored in chunks
    cache.set("big", big, expire=60)
    assert cache.get("big") == big


def test_in_memory_extras():
    c = JsonDictInMemoryCache(max_entries=100)
    assert c.add("x", {"a": 1}) and not c.add("x", {})
    assert c.incr("n", 3) == 3
    assert c.get_or_set("g", lambda: {"g": 1}) == {"g": 1}


def test_a_loader_asking_for_its_own_key_gets_an_error_not_a_hang():
    c = JsonDictInMemoryCache(max_entries=10)
    with pytest.raises(InvalidArgumentError, match="own loader") as raised:
        c.get_or_set("r", lambda: c.get_or_set("r", lambda: {"inner": 1}))
    assert raised.value.kind == "invalid_argument" and c.get("r") is None
    # Another key from inside a loader is fine, and the key is usable afterwards.
    assert c.get_or_set("r", lambda: {"o": c.get_or_set("s", lambda: {"s": 1})}) == {"o": {"s": 1}}
