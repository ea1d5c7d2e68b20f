#!/usr/bin/env node
// A seeded fault and semantics proxy in front of a local DynamoDB (dynalite, DynamoDB Local).
//
// A local server is one node: every read is strongly consistent, nothing is throttled, batches
// are processed whole, no server error, no lost answer, no 1 MB page, no TTL sweeper. Real
// DynamoDB does all of these; this proxy makes a local server do them too, so the library and
// its users can be tested against the behaviours they must survive.
//
//   node tests/faults/proxy.js --upstream http://127.0.0.1:PORT [--port 0] [--seed N]
//        [--profile none|default|heavy] [--config FILE.json] [--set key=value ...] [--log FILE]
//
// Prints exactly one line, `listening PORT`, on stdout when ready, and nothing else there.
//   GET  /__faults/stats   {"seed":N,"requests":{"GetItem":n,...},"faults":{"stale_read":n,...}}
//   GET  /__faults/config  the settings in force
//   POST /__faults/config  a JSON object of settings (a "profile" key first resets to that
//                          profile's values, the others then apply); answers the new settings
// SIGTERM/SIGINT: the stats JSON as one line on stderr, exit 0. Node 20, core modules only.
// The upstream must be http:// on a loopback address; anything else is refused.
//
// Behaviours (settings in SETTINGS below; each is off at 0; profile `none` turns all off):
//  1. Eventual consistency (stale_rate, stale_ms). Every write that passes (PutItem,
//     UpdateItem, DeleteItem, BatchWriteItem, TransactWriteItems, and the TTL sweeper's
//     deletes) is followed by a consistent GetItem upstream, and the image (or its absence)
//     is recorded with the time; before the first recorded write of a key its image is read
//     first, so the history starts with what was there. An eventually consistent GetItem,
//     BatchGetItem, Query or Scan is, with probability stale_rate, answered as of a time t
//     drawn in [now - stale_ms, now]: each key with a write recorded after t gets the image
//     current at t (the request itself is still forwarded, for validation errors and
//     ConsumedCapacity); other keys keep the server's answer, so keys never written through
//     the proxy, or changed around it (a native TTL), pass through. The history is dropped when
//     stale_rate is set to 0 (its writes are not recorded then). Query and Scan only replace or
//     drop the items the server returned (an item deleted since t is not brought back), and
//     are left alone with a filter or Select=COUNT. A projection with nested paths skips it.
//  2. Throttling (throttle_scale, throttle_burst_s, throttle_rate). A token bucket per
//     (table, partition key value, read|write) refills at DynamoDB's per-partition rates (3,000
//     read units and 1,000 write units a second) times throttle_scale, and holds
//     throttle_burst_s seconds of them. Units as DynamoDB counts them: reads 4 KB per unit
//     (an item, or a Query/Scan page's total), half for eventually consistent ones, writes 1
//     KB per unit, transactions twice; a read is charged an estimate (the item's last seen
//     size) before and the rest after its answer. A request whose units are not in its bucket
//     (one bigger than the bucket: unless it is full) is refused: for a
//     provisioned table 400 ProvisionedThroughputExceededException, for an on-demand
//     (PAY_PER_REQUEST) table 400 ThrottlingException, each with ThrottlingReasons
//     [{reason: Table{Read,Write}KeyRangeThroughputExceeded, resource: the table's ARN}].
//     Batch items on an empty bucket become unprocessed; when none is left the whole request
//     is throttled, as DynamoDB does. throttle_rate adds seeded throttles without buckets.
//     Scans, which read every partition, are not throttled.
//  3. Unprocessed batch entries (unprocessed_rate, unprocessed_share): a BatchGetItem or
//     BatchWriteItem is forwarded with only part of its entries, the rest returned as
//     UnprocessedKeys (with the table's ProjectionExpression etc.) / UnprocessedItems.
//  4. 500 InternalServerError and 503 ServiceUnavailable: before forwarding (not applied;
//     error_500_before_rate, error_503_rate) and after (applied, the answer replaced;
//     error_500_after_rate, error_503_after_rate). Bodies: 500
//     {"__type":"com.amazonaws.dynamodb.v20120810#InternalServerError",...}; 503 the
//     ServiceUnavailable of DynamoDB's common-errors list, in the same namespace (the namespace
//     real DynamoDB puts on a 503 is not documented; clients key on the status and the name).
//  5. Connection resets (a TCP RST): before forwarding (reset_before_rate) and after it, the
//     answer lost (reset_after_rate). Slow answers (slow_rate): delayed by up to slow_ms, half
//     of them before forwarding and half after (applied, then late: a client that times out
//     sees a write it thinks failed); slow_long_share of them by slow_long_ms instead (11 s:
//     past the library's 10 s request timeout). A heavy tail (tail_rate, tail_ms): answers
//     held after the server answered (applied, then late) by tail_ms to 2 x tail_ms, a small
//     share of answers 10-20x slower than the median when tail_ms is 10x it (bench/run's
//     hedged reads: tail_rate 0.02). Each request of a key draws anew, so a read sent again
//     is late again only with probability tail_rate.
//  6. Pages cut (scan_page_bytes, DynamoDB's is 1 MB): a Scan or Query answer with more item
//     bytes is truncated, LastEvaluatedKey set to the last returned item's key (the index's
//     keys too for an index), Count fixed, and ScannedCount = Count (an undercount with a
//     filter, since the server's scanned items past the cut are unknown).
//  7. TTL (ttl_mode auto|proxy|passthrough, ttl_sweep_ms, ttl_late_ms). dynalite answers
//     UpdateTimeToLive with 400 com.amazon.coral.service#UnknownOperationException (and
//     DescribeTimeToLive with DISABLED, always). In `auto` an upstream that answers
//     UpdateTimeToLive so gets the proxy's own UpdateTimeToLive/DescribeTimeToLive
//     (`proxy` always, `passthrough` never), and a sweeper that every ttl_sweep_ms scans
//     (consistently) each table with TTL enabled and deletes items whose TTL number (epoch
//     seconds) is past, each one late by a seeded delay up to ttl_late_ms, with a condition that
//     the TTL attribute still holds the value seen. As DynamoDB, items expired more than five
//     years ago and non-numbers are ignored.
//
// dynalite has no transactions: TransactWriteItems/TransactGetItems handling (history,
// throttling, errors) is written for DynamoDB Local and untested against dynalite.
//
// Only data operations get faults (GetItem, PutItem, UpdateItem, DeleteItem, BatchGetItem,
// BatchWriteItem, Query, Scan, TransactGetItems, TransactWriteItems); control operations
// (CreateTable, DescribeTable, ...) pass through. Every answer the proxy changes or makes has a
// correct x-amz-crc32 (CRC32 of the body, decimal) and Content-Length; x-amzn-RequestId is
// kept (a made answer gets a fresh one).
//
// Replay. Each data request gets a PRNG seeded by sha256(seed, operation, table, key, n) where
// key is the item key (a batch: its sorted keys; Query: its key condition and start key; Scan:
// its segment and start key) and n counts earlier requests with the same (operation, table,
// key). Every draw is taken in a fixed order whatever the settings. So a key's sequence of
// decisions (resets, errors, unprocessed subsets, stale times as offsets, slow delays, the TTL
// sweeper's lateness) replays exactly for the same seed when the client sends that key's
// requests in the same order, whatever other keys do. What cannot replay: token-bucket
// throttling (it depends on timing), which image a stale read picks (t is replayed as an offset
// from now, but the history it indexes depends on when writes happened), when a TTL sweep
// passes, how slow answers interleave with client timeouts, and the order concurrent requests
// to one key reach the proxy. With the n-th request count kept per key in a bounded map
// (MAX_COUNTERS), a run over more keys than that loses exact replay for evicted keys.
//
// Bounds: request bodies 17 MB, upstream answers 64 MB, headers 16 KB, 512 client connections,
// 64 upstream sockets, 60 s per request, history 100,000 keys x 32 images, 200,000 buckets.
'use strict';

