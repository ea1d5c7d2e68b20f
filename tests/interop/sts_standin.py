"""A local STS stand-in, and the credential sources of issue 7 driven through the CLI.

The stand-in answers AssumeRole (after checking its SigV4 signature with botocore's own
signer, for service "sts", and the session token) and AssumeRoleWithWebIdentity (after
checking the token), with STS's XML. The credentials it issues are added to the
signature-checking DynamoDB proxy's keys (sigcheck_test.py), so a CLI call succeeds only if
the CLI got them from STS and signed with them. Reached through AWS_ENDPOINT_URL_STS.
"""
import datetime
import json
import os
import sys
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

REGION = "us-east-1"
WEB_TOKEN = "web-identity-token-3f9a"


def sigv4_ok(headers, body, service, keys):
    """True when the request's SigV4 Authorization verifies with the secret `keys` hold for
    its access key (and its session token matches)."""
    try:
        algo, rest = headers.get("Authorization", "").split(" ", 1)
        parts = dict(p.strip().split("=", 1) for p in rest.split(","))
        akid, _date, region, svc, _term = parts["Credential"].split("/")
        signed = parts["SignedHeaders"].split(";")
    except Exception:
        return False
    if algo != "AWS4-HMAC-SHA256" or svc != service or region != REGION or akid not in keys:
        return False
    secret, token = keys[akid]
    if token is not None and headers.get("X-Amz-Security-Token") != token:
        return False
    req = AWSRequest(method="POST", url=f"http://{headers['Host']}/", data=body,
                     headers={h: headers[h] for h in signed if h != "host"})
    req.headers["host"] = headers["Host"]
    req.context["timestamp"] = headers.get("X-Amz-Date", "")
    signer = SigV4Auth(Credentials(akid, secret, token), service, REGION)
    want = signer.signature(signer.string_to_sign(req, signer.canonical_request(req)), req)
    return want == parts["Signature"]


class StsStandIn:
    """Issues `issue[role_arn]` (an access key of `keys`) for each role it is asked for."""

    def __init__(self, keys, issue):
        self.keys, self.issue, self.calls, self.refused, self.agents = keys, issue, [], [], []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def reply(self, status, xml):
                data = xml.encode()
                self.send_response(status)
                self.send_header("Content-Type", "text/xml")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                form = {k: v[0] for k, v in urllib.parse.parse_qs(body.decode()).items()}
                action = form.get("Action", "")
                outer.calls.append(form)
                outer.agents.append(self.headers.get("User-Agent", ""))
                if action == "AssumeRole":
                    ok = sigv4_ok(self.headers, body, "sts", outer.keys)
                elif action == "AssumeRoleWithWebIdentity":
                    ok = form.get("WebIdentityToken") == WEB_TOKEN and "Authorization" not in self.headers
                else:
                    ok = False
                akid = outer.issue.get(form.get("RoleArn"))
                if not ok or akid is None or form.get("Version") != "2011-06-15" or not form.get("RoleSessionName"):
                    outer.refused.append(action)
                    return self.reply(403, "<ErrorResponse><Error><Type>Sender</Type><Code>AccessDenied</Code>"
                                           "<Message>refused by the stand-in</Message></Error></ErrorResponse>")
                secret, token = outer.keys[akid]
                exp = (datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(hours=1)).strftime(
                    "%Y-%m-%dT%H:%M:%SZ")
                self.reply(200, f"<{action}Response xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\">"
                                f"<{action}Result><Credentials><AccessKeyId>{akid}</AccessKeyId>"
                                f"<SecretAccessKey>{secret}</SecretAccessKey><SessionToken>{token}</SessionToken>"
                                f"<Expiration>{exp}</Expiration></Credentials></{action}Result></{action}Response>")

            def log_message(self, *a):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"


