"""Helpers shared by the interoperability tests (run under scripts/with-dynalite or scripts/with-ddblocal)."""
import base64
import os
import shutil
import subprocess
import sys
import time

import boto3

ENDPOINT = os.environ.get("AWS_ENDPOINT_URL_DYNAMODB", "")
if not ENDPOINT.startswith("http://127.0.0.1:"):
    sys.exit("these tests need a loopback local DynamoDB: run them under scripts/with-dynalite or scripts/with-ddblocal")


class Failures:
    """Collects check results; prints 'N passed, N failed' and sets the exit code."""

    def __init__(self):
        self.passed = 0
        self.failed = 0

    def check(self, cond, what):
        if cond:
            self.passed += 1
        else:
            self.failed += 1
            print(f"FAIL: {what}", flush=True)

    def finish(self):
        print(f"{self.passed} passed, {self.failed} failed", flush=True)
        sys.exit(1 if self.failed else 0)


def run(cli, *args, stdin=b"", env=None, timeout=60):
    """Runs the CLI; returns (exit code, stdout bytes, stderr text)."""
    e = dict(os.environ)
    if env:
        for k, v in env.items():
            if v is None:
                e.pop(k, None)
            else:
                e[k] = v
    with subprocess.Popen([cli, *args], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          env=e) as p:
        try:
            out, err = p.communicate(stdin, timeout=timeout)
        except subprocess.TimeoutExpired:
            # A hang is a bug to find, not to retry: print where every thread of the process
            # tree stands before it is killed.
            print(f"HANG: {[cli, *args]} still running after {timeout} s", flush=True)
            for pid in [p.pid, *descendants(p.pid)]:
                print(stacks(pid), flush=True)
            for pid in [*descendants(p.pid), p.pid]:
                try:
                    os.kill(pid, 9)
                except OSError:
                    pass
            p.communicate()
            raise
    return p.returncode, out, err.decode("utf-8", "replace")


def descendants(pid):
    """The processes below pid (from /proc), children before grandchildren."""
    children = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as fh:
                    ppid = int(fh.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(0), []):
            found.append(child)
            todo.append(child)
    return found


def stacks(pid):
    """Each thread of pid: its name, kernel wait channel and, if gdb is installed, its stack."""
    lines = []
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            cmdline = fh.read().replace(b"\0", b" ").decode(errors="replace")
        lines.append(f"process {pid}: {cmdline}")
        for tid in sorted(os.listdir(f"/proc/{pid}/task"), key=int):
            info = []
            for name in ("comm", "wchan"):
                try:
                    with open(f"/proc/{pid}/task/{tid}/{name}") as fh:
                        info.append(fh.read().strip())
                except OSError:
                    info.append("?")
            lines.append(f"  thread {tid} {info[0]} waits in {info[1]}")
    except OSError as e:
        return f"process {pid}: {e}"
    gdb = shutil.which("gdb")
    if gdb:
        try:
            bt = subprocess.run([gdb, "-p", str(pid), "-batch", "-ex", "set print frame-arguments none",
                                 "-ex", "thread apply all bt"],
                                capture_output=True, timeout=60)
            lines.append(bt.stdout.decode(errors="replace"))
        except subprocess.TimeoutExpired:
            lines.append("  (gdb did not answer in 60 s)")
    return "\n".join(lines)


def ddb(endpoint=None):
    return boto3.client("dynamodb", endpoint_url=endpoint or ENDPOINT, region_name="us-east-1")


def wait_active(client, table):
    for _ in range(200):
        if client.describe_table(TableName=table)["Table"]["TableStatus"] == "ACTIVE":
            return
        time.sleep(0.02)
    raise RuntimeError(f"table {table} did not become ACTIVE")


# --- The Python package dynamodb_cache 0.1.1, re-created over boto3 -----------------------
# PynamoDB is not packaged in Debian, so these functions do what the package's
# DynamodbBackend.set/get do through PynamoDB 5: BinaryAttribute base64-encodes the bytes
# before boto sends them (boto base64-encodes again on the wire), so DynamoDB stores the
# base64 *text* of the serialized value; expire in seconds, update_ts in epoch seconds.

def py_set(client, table, key, serialized: bytes, expire=0, update_ts=None):
    client.put_item(TableName=table, Item={
        "key": {"S": key},
        "value": {"B": base64.b64encode(serialized)},
        "expire": {"N": str(int(expire))},
        "update_ts": {"N": str(int(time.time()) if update_ts is None else int(update_ts))},
    })


def py_get(client, table, key):
    """None on a miss or an expired item, else the serialized bytes (the package's rule)."""
    item = client.get_item(TableName=table, Key={"key": {"S": key}}).get("Item")
    if item is None:
        return None
    value = base64.b64decode(item["value"]["B"])  # PynamoDB 5 BinaryAttribute.deserialize
    expire = float(item["expire"]["N"])
    update_ts = float(item["update_ts"]["N"])
    if expire and not (time.time() - update_ts < expire):
        return None
    return value
