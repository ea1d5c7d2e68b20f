#!/usr/bin/python3
"""CPU per get and gets per second through the Python package dynamodb_cache (on the C++
engine), through the boto3 re-creation of dynamodb_cache 0.1.1 (tests/interop/common.py
py_get: PynamoDB is not packaged in Debian, so the real 0.1.1 cannot be installed here), and
through raw boto3 get_item; 1 and 16 threads each, back to back, against one endpoint.

    bench/python_bench.py [SECONDS]            the canned endpoint (../shared/bench, nginx)
    bench/python_bench.py SECONDS ENDPOINT     any loopback endpoint (e.g. under with-dynalite)

CPU is the whole process's user + system time over the timed phase (every Python and C++
thread) divided by the gets made. Install the package first (scripts/install-python).
Talks to 127.0.0.1 only.
"""
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SHARED = os.path.join(HERE, "..", "..", "shared", "bench")
TABLE, KEY = "dynamodb-cache", "bench-key"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run(get, threads, seconds):
    """Gets per second and CPU microseconds per get of `threads` threads calling get()."""
    counts = [0] * threads
    stop = time.monotonic() + seconds

    def loop(i):
        n = 0
        while time.monotonic() < stop:
            get()
            n += 1
        counts[i] = n

    get()  # warm: connection, credentials
    ts = [threading.Thread(target=loop, args=(i,)) for i in range(threads)]
    cpu0, wall0 = time.process_time(), time.monotonic()
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    cpu, wall, n = time.process_time() - cpu0, time.monotonic() - wall0, sum(counts)
    return n / wall, cpu * 1e6 / n


def main():
    seconds = float(sys.argv[1]) if len(sys.argv) > 1 else 5
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "AKIDBENCH")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "bench-secret")
    os.environ.setdefault("AWS_REGION", "us-east-1")
    os.environ["AWS_EC2_METADATA_DISABLED"] = "true"
    nginx = None
    if len(sys.argv) > 2:
        endpoint = sys.argv[2]
    else:
        port, rundir = free_port(), tempfile.mkdtemp()
        nginx = subprocess.run([os.path.join(SHARED, "start-canned.sh"), str(port), "1000", rundir],
                               capture_output=True, text=True, check=True).stdout.strip()
        endpoint = f"http://127.0.0.1:{port}"
    if not endpoint.startswith("http://127.0.0.1:"):
        sys.exit("python_bench: loopback endpoints only")
    os.environ["AWS_ENDPOINT_URL_DYNAMODB"] = endpoint
    try:
        import boto3
        from botocore.config import Config

        sys.path.insert(0, os.path.join(HERE, "..", "tests", "interop"))
        import common  # the boto3 re-creation of 0.1.1 (py_get, py_set)
        import dynamodb_cache

        class Table(dynamodb_cache.DynamodbTable):
            class Meta:
                table_name = TABLE
                region = "us-east-1"
                host = endpoint

        class Cache(dynamodb_cache.DynamodbBackend[bytes], dynamodb_cache.AbstractCache[bytes]):
            def _serialize(self, value):
                return value

            def _deserialize(self, value):
                return value

        boto = boto3.client("dynamodb", endpoint_url=endpoint, region_name="us-east-1",
                            config=Config(max_pool_connections=32))
        if nginx is None:  # a real server: make the table and the item
            Table.create_table(wait=True)
            common.py_set(boto, TABLE, KEY, b"x" * 1000)
        ours = Cache(Table)
        assert ours.get(KEY) is not None and common.py_get(boto, TABLE, KEY) is not None
        peers = [
            ("dynamodb_cache (ours)", lambda: ours.get(KEY)),
            ("0.1.1 re-created on boto3", lambda: common.py_get(boto, TABLE, KEY)),
            ("boto3 get_item", lambda: boto.get_item(TableName=TABLE, Key={"key": {"S": KEY}})),
        ]
        print(f"endpoint {'canned (nginx)' if nginx else endpoint}, {seconds:g} s per phase, "
              f"{os.cpu_count()} cores, {time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())}")
        print(f"{'client':28} {'threads':>7} {'gets/s':>10} {'cpu_us/get':>11}")
        for threads in (1, 16):
            for name, get in peers:
                rate, cpu = run(get, threads, seconds)
                print(f"{name:28} {threads:7d} {rate:10.0f} {cpu:11.1f}", flush=True)
    finally:
        if nginx:
            subprocess.run([os.path.join(SHARED, "stop-pid.sh"), nginx], check=False)


if __name__ == "__main__":
    main()
