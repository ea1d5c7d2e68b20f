"""The dynamodb-cache commands add, incr, decr, touch, mget, mset and the --ttl checks, against
dynalite; includes the many-process counter test (8 processes x 100 incr = 800)."""
import base64
import os
import re
import sys
import threading

sys.path.insert(0, os.path.dirname(__file__))
from common import Failures, ddb, run  # noqa: E402

cli = sys.argv[1]
f = Failures()
env = {"DYNAMODB_CACHE_TABLE": "cli-ops"}


def cli_run(*args, **kw):
    e = dict(env)
    e.update(kw.pop("env", {}))
    return run(cli, *args, env=e, **kw)


def is_error_line(err):
    lines = [l for l in err.splitlines() if l.strip()]
    return len(lines) == 1 and lines[0].startswith("error:")


for cmd in ("add", "incr", "decr", "touch", "mget", "mset"):
    rc, out, _ = cli_run(cmd, "--help")
    f.check(rc == 0 and b"Usage" in out, f"{cmd} --help")

rc, _, err = cli_run("create-table")
f.check(rc == 0, f"create-table: {err}")

# add: exit 0 when written, 1 when the key was live.
rc, _, err = cli_run("add", "a", "first", "--ttl", "60")
f.check(rc == 0, f"add absent: rc={rc} {err!r}")
rc, out, err = cli_run("add", "a", "second")
f.check(rc == 1 and out == b"" and err == "", f"add live: rc={rc} {err!r}")
rc, out, _ = cli_run("get", "a")
f.check(out == b"first", f"add kept the first value: {out!r}")
blob = os.urandom(5000)
rc, _, _ = cli_run("add", "blob", stdin=blob)
rc2, out, _ = cli_run("get", "blob")
f.check(rc == 0 and out == blob, "add reads standard input")

# incr / decr print the new value.
rc, out, _ = cli_run("incr", "n")
f.check(rc == 0 and out == b"1\n", f"incr creates at 0: {out!r}")
rc, out, _ = cli_run("incr", "n", "41", "--ttl", "600")
f.check(rc == 0 and out == b"42\n", f"incr DELTA: {out!r}")
rc, out, _ = cli_run("decr", "n", "50")
f.check(rc == 0 and out == b"-8\n", f"decr: {out!r}")
rc, out, _ = cli_run("get", "n")
f.check(rc == 0 and out == b"-8", f"get of a counter prints its decimal: {out!r}")
rc, out, err = cli_run("incr", "a")
f.check(rc == 6 and is_error_line(err) and "counter" in err and out == b"", f"incr of a value: rc={rc} {err!r}")
rc, out, _ = cli_run("get", "a")
f.check(out == b"first", "the value survives a refused incr")
rc, _, err = cli_run("incr", "n", "x")
f.check(rc == 2 and is_error_line(err), f"incr with a bad DELTA: {err!r}")
rc, _, err = cli_run("incr", "max", "9223372036854775807")
rc, _, err = cli_run("incr", "max")
f.check(rc == 2 and is_error_line(err) and "overflow" in err, f"counter overflow: rc={rc} {err!r}")

# Issue 28 item 4: numbers are decimal and exact. CLI11 alone read 010 as octal (8), took hex,
# and clamped 9223372036854775808 to INT64_MAX (a counter at -1 then stored ...806, exit 0).
rc, out, err = cli_run("incr", "octal", "010")
f.check(rc == 0 and out == b"10\n", f"incr 010 adds ten: rc={rc} {out!r} {err!r}")
rc, out, err = cli_run("decr", "octal", "+07")
f.check(rc == 0 and out == b"3\n", f"decr +07 subtracts seven: rc={rc} {out!r} {err!r}")
rc, out, err = cli_run("incr", "octal", "-3")
f.check(rc == 0 and out == b"0\n", f"a negative DELTA: rc={rc} {out!r} {err!r}")
cli_run("decr", "at-minus-one")
for delta in ("9223372036854775808", "99999999999999999999", "-9223372036854775809", "0x10", "0o7", "0b1",
              "1e3", "1.5", " 5", "5 ", "", "+", "--5", "1_000", "\u0661"):
    rc, out, err = cli_run("incr", "at-minus-one", delta)
    f.check(rc == 2 and is_error_line(err) and len(err) < 160 and out == b"",
            f"incr DELTA {delta!r} is a usage error: rc={rc} {out!r} {err!r}")
