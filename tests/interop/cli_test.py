"""The dynamodb-cache command-line contract, against a local DynamoDB (and a few hostile endpoints)."""
import os
import socket
import sys
import threading
import time
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

sys.path.insert(0, os.path.dirname(__file__))
from common import Failures, ddb, run  # noqa: E402

cli = sys.argv[1]
f = Failures()
SECRET = "VERY-SECRET-KEY-do-not-print"
TOKEN = "SESSION-TOKEN-do-not-print"
base_env = {"AWS_SECRET_ACCESS_KEY": SECRET, "AWS_SESSION_TOKEN": TOKEN}


def cli_run(*args, **kw):
    env = dict(base_env)
    env.update(kw.pop("env", {}))
    rc, out, err = run(cli, *args, env=env, **kw)
    f.check(SECRET not in err and TOKEN not in err and SECRET.encode() not in out,
            f"no secret in the output of {args}")
    return rc, out, err


def is_error_line(err):
    lines = [l for l in err.splitlines() if l.strip()]
    return len(lines) == 1 and lines[0].startswith("error:")


# --help everywhere, exit 0.
for cmd in ([], ["create-table"], ["delete-table"], ["set"], ["get"], ["delete"], ["clear"], ["bench"]):
    rc, out, _ = cli_run(*cmd, "--help")
    f.check(rc == 0 and b"Usage" in out, f"{cmd} --help")

# Usage errors: one line, exit 2.
for args in (["get"], ["frobnicate"], ["set", "k", "v", "--ttl", "-3"], ["create-table", "--billing-mode", "free"]):
    rc, _, err = cli_run(*args)
    f.check(rc == 2 and is_error_line(err), f"usage error {args}: rc={rc} err={err!r}")

# A missing table: the DynamoDB error name, exit >= 2.
rc, out, err = cli_run("--table", "absent-table", "get", "k")
f.check(rc >= 2 and is_error_line(err) and "ResourceNotFoundException" in err and out == b"",
        f"missing table: rc={rc} err={err!r}")

# Table lifecycle; DYNAMODB_CACHE_TABLE picks the table.
env = {"DYNAMODB_CACHE_TABLE": "cli-table"}
rc, _, err = cli_run("create-table", env=env)
f.check(rc == 0, f"create-table: {err}")
c = ddb()
# Native TTL on expire_at where the server has UpdateTimeToLive (DynamoDB Local, DynamoDB);
# a warning where it has not (dynalite answers DescribeTimeToLive with DISABLED, but has no
# UpdateTimeToLive).
ttl = c.describe_time_to_live(TableName="cli-table")["TimeToLiveDescription"]
if ttl.get("TimeToLiveStatus") in ("ENABLED", "ENABLING"):
    f.check(ttl.get("AttributeName") == "expire_at", f"create-table turns on native TTL on expire_at: {ttl}")
    f.check("warning:" not in err, f"create-table with native TTL warns of nothing: {err!r}")
else:
    f.check("warning:" in err and "TTL" in err, f"a server without native TTL is a warning: {err!r}")
    try:
        c.update_time_to_live(TableName="cli-table",
                              TimeToLiveSpecification={"Enabled": True, "AttributeName": "expire_at"})
        f.check(False, f"the server has UpdateTimeToLive, yet create-table left TTL {ttl}")
    except c.exceptions.ClientError as e:
        f.check(e.response["Error"]["Code"] == "UnknownOperationException", f"UpdateTimeToLive: {e}")
rc, _, err = cli_run("create-table", env=env)
f.check(rc == 0, "create-table twice is fine")
f.check(c.describe_table(TableName="cli-table")["Table"]["KeySchema"][0]["AttributeName"] == "key", "hash key `key`")