const http = require('http');
const fs = require('fs');
const crypto = require('crypto');
const zlib = require('zlib');

const FAULT_KINDS = ['stale_read', 'throttle', 'unprocessed', 'error_500_before', 'error_500_after', 'error_503',
  'reset_before', 'reset_after', 'slow', 'scan_cut', 'ttl_deleted', 'tail'];
const DATA_OPS = new Set(['GetItem', 'PutItem', 'UpdateItem', 'DeleteItem', 'BatchGetItem', 'BatchWriteItem',
  'Query', 'Scan', 'TransactGetItems', 'TransactWriteItems']);
const WRITE_OPS = new Set(['PutItem', 'UpdateItem', 'DeleteItem']);

const MAX_BODY = 17 * 1024 * 1024;
const MAX_UPSTREAM_BODY = 64 * 1024 * 1024;
const MAX_HISTORY_KEYS = 100000;
const MAX_IMAGES_PER_KEY = 32;
const MAX_BUCKETS = 200000;
const MAX_COUNTERS = 1000000;
const MAX_TTL_PENDING = 100000;
const REQUEST_TIMEOUT_MS = 60000;
const UPSTREAM_TIMEOUT_MS = 30000;

// Settings. Rates are probabilities per request; times in milliseconds.
const SETTINGS = {
  stale_rate: 0, stale_ms: 500,
  throttle_scale: 0, throttle_burst_s: 1, throttle_rate: 0,
  unprocessed_rate: 0, unprocessed_share: 0.5,
  error_500_before_rate: 0, error_500_after_rate: 0, error_503_rate: 0, error_503_after_rate: 0,
  reset_before_rate: 0, reset_after_rate: 0,
  slow_rate: 0, slow_ms: 0, slow_long_share: 0, slow_long_ms: 11000,
  tail_rate: 0, tail_ms: 0,
  scan_page_bytes: 0,
  ttl_mode: 'passthrough', ttl_sweep_ms: 500, ttl_late_ms: 0,
};
const PROFILES = {
  none: {},
  default: {
    stale_rate: 0.5, stale_ms: 500,
    throttle_scale: 0.01, throttle_burst_s: 1,
    unprocessed_rate: 0.1, unprocessed_share: 0.5,
    error_500_before_rate: 0.01, error_500_after_rate: 0.005, error_503_rate: 0.005, error_503_after_rate: 0.002,
    reset_before_rate: 0.005, reset_after_rate: 0.005,
    slow_rate: 0.02, slow_ms: 200,
    scan_page_bytes: 16384,
    ttl_mode: 'auto', ttl_sweep_ms: 250, ttl_late_ms: 2000,
  },
  heavy: {
    stale_rate: 0.9, stale_ms: 2000,
    throttle_scale: 0.002, throttle_burst_s: 1,
    unprocessed_rate: 0.3, unprocessed_share: 0.5,
    error_500_before_rate: 0.03, error_500_after_rate: 0.02, error_503_rate: 0.02, error_503_after_rate: 0.01,
    reset_before_rate: 0.02, reset_after_rate: 0.02,
    slow_rate: 0.05, slow_ms: 1000, slow_long_share: 0.05, slow_long_ms: 11000,
    scan_page_bytes: 2048,
    ttl_mode: 'auto', ttl_sweep_ms: 250, ttl_late_ms: 5000,
  },
};

function die(msg) {
  process.stderr.write(`fault proxy: ${msg}\n`);
  process.exit(2);
}

// ---------------------------------------------------------------- configuration

function profileConfig(name) {
  if (!Object.prototype.hasOwnProperty.call(PROFILES, name)) throw new Error(`unknown profile ${name}`);
  return Object.assign({profile: name}, SETTINGS, PROFILES[name]);
}

function coerce(key, value) {
  if (key === 'profile') return String(value);
  if (!Object.prototype.hasOwnProperty.call(SETTINGS, key)) throw new Error(`unknown setting ${key}`);
  const want = typeof SETTINGS[key];
  if (want === 'number') {
    const n = typeof value === 'number' ? value : Number(value);
    if (!Number.isFinite(n) || n < 0) throw new Error(`${key}: not a number >= 0: ${value}`);
    if (key.endsWith('_rate') && n > 1) throw new Error(`${key}: a rate is at most 1`);
    return n;
  }
  const s = String(value);
  if (key === 'ttl_mode' && !['auto', 'proxy', 'passthrough'].includes(s)) throw new Error('ttl_mode: auto|proxy|passthrough');
  return s;
}

// A new config: `base`, reset to obj.profile's values if it names one, then obj's other keys.
function applyConfig(base, obj) {
  if (obj === null || typeof obj !== 'object' || Array.isArray(obj)) throw new Error('settings must be a JSON object');
  let cfg = Object.assign({}, base);
  if (obj.profile !== undefined) cfg = profileConfig(String(obj.profile));
  for (const [k, v] of Object.entries(obj)) if (k !== 'profile') cfg[k] = coerce(k, v);
  return cfg;
}

function parseArgs(argv) {
  const o = {upstream: null, port: 0, seed: 1, profile: 'default', configFile: null, sets: {}, log: null};
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const val = () => {
      if (i + 1 >= argv.length) die(`${a} needs a value`);
      return argv[++i];
    };
    if (a === '--upstream') o.upstream = val();
    else if (a === '--port') o.port = Number(val());
    else if (a === '--seed') o.seed = Number(val());
    else if (a === '--profile') o.profile = val();
    else if (a === '--config') o.configFile = val();
    else if (a === '--log') o.log = val();
    else if (a === '--set') {
      const kv = val(), eq = kv.indexOf('=');
      if (eq <= 0) die(`--set wants key=value, got ${kv}`);
      o.sets[kv.slice(0, eq)] = kv.slice(eq + 1);
    } else die(`unknown argument ${a}`);
  }
  if (!o.upstream) die('--upstream http://127.0.0.1:PORT is required');
  if (!Number.isInteger(o.port) || o.port < 0 || o.port > 65535) die('--port: 0..65535');
  if (!Number.isSafeInteger(o.seed)) die('--seed: an integer');
  return o;
}

function loopbackUpstream(s) {
  let u;
  try {
    u = new URL(s);
  } catch (e) {
    die(`--upstream: not a URL: ${s}`);
  }
  if (u.protocol !== 'http:') die('--upstream: only http:// is supported');
  const h = u.hostname.replace(/^\[|\]$/g, '');
  const ok = /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(h) || h === '::1' || h === 'localhost';
  if (!ok) die(`--upstream: ${h} is not a loopback address; this proxy talks to 127.0.0.1 only`);
  return {host: h === 'localhost' ? '127.0.0.1' : h, port: Number(u.port || 80)};
}

// ---------------------------------------------------------------- helpers

function crc32(buf) {
  return zlib.crc32(buf) >>> 0;
}

// xoshiro128** seeded from sha256 of the parts: one stream of uniform [0,1) draws.
function makeRng(parts) {
  const d = crypto.createHash('sha256').update(parts.join('\u0000')).digest();
  const s = [d.readUInt32LE(0), d.readUInt32LE(4), d.readUInt32LE(8), d.readUInt32LE(12)];
  if ((s[0] | s[1] | s[2] | s[3]) === 0) s[0] = 1;
  return function next() {
    const result = Math.imul(rotl(Math.imul(s[1], 5), 7), 9) >>> 0;
    const t = s[1] << 9;
    s[2] ^= s[0]; s[3] ^= s[1]; s[1] ^= s[2]; s[0] ^= s[3]; s[2] ^= t; s[3] = rotl(s[3], 11);
    return result / 4294967296;
  };
}
function rotl(x, k) {
  return (x << k) | (x >>> (32 - k));
}

