-- wrk script: POST a DynamoDB PutItem of one cache item (the Python package's layout, a
-- 1000-byte value) over keep-alive connections: the server's PutItem rate, for comparing
-- `dynamodb-cache bench --op set` against the same server. Fixed fake signature (neither
-- dynalite nor the canned server verifies signatures).
--   wrk -t1 -c16 -d5s -s wrk-putitem.lua http://127.0.0.1:PORT/
-- Env: TABLE (default peers-bench), KEY (default canned).
local table_name = os.getenv("TABLE") or "peers-bench"
local key = os.getenv("KEY") or "canned"
local value = string.rep("QUJD", 334)  -- base64 text, 1336 bytes on the wire

wrk.method = "POST"
wrk.body = string.format(
  '{"TableName":"%s","Item":{"key":{"S":"%s"},"value":{"B":"%s"},"expire":{"N":"3600"},"update_ts":{"N":"1700000000"}}}',
  table_name, key, value)
wrk.headers["Content-Type"] = "application/x-amz-json-1.0"
wrk.headers["X-Amz-Target"] = "DynamoDB_20120810.PutItem"
wrk.headers["X-Amz-Date"] = "20240101T000000Z"
wrk.headers["Authorization"] =
  "AWS4-HMAC-SHA256 Credential=x/20240101/us-east-1/dynamodb/aws4_request, " ..
  "SignedHeaders=content-type;host;x-amz-date;x-amz-target, " ..
  "Signature=0000000000000000000000000000000000000000000000000000000000000000"

function done(summary, latency, requests)
  local secs = summary.duration / 1e6
  io.write(string.format(
    "wrk: requests=%d req_s=%.1f p50_us=%d p99_us=%d errors=%d\n",
    summary.requests, summary.requests / secs,
    latency:percentile(50), latency:percentile(99),
    summary.errors.connect + summary.errors.read + summary.errors.write +
    summary.errors.status + summary.errors.timeout))
end
