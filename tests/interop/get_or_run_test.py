"""`dynamodb-cache get-or-run` against dynalite: a fleet-wide memoizer for shell commands."""
import concurrent.futures
import os
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(__file__))
from common import Failures, ddb, run, wait_active  # noqa: E402

cli = sys.argv[1]
f = Failures()
TABLE = "get-or-run"
env = {"DYNAMODB_CACHE_TABLE": TABLE}
tmp = tempfile.mkdtemp()
counter = os.path.join(tmp, "counter")


def runs():
    try:
        with open(counter) as fh:
            return len(fh.read().splitlines())
    except FileNotFoundError:
        return 0


def counted(output, seconds=0):
    """A command that appends a line to the counter file, waits, then prints `output`."""
    return ["sh", "-c", f'echo run >> "$0"; sleep {seconds}; printf %s "$1"', counter, output]


rc, _, err = run(cli, "create-table", env=env)
f.check(rc == 0, f"create-table: {err}")
wait_active(ddb(), TABLE)

rc, out, _ = run(cli, "get-or-run", "--help")
f.check(rc == 0 and b"--lease" in out, "get-or-run --help")

# A miss runs the command and caches its output; a hit prints it without running anything.
rc, out, err = run(cli, "get-or-run", "k", "--ttl", "60", "--", *counted("hello\n"), env=env)
f.check(rc == 0 and out == b"hello\n" and runs() == 1, f"miss: rc={rc} out={out!r} runs={runs()} err={err!r}")
rc, out, _ = run(cli, "get-or-run", "k", "--ttl", "60", "--", *counted("other"), env=env)
f.check(rc == 0 and out == b"hello\n" and runs() == 1, f"hit: out={out!r} runs={runs()}")
f.check(run(cli, "get", "k", env=env)[1] == b"hello\n", "the output is an ordinary cached value")

# Binary output, byte for byte.
blob = bytes(range(256)) * 4
blob_file = os.path.join(tmp, "blob")
with open(blob_file, "wb") as fh:
    fh.write(blob)
rc, out, _ = run(cli, "get-or-run", "bin", "--", "cat", blob_file, env=env)
f.check(rc == 0 and out == blob, "binary-safe output")

# A command that fails: exit 7, one error line, nothing cached; its stdout is not printed.
rc, out, err = run(cli, "get-or-run", "bad", "--", "sh", "-c", "echo partial; exit 3", env=env)
f.check(rc == 7 and out == b"" and err.startswith("error:") and "status 3" in err and len(err.splitlines()) == 1,
        f"failing command: rc={rc} out={out!r} err={err!r}")
f.check(run(cli, "get", "bad", env=env)[0] == 1, "nothing cached for a failing command")
rc, _, err = run(cli, "get-or-run", "bad", "--", "/nonexistent/command", env=env)
f.check(rc == 7 and "cannot run" in err, f"a command that cannot start: rc={rc} err={err!r}")
rc, _, err = run(cli, "get-or-run", "bad", env=env)
f.check(rc == 2, f"no command: usage error, rc={rc}")

# Output past the largest value: stopped, error, nothing cached.
rc, out, err = run(cli, "get-or-run", "huge", "--", "head", "-c", str((64 << 20) + 1), "/dev/zero", env=env,
                   timeout=120)
f.check(rc == 2 and out == b"" and "67108864" in err, f"too much output: rc={rc} err={err!r}")

# The judged case: 20 processes at once with --lease run the command once between them,
# and all print its output.
os.remove(counter)


def one(_):
    return run(cli, "get-or-run", "hot", "--ttl", "300", "--lease", "30", "--",
               *counted("the output\n", seconds=2), env=env, timeout=120)


with concurrent.futures.ThreadPoolExecutor(20) as pool:
    results = list(pool.map(one, range(20)))
f.check(all(rc == 0 and out == b"the output\n" for rc, out, _ in results),
        f"all 20 print the output: {[(rc, out, err) for rc, out, err in results if rc != 0 or out != b'the output' + bytes([10])][:3]}")
f.check(runs() == 1, f"the command ran once among 20 processes: {runs()} times")
lease_items = ddb().get_item(TableName=TABLE, Key={"key": {"S": "hot#lease"}}).get("Item")
f.check(lease_items is None, f"the lease is released: {lease_items}")

# A holder that dies keeps the lease only until it lapses; the next process then runs the
# command itself.
os.remove(counter)
holder = subprocess.Popen([cli, "get-or-run", "crash", "--lease", "2", "--", *counted("never", seconds=60)],
                          env={**os.environ, **env}, stdout=subprocess.DEVNULL, start_new_session=True)
for _ in range(200):
    if runs() == 1:
        break
    time.sleep(0.05)
os.killpg(holder.pid, signal.SIGKILL)  # the CLI and its command, as a crash would
holder.wait()
start = time.monotonic()
rc, out, err = run(cli, "get-or-run", "crash", "--lease", "2", "--", *counted("after the crash"), env=env, timeout=60)
f.check(rc == 0 and out == b"after the crash" and runs() == 2,
        f"the lease lapsed and the command ran here: rc={rc} out={out!r} runs={runs()} err={err!r}")
f.check(time.monotonic() - start < 20, "within the lease and a few polls")

# A late run never overwrites an erase (issue 24): while one process's command runs, another
# process erases the key; the first still prints its output, but the key stays erased.
os.remove(counter)
for lease in ([], ["--lease", "30"]):
    key = "late" + ("-leased" if lease else "")
    slow = subprocess.Popen([cli, "get-or-run", key, "--ttl", "300", *lease, "--", *counted("late output", seconds=2)],
                            env={**os.environ, **env}, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    for _ in range(200):
        if runs() >= (2 if lease else 1):
            break
        time.sleep(0.05)
    rc, _, err = run(cli, "delete", key, env=env)
    f.check(rc == 0, f"delete during the run: {err}")
    out, err = slow.communicate(timeout=60)
    f.check(slow.returncode == 0 and out == b"late output", f"{key}: the running process prints its output: {err!r}")
    rc, out, _ = run(cli, "get", key, env=env)
    f.check(rc == 1, f"{key}: the erase wins over the late run: rc={rc} out={out!r}")
# --stale-if-error: once the value's TTL (1 s) has passed, a failing command prints the stale
# value (exit 0, a line on stderr) within the grace (4 s), and the error after it.
rc, out, err = run(cli, "get-or-run", "flaky", "--ttl", "1", "--stale-if-error", "4", "--",
                   "printf", "%s", "good", env=env)
f.check(rc == 0 and out == b"good", f"stale: first run rc={rc} out={out!r} err={err!r}")
time.sleep(1.5)
rc, out, err = run(cli, "get-or-run", "flaky", "--ttl", "1", "--stale-if-error", "4", "--", "false", env=env)
f.check(rc == 0 and out == b"good" and "stale: printed" in err,
        f"stale within the grace: rc={rc} out={out!r} err={err!r}")
rc, out, _ = run(cli, "get", "flaky", env=env)
f.check(rc != 0 or out == b"", f"a plain get misses the stale value: rc={rc} out={out!r}")
time.sleep(4.5)
rc, out, err = run(cli, "get-or-run", "flaky", "--ttl", "1", "--stale-if-error", "4", "--", "false", env=env)
f.check(rc == 7 and out == b"", f"past the grace, the command's failure: rc={rc} out={out!r} err={err!r}")

f.finish()
