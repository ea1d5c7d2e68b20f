"""A table shared both ways with the Python package's item layout.

Items written the Python package's way by another client (boto3, and the AWS CLI) are read by
`dynamodb-cache get`; items written by `dynamodb-cache set --python-compat` are read back the
Python package's way; expired items are misses on both sides.
"""
import base64
import json
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
from common import ENDPOINT, Failures, ddb, py_get, py_set, run  # noqa: E402

cli = sys.argv[1]
f = Failures()
table = "py-layout"
g = ["--table", table]
rc, _, err = run(cli, *g, "create-table")
f.check(rc == 0, f"create-table: {rc} {err}")
c = ddb()

# 1. Written like the Python package (JsonDict cache: json.dumps(...).encode()), read here.
doc = json.dumps({"host": "www.db.com", "port": 5432}).encode()
py_set(c, table, "my_db_credential", doc, expire=3600)
rc, out, err = run(cli, *g, "get", "my_db_credential")
f.check(rc == 0 and out == doc, f"get of a Python-written item: rc={rc} out={out!r} err={err}")

# Binary values too (a user's _serialize may return any bytes).
blob = bytes(range(256)) * 3
py_set(c, table, "blob", blob, expire=0, update_ts=time.time() - 10**7)  # expire 0: forever
rc, out, _ = run(cli, *g, "get", "blob")
f.check(rc == 0 and out == blob, "binary Python-written item with expire=0 is live forever")

# 2. Expired by the Python rule (now - update_ts >= expire) though DynamoDB still returns it.
py_set(c, table, "old", b'"stale"', expire=10, update_ts=time.time() - 11)
rc, out, err = run(cli, *g, "get", "old")
f.check(rc == 1 and out == b"", f"expired Python item is a miss: rc={rc} out={out!r} err={err}")
f.check("Item" in c.get_item(TableName=table, Key={"key": {"S": "old"}}), "the expired item is still stored")

# 3. Written here with --python-compat, read the Python package's way.
payload = json.dumps({"user": "alice", "roles": ["admin"]}).encode()
rc, _, err = run(cli, *g, "--python-compat", "set", "from-cpp", "--ttl", "3600", stdin=payload)
f.check(rc == 0, f"set --python-compat: {err}")
f.check(py_get(c, table, "from-cpp") == payload, "Python package reads what --python-compat wrote")
rc, _, _ = run(cli, *g, "--python-compat", "set", "short", "x", "--ttl", "1")
time.sleep(2.1)
f.check(py_get(c, table, "short") is None, "Python package sees our 1 s TTL expire")
rc, _, _ = run(cli, *g, "get", "short")
f.check(rc == 1, "and so do we")

# 4. The default format is readable here and self-describing for other clients.
rc, _, _ = run(cli, *g, "set", "native", "raw value", "--ttl", "60")
item = c.get_item(TableName=table, Key={"key": {"S": "native"}})["Item"]
f.check(item["value"]["B"] == b"raw value" and item["fmt"]["N"] == "1", f"native layout: {item}")
f.check(int(item["expire_at"]["N"]) == int(item["update_ts"]["N"]) + 60, "expire_at = update_ts + ttl")
f.check(int(item["expire"]["N"]) == 60, "expire holds the TTL in seconds")

# 5. The AWS CLI, another real DynamoDB client, reads and writes the same table.
env = dict(os.environ)
p = subprocess.run(["/usr/bin/aws", "--endpoint-url", ENDPOINT, "dynamodb", "get-item", "--table-name", table,
                    "--key", '{"key":{"S":"from-cpp"}}', "--output", "json"],
                   capture_output=True, text=True, env=env)
f.check(p.returncode == 0, f"aws get-item: {p.stderr}")
if p.returncode == 0:
    stored = json.loads(p.stdout)["Item"]["value"]["B"]  # the CLI shows B as base64 of the stored bytes
    f.check(base64.b64decode(base64.b64decode(stored)) == payload, "AWS CLI sees the double-encoded layout")
now = int(time.time())
# raw-in: the CLI stores the given text's bytes, i.e. the base64 text, as PynamoDB does.
item = {"key": {"S": "awscli"}, "value": {"B": base64.b64encode(b"written by aws cli").decode()},
        "expire": {"N": "600"}, "update_ts": {"N": str(now)}}
p = subprocess.run(["/usr/bin/aws", "--cli-binary-format", "raw-in-base64-out", "--endpoint-url", ENDPOINT,
                    "dynamodb", "put-item", "--table-name", table,
                    "--item", json.dumps(item)], capture_output=True, text=True, env=env)
f.check(p.returncode == 0, f"aws put-item: {p.stderr}")
rc, out, _ = run(cli, *g, "get", "awscli")
f.check(rc == 0 and out == b"written by aws cli", f"get of an AWS-CLI-written item: {out!r}")

# 6. Clear removes items of both origins.
rc, _, err = run(cli, *g, "clear", "--yes")
f.check(rc == 0, f"clear: {err}")
f.check(c.scan(TableName=table)["Count"] == 0, "table empty after clear")
f.finish()
