"""Requests signed by dynamodb-cache are accepted by an endpoint that checks SigV4 the way
DynamoDB does, with long-term and session credentials from every provider of the chain.

The checker is a proxy in front of dynalite (which checks no signatures): it recomputes each
request's signature with botocore's own SigV4 signer from the secret it knows for the access
key, checks the session token and the clock skew, answers DynamoDB's errors on a mismatch,
and forwards good requests to dynalite. It is first checked against boto3 itself.
"""
import datetime
import json
import os
import sys
import tempfile
import threading
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

sys.path.insert(0, os.path.dirname(__file__))
from common import ENDPOINT, Failures, ddb, run  # noqa: E402

cli = sys.argv[1]
f = Failures()
REGION = "us-east-1"
# access key -> (secret, session token or None)
KEYS = {
    "AKIDLONGTERM": ("long-term-secret/with+chars", None),
    "ASIASESSION1": ("session-secret-1", "session-token-1//+=="),
    "AKIDPROFILE": ("profile-secret", None),
    "ASIAPROFILE": ("profile-session-secret", "profile-session-token"),
    "ASIACONTAINER": ("container-secret", "container-token"),
    "ASIAIMDS": ("imds-secret", "imds-token"),
}
accepted = []
skewed = []  # access keys of requests rejected for clock skew


def ddb_error(handler, name, msg):
    body = json.dumps({"__type": f"com.amazon.coral.service#{name}", "message": msg}).encode()
    handler.send_response(400)
    handler.send_header("Content-Type", "application/x-amz-json-1.0")
    handler.send_header("Content-Length", str(len(body)))
    handler.end_headers()
    handler.wfile.write(body)


class SigCheck(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        auth = self.headers.get("Authorization", "")
        try:
            algo, rest = auth.split(" ", 1)
            parts = dict(p.strip().split("=", 1) for p in rest.split(","))
            akid, date, region, service, term = parts["Credential"].split("/")
            signed = parts["SignedHeaders"].split(";")
            got_sig = parts["Signature"]
        except Exception:
            return ddb_error(self, "IncompleteSignatureException", "malformed Authorization header")
        if algo != "AWS4-HMAC-SHA256" or service != "dynamodb" or term != "aws4_request" or region != REGION:
            return ddb_error(self, "InvalidSignatureException", "bad credential scope")
        if "host" not in signed or "x-amz-date" not in signed:
            return ddb_error(self, "InvalidSignatureException", "host and x-amz-date must be signed")
        if akid not in KEYS:
            return ddb_error(self, "UnrecognizedClientException", "The security token included in the request is invalid.")
        secret, token = KEYS[akid]
        if token is not None and self.headers.get("X-Amz-Security-Token") != token:
            return ddb_error(self, "UnrecognizedClientException", "The security token included in the request is invalid.")
        amz_date = self.headers.get("X-Amz-Date", "")
        try:
            t = datetime.datetime.strptime(amz_date, "%Y%m%dT%H%M%SZ").replace(tzinfo=datetime.timezone.utc)
        except ValueError:
            return ddb_error(self, "IncompleteSignatureException", "bad X-Amz-Date")
        # DynamoDB's own answers to a request signed more than 5 minutes off its clock; the
        # Date header (added by send_response) is how a client learns the service's time.
        now = datetime.datetime.now(datetime.timezone.utc)
        fmt = "%Y%m%dT%H%M%SZ"
        if (now - t).total_seconds() > 300:
            skewed.append(akid)
            return ddb_error(self, "InvalidSignatureException",
                             f"Signature expired: {amz_date} is now earlier than "
                             f"{(now - datetime.timedelta(minutes=5)).strftime(fmt)} ({now.strftime(fmt)} - 5 min.)")
        if (t - now).total_seconds() > 300:
            skewed.append(akid)
            return ddb_error(self, "InvalidSignatureException",
                             f"Signature not yet current: {amz_date} is still later than "
                             f"{(now + datetime.timedelta(minutes=5)).strftime(fmt)} ({now.strftime(fmt)} + 5 min.)")
        # botocore recomputes the signature over exactly the headers the client signed.
        req = AWSRequest(method="POST", url=f"http://{self.headers['Host']}/", data=body,
                         headers={h: self.headers[h] for h in signed if h != "host"})
        req.headers["host"] = self.headers["Host"]
        req.context["timestamp"] = amz_date
        signer = SigV4Auth(Credentials(akid, secret, token), "dynamodb", REGION)
        canonical = signer.canonical_request(req)
        want = signer.signature(signer.string_to_sign(req, canonical), req)
        if want != got_sig:
            return ddb_error(self, "InvalidSignatureException",
                             "The request signature we calculated does not match the signature you provided.")
        accepted.append(akid)
        fwd = urllib.request.Request(ENDPOINT + "/", data=body, method="POST", headers={
            "Content-Type": self.headers.get("Content-Type", ""),
            "X-Amz-Target": self.headers.get("X-Amz-Target", ""),
            "Authorization": auth, "X-Amz-Date": amz_date})
        try:
            resp = urllib.request.urlopen(fwd, timeout=10)
            status, data, headers = resp.status, resp.read(), resp.headers
        except urllib.error.HTTPError as e:
            status, data, headers = e.code, e.read(), e.headers
        self.send_response(status)
        for h in ("Content-Type", "x-amz-crc32", "x-amzn-RequestId"):
            if headers.get(h):
                self.send_header(h, headers[h])
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *a):
        pass


