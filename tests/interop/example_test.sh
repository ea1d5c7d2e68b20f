#!/usr/bin/env bash
# The credential example prints the slow read once and the credential twice (run under
# scripts/with-dynalite or scripts/with-ddblocal).
set -euo pipefail
cli="$1" example="$2"
export DYNAMODB_CACHE_TABLE=example-test
out="$("$example" 2>/dev/null)"
echo "$out"
reads=$(grep -c '^read credential from aws secret manager$' <<<"$out" || true)
creds=$(grep -c "^DatabaseCredential(host='www.db.com', port=5432" <<<"$out" || true)
# The value stays cached in the table (the example empties the key only when it starts).
cached=0
if "$cli" get my_db_credential | grep -q '"host":"www.db.com"'; then cached=1; fi
if [ "$reads" = 1 ] && [ "$creds" = 2 ] && [ "$cached" = 1 ]; then
  echo "1 passed, 0 failed"
else
  echo "reads=$reads creds=$creds cached=$cached"
  echo "0 passed, 1 failed"
  exit 1
fi
