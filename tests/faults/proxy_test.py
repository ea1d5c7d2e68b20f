#!/usr/bin/python3
"""Checks that tests/faults/proxy.js really does what it says, well-formed, and can fail.

    scripts/with-dynalite /usr/bin/python3 tests/faults/proxy_test.py
    scripts/with-dynalite scripts/with-faults --seed 7 -- /usr/bin/python3 tests/faults/proxy_test.py [CLI]

Every check starts its own proxy (node tests/faults/proxy.js) in front of
$AWS_ENDPOINT_URL_DYNAMODB. Under scripts/with-faults that endpoint is the outer proxy; it is
first set to profile `none` (a pass-through), so the checks see only their own faults and the
outer one is exercised as a relay. Debian's boto3 does not read AWS_ENDPOINT_URL_DYNAMODB,
so every client here is given its loopback endpoint explicitly (never AWS).

Standard library and boto3 only. Exit 0 when every check passes; names the failures otherwise.
The CLI binary for the CLI check: the first argument, else $DYNAMODB_CACHE_CLI, else
/work/snap/bin/dynamodb-cache (the check is skipped only when none was named and that is absent). FAULT_TEST_ONLY=name,name runs only those checks.
"""
import hashlib
import http.client
import json
import math
import os
import signal
import struct
import subprocess
import sys
import tempfile
import time
import traceback
import urllib.parse
import urllib.error
import urllib.request
import zlib

import boto3
import botocore.config
import botocore.exceptions

HERE = os.path.dirname(os.path.abspath(__file__))
PROXY = os.path.join(HERE, 'proxy.js')
UPSTREAM = os.environ.get('AWS_ENDPOINT_URL_DYNAMODB', '')
REGION = os.environ.get('AWS_REGION', 'us-east-1')
AK = os.environ.get('AWS_ACCESS_KEY_ID', 'AKIDLOCALDYNALITE')
SK = os.environ.get('AWS_SECRET_ACCESS_KEY', 'local-dynalite-secret')
CLI_GIVEN = len(sys.argv) > 1 or 'DYNAMODB_CACHE_CLI' in os.environ
CLI = sys.argv[1] if len(sys.argv) > 1 else os.environ.get('DYNAMODB_CACHE_CLI', '/work/snap/bin/dynamodb-cache')


def loopback(url):
    host = urllib.parse.urlsplit(url).hostname or ''
    return host == 'localhost' or host == '::1' or host.startswith('127.')


if not UPSTREAM or not loopback(UPSTREAM):
    sys.exit('proxy_test: AWS_ENDPOINT_URL_DYNAMODB must be a loopback endpoint (run under scripts/with-dynalite)')


# ------------------------------------------------------------------ the proxy's PRNG, ported

M32 = 0xFFFFFFFF


def make_rng(parts):
    d = hashlib.sha256('\0'.join(parts).encode()).digest()
    s = list(struct.unpack('<4I', d[:16]))
    if not any(s):
        s[0] = 1

    def rotl(x, k):
        return ((x << k) | (x >> (32 - k))) & M32

    def nxt():
        result = (rotl((s[1] * 5) & M32, 7) * 9) & M32
        t = (s[1] << 9) & M32
        s[2] ^= s[0]
        s[3] ^= s[1]
        s[1] ^= s[2]
        s[0] ^= s[3]
        s[2] ^= t
        s[3] = rotl(s[3], 11)
        return result / 4294967296
    return nxt


def canon(v):
    return json.dumps(v, sort_keys=True, separators=(',', ':'), ensure_ascii=False)


def draws(seed, op, table, key_str, n):
    r = make_rng([str(seed), op, table, key_str, str(n)])
    names = ['resetBefore', 'e500b', 'e503b', 'throttle', 'slow', 'slowAmt', 'slowAfter', 'unproc', 'resetAfter',
             'e500a', 'e503a', 'stale', 'staleAt']
    return {n_: r() for n_ in names}


def item_size(item):
    n = 0
    for k, v in item.items():
        n += len(k.encode())
        if 'S' in v:
            n += len(v['S'].encode())
        elif 'N' in v:
            digits = v['N'].lstrip('+-').replace('.', '').lstrip('0')
            n += math.ceil(len(digits) / 2) + 1
        else:
            n += len(json.dumps(v))  # not used by these checks
    return n


# ------------------------------------------------------------------ helpers

