#!/usr/bin/env bash
# The stale-value example against a local DynamoDB (run under scripts/with-dynalite or
# scripts/with-ddblocal): while the source is down the last good value is served, marked
# stale; when it is back the next call loads afresh.
set -euo pipefail
example="$1"
export DYNAMODB_CACHE_TABLE=stale-example-test
out="$("$example" 2>/dev/null)"
echo "$out"
want='source up        : price v1
source down      : price v1 (stale: the source is down)
still down       : price v1 (stale: the source is down)
source back      : price v2
stale answers served: 2'
if [ "$out" = "$want" ]; then
  echo "1 passed, 0 failed"
else
  echo "0 passed, 1 failed"
  exit 1
fi