# set / get / delete, binary-safe through stdin and stdout.
rc, _, _ = cli_run("set", "greeting", "hello world", env=env)
rc, out, _ = cli_run("get", "greeting", env=env)
f.check(rc == 0 and out == b"hello world", f"get: {out!r}")
blob = os.urandom(70000) + b"\x00\n\r\xff"
rc, _, err = cli_run("set", "blob", stdin=blob, env=env)
f.check(rc == 0, f"set from stdin: {err}")
rc, out, _ = cli_run("get", "blob", env=env)
f.check(rc == 0 and out == blob, "binary value round trip through stdin/stdout")
rc, out, err = cli_run("get", "nope", env=env)
f.check(rc == 1 and out == b"" and err == "", f"miss: rc={rc} out={out!r} err={err!r}")
rc, _, _ = cli_run("delete", "greeting", env=env)
rc2, _, _ = cli_run("get", "greeting", env=env)
f.check(rc == 0 and rc2 == 1, "delete then get is a miss")
rc, _, _ = cli_run("delete", "never-existed", env=env)
f.check(rc == 0, "deleting an absent key is fine")

# TTL.
# update_ts is whole seconds (the Python layout), so a TTL of N s lives between N-1 and N s:
# 3 s leaves room for a slow (sanitized) process start between set and get.
cli_run("set", "short", "v", "--ttl", "3", env=env)
rc, _, _ = cli_run("get", "short", env=env)
f.check(rc == 0, "live before its TTL")
time.sleep(3.1)
rc, _, _ = cli_run("get", "short", env=env)
f.check(rc == 1, "a miss after its TTL")

# Bad input.
for args, what in ((["set", "", "v"], "empty key"), (["set", "k" * 2049, "v"], "2049-byte key"),
                   (["get", "\udcff"], "invalid UTF-8 key")):
    rc, _, err = cli_run(*args, env=env)  # "\udcff" reaches the process as the byte 0xff
    f.check(rc == 2 and is_error_line(err), f"{what}: rc={rc} err={err!r}")
# Past one 400 KB item: stored in chunks (head + 2 chunks; large_values_test.py has more).
big = os.urandom(401 * 1024)
rc, _, err = cli_run("set", "big", stdin=big, env=env)
f.check(rc == 0 and cli_run("get", "big", env=env)[1] == big, f"value past one item: {err!r}")

# clear asks for --yes.
rc, _, err = cli_run("clear", env=env)
f.check(rc == 2 and "--yes" in err, "clear without --yes refuses")
rc, out, _ = cli_run("get", "blob", env=env)
f.check(rc == 0, "nothing deleted without --yes")
for i in range(30):
    cli_run("set", f"k{i}", str(i), env=env)
rc, _, err = cli_run("clear", "--yes", env=env)
# 30 keys + blob + the expired "short", which DynamoDB keeps until its TTL sweep, + "big"'s
# head and 2 chunks.
f.check(rc == 0 and "deleted 35 items" in err, f"clear --yes: {err!r}")
f.check(c.scan(TableName="cli-table")["Count"] == 0, "table empty")

# The load generator: a short run, its JSON contract (not its speed).
import json  # noqa: E402
for op in ("get", "set", "mixed"):
    rc, out, err = cli_run("bench", "--op", op, "--ops", "60", "--concurrency", "3", "--keys", "10", "--prepare",
                           "--warmup", "5", "--json", env=env)
    try:
        d = json.loads(out)
    except ValueError:
        d = {}
    need = ("ops", "ops_per_sec", "p50_us", "p99_us", "errors", "cpu_us_per_op", "peak_rss_mb", "retries")
    f.check(rc == 0 and all(k in d for k in need) and d.get("ops") == 60 and d.get("errors") == 0,
            f"bench --op {op} --json: rc={rc} {out!r} {err!r}")
    f.check(op == "set" or d.get("misses") == 0, f"bench --op {op}: --prepare makes gets hit")
rc, out, _ = cli_run("bench", "--ops", "20", "--keys", "5", "--prepare", env=env)
f.check(rc == 0 and b"throughput" in out and b"p99.9" in out, f"bench report: {out!r}")

