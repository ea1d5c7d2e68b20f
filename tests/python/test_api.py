"""The 0.1.1 API end to end against dynalite, and the same table shared with the boto3
re-creation of 0.1.1 (tests/interop/common.py), both ways."""
import importlib
import os
import subprocess
import sys
import time

import pytest

import dynamodb_cache
from dynamodb_cache import (AbstractCache, DynamodbBackend, InMemoryBackend, JsonDictDynamodbCache,
                            JsonDictInMemoryCache, JsonDictMultiLayerCache, JsonListDynamodbCache,
                            MultiLayerCache)
from conftest import BytesCache

import common  # tests/interop: py_set / py_get, the boto3 re-creation of 0.1.1


def test_readme_example_prints_the_slow_read_once_and_the_credential_twice():
    here = os.path.dirname(__file__)
    client = common.ddb()
    if "dynamodb-cache" in client.list_tables()["TableNames"]:  # start cold, whatever ran before
        client.delete_item(TableName="dynamodb-cache", Key={"key": {"S": "my_db_credential"}})
    out = subprocess.run([sys.executable, os.path.join(here, "readme_example.py")], cwd="/",
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines.count("read credential from aws secret manager") == 1
    cred = ("DatabaseCredential(host='www.db.com', port=5432, database='mydatabase', username='alice', "
            "password='123456')")
    assert lines.count(cred) == 2
    # 0.1.1 (the boto3 re-creation) reads what the example stored.
    assert b'"host": "www.db.com"' in common.py_get(common.ddb(), "dynamodb-cache", "my_db_credential")


def test_module_paths_of_0_1_1():
    for module, names in {
        "dynamodb_cache": ["AbstractCache", "InMemoryBackend", "JsonDictInMemoryCache", "JsonListInMemoryCache",
                           "DynamodbTable", "DynamodbBackend", "JsonDictDynamodbCache", "JsonListDynamodbCache",
                           "MultiLayerCache", "JsonDictMultiLayerCache", "JsonListMultiLayerCache",
                           "__version__"],
        "dynamodb_cache.abstract": ["AbstractCache"],
        "dynamodb_cache.backend.in_memory": ["InMemoryBackend", "InMemoryBackendRecord", "JsonDictInMemoryCache",
                                             "JsonListInMemoryCache"],
        "dynamodb_cache.backend.dynamodb": ["DynamodbBackendRecord", "DynamodbBackend", "JsonDictDynamodbCache",
                                            "JsonListDynamodbCache"],
        "dynamodb_cache.multi_layer": ["MultiLayerCache", "JsonDictMultiLayerCache", "JsonListMultiLayerCache"],
        "dynamodb_cache.utils": ["utc_now"],
    }.items():
        m = importlib.import_module(module)
        for n in names:
            assert hasattr(m, n), f"{module}.{n}"
    from dynamodb_cache.backend.dynamodb import DynamodbBackendRecord
    assert dynamodb_cache.DynamodbTable is DynamodbBackendRecord
    assert dynamodb_cache.utils.utc_now().tzinfo is not None
    import dynamodb_cache.backend.in_memory as im
    rec = im.InMemoryBackendRecord(key="k", value=b"v", expire=0, update_ts=dynamodb_cache.utils.utc_now())
    assert (rec.key, rec.value, rec.expire) == ("k", b"v", 0)


def test_table_class_methods(table):
    assert table.exists()
    table.create_table(wait=True)  # an existing table is fine
    cache = JsonDictDynamodbCache(table)
    assert cache.dynamodb_table is table
    for i in range(30):
        cache.set(f"k{i}", {"i": i})
    assert table.delete_all() == 30
    assert cache.get("k1") is None
    table.delete_table()
    assert not table.exists()
    table.create_table(wait=True)  # for the fixture's drop


def test_user_cache_set_get_expire_clear(table):
    cache = BytesCache(table)
    assert cache.get("missing") is None
    cache.set("a", b"\x00\xffbytes")
    # update_ts has a resolution of one second (0.1.1's rule): an entry of `expire` seconds
    # lives between expire - 1 and expire seconds, so 1 s could be gone before the next read.
    cache.set("short", b"x", expire=3)
    assert cache.get("a") == b"\x00\xffbytes"
    assert cache.get("short") == b"x"
    time.sleep(3.1)
    assert cache.get("short") is None
    assert cache.get("a") == b"\x00\xffbytes"
    cache.clear()
    assert cache.get("a") is None


def test_json_caches(table):
    d = JsonDictDynamodbCache(table)
    lst = JsonListDynamodbCache(table)
    d.set("d", {"a": [1, 2]})
    lst.set("l", [1, "x"])
    assert d.get("d") == {"a": [1, 2]} and lst.get("l") == [1, "x"]


def test_in_memory_caches_share_one_store_as_in_0_1_1():
    a, b = JsonDictInMemoryCache(), JsonDictInMemoryCache()
    a.set("shared", {"v": 1})
    assert b.get("shared") == {"v": 1}
    b.clear()
    assert a.get("shared") is None
    own = JsonDictInMemoryCache(max_entries=10)  # options: a store of its own
    own.set("x", {})
    assert a.get("x") is None


def test_multi_layer_writes_all_reads_first_and_back_fills(table):
    mem = JsonDictInMemoryCache(max_entries=100)
    ddb = JsonDictDynamodbCache(table)
    both = JsonDictMultiLayerCache([mem, ddb])
    both.set("k", {"v": 1}, expire=60)
    assert mem.get("k") == {"v": 1} and ddb.get("k") == {"v": 1}
    ddb.set("lower", {"v": 2})
    assert mem.get("lower") is None
    assert both.get("lower") == {"v": 2}
    assert mem.get("lower") == {"v": 2}  # back-filled (0.1.1 does not)
    both.clear()
    assert ddb.get("k") is None and mem.get("k") is None
    assert isinstance(MultiLayerCache([mem]), MultiLayerCache)


def test_cross_reading_with_0_1_1_both_ways(table):
    client, name = common.ddb(), table.Meta.table_name
    ours = JsonDictDynamodbCache(table)
    ours.set("from-ours", {"a": 1}, expire=600)
    assert common.py_get(client, name, "from-ours") == b'{"a": 1}'
    common.py_set(client, name, "from-0.1.1", b'{"b": 2}', expire=600)
    assert ours.get("from-0.1.1") == {"b": 2}
    common.py_set(client, name, "expired", b"{}", expire=5, update_ts=time.time() - 10)
    assert ours.get("expired") is None
    item = client.get_item(TableName=name, Key={"key": {"S": "from-ours"}})["Item"]
    assert set(item) >= {"key", "value", "expire", "update_ts"} and "fmt" not in item


def test_value_to_record_hooks_are_called_when_overridden(table):
    seen = []

    class Hooked(BytesCache):
        def _value_to_record(self, key, value, expire=0):
            rec = super()._value_to_record(key, value, expire)
            seen.append(("to", rec.key, rec.value, rec.expire))
            rec.value = rec.value.upper()
            return rec

        def _record_to_value(self, record):
            seen.append(("from", record.key, record.value))
            return super()._record_to_value(record)

    c = Hooked(table)
    c.set("k", b"abc", 60)
    assert c.get("k") == b"ABC"
    assert seen == [("to", "k", b"abc", 60), ("from", "k", b"ABC")]


class Boom(Exception):
    pass


def test_user_exceptions_reach_the_caller(table):
    class Bad(DynamodbBackend[int], AbstractCache[int]):
        def _serialize(self, value):
            raise Boom("serialize")

        def _deserialize(self, value):
            raise Boom("deserialize")

    bad = Bad(table)
    with pytest.raises(Boom, match="serialize"):
        bad.set("k", 1)
    BytesCache(table).set("k", b"1")
    with pytest.raises(Boom, match="deserialize"):
        bad.get("k")

    def loader():
        raise Boom("loader")

    with pytest.raises(Boom, match="loader"):
        BytesCache(table).get_or_set("new", loader, 60)
    assert BytesCache(table).get("new") is None


def test_0_1_1_keyword_names_and_plain_abstract_cache(table):
    cache = JsonDictDynamodbCache(dynamodb_table=table)
    layered = MultiLayerCache(cache_list=[JsonDictInMemoryCache(max_entries=10), cache])
    assert layered.cache_list[1] is cache
    layered.set("k", {"a": 1})
    assert cache.get("k") == {"a": 1}

    class OnlySerializers(AbstractCache[int]):  # 0.1.1: get/set/clear are not abstract
        def _serialize(self, value):
            return b"%d" % value

        def _deserialize(self, value):
            return int(value)

    with pytest.raises(NotImplementedError):
        OnlySerializers().get("k")


def test_user_exceptions_reach_awaiters_and_every_waiting_thread(table):
    import asyncio
    import threading

    class Bad(DynamodbBackend[int], AbstractCache[int]):
        def _serialize(self, value):
            return b"1"

        def _deserialize(self, value):
            raise Boom("deserialize")

    bad = Bad(table)
    bad.set("k", 1)

    async def go():
        with pytest.raises(Boom, match="deserialize"):
            await bad.get_async("k")

    asyncio.run(go())

    started = threading.Event()

    def loader():
        started.set()
        time.sleep(0.3)  # the other threads join this load meanwhile (single flight)
        raise Boom("shared load")

    caught = []

    def call():
        try:
            bad.get_or_set("slow", loader, 60)
        except Boom as e:
            caught.append(str(e))

    threads = [threading.Thread(target=call) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert caught == ["shared load"] * 3


def test_a_negative_expire_stores_an_already_expired_entry_as_0_1_1(table):
    # 0.1.1 accepts expire < 0 and writes an item its liveness rule reads as expired.
    ddb, mem = BytesCache(table), JsonDictInMemoryCache()
    ddb.set("neg", b"old")
    ddb.set("neg", b"new", expire=-5)
    mem.set("neg", {"old": 1})
    mem.set("neg", {"new": 1}, expire=-0.5)
    assert ddb.get("neg") is None and mem.get("neg") is None
    common.py_set(common.ddb(), table.Meta.table_name, "neg-0.1.1", b"{}", expire=-5)
    assert ddb.get("neg-0.1.1") is None


def test_multi_layer_over_a_cache_of_your_own_or_one_overriding_get_set():
    # 0.1.1's MultiLayerCache calls each layer's get / set / clear: a layer may be any
    # AbstractCache, and a layer's overrides are honoured.
    class DictCache(AbstractCache[dict]):
        def __init__(self):
            self.d = {}

        def _serialize(self, value):
            raise AssertionError("not called")

        def _deserialize(self, value):
            raise AssertionError("not called")

        def get(self, key):
            return self.d.get(key)

        def set(self, key, value, expire=0):
            self.d[key] = (value, expire)

        def clear(self):
            self.d.clear()

    class Prefixed(JsonDictInMemoryCache):
        def get(self, key):
            return super().get("p:" + key)

        def set(self, key, value, expire=0):
            super().set("p:" + key, value, expire)

    own, mem, plain = DictCache(), Prefixed(), JsonDictInMemoryCache()
    layers = MultiLayerCache([mem, own])
    layers.set("k", {"v": 1}, expire=60)
    assert own.d == {"k": ({"v": 1}, 60)} and plain.get("p:k") == {"v": 1} and plain.get("k") is None
    assert layers.get("k") == {"v": 1}
    own.d["only-own"] = {"o": 1}
    assert layers.get("only-own") == {"o": 1}
    with pytest.raises(TypeError, match="0.1.1's get, set and clear only"):
        layers.incr("n")
    layers.clear()
    assert own.d == {} and layers.get("k") is None