// A canonical string of an attribute map (keys sorted at every level).
function canon(v) {
  if (v === null || typeof v !== 'object') return JSON.stringify(v);
  if (Array.isArray(v)) return '[' + v.map(canon).join(',') + ']';
  return '{' + Object.keys(v).sort().map(k => JSON.stringify(k) + ':' + canon(v[k])).join(',') + '}';
}

// DynamoDB's size of an item: names plus values.
function valueSize(v) {
  if (!v || typeof v !== 'object') return 0;
  if (v.S !== undefined) return Buffer.byteLength(v.S);
  if (v.N !== undefined) return Math.ceil(String(v.N).replace(/^[-+]|\.|e.*$/gi, '').replace(/^0+/, '').length / 2) + 1;
  if (v.B !== undefined) return Math.floor(String(v.B).length * 3 / 4);
  if (v.BOOL !== undefined || v.NULL !== undefined) return 1;
  if (v.SS) return v.SS.reduce((a, s) => a + Buffer.byteLength(s), 0);
  if (v.NS) return v.NS.reduce((a, n) => a + valueSize({N: n}), 0);
  if (v.BS) return v.BS.reduce((a, b) => a + Math.floor(b.length * 3 / 4), 0);
  if (v.L) return 3 + v.L.reduce((a, e) => a + 1 + valueSize(e), 0);
  if (v.M) return 3 + Object.entries(v.M).reduce((a, [k, e]) => a + 1 + Buffer.byteLength(k) + valueSize(e), 0);
  return 0;
}
function itemSize(item) {
  if (!item) return 0;
  let n = 0;
  for (const [k, v] of Object.entries(item)) n += Buffer.byteLength(k) + valueSize(v);
  return n;
}

function sleep(ms) {
  return new Promise(r => setTimeout(r, ms));
}

let requestIdCounter = 0;
function newRequestId() {
  return crypto.createHash('sha1').update(`fault-proxy-${process.pid}-${++requestIdCounter}`).digest('hex')
    .slice(0, 40).toUpperCase().replace(/[^A-Z0-9]/g, '0').padEnd(52, 'F');
}

// ---------------------------------------------------------------- state

const args = parseArgs(process.argv.slice(2));
const upstream = loopbackUpstream(args.upstream);
let config;
try {
  config = profileConfig(args.profile);
  if (args.configFile) config = applyConfig(config, JSON.parse(fs.readFileSync(args.configFile, 'utf8')));
  config = applyConfig(config, args.sets);
} catch (e) {
  die(e.message);
}
// Written synchronously, a line at a time, so a proxy stopped by a signal loses none.
let logFd = null;
if (args.log) {
  try {
    logFd = fs.openSync(args.log, 'a');
  } catch (e) {
    die(`--log: ${e.message}`);
  }
}

const stats = {seed: args.seed, requests: {}, faults: {}};
for (const k of FAULT_KINDS) stats.faults[k] = 0;

function fault(kind, ctx, detail) {
  stats.faults[kind]++;
  if (logFd !== null) {
    fs.writeSync(logFd, JSON.stringify({t: Date.now(), fault: kind, op: ctx && ctx.op, table: ctx && ctx.table,
      key: ctx && ctx.keyStr, n: ctx && ctx.n, detail}) + '\n');
  }
}

const agent = new http.Agent({keepAlive: true, maxSockets: 64, maxFreeSockets: 16});
const counters = new Map();      // op\0table\0key -> requests so far
const schemas = new Map();       // table -> {hash, range, billing, arn, indexes, at}
const history = new Map();       // table\0keycanon -> [{t, image|null}], oldest first
const buckets = new Map();       // table\0side\0pk -> {tokens, at}
const ttlTables = new Map();     // table -> {attr}  (tables whose TTL the proxy emulates)
const ttlPending = new Map();    // table\0keycanon -> {due, value, key}
const lastAuth = new Map();      // table -> headers to use for the proxy's own requests
let ttlUpstreamNative = null;    // auto mode: null unknown, true/false once UpdateTimeToLive was tried
let defaultAuth = null;

function now() {
  return Date.now();
}

// ---------------------------------------------------------------- upstream

// Sends one request upstream; resolves {status, headers, body(Buffer)}.
function upstreamRequest(path, headers, body) {
  return new Promise((resolve, reject) => {
    const h = Object.assign({}, headers, {host: `${upstream.host}:${upstream.port}`, 'content-length': body.length});
    delete h.connection;
    delete h['keep-alive'];
    delete h['transfer-encoding'];
    delete h.expect;
    const req = http.request({host: upstream.host, port: upstream.port, method: 'POST', path, headers: h, agent,
      timeout: UPSTREAM_TIMEOUT_MS});
    req.on('timeout', () => req.destroy(new Error('upstream timeout')));
    req.on('error', reject);
    req.on('response', res => {
      const chunks = [];
      let size = 0;
      res.on('data', c => {
        size += c.length;
        if (size > MAX_UPSTREAM_BODY) {
          req.destroy(new Error('upstream answer too large'));
          return;
        }
        chunks.push(c);
      });
      res.on('end', () => resolve({status: res.statusCode, headers: res.headers, body: Buffer.concat(chunks)}));
      res.on('error', reject);
    });
    req.end(body);
  });
}

function authFor(table) {
  return lastAuth.get(table) || defaultAuth || {
    authorization: 'AWS4-HMAC-SHA256 Credential=AKIDFAULTPROXY/20260101/us-east-1/dynamodb/aws4_request, ' +
      'SignedHeaders=host;x-amz-date, Signature=0000000000000000000000000000000000000000000000000000000000000000',
    'x-amz-date': '20260101T000000Z',
  };
}

// The proxy's own call: resolves {status, json}.
async function call(op, obj, table) {
  const headers = Object.assign({'content-type': 'application/x-amz-json-1.0',
    'x-amz-target': `DynamoDB_20120810.${op}`}, authFor(table));
  const r = await upstreamRequest('/', headers, Buffer.from(JSON.stringify(obj)));
  let json = null;
  try {
    json = JSON.parse(r.body.toString('utf8'));
  } catch (e) { /* leave null */ }
  return {status: r.status, json};
}

const MAX_SCHEMAS = 10000;

async function schemaOf(table) {
  if (typeof table !== 'string' || !table) return null;
  const s = schemas.get(table);
  if (s && now() - s.at < (s.missing ? 500 : 30000)) return s.missing ? null : s;
  if (schemas.size >= MAX_SCHEMAS) schemas.clear();
  const r = await call('DescribeTable', {TableName: table}, table);
  if (r.status !== 200 || !r.json || !r.json.Table) {
    // Remembered briefly, so requests to a missing table do not each cost a DescribeTable.
    if (r.status === 400) schemas.set(table, {missing: true, at: now()});
    return null;
  }
  const t = r.json.Table;
  const keysOf = ks => ({hash: (ks.find(k => k.KeyType === 'HASH') || {}).AttributeName,
    range: (ks.find(k => k.KeyType === 'RANGE') || {}).AttributeName});
  const indexes = {};
  for (const ix of (t.GlobalSecondaryIndexes || []).concat(t.LocalSecondaryIndexes || [])) indexes[ix.IndexName] = keysOf(ix.KeySchema);
  const billing = (t.BillingModeSummary && t.BillingModeSummary.BillingMode) ||
    (t.ProvisionedThroughput && t.ProvisionedThroughput.ReadCapacityUnits === 0 ? 'PAY_PER_REQUEST' : 'PROVISIONED');
  const out = Object.assign(keysOf(t.KeySchema), {billing, indexes, at: now(),
    arn: t.TableArn || `arn:aws:dynamodb:us-east-1:000000000000:table/${table}`});
  schemas.set(table, out);
  return out;
}