# Issue 28 item 5: output that cannot be written is an error (exit 9), as it is for `cat`:
# to a full disk (/dev/full), to a closed descriptor, to a reader gone with SIGPIPE ignored.
# It used to exit 0 with nothing on stderr: a script was told it had the value.
import signal  # noqa: E402
import subprocess  # noqa: E402

cli_run("set", "out-k", stdin=b"x" * 300000, env=env)  # larger than stdio's buffer: written in parts


def run_to(stdout, *args, preexec=None):
    e = dict(os.environ)
    e.update(base_env)
    e.update(env)
    p = subprocess.run([cli, *args], stdout=stdout, stderr=subprocess.PIPE, env=e, timeout=60, preexec_fn=preexec)
    err = p.stderr.decode("utf-8", "replace")
    f.check(SECRET not in err and TOKEN not in err, f"no secret in the output of {args}")
    return p.returncode, err


printing = (["get", "out-k"], ["mget", "out-k", "nope"], ["incr", "out-n"],
            ["get-or-run", "out-run", "--", "echo", "hi"], ["bench", "--ops", "3", "--keys", "2", "--warmup", "0"],
            ["--help"], ["get", "--help"], ["--version"])
with open("/dev/full", "wb") as full:
    for args in printing:
        rc, err = run_to(full, *args)
        f.check(rc == 9 and is_error_line(err) and "No space left on device" in err, f"{args} > /dev/full: rc={rc} {err!r}")
for args in printing:
    rc, err = run_to(None, *args, preexec=lambda: os.close(1))
    f.check(rc == 9 and is_error_line(err) and "standard output" in err, f"{args} >&-: rc={rc} {err!r}")
# A closed standard output is not handed to a connection: set prints nothing and succeeds,
# and get still fails (with stdout closed, the next descriptor opened used to be 1).
rc, err = run_to(None, "set", "out-closed", "v", preexec=lambda: os.close(1))
f.check(rc == 0 and err == "", f"set >&-: rc={rc} {err!r}")
# A reader that went away: with SIGPIPE ignored the write fails with EPIPE, an error; with
# SIGPIPE as usual the process ends by it, as `cat` does.
for ignore in (True, False):
    r, w = os.pipe()
    os.close(r)

    def pre(ignore=ignore):
        signal.signal(signal.SIGPIPE, signal.SIG_IGN if ignore else signal.SIG_DFL)
    rc, err = run_to(w, "get", "out-k", preexec=pre)
    os.close(w)
    if ignore:
        f.check(rc == 9 and is_error_line(err) and "Broken pipe" in err, f"get to a closed pipe: rc={rc} {err!r}")
    else:
        f.check(rc == -signal.SIGPIPE and err == "", f"get to a closed pipe, SIGPIPE: rc={rc} {err!r}")
cli_run("clear", "--yes", env=env)

# A table with another schema is a clear error.
c.create_table(TableName="wrong-schema", AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
               KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}], BillingMode="PAY_PER_REQUEST")
rc, _, err = cli_run("--table", "wrong-schema", "create-table")
f.check(rc >= 2 and is_error_line(err) and "key schema" in err, f"wrong schema: {err!r}")

# Provisioned billing.
rc, _, err = cli_run("--table", "prov", "create-table", "--billing-mode", "provisioned", "--rcu", "7", "--wcu", "3")
pt = c.describe_table(TableName="prov")["Table"]["ProvisionedThroughput"]
f.check(rc == 0 and pt["ReadCapacityUnits"] == 7 and pt["WriteCapacityUnits"] == 3, f"provisioned: {pt}")
rc, _, _ = cli_run("--table", "prov", "delete-table")
f.check(rc == 0 and "prov" not in c.list_tables()["TableNames"], "delete-table")