rc, out, _ = cli_run("get", "at-minus-one")
f.check(out == b"-1", f"no refused DELTA changed the counter: {out!r}")
rc, _, err = cli_run("incr", "at-minus-one", "9223372036854775808")
f.check("maximum, 9223372036854775807" in err, f"the range is said: {err!r}")
# Every integer argument has the same parser; numbers with a fraction refuse hex, exponents,
# inf and nan (nan passed CLI11's range check).
for args in (["--max-attempts", "0x3", "get", "k"], ["--max-attempts", "101", "get", "k"], ["--timeout", "nan", "get", "k"], ["--timeout", "inf", "get", "k"],
             ["--timeout", "0x10", "get", "k"], ["--timeout", "1e3", "get", "k"],
             ["create-table", "--billing-mode", "provisioned", "--rcu", "0x10"],
             ["create-table", "--billing-mode", "provisioned", "--wcu", "99999999999999999999"],
             ["bench", "--ops", "-1"], ["bench", "--keys", "0x10"], ["bench", "--warmup", "-1"],
             ["bench", "--concurrency", "010x"], ["bench", "--duration", "nan"], ["bench", "--read-ratio", "0x1"],
             ["get-or-run", "--ttl", "0x10", "k", "--", "true"], ["get-or-run", "--lease", "inf", "k", "--", "true"]):
    rc, out, err = cli_run(*args)
    f.check(rc == 2 and is_error_line(err) and len(err) < 200 and out == b"", f"{args}: rc={rc} {err!r}")
# create-table --rcu 0 said "not in range 0.000000 to <309 digits>".
for opt in ("--rcu", "--wcu"):
    rc, _, err = cli_run("create-table", "--billing-mode", "provisioned", opt, "0")
    f.check(rc == 2 and is_error_line(err) and "minimum, 1" in err and len(err) < 120, f"{opt} 0: rc={rc} {err!r}")
# A leading zero is decimal everywhere: --ttl 010 is ten seconds, not eight.
rc, _, err = cli_run("set", "ten", "v", "--ttl", "010")
item = ddb().get_item(TableName="cli-ops", Key={"key": {"S": "ten"}})["Item"]
f.check(rc == 0 and item["expire"]["N"] == "10", f"--ttl 010: rc={rc} {err!r} {item.get('expire')}")

# touch: exit 1 on a miss; --ttl is required.
rc, _, _ = cli_run("touch", "a", "--ttl", "1000")
f.check(rc == 0, "touch of a live key")
item = ddb().get_item(TableName="cli-ops", Key={"key": {"S": "a"}})["Item"]
f.check(item["expire"]["N"] == "1000", f"touch set expire: {item}")
rc, out, err = cli_run("touch", "absent", "--ttl", "10")
f.check(rc == 1 and out == b"" and err == "", f"touch of a miss: rc={rc} {err!r}")
rc, _, err = cli_run("touch", "a")
f.check(rc == 2 and is_error_line(err) and "--ttl" in err, f"touch without --ttl: {err!r}")

# mset / mget: KEY<TAB>BASE64VALUE lines, binary-safe; a miss has an empty value.
values = {"m1": b"hello", "m2": os.urandom(3000) + b"\n\t\x00", "m3": b""}
lines = "".join(f"{k}\t{base64.b64encode(v).decode()}\n" for k, v in values.items())
rc, out, err = cli_run("mset", "--ttl", "600", stdin=lines.encode())
f.check(rc == 0 and out == b"", f"mset: rc={rc} {err!r}")
rc, out, err = cli_run("mget", "m1", "missing", "m2", "m3", "m1")
want = [("m1", values["m1"]), ("missing", None), ("m2", values["m2"]), ("m3", b""), ("m1", values["m1"])]
got = out.decode().split("\n")
f.check(rc == 0 and got[-1] == "" and len(got) == len(want) + 1, f"mget lines: {out!r}")
for (k, v), line in zip(want, got):
    key, _, b64 = line.partition("\t")
    f.check(key == k and (b64 == "" if v is None else base64.b64decode(b64) == v), f"mget {k}: {line!r}")
rc, _, err = cli_run("mset", stdin=b"ok\taGk=\nbroken line\n")
f.check(rc == 2 and is_error_line(err) and "line 2" in err, f"mset bad line: {err!r}")
rc, out, _ = cli_run("mget", "ok")
f.check(out == b"ok\t\n", "a bad mset line writes nothing")
rc, _, err = cli_run("mget", "tab\tkey")
f.check(rc == 2 and is_error_line(err), f"mget of a key holding a tab: {err!r}")

# --ttl: whole seconds from 0 to 10,000 years; anything else is one short line, exit 2
# (issue 8 items 6 and 12: 18446744073709552 used to be stored as 1 s, INT64_MAX said
# "must not be negative", abc printed a 300-digit range).
for ttl in ("abc", "1.5", "-3", "", "18446744073709552", "9223372036854775807", "1" * 400):
    for cmd in (["set", "t", "v"], ["add", "t", "v"], ["incr", "t"], ["touch", "t"], ["mset"]):
        rc, _, err = cli_run(*cmd, "--ttl", ttl, stdin=b"")
        f.check(rc == 2 and is_error_line(err) and len(err) < 160 and "negative" not in err,
                f"{cmd} --ttl {ttl[:30]}: rc={rc} {err!r}")
