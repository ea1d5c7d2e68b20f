"""The workloads: each runs several worker processes (fork), each worker one CLI subprocess
per operation, records the history, then reads the keys once more after every worker ended
(the final reads, with faults turned off). Each returns the merged history; CHECKS (run.py)
pairs each with its checker.
"""
import hashlib
import json
import multiprocessing
import os
import random
import sys
import time

from history import Runner, load, save

HERE = os.path.dirname(os.path.abspath(__file__))
RECORDER = os.path.join(HERE, "recorder.py")
PYTHON = "/usr/bin/python3"
LEASE_S = 10          # get-or-run --lease: far longer than the command's 300 ms
LEASE_RUN_MS = 300


class Sync:
    """Rounds in step across the workers: every worker waits at the barrier; the last to
    arrive decides whether another round starts (round cap or deadline)."""

    def __init__(self, mp, parties, max_rounds, deadline):
        self.round = mp.Value("i", -1)
        self.stop = mp.Value("i", 0)
        self.max_rounds = max_rounds
        self.deadline = deadline
        self.barrier = mp.Barrier(parties, action=self._decide)

    def _decide(self):
        self.round.value += 1
        if self.round.value >= self.max_rounds or time.monotonic() > self.deadline:
            self.stop.value = 1

    def next_round(self):
        self.barrier.wait(timeout=300)
        return not self.stop.value

    def current(self):
        return self.round.value

    def time_left(self):
        return time.monotonic() < self.deadline


def parallel(ctx, name, fn, max_rounds=10**9):
    """Runs fn(ctx, w, runner, sync) in ctx.workers processes; returns their merged ops."""
    mp = multiprocessing.get_context("fork")
    sync = Sync(mp, ctx.workers, max_rounds, time.monotonic() + ctx.seconds)
    files, procs = [], []
    for w in range(ctx.workers):
        path = os.path.join(ctx.tmp, f"{name}-{w}.json")
        files.append(path)

        def main(w=w, path=path):
            runner = Runner(ctx.cli, w, ctx.table, ctx.consistent, cli_timeout=ctx.cli_timeout)
            rng = random.Random(f"{ctx.seed}:{name}:{w}")
            try:
                fn(ctx, w, runner, sync, rng)
            finally:
                save(path, runner.ops)

        p = mp.Process(target=main, name=f"{name}-{w}")
        p.start()
        procs.append(p)
    limit = time.monotonic() + ctx.seconds + 300
    for p in procs:
        p.join(max(1, limit - time.monotonic()))
        if p.is_alive():
            print(f"  {name}: worker {p.name} still running at the time limit: stopped", flush=True)
            p.terminate()
            p.join()
    ops = []
    for path in files:
        if os.path.exists(path):
            ops += load(path)
    return ops


def final_reads(ctx, keys, namespace=None, decode=None):
    """After the workers: faults off, one read per key (consistent in the consistent mode)."""
    ctx.faults.off()
    try:
        r = Runner(ctx.cli, "F", ctx.table, ctx.consistent, cli_timeout=ctx.cli_timeout)
        for k in keys:
            op = r.call("get", k, [k], namespace=namespace, decode=decode)
            if namespace:
                op["ns"] = namespace
        return r.ops
    finally:
        ctx.faults.on()


def read_runs(ctx, path):
    """The recorder's lines as pseudo-operations "run" (arg: the get-or-run that ran it)."""
    runs = {}
    if not os.path.exists(path):
        return []
    with open(path) as fh:
        for line in fh:
            e = json.loads(line)
            r = runs.setdefault(e["caller"], {
                "id": "run:" + e["caller"], "worker": int(e["caller"].split(".")[0]), "op": "run",
                "key": e["key"], "arg": e["caller"], "type": "ok", "value": e["value"], "rc": 0, "err": ""})
            if e["ev"] == "start":
                r["invoke"] = e["t"]
            else:
                r["complete"] = e["t"]
    for r in runs.values():
        r.setdefault("invoke", r.get("complete", 0))
        r.setdefault("complete", r["invoke"])  # never ended (killed): an instant
    return list(runs.values())