# An unreachable endpoint: a one-line error, bounded in time.
s = socket.socket()
s.bind(("127.0.0.1", 0))
dead = f"http://127.0.0.1:{s.getsockname()[1]}"
s.close()
t0 = time.time()
rc, _, err = cli_run("--endpoint", dead, "get", "k")
f.check(rc == 5 and is_error_line(err) and time.time() - t0 < 10, f"unreachable: rc={rc} err={err!r}")


# Malformed and corrupted answers from a hostile endpoint.
class Hostile(BaseHTTPRequestHandler):
    mode = "garbage"

    seen = 0  # requests received

    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        Hostile.seen += 1
        if Hostile.mode == "500":
            body = b'{"__type":"com.amazonaws.dynamodb.v20120810#InternalServerError","message":"m"}'
            self.send_response(500)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        if Hostile.mode == "hang":
            time.sleep(4)
            return
        body = {"garbage": b"<html>surprise</html>", "badjson": b'{"Item": {"value": ',
                "crc": b'{"Item":{}}'}[Hostile.mode]
        crc = zlib.crc32(body) ^ (1 if Hostile.mode == "crc" else 0)
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("x-amz-crc32", str(crc))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *a):
        pass


srv = ThreadingHTTPServer(("127.0.0.1", 0), Hostile)
threading.Thread(target=srv.serve_forever, daemon=True).start()
hostile = f"http://127.0.0.1:{srv.server_address[1]}"
for mode in ("garbage", "badjson", "crc"):
    Hostile.mode = mode
    rc, out, err = cli_run("--endpoint", hostile, "get", "k")
    f.check(rc == 6 and is_error_line(err) and out == b"", f"{mode} response: rc={rc} err={err!r}")

# Retry settings as the AWS CLI reads them, counted on the wire against an endpoint that
# always answers 500: AWS_MAX_ATTEMPTS, the profile's max_attempts, an explicit
# --max-attempts over both, and the CLI's own default (5) when nothing is set.
Hostile.mode = "500"
cfg = os.path.join(os.path.dirname(os.path.abspath(cli)), "cli-test-retry-config")
with open(cfg, "w") as fh:
    fh.write("[default]\nmax_attempts = 3\n")
for env, args, want in (({"AWS_MAX_ATTEMPTS": "2"}, (), 2), ({"AWS_CONFIG_FILE": cfg}, (), 3),
                        ({"AWS_MAX_ATTEMPTS": "2", "AWS_CONFIG_FILE": cfg}, ("--max-attempts", "4"), 4),
                        ({"AWS_RETRY_MODE": "standard"}, (), 3), ({}, (), 5)):
    Hostile.seen = 0
    e = {"AWS_CONFIG_FILE": "/nonexistent/config", "AWS_MAX_ATTEMPTS": None, "AWS_RETRY_MODE": None}
    e.update(env)
    rc, _, err = cli_run("--endpoint", hostile, *args, "get", "k", env=e)
    f.check(rc == 4 and is_error_line(err) and Hostile.seen == want,
            f"{env} {args}: {Hostile.seen} attempts on the wire, want {want}: rc={rc} {err!r}")
rc, _, err = cli_run("--endpoint", hostile, "get", "k", env={"AWS_MAX_ATTEMPTS": "many"})
f.check(rc == 3 and is_error_line(err) and "AWS_MAX_ATTEMPTS" in err, f"bad AWS_MAX_ATTEMPTS: rc={rc} {err!r}")
os.remove(cfg)

# --timeout bounds a call, retries included, against an endpoint that never answers; the
# error says it was the operation deadline.
Hostile.mode = "hang"
t0 = time.time()
rc, _, err = cli_run("--endpoint", hostile, "--timeout", "1", "get", "k")
f.check(rc == 5 and is_error_line(err) and "operation deadline of 1 s" in err and time.time() - t0 < 3.5,
        f"--timeout 1: rc={rc} after {time.time() - t0:.1f} s: {err!r}")
srv.shutdown()
f.finish()
