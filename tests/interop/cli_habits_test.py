"""The CLI's habits, as the aws CLI and redis-cli have them, and the messages a newcomer meets
first (issue 25, items 6 and 10): global options anywhere, "did you mean" for a mistyped command,
get-or-run's `--`, no C++ names, what bench --prepare leaves behind, and the errors of a wrong
endpoint or a missing table."""
import os
import socket
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

sys.path.insert(0, os.path.dirname(__file__))
from common import Failures, run  # noqa: E402

cli = sys.argv[1]
f = Failures()
env = {"DYNAMODB_CACHE_TABLE": "habits-table"}


def error_line(err):
    lines = [l for l in err.splitlines() if l.strip()]
    return lines[0] if len(lines) == 1 and lines[0].startswith("error:") else None


rc, _, err = run(cli, "create-table", env=env)
f.check(rc == 0, f"create-table: {err!r}")

# A mistyped command: the nearest one, exit 2.
rc, _, err = run(cli, "gte", "k", env=env)
f.check(rc == 2 and error_line(err) and "unknown command 'gte'; did you mean 'get'?" in err, f"gte: {rc} {err!r}")
rc, _, err = run(cli, "--table", "habits-table", "zzzzzz", env=env)
f.check(rc == 2 and error_line(err) and "unknown command 'zzzzzz'" in err and "did you mean" not in err,
        f"nothing near: {rc} {err!r}")

# Global options before or after the command.
rc, _, err = run(cli, "set", "k", "v1", "--table", "habits-other", "--ttl", "60")
f.check(rc != 0 and "habits-other" in err, f"--table after the command is the table used: {rc} {err!r}")
rc, _, err = run(cli, "set", "k", "v1", "--table", "habits-table")
f.check(rc == 0, f"set with --table after the command: {rc} {err!r}")
rc, out, err = run(cli, "get", "k", "--table", "habits-table", "--stats")
f.check(rc == 0 and out == b"v1" and '"hits":1' in err, f"get with global options after it: {rc} {out!r} {err!r}")

# --ttl below 0 names the option and its minimum.
rc, _, err = run(cli, "set", "k", "v", "--ttl", "-5", env=env)
f.check(rc == 2 and error_line(err) and "--ttl" in err and "minimum, 0" in err, f"--ttl -5: {rc} {err!r}")

# touch --help: the TTL line says SECONDS and REQUIRED, no "=0" default for a required option.
rc, out, _ = run(cli, "touch", "--help")
ttl_lines = [l for l in out.decode().splitlines() if "--ttl" in l]
f.check(rc == 0 and len(ttl_lines) == 1 and "SECONDS" in ttl_lines[0] and "REQUIRED" in ttl_lines[0]
        and "=0" not in ttl_lines[0] and "INT" not in ttl_lines[0], f"touch --help: {ttl_lines!r}")

# Exit codes are in --help, the commands' too.
for args in ([], ["get"]):
    rc, out, _ = run(cli, *args, "--help")
    f.check(rc == 0 and b"Exit codes: 0 done, 1 a miss" in out, f"{args} --help lists the exit codes")
# A command's --help names the global options (a new user looked for --endpoint in get --help).
rc, out, _ = run(cli, "get", "--help")
f.check(rc == 0 and b"Global options" in out and all(o in out for o in (b"--endpoint", b"--table", b"--region")),
        f"get --help names the global options: {out!r}")

# get-or-run: COMMAND after --, KEY before it.
rc, out, err = run(cli, "get-or-run", "k2", "sh", "-c", "echo hi", env=env)
f.check(rc == 2 and error_line(err) and "after --" in err, f"get-or-run without --: {rc} {err!r}")
rc, out, err = run(cli, "get-or-run", "--", "echo", "hi", env=env)
f.check(rc == 2 and error_line(err) and "KEY is missing" in err and out == b"", f"get-or-run -- echo hi: {rc} {err!r}")
f.check(run(cli, "get", "echo", env=env)[0] == 1, "get-or-run -- echo hi cached nothing under 'echo'")
rc, out, _ = run(cli, "get-or-run", "k2", "--help")
f.check(rc == 0 and b"--lease" in out, "get-or-run KEY --help is help, not a usage error")
rc, out, err = run(cli, "get-or-run", "k2", "--ttl", "60", "--", "echo", "hi", env=env)
f.check(rc == 0 and out == b"hi\n", f"get-or-run KEY -- COMMAND: {rc} {out!r} {err!r}")

# No C++ names in messages.
rc, _, err = run(cli, "set", "", "v", env=env)
f.check(rc == 2 and error_line(err) and "invalid_argument" not in err and "invalid argument" in err,
        f"an empty key: {err!r}")
rc, _, err = run(cli, "set", "huge", stdin=b"x" * ((64 << 20) + 1), env=env)
f.check(rc == 2 and error_line(err) and "kMax" not in err and "64 MiB" in err, f"a value too large: {err!r}")

# bench --prepare says which keys it leaves and how to remove them.
rc, out, err = run(cli, "bench", "--op", "get", "--ops", "5", "--warmup", "0", "--keys", "3", "--prepare", "--json",
                   env=env)
f.check(rc == 0 and "bench-00000000" in err and "bench-00000002" in err and "habits-table" in err
        and "clear --yes" in err, f"bench --prepare: {rc} {err!r}")

# --stats counts what clear erased.
rc, _, err = run(cli, "--stats", "clear", "--yes", env=env)
f.check(rc == 0 and "deleted 5 items" in err and '"erases":5' in err, f"--stats clear: {rc} {err!r}")

# A missing table: named, with how to create it.
rc, _, err = run(cli, "--table", "habits-absent", "get", "k")
f.check(rc == 4 and error_line(err) and "GetItem: table 'habits-absent' does not exist" in err
        and "create-table --table habits-absent" in err, f"missing table: {rc} {err!r}")

# A wrong endpoint: nothing listens there. Three attempts (well under a second), then the
# operation, the endpoint, the attempts and what to do.
s = socket.socket()
s.bind(("127.0.0.1", 0))
closed = f"http://127.0.0.1:{s.getsockname()[1]}"
s.close()
t0 = time.time()
rc, _, err = run(cli, "--endpoint", closed, "get", "k", env=env)
took = time.time() - t0
f.check(rc == 5 and error_line(err) and f"GetItem: cannot reach DynamoDB at {closed} after 3 attempts" in err
        and "check the endpoint" in err and took < 3, f"refused: {rc} after {took:.1f} s: {err!r}")


# A web server that is not DynamoDB (501 for a POST): said at once, one attempt, not retried.
class NotDynamo(BaseHTTPRequestHandler):
    seen = 0

    def do_POST(self):
        NotDynamo.seen += 1
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        body = b"<html><body>Not Implemented</body></html>"
        self.send_response(501)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *a):
        pass


srv = ThreadingHTTPServer(("127.0.0.1", 0), NotDynamo)
threading.Thread(target=srv.serve_forever, daemon=True).start()
web = f"http://127.0.0.1:{srv.server_address[1]}"
rc, _, err = run(cli, "--endpoint", web, "get", "k", env=env)
f.check(rc == 4 and error_line(err) and f"the endpoint {web} is not DynamoDB: HTTP 501 Not Implemented" in err
        and NotDynamo.seen == 1, f"501: {rc}, {NotDynamo.seen} attempts: {err!r}")
srv.shutdown()

run(cli, "delete-table", env=env)
f.finish()