def recorder_cmd(runs, key, caller, sleep_ms, value):
    return ["--", PYTHON, RECORDER, runs, key, caller, str(sleep_ms), value]


# --- 1. add ---------------------------------------------------------------------------------

def add_worker(ctx, w, run, sync, rng):
    while sync.next_round():
        key = f"add{sync.current()}"
        val = f"add:{sync.current()}:w{w}"
        run.call("add", key, [key, val], arg=val)


def workload_add(ctx):
    ops = parallel(ctx, "add", add_worker, ctx.rounds or 40)
    keys = sorted({o["key"] for o in ops}, key=lambda k: int(k[3:]))
    return ops + final_reads(ctx, keys)


# --- 2. incr --------------------------------------------------------------------------------

COUNTERS = ["ctr0", "ctr1", "ctr2"]


def incr_worker(ctx, w, run, sync, rng):
    sync.next_round()
    for _ in range(ctx.rounds or 10**9):
        if not sync.time_left():
            break
        key = rng.choice(COUNTERS)
        delta = rng.randint(1, 1000)
        run.call("incr", key, [key, str(delta)], arg=delta)


def workload_incr(ctx):
    ops = parallel(ctx, "incr", incr_worker)
    return ops + final_reads(ctx, COUNTERS)


# --- 3. get-or-run --lease ------------------------------------------------------------------

def lease_worker(ctx, w, run, sync, rng):
    runs = os.path.join(ctx.tmp, "runs-lease.jsonl")
    while sync.next_round():
        key = f"lease{sync.current()}"
        opid = run.next_id()
        val = f"gor:{key}:{opid}"
        op = run.call("get-or-run", key,
                      [key, "--lease", str(LEASE_S), "--lease-wait", "60",
                       *recorder_cmd(runs, key, opid, LEASE_RUN_MS, val)], arg=val, opid=opid)
        op["lease"] = True


def workload_lease(ctx):
    ops = parallel(ctx, "lease", lease_worker, ctx.rounds or 12)
    ops += read_runs(ctx, os.path.join(ctx.tmp, "runs-lease.jsonl"))
    keys = sorted({o["key"] for o in ops}, key=lambda k: int(k[5:]))
    return ops + final_reads(ctx, keys)


# --- 4. values past one item ----------------------------------------------------------------

BIG_KEYS = ["big0", "big1", "big2"]


def big_value(seed, w, seq, rng):
    n = rng.randint(500_000, 2_000_000)
    payload = random.Random(f"{seed}:big:{w}:{seq}").randbytes(n)
    head = f"W{w}:S{seq}:L{n}:SHA{hashlib.sha256(payload).hexdigest()}\n".encode()
    return f"W{w}:S{seq}", head + payload


def decode_big(rc, out):
    """The value's writer and sequence, or "TORN: why" when it is not one whole value."""
    if rc == 1:
        return None
    head, sep, payload = out.partition(b"\n")
    try:
        wid, seq, ln, sha = head.decode().split(":")
        n = int(ln[1:])
    except (ValueError, UnicodeDecodeError):
        return f"TORN: unreadable header {head[:40]!r} ({len(out)} bytes)"
    if len(payload) != n:
        return f"TORN: {wid}:{seq} says {n} bytes, has {len(payload)}"
    if hashlib.sha256(payload).hexdigest() != sha[3:]:
        return f"TORN: {wid}:{seq} checksum mismatch ({n} bytes)"
    return f"{wid}:{seq}"