def run_cases(f, case, keys, tmp, proxy):
    """The judged cases of issue 7, each credential source alone. `case` is sigcheck_test's
    (it runs create-table, set, get and checks which access key signed them)."""
    keys.update({
        "ASIAPROCESS": ("process-secret-7", "process-token-7"),
        "ASIAROLE": ("role-secret-7", "role-token-7"),
        "ASIAWEBID": ("web-secret-7", "web-token-7"),
        "AKIDBASE": ("base-secret-7", None),
    })
    sts = StsStandIn(keys, {"arn:aws:iam::123456789012:role/cache": "ASIAROLE",
                            "arn:aws:iam::123456789012:role/eks": "ASIAWEBID"})
    config = os.path.join(tmp, "config-sts")

    # credential_process (no STS involved: the process prints the keys).
    process_json = json.dumps({"Version": 1, "AccessKeyId": "ASIAPROCESS", "SecretAccessKey": keys["ASIAPROCESS"][0],
                               "SessionToken": keys["ASIAPROCESS"][1], "Expiration": "2099-01-01T00:00:00Z"})
    script = os.path.join(tmp, "creds.py")
    with open(script, "w") as fh:
        fh.write(f"print({process_json!r})\n")
    with open(config, "w") as fh:
        fh.write(f"[profile proc]\ncredential_process = /usr/bin/python3 {script}\n"
                 f"[profile base]\naws_access_key_id = AKIDBASE\naws_secret_access_key = {keys['AKIDBASE'][0]}\n"
                 f"[profile role]\nrole_arn = arn:aws:iam::123456789012:role/cache\nsource_profile = base\n"
                 f"[profile ep]\nendpoint_url = {proxy}\n")
    files = {"AWS_CONFIG_FILE": config, "AWS_ENDPOINT_URL_STS": sts.url}
    case("credential-process", dict(files, AWS_PROFILE="proc"), akid="ASIAPROCESS")

    # AssumeRole via source_profile: STS sees a call signed by the base profile's keys.
    before = len(sts.calls)
    case("assume-role", files, akid="ASIAROLE", extra=("--profile", "role"))
    f.check(len(sts.calls) > before and all(c.get("Action") == "AssumeRole" for c in sts.calls[before:]),
            f"assume-role: went through STS: {sts.calls[before:]}")

    # Web identity from the environment (EKS): AssumeRoleWithWebIdentity with the file's token.
    token_file = os.path.join(tmp, "web-token")
    with open(token_file, "w") as fh:
        fh.write(WEB_TOKEN + "\n")
    before = len(sts.calls)
    case("web-identity", dict(files, AWS_WEB_IDENTITY_TOKEN_FILE=token_file, AWS_SDK_UA_APP_ID="judge-7",
                              AWS_ROLE_ARN="arn:aws:iam::123456789012:role/eks"), akid="ASIAWEBID")
    f.check(len(sts.calls) > before and all(c.get("Action") == "AssumeRoleWithWebIdentity" for c in sts.calls[before:]),
            f"web-identity: went through STS: {sts.calls[before:]}")
    f.check(all(a.endswith(" app/judge-7") for a in sts.agents[before:]), f"AWS_SDK_UA_APP_ID: {sts.agents[before:]}")

    # endpoint_url in a profile: no AWS_ENDPOINT_URL_DYNAMODB, the profile names the proxy.
    case("profile-endpoint", dict(files, AWS_ENDPOINT_URL_DYNAMODB=None, AWS_PROFILE="ep",
                                  AWS_ACCESS_KEY_ID="AKIDBASE", AWS_SECRET_ACCESS_KEY=keys["AKIDBASE"][0]),
         akid="AKIDBASE")

    # A refusal by STS is one clear error line naming the code, without the web identity token.
    bad_token = os.path.join(tmp, "bad-web-token")
    with open(bad_token, "w") as fh:
        fh.write("not-the-token-5b1e\n")
    from common import run  # noqa: E402 (sigcheck_test put it on the path)
    rc, _, err = run(sys.argv[1], "--table", "sig-web-refused", "get", "k",
                     env={"AWS_CONFIG_FILE": config, "AWS_ENDPOINT_URL_STS": sts.url, "AWS_REGION": REGION,
                          "AWS_ACCESS_KEY_ID": None, "AWS_SECRET_ACCESS_KEY": None, "AWS_PROFILE": None,
                          "AWS_SHARED_CREDENTIALS_FILE": os.path.join(tmp, "none"),
                          "AWS_WEB_IDENTITY_TOKEN_FILE": bad_token,
                          "AWS_ROLE_ARN": "arn:aws:iam::123456789012:role/eks", "AWS_ENDPOINT_URL_DYNAMODB": proxy})
    f.check(rc == 3 and err.startswith("error:") and err.count("\n") == 1 and "AccessDenied" in err,
            f"web identity refused: {rc} {err!r}")
    f.check("not-the-token-5b1e" not in err, "the web identity token is not in the error")
    f.check(not sts.refused[:-1], f"the stand-in refused only the bad token: {sts.refused}")

    # --ca-bundle, like the AWS CLI's: a bundle that cannot be read is a configuration error.
    rc, _, err = run(sys.argv[1], "--ca-bundle", os.path.join(tmp, "no-such-ca.pem"), "--table", "t", "get", "k",
                     env={"AWS_REGION": REGION})
    f.check(rc == 3 and err.startswith("error:") and "no-such-ca.pem" in err, f"--ca-bundle unreadable: {rc} {err!r}")
    sts.server.shutdown()