function keyOf(item, schema) {
  if (!item || !schema || !schema.hash || item[schema.hash] === undefined) return null;
  const k = {[schema.hash]: item[schema.hash]};
  if (schema.range) {
    if (item[schema.range] === undefined) return null;
    k[schema.range] = item[schema.range];
  }
  return k;
}

// ---------------------------------------------------------------- history (eventual consistency)

function histKey(table, key) {
  return table + '\u0000' + canon(key);
}

function record(table, key, image) {
  const hk = histKey(table, key);
  let h = history.get(hk);
  if (h) history.delete(hk);
  else {
    h = [];
    if (history.size >= MAX_HISTORY_KEYS) history.delete(history.keys().next().value);
  }
  h.push({t: now(), image, size: itemSize(image)});
  // Keep what a read within stale_ms may still need: the images after the horizon and the one
  // current at it.
  const horizon = now() - Math.max(config.stale_ms, 1) - 1000;
  while (h.length > 1 && (h[1].t <= horizon || h.length > MAX_IMAGES_PER_KEY)) h.shift();
  history.set(hk, h);
}

// The image at time t: {image, t}, or undefined when the server's current answer should stand:
// the key has no history, or no write recorded after t. (The latest record is only what the
// proxy last saw; the server may have changed since without it, by a native TTL delete or a
// client going around the proxy, and then its answer is the truer one.)
function imageAt(table, key, t) {
  const h = history.get(histKey(table, key));
  if (!h || !h.length) return undefined;
  let i = 0;  // before the first record: the first image, current at h[0].t > t >= now - stale_ms
  while (i + 1 < h.length && h[i + 1].t <= t) i++;
  return i === h.length - 1 ? undefined : h[i];
}

async function readConsistent(table, key) {
  const r = await call('GetItem', {TableName: table, Key: key, ConsistentRead: true}, table);
  if (r.status !== 200 || !r.json) return undefined;
  return r.json.Item || null;
}

async function recordBefore(table, key) {
  if (!config.stale_rate || history.has(histKey(table, key))) return;
  const img = await readConsistent(table, key);
  if (img !== undefined && !history.has(histKey(table, key))) record(table, key, img);
}

async function recordAfter(table, key) {
  if (!config.stale_rate) return;
  const img = await readConsistent(table, key);
  if (img !== undefined) record(table, key, img);
}

