#!/usr/bin/env bash
# bench/near_cache.sh CLI OUT: issue 27's comparison (bench/README.md). One table, 100,000 keys prepared
# once; then DynamoDB alone, --layered and --near-cache, with sets drawn uniformly and from the
# Zipf distribution, and the near cache again with --check. Run under scripts/with-dynalite.
set -u
CLI=$1; OUT=$2
T=nb-$$
$CLI --table $T create-table >/dev/null || exit 1
$CLI --table $T bench --op get --keys 100000 --prepare --ops 1 --value-size 1000 --ttl 3600 --json >/dev/null 2>&1
for sets in "" "--zipf-sets"; do
  for mode in "" "--layered" "--near-cache"; do
    echo "== mode=${mode:-dynamodb} sets=${sets:-uniform}" >> $OUT
    $CLI --table $T bench --processes 8 --keys 100000 --zipf 0.99 --op mixed --read-ratio 0.95 \
      --concurrency 2 --duration 15 --value-size 1000 --ttl 3600 $mode $sets --json >> $OUT 2>>$OUT.err
  done
done
echo "== check near-cache" >> $OUT
$CLI --table $T bench --processes 8 --keys 100000 --zipf 0.99 --op mixed --read-ratio 0.95 \
  --concurrency 2 --duration 10 --value-size 1000 --ttl 3600 --near-cache --check --json >> $OUT 2>>$OUT.err
echo "== check near-cache zipf-sets" >> $OUT
$CLI --table $T bench --processes 8 --keys 100000 --zipf 0.99 --op mixed --read-ratio 0.95 \
  --concurrency 2 --duration 10 --value-size 1000 --ttl 3600 --near-cache --zipf-sets --check --json >> $OUT 2>>$OUT.err
$CLI --table $T delete-table --no-wait >/dev/null
