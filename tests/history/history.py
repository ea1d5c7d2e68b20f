"""Operation histories: running one CLI operation, recording it, and printing a violation.

Every operation is one `dynamodb-cache` subprocess. Its record is a dict:

  id        "W.N": worker W's N-th operation (unique in a run)
  worker    the worker process's number
  op        "add", "incr", "get", "set", "delete", "clear", "get-or-run"
  key       the key (for clear: the namespace)
  arg       the value written (add, set), the delta (incr), the command's value (get-or-run)
  invoke    time.monotonic_ns() just before the subprocess started
  complete  time.monotonic_ns() just after it ended
  type      "ok" (a definite answer), "fail" (a definite error: nothing was written),
            "info" (outcome unknown: the write may or may not have happened)
  value     for ok: what it answered (get: the bytes' text or None on a miss; add: True
            written / False live; incr: the new value as int; get-or-run: the printed text)
  rc, err   the exit code and the stderr's first line, for the report

CLOCK_MONOTONIC is one clock for every process on the machine, so times from different
workers compare.
"""
import json
import os
import subprocess
import time

# Exit codes (README, "The command line"): 0 done, 1 miss / not written, 2 usage or invalid
# input, 3 configuration or credentials, 4 a DynamoDB error, 5 network (unreachable,
# timeout), 6 an answer or value that cannot be decoded, 7 get-or-run's command failed.
# A DynamoDB error whose name says the request was refused before it was applied is a
# definite failure; any other DynamoDB error (500 InternalServerError, 503, ...) and every
# network error may hide a write that was applied: outcome unknown.
DEFINITE_SERVICE_ERRORS = (
    "ConditionalCheckFailed", "ProvisionedThroughputExceeded", "ThrottlingException",
    "RequestLimitExceeded", "ValidationException", "ResourceNotFoundException",
    "AccessDenied", "UnrecognizedClient", "MissingAuthenticationToken", "SerializationException",
    "ItemCollectionSizeLimitExceeded", "LimitExceededException", "TransactionConflict",
)
WRITES = ("add", "incr", "set", "delete", "clear", "get-or-run")


def classify(op, rc, err):
    """ok / fail / info for one finished subprocess (see the module's docstring)."""
    low = err.lower().replace("_", " ")
    # The exactly-once CLI names it `error: unknown_outcome: ...` (ErrorKind::kUnknownOutcome).
    if "unknown outcome" in low or "outcome unknown" in low or "outcome is unknown" in low:
        return "info"
    if rc in (0, 1):
        return "ok"
    if rc < 0:  # killed by a signal
        return "info"
    if op not in WRITES:
        return "fail"  # a read that failed changed nothing
    if rc in (2, 3, 6, 7):
        return "fail"
    if rc == 4 and any(name.lower() in low for name in DEFINITE_SERVICE_ERRORS):
        return "fail"
    return "info"  # 4 (5xx and the like), 5 (network), anything else


class Runner:
    """Runs CLI operations for one worker and records them."""

    def __init__(self, cli, worker, table, consistent, timeout=60.0, cli_timeout=10.0, log=None):
        self.cli = cli
        self.worker = worker
        self.table = table
        self.consistent = consistent
        self.timeout = timeout
        self.cli_timeout = cli_timeout
        self.n = 0
        self.ops = [] if log is None else log

    def next_id(self):
        self.n += 1
        return f"{self.worker}.{self.n}"

    def call(self, op, key, args, arg=None, stdin=b"", namespace=None, consistent=None, decode=None,
             opid=None, extra_env=None):
        """Runs `dynamodb-cache [globals] OP ARGS...`; records and returns the operation."""
        opid = opid or self.next_id()
        argv = [self.cli, "--table", self.table, "--timeout", str(self.cli_timeout)]
        if namespace:
            argv += ["--namespace", namespace]
        if consistent if consistent is not None else self.consistent:
            if op in ("get", "get-or-run"):
                argv.append("--consistent-read")
        argv += [op, *args]
        env = None
        if extra_env:
            env = dict(os.environ)
            env.update(extra_env)
        rec = {"id": opid, "worker": self.worker, "op": op, "key": key, "arg": arg}
        rec["invoke"] = time.monotonic_ns()
        try:
            p = subprocess.run(argv, input=stdin, capture_output=True, timeout=self.timeout, env=env)
            rec["complete"] = time.monotonic_ns()
            rc, out, err = p.returncode, p.stdout, p.stderr.decode("utf-8", "replace")
        except subprocess.TimeoutExpired:
            rec["complete"] = time.monotonic_ns()
            rc, out, err = -9, b"", "harness: timed out, killed"
        rec["rc"] = rc
        rec["err"] = err.strip().splitlines()[0][:300] if err.strip() else ""
        rec["type"] = classify(op, rc, err)
        rec["value"] = None
        if rec["type"] == "ok":
            rec["value"] = (decode or default_decode(op))(rc, out)
        self.ops.append(rec)
        return rec


def default_decode(op):
    def decode(rc, out):
        if op == "add":
            return rc == 0  # True: written; False: the key was live
        if op == "incr":
            return int(out.decode().strip())
        if op in ("get", "get-or-run"):
            return None if rc == 1 else out.decode("utf-8", "replace")
        return rc == 0
    return decode


def save(path, ops):
    with open(path, "w") as fh:
        json.dump(ops, fh)


def load(path):
    with open(path) as fh:
        return json.load(fh)


# --- Reporting ------------------------------------------------------------------------------

def short(v, n=60):
    s = repr(v)
    return s if len(s) <= n else s[: n - 3] + "..."


def describe(op, t0):
    """One line: relative times in ms, worker, operation, result."""
    res = op["type"]
    if op["type"] == "ok":
        res = f"ok {short(op['value'])}"
    elif op.get("rc") is not None:
        res = f"{op['type']} rc={op['rc']} {short(op.get('err', ''), 80)}"
    arg = "" if op.get("arg") is None else f" {short(op['arg'], 40)}"
    return (f"  {(op['invoke'] - t0) / 1e6:9.1f} .. {(op['complete'] - t0) / 1e6:9.1f} ms  "
            f"w{op['worker']:<2} {op['id']:<7} {op['op']} {op['key']}{arg} -> {res}")


class Violation:
    def __init__(self, rule, message, ops, note=None):
        self.rule = rule
        self.message = message
        unique = {id(o): o for o in ops}
        self.ops = sorted(unique.values(), key=lambda o: (o["invoke"], o["complete"]))
        self.note = note

    def render(self, workload="", seed=None, replay=""):
        lines = [f"VIOLATION [{workload}] {self.rule}: {self.message}"]
        if self.ops:
            t0 = self.ops[0]["invoke"]
            shown = self.ops if len(self.ops) <= 40 else self.ops[:20] + self.ops[-20:]
            for o in shown:
                lines.append(describe(o, t0))
            if len(self.ops) > 40:
                lines.append(f"  ... {len(self.ops) - 40} more operations in between")
        if self.note:
            lines.append(f"  note: {self.note}")
        if replay:
            lines.append(f"  seed {seed}; replay: {replay}")
        return "\n".join(lines)