class Proxy:
    """One proxy process of our own, in front of UPSTREAM."""

    def __init__(self, *args, log=False):
        self.log = None
        extra = []
        if log:
            fd, self.log = tempfile.mkstemp(prefix='faults-', suffix='.log')
            os.close(fd)
            extra = ['--log', self.log]
        self.p = subprocess.Popen(['node', PROXY, '--upstream', UPSTREAM] + list(args) + extra,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        line = self.p.stdout.readline()
        if not line.startswith('listening '):
            raise RuntimeError('proxy did not start: %r %r' % (line, self.p.stderr.read()))
        self.port = int(line.split()[1])
        self.url = 'http://127.0.0.1:%d' % self.port

    def admin(self, path, obj=None):
        data = None if obj is None else json.dumps(obj).encode()
        req = urllib.request.Request(self.url + path, data=data, method='GET' if obj is None else 'POST')
        with urllib.request.urlopen(req, timeout=5) as r:
            return json.loads(r.read())

    def config(self, **kw):
        return self.admin('/__faults/config', kw)

    def stats(self):
        return self.admin('/__faults/stats')

    def log_lines(self):
        with open(self.log) as f:
            return [json.loads(x) for x in f if x.strip()]

    def stop(self):
        self.p.send_signal(signal.SIGTERM)
        out, err = self.p.communicate(timeout=10)
        assert self.p.returncode == 0, 'proxy exit %r' % self.p.returncode
        assert out == '', 'proxy wrote on stdout after listening: %r' % out
        lines = [x for x in err.splitlines() if x.strip()]
        final = json.loads(lines[-1])
        assert set(final['faults']) >= {'stale_read', 'throttle', 'unprocessed', 'error_500_before', 'error_500_after',
                                        'error_503', 'reset_before', 'reset_after', 'slow', 'scan_cut', 'ttl_deleted'}
        if self.log:
            os.unlink(self.log)
        return final

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if self.p.poll() is None:
            self.stop()


def client(url, attempts=1, read_timeout=10):
    assert loopback(url)
    cfg = botocore.config.Config(retries={'max_attempts': attempts, 'mode': 'standard'}, connect_timeout=2,
                                 read_timeout=read_timeout, max_pool_connections=4)
    return boto3.client('dynamodb', endpoint_url=url, region_name=REGION, aws_access_key_id=AK,
                        aws_secret_access_key=SK, config=cfg)


class Raw:
    """Unsigned DynamoDB JSON requests (the servers check no signature), answers checked for CRC."""

    def __init__(self, url):
        u = urllib.parse.urlsplit(url)
        self.host, self.port = u.hostname, u.port
        self.conn = None

    def call(self, op, body, timeout=10):
        if self.conn is None:
            self.conn = http.client.HTTPConnection(self.host, self.port, timeout=timeout)
        data = json.dumps(body).encode()
        headers = {'Content-Type': 'application/x-amz-json-1.0', 'X-Amz-Target': 'DynamoDB_20120810.' + op,
                   'X-Amz-Date': '20260101T000000Z',
                   'Authorization': 'AWS4-HMAC-SHA256 Credential=%s/20260101/%s/dynamodb/aws4_request, '
                                    'SignedHeaders=host;x-amz-date, Signature=00' % (AK, REGION)}
        try:
            self.conn.request('POST', '/', data, headers)
            r = self.conn.getresponse()
            payload = r.read()
        except (ConnectionResetError, http.client.RemoteDisconnected, BrokenPipeError, http.client.BadStatusLine):
            self.conn.close()
            self.conn = None
            return 'reset', None, None
        crc = r.getheader('x-amz-crc32')
        assert crc is not None and int(crc) == zlib.crc32(payload), 'bad x-amz-crc32 on %s answer %d' % (op, r.status)
        assert int(r.getheader('content-length')) == len(payload)
        assert r.getheader('x-amzn-requestid'), 'no x-amzn-RequestId'
        return r.status, dict((k.lower(), v) for k, v in r.getheaders()), json.loads(payload) if payload else None


def make_table(c, name, hash_='k', range_=None, ondemand=True):
    attrs = [{'AttributeName': hash_, 'AttributeType': 'S'}]
    keys = [{'AttributeName': hash_, 'KeyType': 'HASH'}]
    if range_:
        attrs.append({'AttributeName': range_, 'AttributeType': 'N'})
        keys.append({'AttributeName': range_, 'KeyType': 'RANGE'})
    kw = {'BillingMode': 'PAY_PER_REQUEST'} if ondemand else {
        'ProvisionedThroughput': {'ReadCapacityUnits': 5, 'WriteCapacityUnits': 5}}
    c.create_table(TableName=name, AttributeDefinitions=attrs, KeySchema=keys, **kw)
    for _ in range(100):
        if c.describe_table(TableName=name)['Table']['TableStatus'] == 'ACTIVE':
            return
        time.sleep(0.05)
    raise RuntimeError('table %s not active' % name)


DIRECT = client(UPSTREAM, attempts=3)   # setup and checks without our faults


def consistent_get(table, key):
    return DIRECT.get_item(TableName=table, Key=key, ConsistentRead=True).get('Item')


def within(count, n, p, name):
    """count ~ Binomial(n, p): within 4.5 sigma (and nonzero when expected at least 5)."""
    mu, sd = n * p, math.sqrt(n * p * (1 - p))
    assert abs(count - mu) <= 4.5 * sd + 1, '%s: %d of %d, expected about %.1f' % (name, count, n, mu)
    if mu >= 5:
        assert count > 0, name


NONE = {'profile': 'none'}


# ------------------------------------------------------------------ checks

def check_passthrough():
    """Profile none changes nothing; answers keep the server's request id and a right CRC."""
    make_table(DIRECT, 'pass_t')
    with Proxy('--profile', 'none') as p:
        raw = Raw(p.url)
        for i in range(30):
            st, h, b = raw.call('PutItem', {'TableName': 'pass_t', 'Item': {'k': {'S': 'a%d' % i}, 'v': {'N': str(i)}}})
            assert st == 200, (st, b)
            st, h, b = raw.call('GetItem', {'TableName': 'pass_t', 'Key': {'k': {'S': 'a%d' % i}}})
            assert st == 200 and b['Item']['v']['N'] == str(i), b
        s = p.stats()
        assert s['requests']['PutItem'] == 30 and s['requests']['GetItem'] == 30, s
        assert all(v == 0 for v in s['faults'].values()), s
        final = p.stop()
        assert final['requests'] == s['requests']
    # Settings from a file, then --set, then at run time; a bad one is refused whole.
    fd, path = tempfile.mkstemp(suffix='.json')
    with os.fdopen(fd, 'w') as f:
        json.dump({'profile': 'heavy', 'stale_ms': 1234, 'scan_page_bytes': 99}, f)
    try:
        with Proxy('--config', path, '--set', 'scan_page_bytes=77', '--set', 'ttl_mode=proxy') as p:
            cfg = p.admin('/__faults/config')
            assert (cfg['profile'], cfg['stale_ms'], cfg['scan_page_bytes'], cfg['ttl_mode'], cfg['slow_long_share']) == \
                ('heavy', 1234, 77, 'proxy', 0.05), cfg
            try:
                p.config(stale_ms=5, stale_rate=7)
                raise AssertionError('a rate of 7 was accepted')
            except urllib.error.HTTPError as e:
                assert e.code == 400
            assert p.admin('/__faults/config')['stale_ms'] == 1234
            cfg = p.config(profile='none', scan_page_bytes=10)
            assert cfg['stale_rate'] == 0 and cfg['scan_page_bytes'] == 10 and cfg['ttl_mode'] == 'passthrough', cfg
    finally:
        os.unlink(path)


def check_stale_reads():
    """Eventually consistent reads see older images, never older than stale_ms; consistent ones never."""
    stale_ms = 400
    make_table(DIRECT, 'stale_t')
    with Proxy('--seed', '5') as p:
        p.config(profile='none', stale_rate=1, stale_ms=stale_ms)
        c = client(p.url)
        key = {'k': {'S': 'x'}}
        write_start, write_ack, reads = {}, {}, []
        for v in range(15):
            write_start[v] = time.monotonic()
            c.put_item(TableName='stale_t', Item={'k': {'S': 'x'}, 'v': {'N': str(v)}})
            write_ack[v] = time.monotonic()
            for _ in range(3):
                s = time.monotonic()
                it = c.get_item(TableName='stale_t', Key=key).get('Item')
                reads.append((s, time.monotonic(), int(it['v']['N']) if it else -1, v))
            it = c.get_item(TableName='stale_t', Key=key, ConsistentRead=True)['Item']
            assert int(it['v']['N']) == v, 'a consistent read was stale: %s, wrote %d' % (it, v)
            time.sleep(0.03)
        write_ack[-1] = write_start[-1] = 0.0
        stale = 0
        for s, e, r, latest in reads:
            assert r <= latest, 'read the future: %d > %d' % (r, latest)
            if r < latest:
                stale += 1
                # r was replaced by write r+1, acknowledged at write_ack[r+1]: it must have been
                # current at some time within stale_ms of the read.
                assert write_ack[r + 1] >= s - stale_ms / 1000 - 0.02, \
                    'image %d served %.0f ms after it was replaced (stale_ms %d)' % (r, (s - write_ack[r + 1]) * 1000, stale_ms)
        assert stale >= 5, 'only %d of %d eventually consistent reads were stale' % (stale, len(reads))
        time.sleep(stale_ms / 1000 + 0.1)
        for _ in range(10):
            assert int(c.get_item(TableName='stale_t', Key=key)['Item']['v']['N']) == 14

        # Deletes: the deleted item may still be read for stale_ms, then never.
        c.delete_item(TableName='stale_t', Key=key)
        seen = sum(1 for _ in range(20) if 'Item' in c.get_item(TableName='stale_t', Key=key))
        assert seen > 0, 'a deleted item never read stale'
        time.sleep(stale_ms / 1000 + 0.1)
        assert all('Item' not in c.get_item(TableName='stale_t', Key=key) for _ in range(10))

        # What the server says now stands once no recorded write is within the window: an item
        # deleted around the proxy (a native TTL, another client) is not kept alive by its history.
        c.put_item(TableName='stale_t', Item={'k': {'S': 'ext'}, 'v': {'N': '1'}})
        time.sleep(stale_ms / 1000 + 0.1)
        DIRECT.delete_item(TableName='stale_t', Key={'k': {'S': 'ext'}})
        assert all('Item' not in c.get_item(TableName='stale_t', Key={'k': {'S': 'ext'}}) for _ in range(10))

        # An item never written through the proxy passes through at once.
        DIRECT.put_item(TableName='stale_t', Item={'k': {'S': 'direct'}, 'v': {'N': '1'}})
        assert all('Item' in c.get_item(TableName='stale_t', Key={'k': {'S': 'direct'}}) for _ in range(10))

        # BatchGetItem, Query and Scan see the old image within the window and only then. A
        # longer window here: a read s after the write sees the old image with probability
        # (window - s) / window, and on a loaded machine (a sanitizer build beside) the loop
        # below made only 2-3 reads of each kind in 400 ms, which missed the old image 1 run in 10.
        stale_ms = 2000
        p.config(stale_ms=stale_ms)
        c.put_item(TableName='stale_t', Item={'k': {'S': 'b'}, 'v': {'N': '1'}})
        time.sleep(stale_ms / 1000 + 0.1)
        c.put_item(TableName='stale_t', Item={'k': {'S': 'b'}, 'v': {'N': '2'}})
        acked = time.monotonic()
        seen = {'BatchGetItem': [], 'Scan': [], 'Query': []}
        while time.monotonic() - acked < (stale_ms + 250) / 1000:
            s = time.monotonic() - acked
            r = c.batch_get_item(RequestItems={'stale_t': {'Keys': [{'k': {'S': 'b'}}]}})
            seen['BatchGetItem'] += [(s, int(i['v']['N'])) for i in r['Responses']['stale_t']]
            s = time.monotonic() - acked
            r = c.scan(TableName='stale_t')
            seen['Scan'] += [(s, int(i['v']['N'])) for i in r['Items'] if i['k']['S'] == 'b']
            s = time.monotonic() - acked
            r = c.query(TableName='stale_t', KeyConditionExpression='k = :k', ExpressionAttributeValues={':k': {'S': 'b'}})
            seen['Query'] += [(s, int(i['v']['N'])) for i in r['Items']]
            time.sleep(0.01)
        for name, got in seen.items():
            assert {v for _, v in got} == {1, 2}, '%s saw %s, wanted both the old and the new image' % (name, got)
            late = [at for at, v in got if v == 1 and at > stale_ms / 1000 + 0.02]
            assert not late, '%s: the old image %.0f ms after it was replaced' % (name, late[0] * 1000)
        r = c.scan(TableName='stale_t', ConsistentRead=True)
        assert [int(i['v']['N']) for i in r['Items'] if i['k']['S'] == 'b'] == [2]
        time.sleep(stale_ms / 1000 + 0.1)
        r = c.batch_get_item(RequestItems={'stale_t': {'Keys': [{'k': {'S': 'b'}}]}})
        assert [int(i['v']['N']) for i in r['Responses']['stale_t']] == [2]
        assert p.stats()['faults']['stale_read'] >= stale


def check_throttle():
    """Hot keys are throttled with DynamoDB's errors; boto3 retries them to success."""
    make_table(DIRECT, 'thr_o', ondemand=True)
    make_table(DIRECT, 'thr_p', ondemand=False)
    with Proxy('--seed', '9') as p:
        # 1 WCU/s and 3 RCU/s a key: a loaded machine (CI's 2 cores, a soak beside it) still
        # sends faster than that, so the counts below do not depend on its speed.
        p.config(profile='none', throttle_scale=0.001, throttle_burst_s=1)
        raw = Raw(p.url)
        for table, name in (('thr_o', 'com.amazon.coral.availability#ThrottlingException'),
                            ('thr_p', 'com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException')):
            statuses = []
            for i in range(40):
                st, h, b = raw.call('PutItem', {'TableName': table, 'Item': {'k': {'S': 'hot'}, 'v': {'N': str(i)}}})
                statuses.append(st)
                if st != 200:
                    assert st == 400, (st, b)
                    assert b['__type'] == name, b
                    assert b['message'], b
                    assert b['ThrottlingReasons'] == [{'reason': 'TableWriteKeyRangeThroughputExceeded',
                                                       'resource': 'arn:aws:dynamodb:us-east-1:000000000000:table/' + table}], b
            assert statuses.count(400) >= 15, statuses
            st, _, _ = raw.call('PutItem', {'TableName': table, 'Item': {'k': {'S': 'cold'}}})
            assert st == 200, 'another partition key was throttled'
        # Reads: 3 units a second, an eventually consistent small read costs half a unit.
        answers = [raw.call('GetItem', {'TableName': 'thr_p', 'Key': {'k': {'S': 'hotread'}}}) for _ in range(150)]
        throttled = [b for st, h, b in answers if st == 400]
        assert len(throttled) >= 30, len(throttled)
        assert all(b['ThrottlingReasons'][0]['reason'] == 'TableReadKeyRangeThroughputExceeded' for b in throttled)
        # Batch entries on a throttled partition come back unprocessed; all of them: the request fails.
        make_table(DIRECT, 'thr_r', hash_='p', range_='r')
        p.config(throttle_scale=0.001)   # 1 WCU/s a partition key
        batch = lambda lo: {'RequestItems': {'thr_r': [
            {'PutRequest': {'Item': {'p': {'S': 'one'}, 'r': {'N': str(i)}}}} for i in range(lo, lo + 10)]}}
        st, h, b = raw.call('BatchWriteItem', batch(0))
        assert st == 200, (st, b)
        un = b['UnprocessedItems']['thr_r']
        assert 5 <= len(un) <= 9, len(un)
        done = {int(x['PutRequest']['Item']['r']['N']) for x in un} ^ set(range(10))
        got = {int(i['r']['N']) for i in DIRECT.scan(TableName='thr_r', ConsistentRead=True)['Items']}
        assert got == done, (got, done)
        st, h, b = raw.call('BatchWriteItem', batch(10))
        assert st == 400 and b['__type'].endswith('#ThrottlingException'), (st, b)
        p.config(throttle_scale=0.003)   # 3 WCU/s a key

        # boto3 retries throttling until it gets through.
        before = p.stats()['faults']['throttle']
        c = client(p.url, attempts=20)
        t0 = time.monotonic()
        for i in range(10):
            c.put_item(TableName='thr_o', Item={'k': {'S': 'hot2'}, 'v': {'N': str(i)}})
        assert consistent_get('thr_o', {'k': {'S': 'hot2'}})['v']['N'] == '9'
        assert p.stats()['faults']['throttle'] > before, 'boto3 was never throttled'
        assert time.monotonic() - t0 < 15


def check_unprocessed():
    """Batches come back partly unprocessed in DynamoDB's shapes; retrying them completes."""
    make_table(DIRECT, 'unp_t')
    with Proxy('--seed', '11') as p:
        p.config(profile='none', unprocessed_rate=1, unprocessed_share=0.5)
        c = client(p.url)
        items = [{'PutRequest': {'Item': {'k': {'S': 'u%d' % i}, 'v': {'N': str(i)}}}} for i in range(20)]
        r = c.batch_write_item(RequestItems={'unp_t': items})
        un = r['UnprocessedItems'].get('unp_t', [])
        assert 0 < len(un) < 20, len(un)
        un_keys = {x['PutRequest']['Item']['k']['S'] for x in un}
        for i in range(20):
            present = consistent_get('unp_t', {'k': {'S': 'u%d' % i}}) is not None
            assert present == ('u%d' % i not in un_keys), 'u%d processed=%s' % (i, present)
        pending, rounds = r['UnprocessedItems'], 0
        while pending:
            rounds += 1
            assert rounds < 30
            pending = c.batch_write_item(RequestItems=pending)['UnprocessedItems']
        assert all(consistent_get('unp_t', {'k': {'S': 'u%d' % i}}) for i in range(20))

        keys = [{'k': {'S': 'u%d' % i}} for i in range(20)]
        req = {'unp_t': {'Keys': keys, 'ConsistentRead': True, 'ProjectionExpression': 'k, #v',
                         'ExpressionAttributeNames': {'#v': 'v'}}}
        r = c.batch_get_item(RequestItems=req)
        u = r['UnprocessedKeys']['unp_t']
        assert 0 < len(u['Keys']) < 20 and u['ConsistentRead'] is True and u['ProjectionExpression'] == 'k, #v' \
            and u['ExpressionAttributeNames'] == {'#v': 'v'}, u
        got = [i['k']['S'] for i in r['Responses']['unp_t']]
        pending = r['UnprocessedKeys']
        while pending:
            r = c.batch_get_item(RequestItems=pending)
            got += [i['k']['S'] for i in r['Responses'].get('unp_t', [])]
            pending = r['UnprocessedKeys']
        assert sorted(got) == sorted('u%d' % i for i in range(20)), got

        # boto3's batch_writer resends unprocessed items until every one is written.
        table = boto3.resource('dynamodb', endpoint_url=p.url, region_name=REGION, aws_access_key_id=AK,
                               aws_secret_access_key=SK).Table('unp_t')
        with table.batch_writer() as w:
            for i in range(60):
                w.put_item(Item={'k': 'w%d' % i, 'v': i})
        assert all(consistent_get('unp_t', {'k': {'S': 'w%d' % i}}) for i in range(60))
        assert p.stats()['faults']['unprocessed'] > 3

        # Nothing processed at all: DynamoDB throttles the whole request instead.
        p.config(unprocessed_share=1)
        st, h, b = Raw(p.url).call('BatchWriteItem', {'RequestItems': {'unp_t': items[:3]}})
        assert st == 400 and b['__type'].endswith('#ThrottlingException'), (st, b)


def check_errors_and_resets():
    """500/503 and resets at the set rates, before (not applied) and after (applied) forwarding."""
    make_table(DIRECT, 'err_t')
    rates = dict(reset_before_rate=0.05, error_500_before_rate=0.1, error_503_rate=0.05,
                 reset_after_rate=0.05, error_500_after_rate=0.1, error_503_after_rate=0.05)
    n = 600
    with Proxy('--seed', '13', log=True) as p:
        p.config(profile='none', **rates)
        raw = Raw(p.url)
        seen = {}
        for i in range(n):
            st, h, b = raw.call('PutItem', {'TableName': 'err_t', 'Item': {'k': {'S': 'e%d' % i}}})
            if st == 500:
                assert b['__type'] == 'com.amazonaws.dynamodb.v20120810#InternalServerError', b
            if st == 503:
                assert b['__type'].endswith('#ServiceUnavailable'), b
            seen[i] = st
        s = p.stats()['faults']
        rb = rates['reset_before_rate']
        sb = (1 - rb) * (1 - rates['error_500_before_rate']) * (1 - rates['error_503_rate'])
        within(s['reset_before'], n, rb, 'reset_before')
        within(s['error_500_before'], n, (1 - rb) * rates['error_500_before_rate'], 'error_500_before')
        within(s['reset_after'], n, sb * rates['reset_after_rate'], 'reset_after')
        within(s['error_500_after'], n, sb * (1 - rates['reset_after_rate']) * rates['error_500_after_rate'],
               'error_500_after')
        p503 = (1 - rb) * (1 - rates['error_500_before_rate']) * rates['error_503_rate'] + \
            sb * (1 - rates['reset_after_rate']) * (1 - rates['error_500_after_rate']) * rates['error_503_after_rate']
        within(s['error_503'], n, p503, 'error_503')
        assert list(seen.values()).count(500) == s['error_500_before'] + s['error_500_after']
        assert list(seen.values()).count('reset') == s['reset_before'] + s['reset_after']
        # Before: not applied. After: applied, though the client was told otherwise.
        for e in p.log_lines():
            k = json.loads(e['key'])['k']['S']
            present = consistent_get('err_t', {'k': {'S': k}}) is not None
            if e['fault'] in ('reset_before', 'error_500_before') or (e['fault'] == 'error_503' and e['detail'] == 'before'):
                assert not present, '%s but %s was written' % (e['fault'], k)
            else:
                assert present, '%s but %s was not written' % (e['fault'], k)
        # boto3's retries get every write through (at a fifth of the rates: its backoff is long).
        p.config(**{k: v / 5 for k, v in rates.items()})
        c = client(p.url, attempts=10)
        for i in range(30):
            c.put_item(TableName='err_t', Item={'k': {'S': 'r%d' % i}})
        assert all(consistent_get('err_t', {'k': {'S': 'r%d' % i}}) for i in range(30))


def check_slow():
    """Slow answers are late by up to slow_ms, sometimes past a client's timeout."""
    make_table(DIRECT, 'slow_t')
    with Proxy('--seed', '17') as p:
        p.config(profile='none', slow_rate=1, slow_ms=300)
        raw = Raw(p.url)
        lat = []
        for i in range(12):
            t = time.monotonic()
            st, _, _ = raw.call('GetItem', {'TableName': 'slow_t', 'Key': {'k': {'S': 's%d' % i}}})
            lat.append(time.monotonic() - t)
            assert st == 200
        assert max(lat) <= 0.3 + 0.2, lat
        assert sum(1 for x in lat if x > 0.1) >= 3, lat
        c = client(p.url, attempts=1, read_timeout=0.1)
        timeouts = 0
        for i in range(12):
            try:
                c.get_item(TableName='slow_t', Key={'k': {'S': 't%d' % i}})
            except botocore.exceptions.ReadTimeoutError:
                timeouts += 1
        assert 0 < timeouts < 12, timeouts
        assert p.stats()['faults']['slow'] >= 24


def check_tail():
    """A heavy tail: a seeded share of answers late by tail_ms to twice that, the others not."""
    make_table(DIRECT, 'tail_t')
    with Proxy('--seed', '17') as p:
        p.config(profile='none', tail_rate=0.25, tail_ms=200)
        raw = Raw(p.url)
        lat = []
        for i in range(40):
            t = time.monotonic()
            st, _, _ = raw.call('GetItem', {'TableName': 'tail_t', 'Key': {'k': {'S': 't%d' % i}}})
            lat.append(time.monotonic() - t)
            assert st == 200
        tails = p.stats()['faults']['tail']
        assert 0 < tails < 40, tails  # seeded: the same share every run
        # Every tail answer is at least tail_ms late (a slow machine may add late ones).
        assert sum(1 for x in lat if x >= 0.2) >= tails, lat
        p.config(tail_rate=0)
        for i in range(40):
            raw.call('GetItem', {'TableName': 'tail_t', 'Key': {'k': {'S': 't%d' % i}}})
        assert p.stats()['faults']['tail'] == tails, 'tail_rate 0 still delays'


def check_pages():
    """Scan and Query pages are cut at scan_page_bytes; paging still returns every item once."""
    make_table(DIRECT, 'page_s')
    make_table(DIRECT, 'page_q', hash_='p', range_='r')
    for i in range(50):
        DIRECT.put_item(TableName='page_s', Item={'k': {'S': 'p%02d' % i}, 'pad': {'S': 'x' * 80}})
        DIRECT.put_item(TableName='page_q', Item={'p': {'S': 'one'}, 'r': {'N': str(i)}, 'pad': {'S': 'y' * 80}})
    limit = 1000
    with Proxy('--seed', '19') as p:
        p.config(profile='none', scan_page_bytes=limit)
        c = client(p.url)

        def pages(op, **kw):
            out, start = [], None
            while True:
                if start:
                    kw['ExclusiveStartKey'] = start
                r = getattr(c, op)(**kw)
                out.append(r)
                start = r.get('LastEvaluatedKey')
                if not start:
                    return out

        for op, kw, keys in (('scan', {'TableName': 'page_s'}, ['k']),
                             ('query', {'TableName': 'page_q', 'KeyConditionExpression': 'p = :p',
                                        'ExpressionAttributeValues': {':p': {'S': 'one'}}}, ['p', 'r']),
                             ('query', {'TableName': 'page_q', 'KeyConditionExpression': 'p = :p',
                                        'ExpressionAttributeValues': {':p': {'S': 'one'}}, 'ScanIndexForward': False},
                              ['p', 'r'])):
            ps = pages(op, **kw)
            assert len(ps) >= 4, '%s: %d pages' % (op, len(ps))
            got = []
            for r in ps:
                items = r['Items']
                assert r['Count'] == len(items) and r['ScannedCount'] == len(items), r
                assert sum(item_size(i) for i in items[:-1]) <= limit, 'page over the limit'
                if 'LastEvaluatedKey' in r:
                    assert r['LastEvaluatedKey'] == {k: items[-1][k] for k in keys}, r['LastEvaluatedKey']
                got += [canon({k: i[k] for k in keys}) for i in items]
            assert len(got) == 50 and len(set(got)) == 50, '%s returned %d items, %d distinct' % (op, len(got), len(set(got)))
            if op == 'query':
                rs = [int(json.loads(g)['r']['N']) for g in got]
                assert rs == sorted(rs, reverse=not kw.get('ScanIndexForward', True)), rs
        assert p.stats()['faults']['scan_cut'] >= 9


def check_ttl():
    """The TTL sweeper deletes expired items, late (by the seeded delay) but surely, and only them."""
    seed, late_ms, sweep_ms = 23, 2000, 100
    make_table(DIRECT, 'ttl_t')
    with Proxy('--seed', str(seed)) as p:
        p.config(profile='none', ttl_mode='auto', ttl_sweep_ms=sweep_ms, ttl_late_ms=late_ms)
        c = client(p.url)
        # As the CLI's create-table does: ask first (dynalite answers that one), then enable.
        d = c.describe_time_to_live(TableName='ttl_t')['TimeToLiveDescription']
        assert d == {'TimeToLiveStatus': 'DISABLED'}, d
        c.update_time_to_live(TableName='ttl_t', TimeToLiveSpecification={'AttributeName': 'exp', 'Enabled': True})
        d = c.describe_time_to_live(TableName='ttl_t')['TimeToLiveDescription']
        assert d == {'TimeToLiveStatus': 'ENABLED', 'AttributeName': 'exp'}, d

        def late(k, v):
            return make_rng([str(seed), 'ttl', 'ttl_t', canon({'k': {'S': k}}), v])() * late_ms / 1000
        # A key expired now that the sweeper will delete late: its TTL is moved on before that
        # (after the sweeper saw it expired), and the conditional delete must leave it.
        now = time.time()
        cond_exp = str(int(now))
        cond = next(k for k in ('cond%d' % i for i in range(1000)) if int(cond_exp) + late(k, cond_exp) > now + 0.8)
        c.put_item(TableName='ttl_t', Item={'k': {'S': cond}, 'exp': {'N': cond_exp}})
        # Items expiring within a second, deleted each at its seeded lateness after that.
        exp = str(int(time.time()) + 1)
        due = {}
        for i in range(12):
            c.put_item(TableName='ttl_t', Item={'k': {'S': 'old%d' % i}, 'exp': {'N': exp}})
            due['old%d' % i] = int(exp) + late('old%d' % i, exp)
        for i in range(4):
            c.put_item(TableName='ttl_t', Item={'k': {'S': 'live%d' % i}, 'exp': {'N': str(int(time.time()) + 3600)}})
        c.put_item(TableName='ttl_t', Item={'k': {'S': 'text'}, 'exp': {'S': exp}})
        c.put_item(TableName='ttl_t', Item={'k': {'S': 'ancient'}, 'exp': {'N': str(int(time.time()) - 10 * 365 * 86400)}})
        time.sleep(max(0.0, now + 0.3 - time.time()))
        c.update_item(TableName='ttl_t', Key={'k': {'S': cond}}, UpdateExpression='SET #e = :e',
                      ExpressionAttributeNames={'#e': 'exp'}, ExpressionAttributeValues={':e': {'N': str(int(time.time()) + 3600)}})
        gone_at = {}
        while time.time() < int(exp) + late_ms / 1000 + 1.0 and len(gone_at) < 12:
            present = {i['k']['S'] for i in DIRECT.scan(TableName='ttl_t', ConsistentRead=True)['Items']}
            for k in due:
                if k not in present and k not in gone_at:
                    gone_at[k] = time.time()
            time.sleep(0.05)
        assert set(gone_at) == set(due), 'not deleted: %s' % sorted(set(due) - set(gone_at))
        for k, t in gone_at.items():
            assert t >= due[k] - 0.05, '%s deleted %.0f ms before its seeded time' % (k, (due[k] - t) * 1000)
            assert t <= due[k] + sweep_ms / 1000 + 0.6, '%s deleted %.0f ms after its seeded time' % (k, (t - due[k]) * 1000)
        spread = max(gone_at.values()) - min(gone_at.values())
        assert spread > 0.5, 'all deleted within %.0f ms: not late by a spread of delays' % (spread * 1000)
        left = {i['k']['S'] for i in DIRECT.scan(TableName='ttl_t', ConsistentRead=True)['Items']}
        assert left == {'live0', 'live1', 'live2', 'live3', 'text', 'ancient', cond}, left
        assert p.stats()['faults']['ttl_deleted'] == 12
        c.update_time_to_live(TableName='ttl_t', TimeToLiveSpecification={'AttributeName': 'exp', 'Enabled': False})
        assert c.describe_time_to_live(TableName='ttl_t')['TimeToLiveDescription']['TimeToLiveStatus'] == 'DISABLED'


def check_replay():
    """Same seed, same decisions for a key, whatever order other keys' requests come in."""
    make_table(DIRECT, 'rep_t')
    settings = dict(profile='none', reset_before_rate=0.1, error_500_before_rate=0.1, error_503_rate=0.05,
                    reset_after_rate=0.1, error_500_after_rate=0.1, throttle_rate=0.1, unprocessed_rate=0.5)
    keys = ['K%d' % i for i in range(5)]

    def step(raw, k, i):
        if i % 3 == 2:
            st, h, b = raw.call('BatchWriteItem', {'RequestItems': {'rep_t': [
                {'PutRequest': {'Item': {'k': {'S': '%s-%d' % (k, j)}}}} for j in range(6)]}})
            if st == 200:
                return (st, canon(b.get('UnprocessedItems', {})))
        else:
            st, h, b = raw.call('PutItem', {'TableName': 'rep_t', 'Item': {'k': {'S': k}, 'i': {'N': str(i)}}})
        return (st, b['__type'] if isinstance(b, dict) and '__type' in b else None)

    def run(seed, order):
        with Proxy('--seed', str(seed)) as p:
            p.config(**settings)
            raw = Raw(p.url)
            return {(k, i): step(raw, k, i) for k, i in order}

    key_major = [(k, i) for k in keys for i in range(9)]
    round_robin = [(k, i) for i in range(9) for k in reversed(keys)]
    a, b, other = run(42, key_major), run(42, round_robin), run(43, key_major)
    assert a == b, 'same seed, different decisions: %s' % [(x, a[x], b[x]) for x in a if a[x] != b[x]]
    assert a != other, 'another seed gave the same decisions'
    assert len(set(a.values())) >= 4, 'too few kinds of outcome to mean anything: %s' % set(a.values())

    # And they are the documented draws: sha256(seed, op, table, key, n) -> xoshiro128**.
    with Proxy('--seed', '77') as p:
        p.config(profile='none', error_500_before_rate=0.3)
        raw = Raw(p.url)
        key = {'k': {'S': 'predicted'}}
        got = [raw.call('PutItem', {'TableName': 'rep_t', 'Item': dict(key)})[0] for _ in range(20)]
        want = [500 if draws(77, 'PutItem', 'rep_t', canon(key), n)['e500b'] < 0.3 else 200 for n in range(20)]
        assert got == want, (got, want)


def check_cli():
    """The CLI through the default profile: create-table, set, get, incr, add."""
    if not os.access(CLI, os.X_OK):
        assert not CLI_GIVEN, 'no CLI at %s' % CLI
        print('  (skipped: no CLI at %s)' % CLI)
        return
    with Proxy('--seed', '29', '--profile', 'default') as p:
        env = dict(os.environ, AWS_ENDPOINT_URL_DYNAMODB=p.url)

        def cli(*a, stdin=None):
            r = subprocess.run([CLI, '--table', 'cli_faults', '--max-attempts', '10'] + list(a), env=env,
                               capture_output=True, text=True, timeout=60, input=stdin)
            return r.returncode, r.stdout, r.stderr
        assert cli('create-table')[0] == 0
        assert cli('set', 'k1', 'hello')[0] == 0
        rc, out, err = cli('--consistent-read', 'get', 'k1')
        assert (rc, out) == (0, 'hello'), (rc, out, err)
        time.sleep(0.6)
        rc, out, err = cli('get', 'k1')
        assert (rc, out) == (0, 'hello'), (rc, out, err)
        rc, out, err = cli('incr', 'n', '5')
        assert rc == 0 and int(out) >= 5, (rc, out, err)
        rc2, out2, err2 = cli('incr', 'n', '3')
        assert rc2 == 0 and int(out2) >= int(out) + 3, (rc2, out2, err2)
        assert cli('add', 'a', 'v')[0] == 0
        assert cli('add', 'a', 'v')[0] == 1
        s = p.stats()
        print('  cli through the default profile: requests %s faults %s' % (
            s['requests'], {k: v for k, v in s['faults'].items() if v}))


CHECKS = [check_passthrough, check_stale_reads, check_throttle, check_unprocessed, check_errors_and_resets,
          check_slow, check_tail, check_pages, check_ttl, check_replay, check_cli]


def main():
    outer = os.environ.get('FAULT_PROXY_URL')
    if outer:
        assert loopback(outer)
        req = urllib.request.Request(outer + '/__faults/config', data=json.dumps(NONE).encode(), method='POST')
        urllib.request.urlopen(req, timeout=5).read()
    only = set(filter(None, os.environ.get('FAULT_TEST_ONLY', '').split(',')))
    failed = []
    t_all = time.monotonic()
    for check in CHECKS:
        name = check.__name__[len('check_'):]
        if only and name not in only:
            continue
        t = time.monotonic()
        try:
            check()
            print('ok   %-20s %.1f s' % (name, time.monotonic() - t), flush=True)
        except Exception:
            failed.append(name)
            print('FAIL %-20s %.1f s' % (name, time.monotonic() - t), flush=True)
            traceback.print_exc()
    print('%d checks, %d failed, %.1f s' % (len(CHECKS), len(failed), time.monotonic() - t_all))
    return 1 if failed else 0


if __name__ == '__main__':
    sys.exit(main())
