#!/usr/bin/python3
"""History checks of dynamodb_cache's cross-process promises (README: add, incr, get-or-run
--lease, values past 400 KB, get_or_set's conditional store, namespace clear, erase).

  tests/history/run.py --cli PATH [--workers 6] [--seconds N | --rounds N]
                       [--workload all|add,incr,...] [--seed S]
                       [--consistent|--eventual|--both] [--stale-ms N] [--self-test]

Several worker processes run the CLI (one subprocess per operation) against whatever
endpoint AWS_ENDPOINT_URL_DYNAMODB names, in a table of their own (created, then deleted);
every operation's invoke and completion times (time.monotonic_ns) and outcome are recorded
and each workload's history is checked (checkers.py has every rule). A violation prints the
operations that show it and the command to replay; the exit status is 1 if any was found.
With FAULT_PROXY_URL set (scripts/with-faults), faults are turned off for the final reads
and the proxy's fault counts are printed at the end.

Modes: --consistent (default) passes --consistent-read to every get and get-or-run; the
read-after-write rules are then strict. --eventual reads without it and excuses a read that
misses a write only when the read started within --stale-ms (default 1000) of that write's
acknowledgement. --both runs the workloads in each mode.
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import checkers  # noqa: E402
import workloads  # noqa: E402

MS = 1_000_000
PRINT_AT_MOST = 5  # violations printed per workload (all are counted)


class Faults:
    """The fault proxy's control endpoint (tests/faults/proxy.js), if FAULT_PROXY_URL is set."""

    def __init__(self, profile):
        self.url = os.environ.get("FAULT_PROXY_URL", "").rstrip("/")
        if self.url and not self.url.startswith(("http://127.0.0.1:", "http://localhost:")):
            sys.exit(f"FAULT_PROXY_URL must be a loopback address: {self.url}")
        # Never through an http_proxy: the proxy is on this machine.
        self.opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        # The settings in force when we start are the ones restored after each final read.
        self.config = self._req("/__faults/config") if self.url else {}
        if profile:
            self.config = {"profile": profile}
            self.set_profile(profile)
        self.profile = self.config.get("profile", "")

    def _req(self, path, body=None):
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.url + path, data=data, method="POST" if data else "GET",
                                     headers={"content-type": "application/json"})
        with self.opener.open(req, timeout=10) as r:
            return json.loads(r.read() or b"{}")

    def set_profile(self, profile):
        if self.url:
            self._req("/__faults/config", {"profile": profile})

    def off(self):
        self.set_profile("none")

    def on(self):
        if self.url:
            self._req("/__faults/config", self.config)

    def stale_ms(self):
        """The proxy's staleness of eventually consistent reads, in ms (0: none)."""
        if not self.url or not float(self.config.get("stale_rate", 0) or 0):
            return 0
        return int(float(self.config.get("stale_ms", 0)))

    def stats(self):
        if not self.url:
            return None
        try:
            return self._req("/__faults/stats").get("faults", {})
        except OSError as e:
            return {"error": str(e)}


class Ctx:
    pass


def cli_call(cli, table, *args, timeout=120):
    p = subprocess.run([cli, "--table", table, *args], capture_output=True, timeout=timeout)
    return p.returncode, p.stderr.decode("utf-8", "replace").strip()


def ctx_with(ctx, **kw):
    c = Ctx()
    c.__dict__.update(ctx.__dict__)
    c.__dict__.update(kw)
    return c


def check(name, ops, ctx):
    if name == "add":
        return checkers.check_add(ops, ctx.stale_ns)
    if name == "incr":
        return checkers.check_incr(ops, ctx.stale_ns)
    if name == "lease":
        return checkers.check_lease(ops, workloads.LEASE_S * 1000 * MS, ctx.stale_ns)
    if name == "gor_set":
        return checkers.check_register(ops, ctx.stale_ns)
    return checkers.check_register(ops, ctx.stale_ns)


def outcome_counts(ops):
    counts = {}
    for o in ops:
        if o["op"] == "run":
            continue
        c = counts.setdefault(o["op"], {"ok": 0, "fail": 0, "info": 0})
        c[o["type"]] += 1
    return counts


def error_name(err):
    """The error's name from the CLI's `error: Name: message` line."""
    e = err[len("error:"):].strip() if err.startswith("error:") else err
    return e.split(":")[0][:60]


