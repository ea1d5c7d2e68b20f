"""`dynamodb-cache bench --processes N --check`: several processes set, erase and get keys at
once, and every read is checked against the acknowledged writes (src/cli/bench_check.h).

    bench_check_test.py CLI EXPECT [--pause-one MS] [-- MODE FLAGS...]

EXPECT is `none` (the mode must keep its bound: staleness_violations == 0) or `some` (the
mode is known to be staler than the bound given, e.g. --layered with --max-staleness 0:
the checker must find it). MODE FLAGS go to bench as they are (--consistent-read,
--layered, --max-staleness S, ...), so another mode is one more line in tests/CMakeLists.txt.
Run under scripts/with-dynalite or scripts/with-ddblocal, and scripts/with-faults if wanted
(the proxy is turned off while the table is created and deleted).
"""
import json
import os
import sys
import time
import urllib.request

from common import Failures, run

# Small enough for a CI minute: 3 processes, 200 keys, 3 s.
WORKLOAD = ["bench", "--processes", "3", "--keys", "200", "--zipf", "0.99", "--op", "mixed", "--read-ratio", "0.9",
            "--duration", "3", "--concurrency", "2", "--value-size", "100", "--check", "--json", "--ttl", "600"]


def faults(profile):
    """Sets the fault proxy's profile when there is one (FAULT_PROXY_URL); returns the old config."""
    url = os.environ.get("FAULT_PROXY_URL", "").rstrip("/")
    if not url:
        return None
    if not url.startswith("http://127.0.0.1:"):
        sys.exit(f"FAULT_PROXY_URL must be a loopback address: {url}")
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))

    def req(body=None):
        data = None if body is None else json.dumps(body).encode()
        r = urllib.request.Request(url + "/__faults/config", data=data, method="POST" if data else "GET",
                                   headers={"content-type": "application/json"})
        with opener.open(r, timeout=10) as a:
            return json.loads(a.read() or b"{}")

    old = req()
    req(profile if isinstance(profile, dict) else {"profile": profile})
    return old


def main():
    if len(sys.argv) < 3 or sys.argv[2] not in ("none", "some"):
        sys.exit(__doc__)
    cli, expect, rest = sys.argv[1], sys.argv[2], sys.argv[3:]
    extra = []
    if rest[:1] == ["--pause-one"]:
        extra, rest = rest[:2], rest[2:]
    if rest[:1] == ["--"]:
        rest = rest[1:]
    f = Failures()
    table = f"bench-check-{os.getpid()}-{int(time.time() * 1000) % 10**8}"
    old = faults("none")
    rc, _, err = run(cli, "--table", table, "create-table", timeout=120)
    if rc != 0:
        sys.exit(f"create-table failed: {err}")
    if old is not None:
        faults(old)
    try:
        rc, out, err = run(cli, "--table", table, *WORKLOAD, *extra, *rest, timeout=120)
        sys.stderr.write(err)
        print(out.decode(), end="", flush=True)
        # 0, or 4 (service) when some operations failed or reads broke the bound.
        f.check(rc in (0, 4) and out.strip(), f"bench ran (exit {rc})")
        r = json.loads(out) if out.strip() else {}
        f.check(r.get("processes") == 3, "processes is 3")
        f.check(r.get("checked_reads", 0) > 300, f"reads were checked: {r.get('checked_reads')}")
        f.check(r.get("unwritten_reads") == 0, f"every read answered a value some write wrote: {r.get('unwritten_reads')}")
        if expect == "none":
            f.check(r.get("staleness_violations") == 0, f"no read staler than the bound: {r.get('staleness_violations')}")
        else:
            f.check(r.get("staleness_violations", 0) > 0,
                    f"the checker finds the stale reads: {r.get('staleness_violations')}")
            f.check("stale read of bench-" in err, "the first violations are printed")
        # Read units are counted where the server reports them: gets that went to DynamoDB
        # cost 0.5 (eventually consistent) or 1 (consistent) units each for 100-byte values.
        rcu = r.get("rcu_per_1000_gets", -1)
        hit = r.get("near_hit_ratio", 0)
        if "--near-cache" in rest:
            # The near cache: most gets from memory, misses read consistently (1 unit), and the
            # feed's polls on top: below what eventually consistent DynamoDB alone costs. The
            # feed costs the same units a second whatever the rate of gets, so through the fault
            # proxy (throttled: a few hundred gets a second) it is no bound per get.
            f.check(hit >= 0.5, f"the near cache answers most gets from memory: near_hit_ratio {hit}")
            if os.environ.get("FAULT_PROXY_URL"):
                f.check(rcu > 0, f"rcu_per_1000_gets {rcu} counted")
            else:
                f.check(0 < rcu < 500, f"rcu_per_1000_gets {rcu} in (0, 500), feed included (memory hit ratio {hit})")
        else:
            top = 1000 * (1 if "--consistent-read" in rest else 0.5) * (1 - hit)
            f.check(0 < rcu <= top * 1.05 + 1, f"rcu_per_1000_gets {rcu} in (0, {top:.0f}] (memory hit ratio {hit})")
        if extra:
            # The operations in flight when the process was stopped took the pause.
            pause_us = int(extra[1]) * 1000
            f.check(r.get("max_us", 0) >= 0.9 * pause_us, f"a process was paused: max_us {r.get('max_us')}")
    finally:
        faults("none")
        run(cli, "--table", table, "delete-table", "--no-wait", timeout=120)
    f.finish()


if __name__ == "__main__":
    main()
