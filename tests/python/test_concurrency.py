"""Threads and asyncio: the GIL is released while the engine waits, and *_async calls complete
on the awaiting loop without a thread per request. Against a stub in another process that
delays every answer, so concurrency shows as elapsed time far below requests x delay (the
bounds are generous: a serial run would take many times longer)."""
import asyncio
import os
import subprocess
import sys
import threading
import time

import pytest

from dynamodb_cache import JsonDictDynamodbCache
from conftest import stub_cache

DELAY = 0.5


@pytest.fixture(scope="module")
def slow_stub():
    p = subprocess.Popen([sys.executable, os.path.join(os.path.dirname(__file__), "stub_server.py"), str(DELAY)],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    url = p.stdout.readline().strip()
    yield url
    p.stdin.close()
    p.wait(timeout=30)


def threads_now():
    return len(os.listdir("/proc/self/task"))


def test_threads_wait_without_the_gil(slow_stub):
    n = 8
    cache = stub_cache(slow_stub)
    results = []
    threads = [threading.Thread(target=lambda: results.append(cache.get(f"k{len(results)}"))) for _ in range(n)]
    start = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.monotonic() - start
    assert results == [None] * n
    # Holding the GIL while waiting would serialize them: n x DELAY = 4 s.
    assert elapsed < n * DELAY / 2, f"{n} blocking gets of {DELAY} s each took {elapsed:.2f} s"


def test_thousand_gets_in_flight_on_one_thread(slow_stub):
    cache = stub_cache(slow_stub, max_in_flight=1000)
    before = threads_now()

    async def go():
        loop_thread = threading.get_ident()
        completed_on = set()

        async def one(i):
            v = await cache.get_async(f"k{i}")
            completed_on.add(threading.get_ident())
            return v

        start = time.monotonic()
        results = await asyncio.gather(*(one(i) for i in range(1000)))
        return results, time.monotonic() - start, completed_on, loop_thread, threads_now()

    results, elapsed, completed_on, loop_thread, during = asyncio.run(go())
    assert results == [None] * 1000
    assert completed_on == {loop_thread}
    # One request at a time would take 1000 x DELAY = 500 s.
    assert elapsed < 60, elapsed
    # The client's I/O and credential threads, not one per request.
    assert during - before <= 4, (before, during)


@pytest.mark.asyncio
async def test_async_forms_against_dynalite(table):
    # dynalite is one Node.js process: a thousand connections at once can outlast the 2 s
    # connect timeout on a loaded machine. The stub above shows the thousand in flight.
    cache = JsonDictDynamodbCache(table, max_in_flight=100)
    await cache.set_many_async({f"k{i}": {"i": i} for i in range(1000)}, expire=600)
    got = await asyncio.gather(*(cache.get_async(f"k{i}") for i in range(1000)))
    assert got == [{"i": i} for i in range(1000)]
    await cache.set_async("one", {"x": 1})
    assert await cache.get_many_async(["one", "none"]) == {"one": {"x": 1}}
    await cache.delete_async("one")
    assert await cache.get_async("one") is None
    await cache.clear_async()
    assert await cache.get_async("k1") is None


def test_exit_with_requests_pending_is_clean(tmp_path):
    # Completions that arrive while the interpreter shuts down must neither hang nor crash it.
    script = tmp_path / "exit_pending.py"
    script.write_text(f"""
import asyncio, sys
sys.path.insert(0, {os.path.dirname(os.path.abspath(__file__))!r})
from stub_server import Stub
from conftest import stub_cache
stub = Stub()
stub.hang = True
cache = stub_cache(stub.url, operation_timeout=20)
async def go():
    for i in range(5):
        asyncio.ensure_future(cache.get_async(f"k{{i}}"))
    await asyncio.sleep(0.2)
asyncio.run(go())
print("exiting with requests pending", flush=True)
""")
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout == "exiting with requests pending\n"


def test_interpreter_exit_with_a_daemon_thread_in_a_blocking_call(table, tmp_path):
    # The daemon thread keeps coming back from the engine (GIL released) while Python finalizes;
    # that used to abort the process ("terminate called without an active exception").
    script = tmp_path / "daemon.py"
    script.write_text(f"""
import sys, threading, time
sys.path.insert(0, {os.path.dirname(os.path.abspath(__file__))!r})
from conftest import BytesCache, table_class
cache = BytesCache(table_class({table.Meta.table_name!r}))
cache.set("k", b"v")
def poll():
    while True:
        cache.get("k")
threading.Thread(target=poll, daemon=True).start()
time.sleep(0.2)
print("exiting", flush=True)
""")
    for _ in range(3):
        out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=60)
        assert (out.returncode, out.stdout) == (0, "exiting\n"), out.stderr