def replay_command(a, name, mode):
    parts = [sys.argv[0], "--cli", a.cli, "--workload", name, "--seed", str(a.seed), "--workers", str(a.workers),
             f"--{mode}", "--stale-ms", str(a.stale_ms)]
    parts += ["--rounds", str(a.rounds)] if a.rounds else ["--seconds", str(a.seconds)]
    return " ".join(parts)


def run_workload(a, name, mode, faults, totals):
    ctx = Ctx()
    ctx.cli, ctx.workers, ctx.seed, ctx.rounds = a.cli, a.workers, a.seed, a.rounds
    ctx.seconds = a.seconds
    ctx.consistent = mode == "consistent"
    ctx.stale_ns = 0 if ctx.consistent else a.stale_ms * MS
    ctx.cli_timeout = a.cli_timeout
    ctx.faults = faults
    ctx.tmp = tempfile.mkdtemp(prefix=f"history-{name}-")
    ctx.table = f"history-{name.replace('_', '-')}-{a.seed}-{os.getpid()}-{int(time.time() * 1000) % 10**8}"
    started = time.monotonic()
    rc, err = cli_call(a.cli, ctx.table, "create-table")
    if rc != 0:
        # Under faults create-table may need another try; without a table nothing can run.
        faults.off()
        rc, err = cli_call(a.cli, ctx.table, "create-table")
        faults.on()
        if rc != 0:
            print(f"[{mode}] {name}: create-table failed: rc={rc} {err}", flush=True)
            totals["errors"] += 1
            return
    try:
        ops = workloads.WORKLOADS[name](ctx)
    finally:
        faults.off()
        cli_call(a.cli, ctx.table, "delete-table", "--no-wait")
        faults.on()
        shutil.rmtree(ctx.tmp, ignore_errors=True)
    violations = check(name, ops, ctx)
    stale_note = ""
    if ctx.stale_ns:
        # The same history judged as if the reads had been consistent: what the window excused.
        strict = check(name, ops, ctx_with(ctx, stale_ns=0))
        excused = len(strict) - len(violations)
        stale_note = f"; {max(0, excused)} stale answers within the {a.stale_ms} ms window (a violation with consistent reads)"
        totals["stale_excused"] = totals.get("stale_excused", 0) + max(0, excused)
    counts = outcome_counts(ops)
    n = sum(sum(c.values()) for c in counts.values())
    by = ", ".join(f"{op} {c['ok']}/{c['fail']}/{c['info']}" for op, c in sorted(counts.items()))
    print(f"[{mode}] {name}: {n} operations in {time.monotonic() - started:.1f} s (ok/fail/info: {by}); "
          f"{len(violations)} violations" + stale_note,
          flush=True)
    replay = replay_command(a, name, mode)
    for v in violations[:PRINT_AT_MOST]:
        print(v.render(name, a.seed, replay), flush=True)
    if len(violations) > PRINT_AT_MOST:
        print(f"  ... {len(violations) - PRINT_AT_MOST} more violations in {name}", flush=True)
    reasons = {}
    for o in ops:
        if o["type"] in ("fail", "info") and o["op"] != "run":
            what = f"{o['op']} {o['type']} rc={o['rc']} {error_name(o['err'])}"
            reasons[what] = reasons.get(what, 0) + 1
    if reasons:
        print("  not ok: " + "; ".join(f"{k} x{n}" for k, n in sorted(reasons.items(), key=lambda x: -x[1])[:6]),
              flush=True)
    if a.keep:
        os.makedirs(a.keep, exist_ok=True)
        with open(os.path.join(a.keep, f"{mode}-{name}.json"), "w") as fh:
            json.dump(ops, fh)
    totals["ops"] += n
    totals["violations"] += len(violations)
    for o in ops:
        if o["op"] != "run":
            totals[o["type"]] += 1
    totals.setdefault("by_workload", {})[f"{mode}/{name}"] = len(violations)


