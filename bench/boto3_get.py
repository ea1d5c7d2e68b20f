#!/usr/bin/python3
"""boto3 (Debian's python3-boto3) as an SDK peer for bench/run: GetItem through one shared
client from C threads against ENDPOINT (127.0.0.1 only), for SECONDS. Prints one line:
  phase=get ops=N ops_s=R cpu_us_per_op=U      (CPU: this process, user + system)

    boto3_get.py ENDPOINT SECONDS C             (https: AWS_CA_BUNDLE is trusted)
"""
import os
import resource
import sys
import threading
import time

import boto3
import botocore.config

endpoint, seconds, conc = sys.argv[1], float(sys.argv[2]), int(sys.argv[3])
if not endpoint.startswith(("http://127.0.0.1:", "https://127.0.0.1:")):
    sys.exit("boto3_get.py: loopback endpoints only")
client = boto3.client(
    "dynamodb", endpoint_url=endpoint, region_name="us-east-1",
    verify=os.environ.get("AWS_CA_BUNDLE", True),
    config=botocore.config.Config(max_pool_connections=conc, retries={"max_attempts": 1}))
key = {"key": {"S": "bench-00000000"}}
client.get_item(TableName="canned", Key=key)  # warm: connection, endpoint resolution
counts = [0] * conc
stop = time.monotonic() + seconds


def run(i):
    n = 0
    while time.monotonic() < stop:
        client.get_item(TableName="canned", Key=key)
        n += 1
    counts[i] = n


def cpu():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


t0, c0 = time.monotonic(), cpu()
threads = [threading.Thread(target=run, args=(i,)) for i in range(conc)]
for t in threads:
    t.start()
for t in threads:
    t.join()
wall, used, ops = time.monotonic() - t0, cpu() - c0, sum(counts)
print("phase=get ops=%d ops_s=%.1f cpu_us_per_op=%.1f" % (ops, ops / wall, used * 1e6 / max(ops, 1)))