srv = ThreadingHTTPServer(("127.0.0.1", 0), SigCheck)
threading.Thread(target=srv.serve_forever, daemon=True).start()
proxy = f"http://127.0.0.1:{srv.server_address[1]}"

# 0. The checker itself: boto3 passes, a wrong secret fails.
import boto3  # noqa: E402
from botocore.exceptions import ClientError  # noqa: E402

good = boto3.client("dynamodb", endpoint_url=proxy, region_name=REGION,
                    aws_access_key_id="AKIDLONGTERM", aws_secret_access_key=KEYS["AKIDLONGTERM"][0])
f.check("TableNames" in good.list_tables(), "boto3's own signature passes the checker")
bad = boto3.client("dynamodb", endpoint_url=proxy, region_name=REGION,
                   aws_access_key_id="AKIDLONGTERM", aws_secret_access_key="wrong")
try:
    bad.list_tables()
    f.check(False, "checker rejects a wrong secret")
except ClientError as e:
    f.check(e.response["Error"]["Code"] == "InvalidSignatureException", "checker rejects a wrong secret")

tmp = tempfile.mkdtemp()
# Environment for the CLI: nothing from the outer run leaks in but what each case sets.
CLEAN = {k: None for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE",
                           "AWS_CONTAINER_CREDENTIALS_FULL_URI", "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
                           "AWS_CONTAINER_AUTHORIZATION_TOKEN", "AWS_EC2_METADATA_SERVICE_ENDPOINT")}
CLEAN.update({"AWS_ENDPOINT_URL_DYNAMODB": proxy, "AWS_REGION": REGION, "AWS_EC2_METADATA_DISABLED": "true",
              "AWS_SHARED_CREDENTIALS_FILE": os.path.join(tmp, "none"), "AWS_CONFIG_FILE": os.path.join(tmp, "none")})


def case(name, env, *, expect_ok=True, akid=None, extra=()):
    e = dict(CLEAN)
    e.update(env)
    table = "sig-" + name
    before = len(accepted)
    rc1, _, err1 = run(cli, "--table", table, *extra, "create-table", env=e)
    rc2, _, err2 = run(cli, "--table", table, *extra, "set", "k", name, env=e)
    rc3, out, err3 = run(cli, "--table", table, *extra, "get", "k", env=e)
    if expect_ok:
        f.check(rc1 == rc2 == rc3 == 0 and out == name.encode(), f"{name}: {rc1} {rc2} {rc3} {err1}{err2}{err3}")
        f.check(len(accepted) > before and all(a == akid for a in accepted[before:]), f"{name}: signed with {akid}")
    else:
        f.check(rc1 == 4 and err1.startswith("error:"), f"{name}: refused with a DynamoDB error: {rc1} {err1!r}")
    for secret, tok in KEYS.values():
        f.check(secret not in err1 + err2 + err3 and (tok is None or tok not in err1 + err2 + err3),
                f"{name}: no secret in the output")
    return err1


# 1. Environment, long-term and session.
case("env-long", {"AWS_ACCESS_KEY_ID": "AKIDLONGTERM", "AWS_SECRET_ACCESS_KEY": KEYS["AKIDLONGTERM"][0]},
     akid="AKIDLONGTERM")
case("env-session", {"AWS_ACCESS_KEY_ID": "ASIASESSION1", "AWS_SECRET_ACCESS_KEY": KEYS["ASIASESSION1"][0],
                     "AWS_SESSION_TOKEN": KEYS["ASIASESSION1"][1]}, akid="ASIASESSION1")
err = case("env-wrong-secret", {"AWS_ACCESS_KEY_ID": "AKIDLONGTERM", "AWS_SECRET_ACCESS_KEY": "not-the-secret"},
           expect_ok=False)
f.check("InvalidSignatureException" in err, f"wrong secret named: {err!r}")
err = case("env-wrong-token", {"AWS_ACCESS_KEY_ID": "ASIASESSION1", "AWS_SECRET_ACCESS_KEY": KEYS["ASIASESSION1"][0],
                               "AWS_SESSION_TOKEN": "expired-token"}, expect_ok=False)
f.check("UnrecognizedClientException" in err, f"wrong token named: {err!r}")

# 1b. Clock skew: the CLI with its clock 15 minutes fast or slow (faketime) is told
# "Signature expired" / "not yet current" once per process, learns the service's clock from
# the answer's Date header, signs again, and keeps the offset for the calls that follow.
import shutil  # noqa: E402

