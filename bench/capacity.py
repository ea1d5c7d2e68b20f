"""Write units for one 10 KB JSON document: the Python package's layout vs ours.

Run under scripts/with-dynalite with the dynamodb-cache binary as argument. The document is
a realistic JSON payload (records with repeated field names), and, for contrast, the
canned endpoint's random-letter document. Each item is put with ReturnConsumedCapacity=TOTAL:
(a) as dynamodb_cache 0.1.1 stores it (value = base64 text of the JSON bytes),
(b) as `dynamodb-cache set` stored it (read back and re-put unchanged, to be measured).
"""
import base64
import json
import os
import random
import string
import subprocess
import sys
import time

import boto3

cli = sys.argv[1]
ep = os.environ["AWS_ENDPOINT_URL_DYNAMODB"]
c = boto3.client("dynamodb", endpoint_url=ep, region_name="us-east-1")
table = "capacity"
subprocess.run([cli, "--table", table, "create-table"], check=True, capture_output=True)


def realistic(size):
    rnd = random.Random(7)
    rows = []
    while len(json.dumps(rows)) < size - 200:
        rows.append({"id": len(rows), "email": f"user{rnd.randrange(10**6)}@example.com",
                     "name": rnd.choice(["Alice", "Bob", "Carol", "Dave"]) + " " + rnd.choice(["Smith", "Jones", "Lee"]),
                     "active": rnd.random() < 0.5, "score": round(rnd.random() * 100, 2),
                     "tags": rnd.sample(["admin", "dev", "ops", "sales", "beta"], 2)})
    return json.dumps(rows).encode()


def letters(size):
    rnd = random.Random(1)
    return json.dumps({"v": "".join(rnd.choices(string.ascii_letters, k=size - 9))}).encode()


def wcu(item):
    r = c.put_item(TableName=table, Item=item, ReturnConsumedCapacity="TOTAL")
    return r["ConsumedCapacity"]["CapacityUnits"]


results = {}
for name, doc in (("realistic", realistic(10 * 1024)), ("random-letters", letters(10 * 1024))):
    py_item = {"key": {"S": f"py-{name}"}, "value": {"B": base64.b64encode(doc)},
               "expire": {"N": "3600"}, "update_ts": {"N": str(int(time.time()))}}
    py = wcu(py_item)
    subprocess.run([cli, "--table", table, "set", f"cpp-{name}", "--ttl", "3600"], input=doc, check=True)
    ours_item = c.get_item(TableName=table, Key={"key": {"S": f"cpp-{name}"}})["Item"]
    ours = wcu(ours_item)
    out = subprocess.run([cli, "--table", table, "get", f"cpp-{name}"], capture_output=True, check=True).stdout
    assert out == doc, "round trip"
    results[name] = {"doc_bytes": len(doc), "python_wcu": py, "ours_wcu": ours,
                     "ours_stored_value_bytes": len(ours_item["value"]["B"]), "fmt": ours_item["fmt"]["N"],
                     "ratio": round(ours / py, 3)}
print(json.dumps(results))