def big_worker(ctx, w, run, sync, rng):
    writers = max(1, ctx.workers // 2)
    sync.next_round()
    seq = 0
    while sync.time_left() and seq < (ctx.rounds or 8):
        key = rng.choice(BIG_KEYS)
        if w < writers:
            seq += 1
            tag, value = big_value(ctx.seed, w, seq, rng)
            run.call("set", key, [key], arg=tag, stdin=value)
        else:
            run.call("get", key, [key], decode=decode_big)
            time.sleep(rng.uniform(0, 0.05))
    if w >= writers:  # readers go on until the writers are done
        while sync.time_left():
            key = rng.choice(BIG_KEYS)
            run.call("get", key, [key], decode=decode_big)


def workload_chunked(ctx):
    ops = parallel(ctx, "chunked", big_worker)
    return ops + final_reads(ctx, BIG_KEYS, decode=decode_big)


# --- 5. get-or-run against set --------------------------------------------------------------

def gor_set_worker(ctx, w, run, sync, rng):
    runs = os.path.join(ctx.tmp, "runs-gorset.jsonl")
    setters = 2 if ctx.workers >= 4 else 1
    while sync.next_round():
        r = sync.current()
        key = f"gs{r}"
        if (w + r) % ctx.workers < setters:
            time.sleep(rng.uniform(0, 0.3))
            opid = run.next_id()
            val = f"set:{key}:{opid}"
            run.call("set", key, [key, val], arg=val, opid=opid)
        else:
            lease = w % 2 == 0
            opid = run.next_id()
            val = f"gor:{key}:{opid}"
            args = [key] + (["--lease", str(LEASE_S), "--lease-wait", "60"] if lease else [])
            op = run.call("get-or-run", key, args + recorder_cmd(runs, key, opid, rng.randint(50, 400), val),
                          arg=val, opid=opid)
            op["lease"] = lease
        for _ in range(2):
            time.sleep(rng.uniform(0, 0.1))
            run.call("get", key, [key])


def workload_gor_set(ctx):
    ops = parallel(ctx, "gor_set", gor_set_worker, ctx.rounds or 12)
    ops += read_runs(ctx, os.path.join(ctx.tmp, "runs-gorset.jsonl"))
    keys = sorted({o["key"] for o in ops if o["op"] != "run"}, key=lambda k: int(k[2:]))
    return ops + final_reads(ctx, keys)


# --- 6. namespace clear ---------------------------------------------------------------------

NS = "hist"
NS_KEYS = ["n0", "n1", "n2", "n3"]


def namespace_worker(ctx, w, run, sync, rng):
    sync.next_round()
    n = 0
    while sync.time_left() and n < (ctx.rounds or 10**9):
        n += 1
        if w == 0:
            time.sleep(rng.uniform(0.1, 0.4))
            op = run.call("clear", "*", ["--yes"], namespace=NS)
        else:
            key = rng.choice(NS_KEYS)
            if rng.random() < 0.5:
                opid = run.next_id()
                val = f"ns:{key}:{opid}"
                op = run.call("set", key, [key, val], arg=val, namespace=NS, opid=opid)
            else:
                op = run.call("get", key, [key], namespace=NS)
        op["ns"] = NS


def workload_namespace(ctx):
    ops = parallel(ctx, "namespace", namespace_worker)
    return ops + final_reads(ctx, NS_KEYS, namespace=NS)


# --- 7. erase -------------------------------------------------------------------------------

ERASE_KEYS = ["e0", "e1", "e2"]


def erase_worker(ctx, w, run, sync, rng):
    sync.next_round()
    n = 0
    while sync.time_left() and n < (ctx.rounds or 10**9):
        n += 1
        key = rng.choice(ERASE_KEYS)
        x = rng.random()
        if x < 0.4:
            opid = run.next_id()
            val = f"e:{key}:{opid}"
            run.call("set", key, [key, val], arg=val, opid=opid)
        elif x < 0.65:
            run.call("delete", key, [key])
        else:
            run.call("get", key, [key])


def workload_erase(ctx):
    ops = parallel(ctx, "erase", erase_worker)
    return ops + final_reads(ctx, ERASE_KEYS)


WORKLOADS = {
    "add": workload_add,
    "incr": workload_incr,
    "lease": workload_lease,
    "chunked": workload_chunked,
    "gor_set": workload_gor_set,
    "namespace": workload_namespace,
    "erase": workload_erase,
}