faketime = shutil.which("faketime")
f.check(faketime is not None, "faketime is installed (scripts/setup installs it)")
if faketime:
    # libfaketime is preloaded: an ASan build of the CLI must not insist on coming first. And
    # ASan's allocator, when it maps a size class's first region, reads the monotonic clock
    # (to time its release of memory to the OS); libfaketime's first clock_gettime looks up
    # the real one with dlsym, which can malloc from that same size class and wait forever on
    # the allocator's own lock (CI hung so, 60 s, with gdb showing the loop). With the release
    # timer off, the allocator never reads the clock.
    asan = ":".join(filter(None, (os.environ.get("ASAN_OPTIONS"), "verify_asan_link_order=0",
                                  "allocator_release_to_os_interval_ms=-1")))
    # A host whose clock is wrong has a wrong wall clock; its monotonic clock (time since boot)
    # is not shifted with it. libfaketime shifts both unless told: a process whose monotonic
    # clock jumps 15 minutes sees the kernel's absolute monotonic waits (pthread_cond_clockwait,
    # which libfaketime does not wrap) end 15 minutes late or at once.
    long_term = dict(CLEAN, AWS_ACCESS_KEY_ID="AKIDLONGTERM", AWS_SECRET_ACCESS_KEY=KEYS["AKIDLONGTERM"][0],
                     ASAN_OPTIONS=asan, DONT_FAKE_MONOTONIC="1")
    for shift in ("+15m", "-15m"):
        table = "sig-skew" + shift[0].replace("+", "fast").replace("-", "slow")
        for args in (("create-table",), ("set", "k", shift), ("get", "k")):
            before = len(skewed)
            rc, out, err = run(faketime, "-f", shift, cli, "--table", table, *args, env=long_term)
            f.check(rc == 0, f"clock {shift}: {args[0]} succeeds: {rc} {err}")
            f.check(len(skewed) - before == 1, f"clock {shift}: {args[0]} rejected once for skew, then corrected "
                                               f"({len(skewed) - before} rejections)")
        f.check(out == shift.encode(), f"clock {shift}: the value reads back: {out!r}")


# 2. Shared files: credentials file, config file, --profile and AWS_PROFILE.
creds_file = os.path.join(tmp, "credentials")
config_file = os.path.join(tmp, "config")
with open(creds_file, "w") as fh:
    fh.write(f"[default]\naws_access_key_id = AKIDPROFILE\naws_secret_access_key = {KEYS['AKIDPROFILE'][0]}\n")
with open(config_file, "w") as fh:
    fh.write(f"[profile temp]\nregion = {REGION}\naws_access_key_id = ASIAPROFILE\n"
             f"aws_secret_access_key = {KEYS['ASIAPROFILE'][0]}\naws_session_token = {KEYS['ASIAPROFILE'][1]}\n")
files = {"AWS_SHARED_CREDENTIALS_FILE": creds_file, "AWS_CONFIG_FILE": config_file}
case("profile-default", files, akid="AKIDPROFILE")
case("profile-flag", files, akid="ASIAPROFILE", extra=("--profile", "temp"))
case("profile-env", dict(files, AWS_PROFILE="temp"), akid="ASIAPROFILE")


# 3. Container credentials and 4. IMDSv2, served on loopback.
def creds_body(akid):
    exp = (datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    return json.dumps({"Code": "Success", "AccessKeyId": akid, "SecretAccessKey": KEYS[akid][0],
                       "Token": KEYS[akid][1], "Expiration": exp}).encode()


class Metadata(BaseHTTPRequestHandler):
    def reply(self, status, body=b""):
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        if self.path == "/container-creds":
            if self.headers.get("Authorization") != "container-auth":
                return self.reply(401)
            return self.reply(200, creds_body("ASIACONTAINER"))
        if self.headers.get("x-aws-ec2-metadata-token") != "imds-session":
            return self.reply(401)
        if self.path == "/latest/meta-data/iam/security-credentials/":
            return self.reply(200, b"cache-role")
        if self.path == "/latest/meta-data/iam/security-credentials/cache-role":
            return self.reply(200, creds_body("ASIAIMDS"))
        self.reply(404)

    def do_PUT(self):
        if self.path == "/latest/api/token" and self.headers.get("x-aws-ec2-metadata-token-ttl-seconds"):
            return self.reply(200, b"imds-session")
        self.reply(403)

    def log_message(self, *a):
        pass


meta = ThreadingHTTPServer(("127.0.0.1", 0), Metadata)
threading.Thread(target=meta.serve_forever, daemon=True).start()
meta_url = f"http://127.0.0.1:{meta.server_address[1]}"
case("container", {"AWS_CONTAINER_CREDENTIALS_FULL_URI": meta_url + "/container-creds",
                   "AWS_CONTAINER_AUTHORIZATION_TOKEN": "container-auth"}, akid="ASIACONTAINER")
case("imds", {"AWS_EC2_METADATA_DISABLED": None, "AWS_EC2_METADATA_SERVICE_ENDPOINT": meta_url}, akid="ASIAIMDS")

# 5. Issue 7's credential sources, each alone, with a local STS stand-in (sts_standin.py).
from sts_standin import run_cases  # noqa: E402
run_cases(f, case, KEYS, tmp, proxy)

meta.shutdown()
srv.shutdown()
f.finish()