// Top-level projection of a read request: a function item -> projected item, or null when the
// projection has nested paths (then no stale answer is made).
function projector(req) {
  if (req.AttributesToGet) {
    const names = req.AttributesToGet;
    return item => pick(item, names);
  }
  if (!req.ProjectionExpression) return item => item;
  const eans = req.ExpressionAttributeNames || {};
  const names = [];
  for (const part of req.ProjectionExpression.split(',')) {
    const p = part.trim();
    if (!/^#?[A-Za-z0-9_]+$/.test(p)) return null;
    names.push(p.startsWith('#') ? eans[p] : p);
  }
  if (names.some(n => n === undefined)) return null;
  return item => pick(item, names);
}
function pick(item, names) {
  const out = {};
  for (const n of names) if (item[n] !== undefined) out[n] = item[n];
  return out;
}

// ---------------------------------------------------------------- throttling

function bucketTake(table, side, pk, units, cfg) {
  if (!cfg.throttle_scale || pk === undefined) return true;
  const rate = (side === 'read' ? 3000 : 1000) * cfg.throttle_scale;
  const cap = Math.max(rate * cfg.throttle_burst_s, 1);
  const bk = table + '\u0000' + side + '\u0000' + canon(pk);
  const t = now();
  let b = buckets.get(bk);
  if (!b) {
    if (buckets.size >= MAX_BUCKETS) buckets.delete(buckets.keys().next().value);
    b = {tokens: cap, at: t};
    buckets.set(bk, b);
  }
  b.tokens = Math.min(cap, b.tokens + (t - b.at) / 1000 * rate);
  b.at = t;
  // A request needs its units in the bucket (one bigger than the bucket, a full bucket); what a
  // read really used is charged after its answer (bucketCharge), so the bucket may go below 0.
  if (b.tokens < Math.min(units, cap) - 1e-9) return false;
  b.tokens -= units;
  return true;
}
function bucketCharge(table, side, pk, units, cfg) {
  if (!cfg.throttle_scale || pk === undefined) return;
  const b = buckets.get(table + '\u0000' + side + '\u0000' + canon(pk));
  if (b) b.tokens -= units;
}
function readUnits(bytes, consistent) {
  const u = Math.max(1, Math.ceil(bytes / 4096));
  return consistent ? u : u / 2;
}
function writeUnits(bytes) {
  return Math.max(1, Math.ceil(bytes / 1024));
}

function throttleBody(schema, table, side) {
  const ondemand = schema && schema.billing === 'PAY_PER_REQUEST';
  const reason = side === 'read' ? 'TableReadKeyRangeThroughputExceeded' : 'TableWriteKeyRangeThroughputExceeded';
  const resource = schema ? schema.arn : `arn:aws:dynamodb:us-east-1:000000000000:table/${table}`;
  if (ondemand) {
    return {__type: 'com.amazon.coral.availability#ThrottlingException',
      message: 'Throughput exceeds the current capacity of your table or index. DynamoDB is automatically ' +
        'scaling your table or index so please try again shortly. If exceptions persist, check if you have a ' +
        'hot key: https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/bp-partition-key-design.html',
      ThrottlingReasons: [{reason, resource}]};
  }
  return {__type: 'com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException',
    message: 'The level of configured provisioned throughput for the table was exceeded. ' +
      'Consider increasing your provisioning level with the UpdateTable API.',
    ThrottlingReasons: [{reason, resource}]};
}

// The partition key value a Query addresses (the index's for an index), or undefined.
function queryPartition(req, schema) {
  if (!schema) return undefined;
  const ks = req.IndexName ? schema.indexes[req.IndexName] : schema;
  if (!ks || !ks.hash) return undefined;
  if (req.KeyConditions && req.KeyConditions[ks.hash]) {
    const c = req.KeyConditions[ks.hash];
    return c.AttributeValueList && c.AttributeValueList[0];
  }
  if (!req.KeyConditionExpression) return undefined;
  const eans = req.ExpressionAttributeNames || {}, eavs = req.ExpressionAttributeValues || {};
  for (const part of req.KeyConditionExpression.split(/\s+AND\s+/i)) {
    const m = /^\s*\(*\s*(#?[A-Za-z0-9_]+)\s*=\s*(:[A-Za-z0-9_]+)\s*\)*\s*$/.exec(part);
    if (!m) continue;
    const name = m[1].startsWith('#') ? eans[m[1]] : m[1];
    if (name === ks.hash) return eavs[m[2]];
  }
  return undefined;
}

// ---------------------------------------------------------------- answers

function send(ctx, status, headers, body) {
  const res = ctx.res;
  if (res.destroyed || res.writableEnded) return;
  const h = {};
  for (const [k, v] of Object.entries(headers || {})) {
    if (['content-length', 'x-amz-crc32', 'connection', 'keep-alive', 'transfer-encoding', 'date'].includes(k)) continue;
    h[k] = v;
  }
  h['content-length'] = body.length;
  h['x-amz-crc32'] = String(crc32(body));
  res.writeHead(status, h);
  res.end(body);
}

function sendJson(ctx, status, obj, requestId) {
  send(ctx, status, {'content-type': 'application/x-amz-json-1.0', 'x-amzn-requestid': requestId || newRequestId()},
    Buffer.from(JSON.stringify(obj)));
}

function reset(ctx) {
  const s = ctx.req.socket;
  if (s && !s.destroyed) {
    if (typeof s.resetAndDestroy === 'function') s.resetAndDestroy();
    else s.destroy();
  }
}

const ERR_500 = {__type: 'com.amazonaws.dynamodb.v20120810#InternalServerError', message: 'Internal server error'};
const ERR_503 = {__type: 'com.amazonaws.dynamodb.v20120810#ServiceUnavailable', message: 'Service unavailable'};

// ---------------------------------------------------------------- one data request

function requestKey(op, req, schema) {
  switch (op) {
    case 'GetItem': case 'DeleteItem': case 'UpdateItem':
      return req.Key ? canon(req.Key) : '';
    case 'PutItem':
      return canon(keyOf(req.Item, schema) || req.Item || null);
    case 'Query':
      return canon([req.IndexName || null, req.KeyConditionExpression || req.KeyConditions || null,
        req.ExpressionAttributeValues || null, req.ExclusiveStartKey || null]);
    case 'Scan':
      return canon([req.IndexName || null, req.Segment === undefined ? null : req.Segment, req.ExclusiveStartKey || null]);
    case 'BatchGetItem': {
      const ks = [];
      for (const [t, r] of Object.entries(req.RequestItems || {})) for (const k of r.Keys || []) ks.push(t + ':' + canon(k));
      return ks.sort().join('|');
    }
    case 'BatchWriteItem': {
      const ks = [];
      for (const [t, rs] of Object.entries(req.RequestItems || {})) {
        for (const r of rs || []) {
          const k = r.DeleteRequest ? r.DeleteRequest.Key : r.PutRequest ? r.PutRequest.Item : null;
          ks.push(t + ':' + canon(k));
        }
      }
      return ks.sort().join('|');
    }
    default:
      return canon((req.TransactItems || []).map(x => {
        const inner = x.Get || x.Put || x.Update || x.Delete || x.ConditionCheck || {};
        return [inner.TableName, inner.Key || inner.Item];
      }));
  }
}

function tableOf(op, req) {
  if (req.TableName) return req.TableName;
  if (req.RequestItems) return Object.keys(req.RequestItems).sort()[0] || '';
  if (req.TransactItems && req.TransactItems[0]) {
    const x = req.TransactItems[0];
    const inner = x.Get || x.Put || x.Update || x.Delete || x.ConditionCheck || {};
    return inner.TableName || '';
  }
  return '';
}

function nthRequest(op, table, keyStr) {
  const ck = op + '\u0000' + table + '\u0000' + keyStr;
  const n = counters.get(ck) || 0;
  if (n === 0 && counters.size >= MAX_COUNTERS) counters.delete(counters.keys().next().value);
  counters.set(ck, n + 1);
  return n;
}

// The keys a write request writes: [{table, key, size}]. Resolves schemas as needed.
async function writtenKeys(op, req) {
  const out = [];
  const add = async (table, key, item) => {
    const s = await schemaOf(table);
    const k = key || keyOf(item, s);
    if (k) out.push({table, key: k, size: item ? itemSize(item) : 0});
  };
  if (op === 'PutItem') await add(req.TableName, null, req.Item);
  else if (op === 'UpdateItem' || op === 'DeleteItem') await add(req.TableName, req.Key, null);
  else if (op === 'BatchWriteItem') {
    for (const [t, rs] of Object.entries(req.RequestItems || {})) {
      for (const r of rs || []) {
        if (r.PutRequest) await add(t, null, r.PutRequest.Item);
        else if (r.DeleteRequest) await add(t, r.DeleteRequest.Key, null);
      }
    }
  } else if (op === 'TransactWriteItems') {
    for (const x of req.TransactItems || []) {
      if (x.Put) await add(x.Put.TableName, null, x.Put.Item);
      else if (x.Update) await add(x.Update.TableName, x.Update.Key, null);
      else if (x.Delete) await add(x.Delete.TableName, x.Delete.Key, null);
    }
  }
  return out;
}

function knownSize(table, key) {
  const h = history.get(histKey(table, key));
  return h && h.length ? h[h.length - 1].size : 0;
}

async function handleData(ctx) {
  const cfg = config;  // one request sees one config
  const {op, json: req} = ctx;
  const table = ctx.table = tableOf(op, req);
  const schema = await schemaOf(table).catch(() => null);
  ctx.keyStr = requestKey(op, req, schema);
  ctx.n = nthRequest(op, table, ctx.keyStr);
  const rng = makeRng([String(args.seed), op, table, ctx.keyStr, String(ctx.n)]);
  // Every draw, in a fixed order, whatever the settings.
  const d = {resetBefore: rng(), e500b: rng(), e503b: rng(), throttle: rng(), slow: rng(), slowAmt: rng(),
    slowAfter: rng(), unproc: rng(), resetAfter: rng(), e500a: rng(), e503a: rng(), stale: rng(), staleAt: rng(),
    subsetSeed: Math.floor(rng() * 4294967296), slowLong: rng(), tail: rng(), tailAmt: rng()};

  if (d.resetBefore < cfg.reset_before_rate) {
    fault('reset_before', ctx);
    return reset(ctx);
  }
  if (d.e500b < cfg.error_500_before_rate) {
    fault('error_500_before', ctx);
    return sendJson(ctx, 500, ERR_500);
  }
  if (d.e503b < cfg.error_503_rate) {
    fault('error_503', ctx, 'before');
    return sendJson(ctx, 503, ERR_503);
  }

  const consistent = req.ConsistentRead === true;
  let body = ctx.body;
  let pk, side = 'read';

  // Throttling (whole request) for single-item operations and Query.
  if (op === 'GetItem' || op === 'PutItem' || op === 'UpdateItem' || op === 'DeleteItem' || op === 'Query') {
    side = op === 'GetItem' || op === 'Query' ? 'read' : 'write';
    if (op === 'Query') pk = queryPartition(req, schema);
    else {
      const k = op === 'PutItem' ? keyOf(req.Item, schema) : req.Key;
      pk = k && schema && schema.hash ? k[schema.hash] : undefined;
    }
    // Writes: the larger of the new item and the one it replaces (when the proxy saw it). Reads:
    // an estimate now (the item's last seen size), the rest charged when the answer is known.
    let units;
    if (side === 'write') {
      units = writeUnits(Math.max(op === 'PutItem' ? itemSize(req.Item) : 0, req.Key ? knownSize(table, req.Key) : 0));
    } else {
      units = readUnits(op === 'GetItem' && req.Key ? knownSize(table, req.Key) : 0, consistent);
    }
    ctx.readEstimate = side === 'read' ? units : 0;
    if (d.throttle < cfg.throttle_rate || !bucketTake(table, side, pk, units, cfg)) {
      fault('throttle', ctx, side);
      return sendJson(ctx, 400, throttleBody(schema, table, side));
    }
  } else if (op === 'TransactWriteItems' || op === 'TransactGetItems') {
    if (d.throttle < cfg.throttle_rate) {
      fault('throttle', ctx, 'transaction');
      return sendJson(ctx, 400, throttleBody(schema, table, op === 'TransactGetItems' ? 'read' : 'write'));
    }
    for (const x of req.TransactItems || []) {
      const inner = x.Get || x.Put || x.Update || x.Delete || x.ConditionCheck || {};
      const s = await schemaOf(inner.TableName).catch(() => null);
      const k = inner.Key || keyOf(inner.Item, s);
      const isRead = !!(x.Get || x.ConditionCheck);
      const u = 2 * (isRead ? readUnits(knownSize(inner.TableName, k || {}), true) :
        writeUnits(Math.max(itemSize(inner.Item), knownSize(inner.TableName, k || {}))));
      if (k && s && !bucketTake(inner.TableName, isRead ? 'read' : 'write', k[s.hash], u, cfg)) {
        fault('throttle', ctx, 'transaction');
        return sendJson(ctx, 400, throttleBody(s, inner.TableName, isRead ? 'read' : 'write'));
      }
    }
  }

  // Batches: some entries held back (unprocessed), throttled ones too.
  let heldBack = null;  // BatchGetItem: {table: [keys]}; BatchWriteItem: {table: [requests]}
  if (op === 'BatchGetItem' || op === 'BatchWriteItem') {
    const sub = makeRng([String(d.subsetSeed)]);
    const cut = d.unproc < cfg.unprocessed_rate;
    const forward = {}, held = {};
    let kept = 0, heldN = 0, throttledN = 0, throttleSide = 'read', throttleTable = table;
    for (const [t, r] of Object.entries(req.RequestItems || {})) {
      const s = await schemaOf(t).catch(() => null);
      const entries = op === 'BatchGetItem' ? (r.Keys || []) : (r || []);
      const fw = [], hb = [];
      for (const e of entries) {
        const draw = sub();
        let k, units, sd;
        if (op === 'BatchGetItem') {
          k = e; sd = 'read'; units = readUnits(knownSize(t, e), r.ConsistentRead === true);
        } else {
          sd = 'write';
          k = e.PutRequest ? keyOf(e.PutRequest.Item, s) : e.DeleteRequest ? e.DeleteRequest.Key : null;
          units = writeUnits(Math.max(e.PutRequest ? itemSize(e.PutRequest.Item) : 0, k ? knownSize(t, k) : 0));
        }
        if (cut && draw < cfg.unprocessed_share) {
          hb.push(e);
          heldN++;
        } else if (k && s && !bucketTake(t, sd, k[s.hash], units, cfg)) {
          hb.push(e);
          throttledN++;
          throttleSide = sd;
          throttleTable = t;
        } else {
          fw.push(e);
          kept++;
        }
      }
      if (fw.length) forward[t] = op === 'BatchGetItem' ? Object.assign({}, r, {Keys: fw}) : fw;
      if (hb.length) held[t] = hb;
    }
    if (heldN + throttledN > 0) {
      if (kept === 0) {
        // Nothing would be processed: DynamoDB throttles the whole request.
        fault('throttle', ctx, 'batch');
        return sendJson(ctx, 400, throttleBody(await schemaOf(throttleTable).catch(() => null), throttleTable,
          op === 'BatchGetItem' ? 'read' : 'write'));
      }
      if (heldN) fault('unprocessed', ctx, {held: heldN});
      if (throttledN) fault('throttle', ctx, {batch_entries: throttledN});
      heldBack = held;
      body = Buffer.from(JSON.stringify(Object.assign({}, req, {RequestItems: forward})));
      ctx.forwarded = Object.assign({}, req, {RequestItems: forward});
    }
  }

  let slow = d.slow < cfg.slow_rate ? Math.round(d.slowAmt * cfg.slow_ms) : 0;
  if (d.slow < cfg.slow_rate && d.slowLong < cfg.slow_long_share) slow = Math.max(slow, cfg.slow_long_ms);
  if (slow) fault('slow', ctx, {ms: slow, after: d.slowAfter < 0.5});
  if (slow && d.slowAfter >= 0.5) await sleep(slow);

  // Writes: the image before the first recorded write of each key.
  const fwdReq = ctx.forwarded || req;
  let writes = null;
  if (cfg.stale_rate && (WRITE_OPS.has(op) || op === 'BatchWriteItem' || op === 'TransactWriteItems')) {
    writes = await writtenKeys(op, fwdReq);
    await Promise.all(writes.map(w => recordBefore(w.table, w.key)));
  }

  ctx.forwarding = true;
  const up = await upstreamRequest(ctx.req.url, ctx.headers, body);
  let out = null;  // a changed answer object, or null to pass the upstream body through
  let answer = null;
  const encoded = up.headers['content-encoding'] && up.headers['content-encoding'] !== 'identity';
  if (up.status === 200 && !encoded) {
    try {
      answer = JSON.parse(up.body.toString('utf8'));
    } catch (e) { answer = null; }
  }

  if (answer) {
    // History after writes.
    if (writes && writes.length) {
      let done = writes;
      if (op === 'BatchWriteItem' && answer.UnprocessedItems && Object.keys(answer.UnprocessedItems).length) {
        const un = new Set();
        for (const [t, rs] of Object.entries(answer.UnprocessedItems)) for (const r of rs) un.add(t + '\u0000' + canon(r));
        const again = [];
        for (const [t, rs] of Object.entries(fwdReq.RequestItems)) for (const r of rs) if (!un.has(t + '\u0000' + canon(r))) again.push([t, r]);
        done = await writtenKeys(op, {RequestItems: again.reduce((a, [t, r]) => ((a[t] = a[t] || []).push(r), a), {})});
      }
      await Promise.all(done.map(w => recordAfter(w.table, w.key)));
    }
    // Capacity actually used by reads.
    if (op === 'GetItem') bucketCharge(table, 'read', pk, readUnits(itemSize(answer.Item), consistent) - ctx.readEstimate, cfg);
    if (op === 'Query' && answer.Items) {
      bucketCharge(table, 'read', pk, readUnits(answer.Items.reduce((a, it) => a + itemSize(it), 0), consistent) -
        ctx.readEstimate, cfg);
    }
    // Stale reads.
    if (!consistent && d.stale < cfg.stale_rate) {
      const t = now() - d.staleAt * cfg.stale_ms;
      if (staleAnswer(ctx, op, fwdReq, answer, t)) out = answer;
    }
    // Pages cut.
    if ((op === 'Scan' || op === 'Query') && cfg.scan_page_bytes && Array.isArray(answer.Items) && schema) {
      if (cutPage(ctx, req, answer, schema, cfg.scan_page_bytes)) out = answer;
    }
    // Held-back batch entries.
    if (heldBack) {
      if (op === 'BatchGetItem') {
        const u = answer.UnprocessedKeys = answer.UnprocessedKeys || {};
        for (const [t, keys] of Object.entries(heldBack)) {
          const r = Object.assign({}, req.RequestItems[t]);
          r.Keys = (u[t] && u[t].Keys ? u[t].Keys : []).concat(keys);
          u[t] = r;
        }
      } else {
        const u = answer.UnprocessedItems = answer.UnprocessedItems || {};
        for (const [t, rs] of Object.entries(heldBack)) u[t] = (u[t] || []).concat(rs);
      }
      out = answer;
    }
  }

  if (d.resetAfter < cfg.reset_after_rate) {
    fault('reset_after', ctx);
    return reset(ctx);
  }
  if (d.e500a < cfg.error_500_after_rate) {
    fault('error_500_after', ctx);
    return sendJson(ctx, 500, ERR_500, up.headers['x-amzn-requestid']);
  }
  if (d.e503a < cfg.error_503_after_rate) {
    fault('error_503', ctx, 'after');
    return sendJson(ctx, 503, ERR_503, up.headers['x-amzn-requestid']);
  }
  if (slow && d.slowAfter < 0.5) await sleep(slow);
  if (d.tail < cfg.tail_rate && cfg.tail_ms > 0) {
    const ms = Math.round(cfg.tail_ms * (1 + d.tailAmt));
    fault('tail', ctx, {ms});
    await sleep(ms);
  }
  if (out) send(ctx, up.status, up.headers, Buffer.from(JSON.stringify(out)));
  else sendRaw(ctx, up);
}

function sendRaw(ctx, up) {
  const res = ctx.res;
  if (res.destroyed || res.writableEnded) return;
  const h = {};
  for (const [k, v] of Object.entries(up.headers)) {
    if (['connection', 'keep-alive', 'transfer-encoding', 'content-length'].includes(k)) continue;
    h[k] = v;
  }
  h['content-length'] = up.body.length;
  res.writeHead(up.status, h);
  res.end(up.body);
}

// Rewrites a read's answer as of time t; true when anything changed.
function staleAnswer(ctx, op, req, answer, t) {
  let changed = false;
  const note = [];
  if (op === 'GetItem') {
    const proj = projector(req);
    const e = proj && imageAt(req.TableName, req.Key, t);
    if (!e) return false;
    const want = e.image ? proj(e.image) : null;
    if (canon(want) !== canon(answer.Item || null)) {
      if (want) answer.Item = want;
      else delete answer.Item;
      changed = true;
      note.push(e.t);
    }
  } else if (op === 'BatchGetItem') {
    for (const [tbl, r] of Object.entries(req.RequestItems || {})) {
      if (r.ConsistentRead === true) continue;
      const proj = projector(r);
      const s = schemas.get(tbl);
      if (!proj || !s) continue;
      const items = (answer.Responses && answer.Responses[tbl]) || [];
      const byKey = new Map();
      let matchable = true;
      for (const it of items) {
        const k = keyOf(it, s);
        if (!k) matchable = false;
        else byKey.set(canon(k), it);
      }
      if (!matchable) continue;
      const unproc = new Set(((answer.UnprocessedKeys && answer.UnprocessedKeys[tbl] && answer.UnprocessedKeys[tbl].Keys) || []).map(canon));
      const outItems = [];
      for (const k of r.Keys || []) {
        const ck = canon(k);
        if (unproc.has(ck)) continue;
        const e = imageAt(tbl, k, t);
        const cur = byKey.get(ck);
        if (!e) {
          if (cur) outItems.push(cur);
          continue;
        }
        const want = e.image ? proj(e.image) : null;
        if (canon(want) !== canon(cur || null)) {
          changed = true;
          note.push(e.t);
        }
        if (want) outItems.push(want);
      }
      if (changed) {
        answer.Responses = answer.Responses || {};
        answer.Responses[tbl] = outItems;
      }
    }
  } else if (op === 'Query' || op === 'Scan') {
    if (req.FilterExpression || req.ScanFilter || req.QueryFilter || req.Select === 'COUNT' || !Array.isArray(answer.Items)) return false;
    const proj = projector(req);
    const s = schemas.get(req.TableName);
    if (!proj || !s) return false;
    const outItems = [];
    for (const it of answer.Items) {
      const k = keyOf(it, s);
      const e = k && imageAt(req.TableName, k, t);
      if (!e) {
        outItems.push(it);
        continue;
      }
      const want = e.image ? proj(e.image) : null;
      if (canon(want) !== canon(it)) {
        changed = true;
        note.push(e.t);
      }
      if (want) outItems.push(want);
    }
    if (changed) {
      answer.Items = outItems;
      answer.Count = outItems.length;
    }
  }
  if (changed) fault('stale_read', ctx, {as_of_ms_ago: Math.round(now() - t)});
  return changed;
}

// Truncates a Scan/Query page at `limit` item bytes; true when it did.
function cutPage(ctx, req, answer, schema, limit) {
  const items = answer.Items;
  if (items.length <= 1) return false;
  let total = 0, keep = 0;
  for (const it of items) {
    const sz = itemSize(it);
    if (keep > 0 && total + sz > limit) break;
    total += sz;
    keep++;
  }
  if (keep >= items.length) return false;
  const last = items[keep - 1];
  const lek = {};
  const names = [schema.hash, schema.range];
  if (req.IndexName && schema.indexes[req.IndexName]) names.push(schema.indexes[req.IndexName].hash, schema.indexes[req.IndexName].range);
  for (const n of names) if (n && last[n] !== undefined) lek[n] = last[n];
  // A projection may have left the key attributes out; then the page stays whole.
  if (!schema.hash || lek[schema.hash] === undefined || (schema.range && lek[schema.range] === undefined)) return false;
  answer.Items = items.slice(0, keep);
  answer.Count = keep;
  answer.ScannedCount = keep;
  answer.LastEvaluatedKey = lek;
  fault('scan_cut', ctx, {kept: keep, of: items.length});
  return true;
}

// ---------------------------------------------------------------- TTL

function ttlEmulated(upstreamSaysUnknown) {
  if (config.ttl_mode === 'proxy') return true;
  if (config.ttl_mode === 'passthrough') return false;
  return upstreamSaysUnknown;
}

async function handleTtl(ctx) {
  const {op, json: req} = ctx;
  if (config.ttl_mode === 'passthrough') return false;
  if (config.ttl_mode === 'auto' && ttlUpstreamNative !== false) {
    // Only UpdateTimeToLive tells: dynalite answers DescribeTimeToLive (always DISABLED) but
    // not UpdateTimeToLive. Until that is known, a DescribeTimeToLive is the server's to answer.
    const up = await upstreamRequest(ctx.req.url, ctx.headers, ctx.body);
    if (op === 'DescribeTimeToLive') {
      sendRaw(ctx, up);
      return true;
    }
    const unknown = up.status === 400 && /UnknownOperationException/.test(up.body.toString('utf8'));
    if (!unknown) {
      ttlUpstreamNative = true;
      sendRaw(ctx, up);
      return true;
    }
    ttlUpstreamNative = false;
  }
  const table = req.TableName;
  const s = await schemaOf(table).catch(() => null);
  if (!s) {
    sendJson(ctx, 400, {__type: 'com.amazonaws.dynamodb.v20120810#ResourceNotFoundException',
      message: 'Requested resource not found'});
    return true;
  }
  if (op === 'DescribeTimeToLive') {
    const e = ttlTables.get(table);
    sendJson(ctx, 200, {TimeToLiveDescription: e ? {TimeToLiveStatus: 'ENABLED', AttributeName: e.attr} :
      {TimeToLiveStatus: 'DISABLED'}});
    return true;
  }
  const spec = req.TimeToLiveSpecification;
  if (!spec || typeof spec.AttributeName !== 'string' || !spec.AttributeName || typeof spec.Enabled !== 'boolean') {
    sendJson(ctx, 400, {__type: 'com.amazon.coral.validate#ValidationException',
      message: 'TimeToLiveSpecification needs AttributeName and Enabled'});
    return true;
  }
  const cur = ttlTables.get(table);
  if (spec.Enabled && cur) {
    sendJson(ctx, 400, {__type: 'com.amazon.coral.validate#ValidationException', message: 'TimeToLive is already enabled'});
    return true;
  }
  if (!spec.Enabled && !cur) {
    sendJson(ctx, 400, {__type: 'com.amazon.coral.validate#ValidationException', message: 'TimeToLive is already disabled'});
    return true;
  }
  if (spec.Enabled) ttlTables.set(table, {attr: spec.AttributeName});
  else ttlTables.delete(table);
  sendJson(ctx, 200, {TimeToLiveSpecification: {AttributeName: spec.AttributeName, Enabled: spec.Enabled}});
  return true;
}

const FIVE_YEARS_S = 5 * 365 * 24 * 3600;
let sweeping = false;

async function sweep() {
  if (sweeping || config.ttl_mode === 'passthrough') return;
  sweeping = true;
  try {
    const nowS = now() / 1000;
    for (const [table, e] of ttlTables) {
      const s = await schemaOf(table).catch(() => null);
      if (!s) {
        ttlTables.delete(table);  // the table went away
        continue;
      }
      let start, pages = 0;
      do {
        const q = {TableName: table, ConsistentRead: true, Limit: 1000};
        if (start) q.ExclusiveStartKey = start;
        const r = await call('Scan', q, table);
        if (r.status !== 200 || !r.json) break;
        for (const it of r.json.Items || []) {
          const v = it[e.attr];
          if (!v || v.N === undefined) continue;
          const exp = Number(v.N);
          if (!(exp < nowS) || exp < nowS - FIVE_YEARS_S) continue;
          const key = keyOf(it, s);
          if (!key) continue;
          const pk = histKey(table, key);
          const p = ttlPending.get(pk);
          if (p && p.value === v.N) continue;
          if (ttlPending.size >= MAX_TTL_PENDING) continue;
          const late = makeRng([String(args.seed), 'ttl', table, canon(key), v.N])() * config.ttl_late_ms;
          ttlPending.set(pk, {table, key, attr: e.attr, value: v.N, due: exp * 1000 + late});
        }
        start = r.json.LastEvaluatedKey;
      } while (start && ++pages < 100);
    }
    const t = now();
    for (const [pk, p] of ttlPending) {
      if (p.due > t) continue;
      ttlPending.delete(pk);
      if (!ttlTables.has(p.table)) continue;
      if (config.stale_rate) await recordBefore(p.table, p.key);
      const r = await call('DeleteItem', {TableName: p.table, Key: p.key, ConditionExpression: '#t = :v',
        ExpressionAttributeNames: {'#t': p.attr}, ExpressionAttributeValues: {':v': {N: p.value}}}, p.table);
      if (r.status === 200) {
        fault('ttl_deleted', {op: 'TTL', table: p.table, keyStr: canon(p.key)}, {late_ms: Math.round(t - Number(p.value) * 1000)});
        if (config.stale_rate) await recordAfter(p.table, p.key);
      }
    }
  } catch (e) {
    /* upstream down or busy: next sweep */
  } finally {
    sweeping = false;
  }
}

function scheduleSweep() {
  setTimeout(async () => {
    await sweep();
    scheduleSweep();
  }, Math.max(config.ttl_sweep_ms, 20)).unref();
}

// ---------------------------------------------------------------- server

function readBody(req) {
  return new Promise((resolve, reject) => {
    const chunks = [];
    let size = 0;
    req.on('data', c => {
      size += c.length;
      if (size > MAX_BODY) {
        reject(new Error('request body too large'));
        req.destroy();
        return;
      }
      chunks.push(c);
    });
    req.on('end', () => resolve(Buffer.concat(chunks)));
    req.on('error', reject);
  });
}

function adminAnswer(res, status, obj) {
  const body = Buffer.from(JSON.stringify(obj) + '\n');
  res.writeHead(status, {'content-type': 'application/json', 'content-length': body.length});
  res.end(body);
}

// True when every behaviour is off: the proxy only relays.
function inert(cfg) {
  if (cfg.ttl_mode !== 'passthrough') return false;
  for (const k of Object.keys(SETTINGS)) {
    if ((k.endsWith('_rate') || k === 'throttle_scale' || k === 'scan_page_bytes') && cfg[k]) return false;
  }
  return true;
}

async function handle(req, res) {
  let body;
  try {
    body = await readBody(req);
  } catch (e) {
    if (!res.headersSent && !res.destroyed) adminAnswer(res, 413, {error: e.message});
    return;
  }
  if (req.url.startsWith('/__faults/')) {
    if (req.url === '/__faults/stats' && req.method === 'GET') return adminAnswer(res, 200, stats);
    if (req.url === '/__faults/config' && req.method === 'GET') return adminAnswer(res, 200, config);
    if (req.url === '/__faults/config' && req.method === 'POST') {
      try {
        config = applyConfig(config, JSON.parse(body.toString('utf8')));
      } catch (e) {
        return adminAnswer(res, 400, {error: e.message});
      }
      // Writes are not recorded while stale reads are off: a history kept across such a phase
      // would miss its writes, and a later stale read could pick an image they had replaced.
      if (!config.stale_rate) history.clear();
      return adminAnswer(res, 200, config);
    }
    return adminAnswer(res, 404, {error: 'unknown admin path'});
  }
  const target = String(req.headers['x-amz-target'] || '');
  let op = target.slice(target.indexOf('.') + 1) || 'unknown';
  if (!/^[A-Za-z]{1,40}$/.test(op)) op = 'unknown';
  // The names come from the network: a bounded set of counters.
  const counted = stats.requests[op] !== undefined || Object.keys(stats.requests).length < 64 ? op : 'other';
  stats.requests[counted] = (stats.requests[counted] || 0) + 1;
  const headers = Object.assign({}, req.headers);
  const ctx = {req, res, body, op, headers, json: null};
  if (inert(config) && op !== 'CreateTable' && op !== 'DeleteTable' && op !== 'UpdateTable') {
    // Nothing to do but count: no parsing, no draws (a phase of profile none costs the least).
    return sendRaw(ctx, await upstreamRequest(req.url, headers, body));
  }
  try {
    ctx.json = JSON.parse(body.toString('utf8'));
  } catch (e) { /* not JSON: pass it through, the server answers */ }
  const auth = {};
  for (const h of ['authorization', 'x-amz-date', 'x-amz-security-token']) if (req.headers[h]) auth[h] = req.headers[h];
  if (auth.authorization) {
    defaultAuth = auth;
    if (ctx.json && ctx.json.TableName) {
      if (!lastAuth.has(ctx.json.TableName) && lastAuth.size > 10000) lastAuth.clear();
      lastAuth.set(ctx.json.TableName, auth);
    }
  }
  if (ctx.json && (op === 'CreateTable' || op === 'DeleteTable' || op === 'UpdateTable')) {
    schemas.delete(ctx.json.TableName);
    if (op === 'DeleteTable') ttlTables.delete(ctx.json.TableName);
  }
  if (ctx.json && (op === 'UpdateTimeToLive' || op === 'DescribeTimeToLive')) {
    if (await handleTtl(ctx)) return;
  }
  if (ctx.json && DATA_OPS.has(op)) {
    try {
      return await handleData(ctx);
    } catch (e) {
      // A request of a shape the proxy did not expect: the server says what is wrong with it.
      if (ctx.forwarding || ctx.res.headersSent || ctx.res.destroyed) throw e;
    }
  }
  const up = await upstreamRequest(req.url, headers, body);
  sendRaw(ctx, up);
}

const server = http.createServer({maxHeaderSize: 16384, keepAlive: true, requestTimeout: REQUEST_TIMEOUT_MS,
  headersTimeout: 10000}, (req, res) => {
  handle(req, res).catch(e => {
    // An upstream failure: a 500 as a load balancer would give (not counted as an injected fault).
    if (!res.headersSent && !res.destroyed) {
      const b = Buffer.from(JSON.stringify({__type: 'com.amazonaws.dynamodb.v20120810#InternalServerError',
        message: `fault proxy: upstream failed: ${e.message}`}));
      res.writeHead(500, {'content-type': 'application/x-amz-json-1.0', 'content-length': b.length,
        'x-amz-crc32': String(crc32(b)), 'x-amzn-requestid': newRequestId()});
      res.end(b);
    }
  });
});
server.keepAliveTimeout = 5000;
server.maxConnections = 512;
server.maxRequestsPerSocket = 0;
server.on('clientError', (err, socket) => {
  if (socket.writable) socket.end('HTTP/1.1 400 Bad Request\r\nconnection: close\r\ncontent-length: 0\r\n\r\n');
  else socket.destroy();
});

function stop() {
  process.stderr.write(JSON.stringify(stats) + '\n', () => process.exit(0));
}
process.on('SIGTERM', stop);
process.on('SIGINT', stop);

server.listen(args.port, '127.0.0.1', () => {
  process.stdout.write(`listening ${server.address().port}\n`);
  scheduleSweep();
});
