"""Helpers shared by the interoperability tests (run under scripts/with-dynalite or scripts/with-ddblocal)."""
import base64
import os
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
    p = subprocess.run([cli, *args], input=stdin, capture_output=True, env=e, timeout=timeout)
    return p.returncode, p.stdout, p.stderr.decode("utf-8", "replace")


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
