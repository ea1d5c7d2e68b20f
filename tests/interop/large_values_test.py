"""Large values through the CLI, against dynalite: the value size limit (one constant for
writing and reading back) and values past one 400 KB item."""
import os
import sys

sys.path.insert(0, os.path.dirname(__file__))
from common import Failures, ddb, run, wait_active  # noqa: E402

cli = sys.argv[1]
f = Failures()
TABLE = "large-values"
env = {"DYNAMODB_CACHE_TABLE": TABLE}
MAX_VALUE = 64 << 20  # kMaxValueBytes


def is_error_line(err):
    lines = [l for l in err.splitlines() if l.strip()]
    return len(lines) == 1 and lines[0].startswith("error:")


rc, _, err = run(cli, "create-table", env=env)
f.check(rc == 0, f"create-table: {err}")
c = ddb()
wait_active(c, TABLE)

# Issue 8 item 5: a compressible value at the limit is written and reads back; one byte more
# is refused before any request, with the limit in the message (it used to be written, then
# every get said "compressed value is corrupt").
at_limit = b"z" * MAX_VALUE
rc, _, err = run(cli, "set", "at-limit", stdin=at_limit, env=env, timeout=120)
f.check(rc == 0, f"set of {MAX_VALUE} compressible bytes: rc={rc} err={err!r}")
rc, out, err = run(cli, "get", "at-limit", env=env, timeout=120)
f.check(rc == 0 and out == at_limit, f"get of the value at the limit: rc={rc} len={len(out)} err={err!r}")
rc, _, err = run(cli, "set", "over-limit", stdin=at_limit + b"z", env=env, timeout=120)
f.check(rc == 2 and is_error_line(err) and str(MAX_VALUE) in err,
        f"set of {MAX_VALUE + 1} bytes is a usage error naming the limit: rc={rc} err={err!r}")
rc, _, _ = run(cli, "get", "over-limit", env=env)
f.check(rc == 1, "nothing was written for the refused value")
del at_limit

f.finish()
