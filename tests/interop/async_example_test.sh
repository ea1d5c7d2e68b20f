#!/usr/bin/env bash
# The coroutine example against a local DynamoDB (run under scripts/with-dynalite or
# scripts/with-ddblocal): 200 coroutines in flight miss, then all hit; get_many_async answers
# in key order.
set -euo pipefail
example="$1"
export DYNAMODB_CACHE_TABLE=async-example-test
out="$("$example" 2>/dev/null)"
echo "$out"
want='round 1: 200 visits, 0 cache hits
round 2: 200 visits, 200 cache hits
get_many: {"user":1} {"user":2} miss'
if [ "$out" = "$want" ]; then
  echo "1 passed, 0 failed"
else
  echo "0 passed, 1 failed"
  exit 1
fi
