#!/usr/bin/env bash
# Start the canned-response DynamoDB stand-in (nginx) on 127.0.0.1 in the background.
# This repository's copy of ../shared/bench/start-canned.sh: BatchGetItem is answered too
# (batchget.py behind nginx, each key with the canned item), and two pids are printed.
#
#   usage: canned/start-canned.sh PORT [VALUE_SIZE] [RUNDIR]
#
#   PORT        TCP port on 127.0.0.1
#   VALUE_SIZE  size of the JSON document behind the canned item's `value` (default 1000)
#   RUNDIR      folder for the rendered nginx.conf, pid, error log (default: mktemp -d)
#
# Any POST gets the same GetItem answer:
#   {"Item":{"key":{"S":"canned"},"value":{"B":...},"expire":{"N":"3600"},"update_ts":{"N":<now>}}}
# The value's bytes are base64(json of VALUE_SIZE bytes): what dynamodb_cache 0.1.1
# (PynamoDB 5, which base64-encodes binary attributes twice) stores, so the seed's
# get() also decodes it; the AWS SDKs just receive those ~4/3*VALUE_SIZE bytes.
# update_ts = start time, so the seed treats the item as fresh for 3600 s.
# DescribeTable gets a fixed ACTIVE description (PynamoDB needs it).
# Both answers carry x-amz-crc32 like DynamoDB/dynalite (botocore checks it).
#
# Prints the nginx master pid and batchget.py's on stdout once a POST answers; stop both
# with ../shared/bench/stop-pid.sh PID PID.
# Env: CANNED_WORKERS  nginx worker processes (default 1)
#      NGINX           nginx binary (default: nginx on PATH, Debian's nginx-light)
#      CANNED_TLS=1    serve https instead: a fresh self-signed certificate for 127.0.0.1 and
#                      localhost (P-256) is made in RUNDIR; trust RUNDIR/ca.pem in the client
#                      (AWS_CA_BUNDLE, curl --cacert, NODE_EXTRA_CA_CERTS, wrk needs nothing)
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
port="${1:?usage: start-canned.sh PORT [VALUE_SIZE] [RUNDIR]}"
vsize="${2:-1000}"
rundir="${3:-$(mktemp -d -t canned.XXXXXX)}"
mkdir -p "$rundir"
rundir="$(cd "$rundir" && pwd)"
nginx_bin="${NGINX:-nginx}"
py="${PYTHON:-python3}"

"$py" - "$here/nginx.conf.template" "$rundir/nginx.conf" "$port" "$vsize" \
       "${CANNED_WORKERS:-1}" "$(id -u)" "$rundir" "${CANNED_TLS:-0}" <<'PY'
import base64, json, sys, time, zlib, random, string
tpl, out, port, vsize, workers, uid, rundir, tls = sys.argv[1:]
# @BATCH_PORT@ is filled in once batchget.py has a port (below).
tls = (" ssl; ssl_certificate %s/ca.pem; ssl_certificate_key %s/key.pem; "
       "ssl_session_cache shared:SSL:1m" % (rundir, rundir)) if tls == "1" else ""
vsize = int(vsize)
rnd = random.Random(1)
doc = json.dumps({"v": "".join(rnd.choices(string.ascii_letters, k=max(0, vsize - 9)))})
stored = base64.b64encode(doc.encode())           # what PynamoDB 5 stores in `value`
item = {"Item": {"key": {"S": "canned"},
                 "value": {"B": base64.b64encode(stored).decode()},
                 "expire": {"N": "3600"},
                 "update_ts": {"N": str(int(time.time()))}}}
getitem = json.dumps(item, separators=(",", ":"))
describe = json.dumps({"Table": {
    "TableName": "canned", "TableStatus": "ACTIVE",
    "AttributeDefinitions": [{"AttributeName": "key", "AttributeType": "S"}],
    "KeySchema": [{"AttributeName": "key", "KeyType": "HASH"}],
    "BillingModeSummary": {"BillingMode": "PAY_PER_REQUEST"},
    "ItemCount": 0, "TableSizeBytes": 0, "CreationDateTime": 1700000000}},
    separators=(",", ":"))
for b in (getitem, describe):
    assert "'" not in b and "\\" not in b and "$" not in b
s = open(tpl).read()
subs = {
    "@USER_LINE@": "user www-data www-data;" if uid == "0" else "",
    "@WORKERS@": workers, "@RUNDIR@": rundir, "@PORT@": port, "@TLS@": tls,
    "@GETITEM_BODY@": getitem, "@GETITEM_CRC@": str(zlib.crc32(getitem.encode())),
    "@DESCRIBE_BODY@": describe, "@DESCRIBE_CRC@": str(zlib.crc32(describe.encode())),
}
for k, v in subs.items():
    s = s.replace(k, v)
open(out, "w").write(s)
open(rundir + "/getitem-body.json", "w").write(getitem)
PY

rm -f "$rundir/batchget.port"
nohup /usr/bin/python3 "$here/batchget.py" "$rundir" >"$rundir/batchget.log" 2>&1 </dev/null &
batch_pid=$!
for _ in $(seq 100); do
  [ -s "$rundir/batchget.port" ] && break
  kill -0 "$batch_pid" 2>/dev/null || { cat "$rundir/batchget.log" >&2; exit 1; }
  sleep 0.05
done
[ -s "$rundir/batchget.port" ] || { echo "batchget.py did not start" >&2; kill "$batch_pid"; exit 1; }
sed -i "s/@BATCH_PORT@/$(cat "$rundir/batchget.port")/" "$rundir/nginx.conf"

scheme=http curl_ca=()
if [ "${CANNED_TLS:-0}" = 1 ]; then
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 7 \
    -keyout "$rundir/key.pem" -out "$rundir/ca.pem" -subj /CN=localhost \
    -addext subjectAltName=IP:127.0.0.1,DNS:localhost 2>/dev/null
  scheme=https curl_ca=(--cacert "$rundir/ca.pem")
fi

"$nginx_bin" -t -q -p "$rundir" -c "$rundir/nginx.conf" -g 'daemon off;'
nohup "$nginx_bin" -p "$rundir" -c "$rundir/nginx.conf" -g 'daemon off;' \
  >"$rundir/stdout.log" 2>&1 </dev/null &
pid=$!
echo "canned nginx pid $pid port $port rundir $rundir" >&2
for _ in $(seq 100); do
  kill -0 "$pid" 2>/dev/null || { cat "$rundir/error.log" "$rundir/stdout.log" >&2; kill "$batch_pid"; exit 1; }
  if curl -fsS -m 2 "${curl_ca[@]}" -X POST "$scheme://127.0.0.1:$port/" \
       -H 'Content-Type: application/x-amz-json-1.0' \
       -H 'X-Amz-Target: DynamoDB_20120810.GetItem' \
       -d '{"TableName":"t","Key":{"key":{"S":"k"}}}' 2>/dev/null | grep -q '"Item"' &&
     curl -fsS -m 2 "${curl_ca[@]}" -X POST "$scheme://127.0.0.1:$port/" \
       -H 'Content-Type: application/x-amz-json-1.0' \
       -H 'X-Amz-Target: DynamoDB_20120810.BatchGetItem' \
       -d '{"RequestItems":{"t":{"Keys":[{"key":{"S":"k"}}]}}}' 2>/dev/null | grep -q '"Responses"'; then
    echo "$pid $batch_pid"
    exit 0
  fi
  sleep 0.1
done
echo "canned nginx did not answer" >&2
kill "$pid" "$batch_pid" 2>/dev/null || true
exit 1