rc, _, err = cli_run("set", "t", "v", "--ttl", "18446744073709552")
f.check("maximum" in err, f"the maximum is named: {err!r}")
rc, _, err = cli_run("set", "t", "v", "--ttl", "315569520000")
f.check(rc == 0, f"the maximum itself is fine: {err!r}")
rc, out, _ = cli_run("get", "t")
f.check(rc == 0 and out == b"v", "a 10,000-year TTL is live")

# 8 processes x 100 incr give exactly 800.
errors = []


def worker():
    for _ in range(100):
        rc, out, err = cli_run("incr", "many")
        if rc != 0:
            errors.append(err)


threads = [threading.Thread(target=worker) for _ in range(8)]
for t in threads:
    t.start()
for t in threads:
    t.join()
rc, out, _ = cli_run("get", "many")
f.check(not errors and out == b"800", f"8 x 100 incr: {out!r}, errors {errors[:3]}")

# 12 processes add the same key at once: exactly one writes.
results = []


def adder(i):
    rc, _, _ = cli_run("add", "once", str(i))
    results.append(rc)


threads = [threading.Thread(target=adder, args=(i,)) for i in range(12)]
for t in threads:
    t.start()
for t in threads:
    t.join()
f.check(sorted(results) == [0] + [1] * 11, f"concurrent add: {sorted(results)}")

# --namespace: keys stored as NS:GEN:KEY; `clear --yes` clears only the namespace, no Scan.
cli_run("--namespace", "team-a", "set", "k", "in a")
cli_run("--namespace", "team-b", "set", "k", "in b")
cli_run("set", "k", "plain")
rc, out, _ = cli_run("--namespace", "team-a", "get", "k")
f.check(out == b"in a", f"namespaced get: {out!r}")
rc, out, _ = cli_run("--namespace", "team-a", "incr", "n", "3")
f.check(out == b"3\n", f"namespaced incr: {out!r}")
keys = {i["key"]["S"] for i in ddb().scan(TableName="cli-ops")["Items"]}
shapes = {re.sub(r"^(team-[ab]):[0-9]+:", r"\1:GEN:", k) for k in keys}  # GEN: microseconds when started
f.check({"team-a:GEN:k", "team-b:GEN:k", "team-a:GEN:n", "k"} <= shapes, f"readable prefixed keys: {sorted(keys)[:10]}")
rc, _, err = cli_run("--namespace", "team-a", "clear")
f.check(rc == 2 and is_error_line(err) and "namespace 'team-a'" in err and "--yes" in err, f"namespace clear without --yes: {err!r}")
rc, out, _ = cli_run("--namespace", "team-a", "get", "k")
f.check(out == b"in a", "nothing cleared without --yes")
rc, _, err = cli_run("--namespace", "team-a", "clear", "--yes")
f.check(rc == 0 and "cleared namespace 'team-a'" in err, f"namespace clear: {err!r}")
rc, out, _ = cli_run("--namespace", "team-a", "get", "k")
f.check(rc == 1, "the namespace is empty after its clear")
rc, out, _ = cli_run("--namespace", "team-a", "incr", "n")
f.check(out == b"1\n", f"a cleared counter starts again: {out!r}")
rc, out, _ = cli_run("--namespace", "team-b", "get", "k")
f.check(out == b"in b", "other namespaces are untouched")
rc, out, _ = cli_run("get", "k")
f.check(out == b"plain", "keys outside namespaces are untouched")
# --stats: the command's statistics as one JSON line on stderr.
import json  # noqa: E402
cli_run("set", "s", "x" * 100)
rc, out, err = cli_run("--stats", "get", "s")
try:
    st = json.loads(err.strip().splitlines()[-1])
except (ValueError, IndexError):
    st = {}
f.check(rc == 0 and out == b"x" * 100 and st.get("hits") == 1 and st.get("misses") == 0
        and st.get("bytes_read") == 100 and st.get("read_capacity_units", 0) > 0
        and st.get("latency_us", {}).get("get", {}).get("count") == 1 and "retries" in st,
        f"--stats get: {err!r}")
rc, _, err = cli_run("--stats", "mget", "s", "nope", "s")
st = json.loads(err.strip().splitlines()[-1])
f.check(st["hits"] == 2 and st["misses"] == 1 and st["latency_us"]["get_many"]["count"] == 1, f"--stats mget: {st}")
rc, _, err = cli_run("--stats", "incr", "s")
lines = err.strip().splitlines()
f.check(rc == 6 and lines[0].startswith("error:") and json.loads(lines[-1])["errors"] == {"wrong_type": 1},
        f"--stats after an error: {err!r}")
rc, _, err = cli_run("--stats", "--namespace", "team-b", "clear", "--yes")
st = json.loads(err.strip().splitlines()[-1])
f.check(rc == 0 and st["latency_us"]["clear"]["count"] == 1, f"--stats clear: {st}")

rc, _, err = cli_run("--namespace", "bad:name", "get", "k")
f.check(rc == 2 and is_error_line(err), f"bad namespace name: {err!r}")
f.finish()
