"""get-or-run's COMMAND in the history workloads: records its run, sleeps, prints a value.

  recorder.py RUNS_FILE KEY CALLER_ID SLEEP_MS VALUE

Appends one JSON line when it starts and one when it ends (O_APPEND: whole lines from any
number of processes) with time.monotonic_ns(), the clock the harness uses; prints VALUE.
"""
import json
import os
import sys
import time

runs, key, caller, sleep_ms, value = sys.argv[1:6]


def note(ev):
    line = json.dumps({"ev": ev, "key": key, "caller": caller, "value": value, "t": time.monotonic_ns()}) + "\n"
    fd = os.open(runs, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line.encode())
    finally:
        os.close(fd)


note("start")
time.sleep(int(sleep_ms) / 1000)
note("end")
sys.stdout.write(value)