def check_file(a):
    mode, _, name = os.path.basename(a.check_file)[: -len(".json")].partition("-")
    with open(a.check_file) as fh:
        ops = json.load(fh)
    ctx = Ctx()
    ctx.stale_ns = 0 if mode == "consistent" else (a.stale_ms if a.stale_ms is not None else 1000) * MS
    violations = check(name, ops, ctx)
    for v in violations:
        print(v.render(name, a.seed, ""))
    print(f"{a.check_file}: {len(ops)} operations, {len(violations)} violations")
    return 1 if violations else 0


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cli", help="the dynamodb-cache binary")
    ap.add_argument("--workers", type=int, default=6)
    g = ap.add_mutually_exclusive_group()
    g.add_argument("--seconds", type=float, default=8.0, help="time per workload (default 8)")
    g.add_argument("--rounds", type=int, default=0,
                   help="rounds (add, lease, gor_set) or operations per worker (the others) instead of a time")
    ap.add_argument("--workload", default="all", help="all, or a comma list of " + ",".join(workloads.WORKLOADS))
    ap.add_argument("--seed", type=int, default=None)
    m = ap.add_mutually_exclusive_group()
    m.add_argument("--consistent", dest="mode", action="store_const", const="consistent")
    m.add_argument("--eventual", dest="mode", action="store_const", const="eventual")
    m.add_argument("--both", dest="mode", action="store_const", const="both")
    ap.add_argument("--stale-ms", type=int, default=None,
                    help="staleness allowed in --eventual (default 1000, or the fault proxy's stale_ms if larger)")
    ap.add_argument("--cli-timeout", type=float, default=10.0, help="the CLI's --timeout per operation")
    ap.add_argument("--fault-profile", default=os.environ.get("FAULT_PROFILE"),
                    help="set the fault proxy to this profile first (default: keep its settings, restored "
                         "after each final read)")
    ap.add_argument("--keep", metavar="DIR", help="save each workload's history as DIR/MODE-WORKLOAD.json")
    ap.add_argument("--check-file", metavar="FILE",
                    help="judge a history saved by --keep (MODE-WORKLOAD.json) again, with this run's --stale-ms")
    ap.add_argument("--self-test", action="store_true", help="feed hand-made bad histories to every checker")
    a = ap.parse_args(argv)
    if a.self_test:
        import selftest
        return selftest.main()
    if a.check_file:
        return check_file(a)
    if not a.cli:
        ap.error("--cli is required")
    a.cli = os.path.abspath(a.cli)
    if a.rounds:
        a.seconds = 600.0  # rounds bound the run; a generous time cap remains
    if a.seed is None:
        a.seed = int.from_bytes(os.urandom(3), "big")
    endpoint = os.environ.get("AWS_ENDPOINT_URL_DYNAMODB", "")
    if not endpoint.startswith(("http://127.0.0.1:", "http://localhost:")):
        sys.exit("run.py talks only to a local endpoint: run it under scripts/with-dynalite, "
                 "scripts/with-ddblocal or scripts/with-faults")
    names = list(workloads.WORKLOADS) if a.workload == "all" else a.workload.split(",")
    for n in names:
        if n not in workloads.WORKLOADS:
            ap.error(f"unknown workload {n!r}")
    if a.workers < 2:
        ap.error("--workers must be at least 2")
    modes = {"consistent": ["consistent"], "eventual": ["eventual"], "both": ["consistent", "eventual"],
             None: ["consistent"]}[a.mode]
    faults = Faults(a.fault_profile)
    if a.stale_ms is None:
        a.stale_ms = max(1000, faults.stale_ms())
    elif a.stale_ms < faults.stale_ms():
        print(f"warning: --stale-ms {a.stale_ms} is below the fault proxy's stale_ms {faults.stale_ms()}: "
              "eventual-mode violations may be the proxy's staleness", flush=True)
    print(f"history: seed {a.seed}, {a.workers} workers, modes {','.join(modes)}, endpoint {endpoint}"
          + (f", faults {faults.url} profile {faults.profile}" if faults.url else ""), flush=True)
    totals = {"ops": 0, "violations": 0, "errors": 0, "ok": 0, "fail": 0, "info": 0,
              "stale_excused": 0}
    start = time.monotonic()
    for mode in modes:
        for n in names:
            run_workload(a, n, mode, faults, totals)
    print(f"history: {totals['ops']} operations (ok {totals['ok']}, fail {totals['fail']}, info {totals['info']}), "
          f"{totals['violations']} violations, seed {a.seed}, {time.monotonic() - start:.0f} s", flush=True)
    stats = faults.stats()
    if stats is not None:
        print("faults injected: " + json.dumps(stats, sort_keys=True), flush=True)
    print("RESULT " + json.dumps({k: totals[k] for k in ("ops", "ok", "fail", "info", "violations",
                                                           "errors", "stale_excused")} | {"faults": stats}), flush=True)
    return 1 if totals["violations"] or totals["errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
