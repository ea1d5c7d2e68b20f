#include <zstd.h>

#include <array>
#include <atomic>
#include <charconv>
#include <cmath>
#include <condition_variable>
#include <cstdio>
#include <exception>
#include <limits>
#include <mutex>
#include <span>
#include <thread>
#include <type_traits>
#include <unordered_map>
#include <unordered_set>
#include <utility>

#include "dynamodb_cache/backend.h"
#include "dynamodb_cache/errors.h"
#include "cache/chunked.h"
#include "cache/dynamodb_items.h"
#include "cache/outcome.h"
#include "dynamodb/raw_call.h"
#include "dynamodb/wire.h"
#include "util/crypto.h"

namespace dynamodb_cache {

namespace ddb = dynamodb;

namespace {

constexpr std::size_t kMaxItemBytes = 400 * 1024;  // DynamoDB's item size limit
enum Format : int { kRaw = 1, kZstd = 2 };

struct CCtx {
  ZSTD_CCtx* c = ZSTD_createCCtx();
  ~CCtx() { ZSTD_freeCCtx(c); }
};
struct DCtx {
  ZSTD_DCtx* d = ZSTD_createDCtx();
  ~DCtx() { ZSTD_freeDCtx(d); }
};

std::string compress(std::string_view in, int level) {
  thread_local CCtx ctx;
  std::string out(ZSTD_compressBound(in.size()), '\0');
  size_t n = ZSTD_compressCCtx(ctx.c, out.data(), out.size(), in.data(), in.size(), level);
  if (ZSTD_isError(n)) throw CodecError(std::string("zstd compression failed: ") + ZSTD_getErrorName(n));
  out.resize(n);
  return out;
}

std::string decompress(std::string_view in, std::string_view key) {
  thread_local DCtx ctx;
  unsigned long long size = ZSTD_getFrameContentSize(in.data(), in.size());
  if (size == ZSTD_CONTENTSIZE_ERROR || size == ZSTD_CONTENTSIZE_UNKNOWN)
    throw CodecError("item '" + std::string(key) + "': compressed value is corrupt (no valid zstd frame header)");
  // set() never writes more than kMaxValueBytes, so a larger frame was written by something
  // else; refusing it bounds the memory one read can take.
  if (size > kMaxValueBytes)
    throw CodecError("item '" + std::string(key) + "': compressed value declares " + std::to_string(size) +
                     " bytes, over the limit of " + std::to_string(kMaxValueBytes) + " bytes (kMaxValueBytes)");
  std::string out(static_cast<size_t>(size), '\0');
  size_t n = ZSTD_decompressDCtx(ctx.d, out.data(), out.size(), in.data(), in.size());
  if (ZSTD_isError(n) || n != size)
    throw CodecError("item '" + std::string(key) + "': compressed value is corrupt");
  return out;
}

// DynamoDB's size of an attribute: its UTF-8 name plus its value (numbers: about one byte per
// two digits plus one; the decimal text length is a safe upper bound).
std::size_t attr_size(const std::string& name, const ddb::AttributeValue& v) {
  return name.size() + v.scalar.size();
}

// The attributes a cache read looks at (read_entry, liveness, holds_key), as the names of
// wire::decode_get_item_fields: the item layout of the Python package and ours, without the
// attributes of a chunked head (an answer with those is decoded into an Item).
enum Name : size_t {
  kKeyName,
  kValueName,
  kExpireName,
  kUpdateTsName,
  kExpireAtName,
  kFormatName,
  kCounterName,
  kFullKeyName,
  kNames
};
const std::string& name_of(Name n) {
  static const std::string* const names[kNames] = {&attr::kKey,      &attr::kValue,    &attr::kExpire,
                                                   &attr::kUpdateTs, &attr::kExpireAt, &attr::kFormat,
                                                   &attr::kCounter,  &attr::kFullKey};
  return *names[n];
}
std::span<const std::string_view> field_names() {
  static const std::array<std::string_view, kNames> names = [] {
    std::array<std::string_view, kNames> a;
    for (size_t i = 0; i < kNames; ++i) a[i] = name_of(static_cast<Name>(i));
    return a;
  }();
  return names;
}

// An attribute's type and scalar, as an AttributeValue holds them.
struct Attr {
  ddb::AttrType type;
  std::string_view scalar;
};

// An item as the read functions below take it: a dynamodb::Item, or the fields of a GetItem
// answer (wire::GetItemFields of field_names(): the answer's item has no other attributes).
// Views: valid while what they view is.
class ItemView {
 public:
  ItemView(const ddb::Item& item) : item_(&item) {}  // NOLINT: implicit, as Items are read too
  explicit ItemView(ddb::wire::GetItemFields& fields) : fields_(&fields) {}

  std::optional<Attr> get(Name n) const {
    if (item_) {
      auto it = item_->find(name_of(n));
      if (it == item_->end()) return std::nullopt;
      return Attr{it->second.type, it->second.scalar};
    }
    const ddb::wire::Field& f = fields_->fields[n];
    if (!f.present) return std::nullopt;
    return Attr{f.type, f.scalar()};
  }
  // The bytes of `value` (present, binary) for a hit: moved out of answer fields (which are
  // then done with), copied from an Item.
  std::string take_value() const {
    if (item_) return item_->at(attr::kValue).scalar;
    return std::move(fields_->fields[kValueName].bytes);
  }
  // chunked::parse_head of the item.
  std::optional<chunked::Head> head() const {
    if (item_) return chunked::parse_head(*item_);
    // Fields hold no head attributes (wid, chunks...), so this is no head, or a malformed
    // one. An fmt that parse_head reads as a whole number other than kHeadFormat makes no
    // head; any other (kHeadFormat, malformed) goes to parse_head for its error.
    auto fmt = get(kFormatName);
    if (!fmt) return std::nullopt;
    uint64_t f = 0;
    auto [p, ec] = std::from_chars(fmt->scalar.data(), fmt->scalar.data() + fmt->scalar.size(), f);
    if (fmt->type == ddb::AttrType::kN && ec == std::errc() && p == fmt->scalar.data() + fmt->scalar.size() &&
        f != static_cast<uint64_t>(chunked::kHeadFormat))
      return std::nullopt;
    ddb::Item item;
    for (size_t i = 0; i < kNames; ++i)
      if (auto a = get(static_cast<Name>(i))) {
        ddb::AttributeValue v;
        v.type = a->type;
        v.scalar = std::string(a->scalar);
        item.emplace(name_of(static_cast<Name>(i)), std::move(v));
      }
    return chunked::parse_head(item);
  }

 private:
  const ddb::Item* item_ = nullptr;
  ddb::wire::GetItemFields* fields_ = nullptr;
};

double number(const ItemView& item, Name name, double fallback) {
  auto a = item.get(name);
  if (!a || a->type != ddb::AttrType::kN) return fallback;
  std::string_view s = a->scalar;
  double d = 0;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), d);
  if (ec != std::errc() || p != s.data() + s.size())
    throw CodecError(std::string("attribute '") + name_of(name) + "' is not a number: " + std::string(s));
  return d;
}

// An integer attribute (fmt, counter): exactly an int64_t in decimal, nothing else ("1.9",
// "1e0" and out-of-range values are refused, not truncated).
int64_t integer(Attr v, std::string_view name, std::string_view key) {
  std::string_view s = v.scalar;
  int64_t i = 0;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), i);
  if (v.type != ddb::AttrType::kN || ec != std::errc() || p != s.data() + s.size())
    throw CodecError("item '" + std::string(key.substr(0, 64)) + "': attribute '" + std::string(name) +
                     "' is " + std::string(s.substr(0, 40)) + ", not an integer");
  return i;
}
int64_t integer(const ddb::AttributeValue& v, std::string_view name, std::string_view key) {
  return integer(Attr{v.type, v.scalar}, name, key);
}

// One limit for writing and reading back (decompress() refuses frames over the same).
void check_value_size(std::string_view key, std::string_view value) {
  if (value.size() > kMaxValueBytes)
    throw InvalidArgumentError("value of " + std::to_string(value.size()) + " bytes for key '" +
                               std::string(key.substr(0, 64)) + "' is too large: values may be at most " +
                               std::to_string(kMaxValueBytes) + " bytes (kMaxValueBytes)");
}

ddb::Item key_item(std::string key) {
  ddb::Item k;
  k.emplace(attr::kKey, ddb::AttributeValue::S(std::move(key)));
  return k;
}

double seconds_of(SystemClock::time_point t) {
  return std::chrono::duration<double>(t.time_since_epoch()).count();
}
int64_t whole_seconds_of(SystemClock::time_point t) {
  return std::chrono::duration_cast<std::chrono::seconds>(t.time_since_epoch()).count();
}

// A decimal DynamoDB accepts for a time in seconds (millisecond precision).
std::string decimal(double seconds) {
  char buf[64];
  int n = std::snprintf(buf, sizeof buf, "%.3f", seconds);
  return std::string(buf, static_cast<size_t>(n));
}

// The liveness of an item under the Python rule, expire == 0 or now - update_ts < expire.
struct Liveness {
  bool live = false;
  std::optional<Ttl> left;  // nullopt: never expires
  // The item's `expire` text when it has a TTL but no expire_at (written by the Python
  // package, or with python_compat): LiveRule then needs it (see there).
  std::optional<std::string> python_expire;
};

Liveness liveness(const ItemView& item, double now) {
  Liveness l;
  double expire = number(item, kExpireName, 0);
  double update_ts = number(item, kUpdateTsName, 0);
  if (expire != 0 && !item.get(kExpireAtName)) l.python_expire = std::string(item.get(kExpireName)->scalar);
  if (expire == 0) {
    l.live = true;
    return l;
  }
  double remaining = update_ts + expire - now;  // > 0 exactly when now - update_ts < expire
  if (!(remaining > 0)) return l;               // NaN included
  l.live = true;
  // Clamped before the conversion: an expire of 1e16, 1e300 or inf (the Python package can
  // store any of them) would overflow int64_t milliseconds, which is undefined behaviour.
  constexpr double kMaxS = static_cast<double>(kMaxTtl.count()) / 1000;
  l.left = remaining >= kMaxS ? kMaxTtl : Ttl(static_cast<int64_t>(std::ceil(remaining * 1000)));
  return l;
}

// The Python liveness rule as DynamoDB condition expressions. Expressions have no
// arithmetic, so `now - update_ts < expire` cannot be written for an unknown expire. Our
// items carry expire_at = update_ts + expire, and for them the rule is `expire_at > now`.
// For an item without expire_at (the Python package's, or python_compat), the rule is
// written for the expire value an earlier read saw, E: `expire = E AND update_ts > now - E`;
// a write conditioned on it cannot act on a different item than the one that was read.
struct LiveRule {
  double now;
  std::optional<std::string> python_expire;  // E, as stored

  std::string live() const {
    std::string e = "attribute_exists(#k) AND (#x = :z OR #t > :now";
    if (python_expire) e += " OR (attribute_not_exists(#t) AND #x = :pe AND #u > :cut)";
    return e + ")";
  }
  std::string not_live() const {
    std::string e = "attribute_not_exists(#k) OR (#x <> :z AND #t <= :now)";
    if (python_expire) e += " OR (attribute_not_exists(#t) AND #x = :pe AND #u <= :cut)";
    return e;
  }
  void add_values(ddb::Values& v) const {
    v[":z"] = ddb::AttributeValue::N(0);
    v[":now"] = ddb::AttributeValue::N(decimal(now));
    if (python_expire) {
      v[":pe"] = ddb::AttributeValue::N(*python_expire);
      double e = 0;
      std::from_chars(python_expire->data(), python_expire->data() + python_expire->size(), e);
      // Far past any update_ts when E exceeds now (1e16, 1e125): and in DynamoDB's range.
      double cut = now - e;
      v[":cut"] = ddb::AttributeValue::N(cut < 0 ? std::string("-1") : decimal(cut));
    }
  }
};

// Sets the ExpressionAttributeNames a request's expressions use (DynamoDB refuses unused
// ones). Placeholders are #k key, #x expire, #u update_ts, #t expire_at, #c counter,
// #g generation.
void bind_names(ddb::ConditionalWrite& w, std::string_view expressions) {
  static const std::pair<const char*, const std::string*> kNames[] = {
      {"#k", &attr::kKey},      {"#x", &attr::kExpire},  {"#u", &attr::kUpdateTs},
      {"#t", &attr::kExpireAt}, {"#c", &attr::kCounter}, {"#g", &attr::kGeneration}};
  for (const auto& [ph, name] : kNames)
    if (expressions.find(ph) != std::string_view::npos) w.names[ph] = *name;
}

// Rounds of condition-failed-then-read an atomic operation makes before it gives up. Each
// round that fails saw another writer change the item between two requests, so 16 in a
// row means a key rewritten continuously.
constexpr int kMaxRounds = 16;

[[noreturn]] void contention(const char* op, std::string_view key) {
  throw Error(ErrorKind::kConditionFailed,
              std::string(op) + " of key '" + std::string(key.substr(0, 64)) +
                  "' gave up: the item changed under " + std::to_string(kMaxRounds) +
                  " conditional writes in a row",
              true);
}

std::string counter_message(std::string_view key, int64_t current, int64_t delta) {
  return "counter '" + std::string(key.substr(0, 64)) + "' at " + std::to_string(current) + " + " +
         std::to_string(delta) + " would overflow int64";
}


constexpr std::string_view kDigestMark = "#sha256:";

// Runs one public operation, timing it into stats.latency and counting the kind of an
// error it throws.
template <class F>
auto measured(CacheStats& stats, Op op, F&& f) -> decltype(f()) {
  struct Timer {
    LatencyHistogram& h;
    std::chrono::steady_clock::time_point start = std::chrono::steady_clock::now();
    ~Timer() { h.record(std::chrono::steady_clock::now() - start); }
  } timer{stats.latency[static_cast<size_t>(op)]};
  try {
    return f();
  } catch (const Error& e) {
    stats.count_error(e.kind());
    throw;
  }
}

void emit(const LogHook& log, LogLevel level, const std::string& message) {
  if (!log) return;
  try {
    log(level, message);
  } catch (...) {  // a logging failure must not become a cache failure
  }
}

// Counts and logs `e` of operation `op` on `key`, about to be answered as a miss (fail_open).
void opened(const DynamodbOptions& o, CacheStats& stats, const char* op, std::string_view key, const Error& e) {
  stats.fail_open.fetch_add(1, std::memory_order_relaxed);
  emit(o.log, LogLevel::kWarning,
       std::string("fail-open: ") + op + " of key '" + std::string(key.substr(0, 64)) + "' failed (" +
           to_string(e.kind()) + ": " + e.what() + "); answered as a miss");
}

// Runs a read or a set under DynamodbOptions::fail_open: when it is on, an error (but a
// caller's InvalidArgumentError) is counted, logged and turned into `miss`.
template <class T, class F>
T failing_open(const DynamodbOptions& o, CacheStats& stats, const char* op, std::string_view key, T miss,
               F&& f) {
  if (!o.fail_open) return f();
  try {
    return f();
  } catch (const Error& e) {
    if (e.kind() == ErrorKind::kInvalidArgument) throw;
    stats.count_error(e.kind());
    opened(o, stats, op, key, e);
    return miss;
  }
}

ddb::ReturnConsumedCapacity capacity_request(const DynamodbOptions& o) {
  return o.track_capacity ? ddb::ReturnConsumedCapacity::kTotal : ddb::ReturnConsumedCapacity::kNone;
}

void add_units(std::atomic<double>& to, const std::optional<ddb::ConsumedCapacity>& c) {
  if (c) to.fetch_add(c->capacity_units, std::memory_order_relaxed);
}

// A read's answer in stats: a hit (and its value bytes) or a miss.
void count_read(CacheStats& stats, const std::optional<Hit>& hit) {
  (hit ? stats.hits : stats.misses).fetch_add(1, std::memory_order_relaxed);
  if (hit) stats.bytes_read.fetch_add(hit->value.size(), std::memory_order_relaxed);
}

// What a finished full clear() counts and logs.
void table_cleared(const DynamodbOptions& o, CacheStats& stats, uint64_t erased) {
  stats.erases.fetch_add(erased, std::memory_order_relaxed);
  emit(o.log, LogLevel::kInfo, "table '" + o.table + "' cleared: " + std::to_string(erased) + " items deleted");
}

}  // namespace

struct DynamodbBackend::Metered {
  ddb::Client& c;
  CacheStats& s;
  bool track;
  ddb::ReturnConsumedCapacity rcc() const {
    return track ? ddb::ReturnConsumedCapacity::kTotal : ddb::ReturnConsumedCapacity::kNone;
  }
  ddb::GetItemResult get_item(ddb::GetItemRequest r) {
    r.return_consumed_capacity = rcc();
    auto res = c.get_item(r);
    add_units(s.read_capacity_units, res.consumed);
    return res;
  }
  template <class Req, class Call>
  ddb::WriteResult write(Req r, Call call) {
    r.return_consumed_capacity = rcc();
    auto res = (c.*call)(r);
    add_units(s.write_capacity_units, res.consumed);
    return res;
  }
  ddb::WriteResult put_item(const ddb::PutItemRequest& r) { return write(r, &ddb::Client::put_item); }
  ddb::WriteResult update_item(const ddb::UpdateItemRequest& r) {
    return write(r, &ddb::Client::update_item);
  }
  ddb::WriteResult delete_item(const ddb::DeleteItemRequest& r) {
    return write(r, &ddb::Client::delete_item);
  }
  std::vector<ddb::Item> batch_get_all(const std::string& table, std::vector<ddb::Item> keys,
                                       bool consistent) {
    std::vector<ddb::ConsumedCapacity> cc;
    auto items = c.batch_get_all(table, std::move(keys), consistent, track ? &cc : nullptr);
    for (auto& x : cc) add_units(s.read_capacity_units, x);
    return items;
  }
  void batch_write_all(const std::string& table, std::vector<ddb::WriteRequest> writes) {
    std::vector<ddb::ConsumedCapacity> cc;
    c.batch_write_all(table, std::move(writes), track ? &cc : nullptr);
    for (auto& x : cc) add_units(s.write_capacity_units, x);
  }
  void scan_all(ddb::ScanRequest r, const std::function<bool(ddb::PageResult&)>& on_page) {
    r.return_consumed_capacity = rcc();
    c.scan_all(std::move(r), [&](ddb::PageResult& p) {
      add_units(s.read_capacity_units, p.consumed);
      return on_page(p);
    });
  }
};

DynamodbBackend::Metered DynamodbBackend::wire() const {
  return Metered{*client_, *stats_, options_.track_capacity};
}

// The namespace's generation as this process last read it. Thread-safe (mu).
struct DynamodbBackend::Generation {
  std::mutex mu;
  int64_t value = 0;
  bool known = false;
  std::chrono::steady_clock::time_point read_at;
};

// The helper threads running: the destructor waits for them (they use this backend).
struct DynamodbBackend::Helpers {
  std::mutex mu;
  std::condition_variable idle;
  size_t running = 0;
  bool closing = false;  // the destructor began: no new helper threads
};

DynamodbBackend::DynamodbBackend(std::shared_ptr<ddb::Client> client, DynamodbOptions options)
    : client_(std::move(client)),
      options_(std::move(options)),
      generation_(std::make_shared<Generation>()),
      helpers_(std::make_shared<Helpers>()) {
  if (!client_) throw InvalidArgumentError("DynamodbBackend needs a client");
  if (options_.table.empty()) throw InvalidArgumentError("DynamodbBackend needs a table name");
  if (!options_.now) options_.now = [] { return SystemClock::now(); };
  if (options_.stats) stats_ = options_.stats;
  const std::string& ns = options_.key_namespace;
  if (ns.size() > 64 ||
      ns.find_first_not_of("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-") !=
          std::string::npos)
    throw InvalidArgumentError("namespace '" + ns.substr(0, 64) +
                               "' must be 1-64 characters of A-Z a-z 0-9 _ . -");
  if (options_.namespace_refresh.count() < 0)
    throw InvalidArgumentError("namespace_refresh must not be negative");
  if (options_.clear_segments < 1 || options_.clear_segments > 64)
    throw InvalidArgumentError("clear_segments must be 1 to 64 (one thread each)");
}

std::string DynamodbBackend::generation_key() const { return options_.key_namespace + ":generation"; }

std::optional<std::string> DynamodbBackend::known_prefix() const {
  if (options_.key_namespace.empty()) return std::string();  // no clock read, no lock
  const auto now = std::chrono::steady_clock::now();
  Generation& g = *generation_;
  std::lock_guard lock(g.mu);
  if (g.known && now - g.read_at < options_.namespace_refresh)
    return options_.key_namespace + ":" + std::to_string(g.value) + ":";
  return std::nullopt;
}

ddb::GetItemRequest DynamodbBackend::generation_request() const {
  ddb::GetItemRequest r;
  r.table_name = options_.table;
  r.key = key_item(generation_key());
  r.consistent_read = true;
  r.projection_expression = "#g";
  r.names = {{"#g", attr::kGeneration}};
  return r;
}

std::string DynamodbBackend::generation_read(const std::optional<ddb::Item>& item,
                                             std::chrono::steady_clock::time_point asked) const {
  int64_t read = 0;  // no item: nothing cleared yet
  if (item)
    if (auto it = item->find(attr::kGeneration); it != item->end())
      read = integer(it->second, attr::kGeneration, generation_key());
  Generation& g = *generation_;
  std::lock_guard lock(g.mu);
  g.value = std::max(g.value, read);  // generations only grow; a full clear keeps their items
  g.known = true;
  g.read_at = asked;
  return options_.key_namespace + ":" + std::to_string(g.value) + ":";
}

std::string DynamodbBackend::key_prefix() const {
  if (auto known = known_prefix()) return std::move(*known);
  // Read without the lock: threads arriving together may read it more than once, harmlessly.
  const auto asked = std::chrono::steady_clock::now();
  return generation_read(wire().get_item(generation_request()).item, asked);
}

std::string DynamodbBackend::stored_key(std::string_view key, std::string_view prefix) const {
  validate_key(key, options_.long_keys ? kMaxLongKeyBytes : 2048);
  if (is_digest(key, prefix)) {
    std::string s(prefix);
    s += kDigestMark;
    s += util::hex(util::sha256(key));
    return s;
  }
  if (prefix.size() + key.size() > 2048)
    throw InvalidArgumentError("cache key is " + std::to_string(key.size()) +
                               " bytes; with the namespace prefix '" + std::string(prefix) +
                               "' it exceeds DynamoDB's 2048 (the long_keys option stores it)");
  return std::string(prefix) + std::string(key);
}

bool DynamodbBackend::is_digest(std::string_view key, std::string_view prefix) const {
  return options_.long_keys && (prefix.size() + key.size() > 2048 || key.starts_with(kDigestMark));
}

namespace detail {

namespace {

// key, expire, update_ts, (with a TTL, if `expire_at`) expire_at and (for a digest) the
// user's key in full_key: what every item has. `prefix`: b.key_prefix(), resolved once.
ddb::Item item_head(const DynamodbBackend& b, std::string_view key, std::string_view prefix, Ttl ttl,
                    bool expire_at) {
  validate_ttl(ttl);
  std::string stored = b.stored_key(key, prefix);
  // Whole seconds, rounded up: the layout stores seconds, and a short TTL must not become 0
  // ("never"). At most kMaxTtl, so now_s + ttl_s cannot overflow.
  int64_t ttl_s = (ttl.count() + 999) / 1000;
  int64_t now_s = whole_seconds_of(b.options().now());
  ddb::Item item;
  item.emplace(attr::kKey, ddb::AttributeValue::S(std::move(stored)));
  item.emplace(attr::kExpire, ddb::AttributeValue::N(ttl_s));
  item.emplace(attr::kUpdateTs, ddb::AttributeValue::N(now_s));
  if (ttl_s > 0 && expire_at) item.emplace(attr::kExpireAt, ddb::AttributeValue::N(now_s + ttl_s));
  if (b.is_digest(key, prefix)) item.emplace(attr::kFullKey, ddb::AttributeValue::S(std::string(key)));
  return item;
}

}  // namespace

namespace {
bool holds_key(const ItemView& item, std::string_view key) {
  auto fk = item.get(kFullKeyName);
  return !fk || fk->scalar == key;
}
}  // namespace

bool holds_key(const ddb::Item& item, std::string_view key) { return holds_key(ItemView(item), key); }

ddb::Item stored_key_item(const DynamodbBackend& b, std::string_view key, std::string_view prefix) {
  return key_item(b.stored_key(key, prefix));
}

ddb::Item build_item(const DynamodbBackend& b, std::string_view key, std::string_view prefix,
                     std::string_view value, Ttl ttl, ddb::Client* chunk_to) {
  const DynamodbOptions& options = b.options();
  check_value_size(key, value);
  ddb::Item item = item_head(b, key, prefix, ttl, !options.python_compat);
  if (options.python_compat) {
    item.emplace(attr::kValue, ddb::AttributeValue::B(util::base64_encode(value)));
  } else if (options.compress_min_bytes > 0 && value.size() >= options.compress_min_bytes) {
    std::string z = compress(value, options.compress_level);
    bool smaller = z.size() < value.size();
    item.emplace(attr::kValue, ddb::AttributeValue::B(smaller ? std::move(z) : std::string(value)));
    item.emplace(attr::kFormat, ddb::AttributeValue::N(smaller ? kZstd : kRaw));
  } else {
    item.emplace(attr::kValue, ddb::AttributeValue::B(std::string(value)));
    item.emplace(attr::kFormat, ddb::AttributeValue::N(kRaw));
  }

  std::size_t size = 0;
  for (const auto& [n, v] : item) size += attr_size(n, v);
  if (size <= kMaxItemBytes) return item;
  if (!chunk_to)
    throw InvalidArgumentError("value of " + std::to_string(value.size()) + " bytes for key '" +
                               std::string(key.substr(0, 64)) + "' makes a " + std::to_string(size) +
                               "-byte item; DynamoDB allows at most " + std::to_string(kMaxItemBytes) +
                               " (set() stores such values in chunks)");
  // Chunks hold the raw or compressed bytes (python_compat's base64 would only add a third:
  // the Python package cannot read a chunked value either way).
  std::string_view stored = value;
  int inner = kRaw;
  auto fmt = item.find(attr::kFormat);
  if (fmt != item.end() && fmt->second.scalar == std::to_string(kZstd)) {
    stored = item.at(attr::kValue).scalar;
    inner = kZstd;
  }
  // Chunks expire with their head (also with python_compat, whose head has no expire_at).
  std::optional<int64_t> expire_at;
  if (int64_t ttl_s = integer(item.at(attr::kExpire), attr::kExpire, key); ttl_s > 0)
    expire_at = integer(item.at(attr::kUpdateTs), attr::kUpdateTs, key) + ttl_s;
  // Chunk keys derive from the key as stored (what readers find in the head item).
  auto head = chunked::write_chunks(*chunk_to, options.table, item.at(attr::kKey).scalar, stored, inner, expire_at);
  chunked::add_head_attributes(item, head);
  return item;
}

namespace {

// read_entry of an Item or of answer fields; with `chunks_from` null, a chunked head throws
// NeedsChunks instead of reading its chunks.
std::optional<Hit> entry_of(const DynamodbOptions& options, ddb::Client* chunks_from, const ItemView& item) {
  auto key_attr = item.get(kKeyName);
  std::string_view key = key_attr ? key_attr->scalar : std::string_view("?");
  Liveness l = liveness(item, seconds_of(options.now()));
  if (!l.live) return std::nullopt;
  if (auto c = item.get(kCounterName); c && !item.get(kValueName))
    return Hit{std::to_string(integer(*c, attr::kCounter, key)), l.left, true};
  if (auto head = item.head()) {
    if (!chunks_from) throw NeedsChunks{};
    std::string stored =
        chunked::read_chunks(*chunks_from, options.table, key, *head, options.consistent_read);
    if (head->inner_format == kZstd) return Hit{decompress(stored, key), l.left};
    return Hit{std::move(stored), l.left};
  }
  auto v = item.get(kValueName);
  if (!v || v->type != ddb::AttrType::kB)
    throw CodecError("item '" + std::string(key) + "' has no binary `value` attribute");
  auto fmt = item.get(kFormatName);
  if (!fmt) {
    // Written by the Python package (PynamoDB 5): the bytes are stored as base64 text.
    auto decoded = util::base64_decode(v->scalar);
    if (!decoded)
      throw CodecError("item '" + std::string(key) +
                       "' has no `fmt` marker and its value is not base64 (not a dynamodb_cache item)");
    return Hit{std::move(*decoded), l.left};
  }
  int64_t f = integer(*fmt, attr::kFormat, key);
  if (f == kRaw) return Hit{item.take_value(), l.left};
  if (f == kZstd) return Hit{decompress(v->scalar, key), l.left};
  if (f == chunked::kChunkFormat)
    throw CodecError("item '" + std::string(key) + "' is a chunk of a larger value, not a cache entry");
  if (f == kLeaseFormat)
    throw CodecError("item '" + std::string(key) + "' is a get_or_set lease, not a cache entry");
  throw CodecError("item '" + std::string(key) + "' has value format " + std::string(fmt->scalar) +
                   ", unknown to this version");
}

}  // namespace

std::optional<Hit> read_entry(const DynamodbOptions& options, ddb::Client& client, const ddb::Item& item) {
  return entry_of(options, &client, item);
}

std::optional<Hit> read_answer(const DynamodbOptions& options, ddb::Client* chunks_from,
                               const std::string& body, std::string_view key,
                               std::atomic<double>& read_units) {
  ddb::wire::GetItemFields fields;
  ddb::wire::decode_get_item_fields(body, field_names(), fields);
  if (fields.kind != ddb::wire::GetItemFields::kOther) {
    if (fields.capacity_units != 0) read_units.fetch_add(fields.capacity_units, std::memory_order_relaxed);
    if (fields.kind == ddb::wire::GetItemFields::kNoItem) return std::nullopt;
    ItemView item(fields);
    if (!holds_key(item, key)) return std::nullopt;
    return entry_of(options, chunks_from, item);
  }
  // Anything unusual (a chunked head, attributes of other types...): the whole Item.
  auto res = ddb::wire::decode_get_item(body);
  add_units(read_units, res.consumed);
  // full_key is compared before any chunk is read: a digest's chunks are the key's only.
  if (!res.item || !holds_key(*res.item, key)) return std::nullopt;
  return entry_of(options, chunks_from, *res.item);
}

}  // namespace detail

using detail::holds_key;

std::optional<Hit> DynamodbBackend::read_item(const ddb::Item& item) const {
  try {
    return detail::read_entry(options_, *client_, item);
  } catch (const chunked::ChunksGone&) {
    return std::nullopt;  // overwritten or erased while being read
  }
}

ddb::Item DynamodbBackend::make_item(std::string_view key, std::string_view value, Ttl ttl) const {
  return detail::build_item(*this, key, key_prefix(), value, ttl, nullptr);
}

std::optional<ddb::Item> DynamodbBackend::read_consistent(const std::string& stored) const {
  ddb::GetItemRequest r;
  r.table_name = options_.table;
  r.key = key_item(stored);
  r.consistent_read = true;
  return wire().get_item(r).item;
}

namespace {
// The GetItem of a cache read, of the item stored under `stored`.
std::string get_request(const DynamodbOptions& o, std::string_view stored, bool consistent) {
  return ddb::wire::encode_get_item(o.table, attr::kKey, stored, consistent, capacity_request(o));
}
}  // namespace

std::optional<Hit> DynamodbBackend::read_stored(std::string_view key, const std::string& stored) {
  return chunked::read_retrying([&](bool reread) -> std::optional<Hit> {
    std::string body = ddb::detail::get_item_body(
        *client_, get_request(options_, stored, options_.consistent_read || reread));
    return detail::read_answer(options_, client_.get(), body, key, stats_->read_capacity_units);
  });
}

std::optional<Hit> DynamodbBackend::get_entry(std::string_view key) {
  return measured(*stats_, Op::kGet, [&]() -> std::optional<Hit> {
    auto hit = failing_open(options_, *stats_, "get", key, std::optional<Hit>(),
                            [&]() -> std::optional<Hit> { return read_stored(key, stored_key(key)); });
    count_read(*stats_, hit);
    return hit;
  });
}

bool DynamodbBackend::contains(std::string_view key) {
  return measured(*stats_, Op::kContains, [&]() -> bool {
    return failing_open(options_, *stats_, "contains", key, false, [&]() -> bool {
      ddb::GetItemRequest r;
      r.table_name = options_.table;
      r.key = key_item(stored_key(key));
      r.consistent_read = options_.consistent_read;
      r.projection_expression = "#k, #x, #u, #t, #f";  // no value bytes on the wire
      r.names = {{"#k", attr::kKey},
                 {"#x", attr::kExpire},
                 {"#u", attr::kUpdateTs},
                 {"#t", attr::kExpireAt},
                 {"#f", attr::kFullKey}};
      auto res = wire().get_item(r);
      return res.item && holds_key(*res.item, key) && liveness(*res.item, seconds_of(options_.now())).live;
    });
  });
}

void DynamodbBackend::store(std::string_view key, std::string_view prefix, std::string_view value, Ttl ttl) {
  ddb::PutItemRequest r;
  r.table_name = options_.table;
  r.item = detail::build_item(*this, key, prefix, value, ttl, client_.get());
  r.return_consumed_capacity = capacity_request(options_);
  add_units(stats_->write_capacity_units, chunked::put_replacing(*client_, std::move(r)));
}

void DynamodbBackend::set(std::string_view key, std::string_view value, Ttl ttl) {
  return measured(*stats_, Op::kSet, [&]() -> void {
    bool written = failing_open(options_, *stats_, "set", key, false, [&] {
      store(key, key_prefix(), value, ttl);
      return true;
    });
    if (!written) return;
    stats_->sets.fetch_add(1, std::memory_order_relaxed);
    stats_->bytes_written.fetch_add(value.size(), std::memory_order_relaxed);
  });
}

void DynamodbBackend::erase(std::string_view key) {
  return measured(*stats_, Op::kErase, [&]() -> void {
    ddb::DeleteItemRequest r;
    r.table_name = options_.table;
    r.key = key_item(stored_key(key));
    r.return_consumed_capacity = capacity_request(options_);
    add_units(stats_->write_capacity_units, chunked::delete_replacing(*client_, std::move(r)));
    stats_->erases.fetch_add(1, std::memory_order_relaxed);
  });
}

// One conditional PutItem: written unless the item is live. A failed condition is checked
// with a consistent read, which tells a live item (false) from one that changed meanwhile or
// that only the read's expire value lets the condition judge (LiveRule): then again.
bool DynamodbBackend::add(std::string_view key, std::string_view value, Ttl ttl) {
  return measured(*stats_, Op::kAdd, [&]() -> bool {
    ddb::PutItemRequest r;
    r.table_name = options_.table;
    r.item = detail::build_item(*this, key, key_prefix(), value, ttl, client_.get());
    const std::string stored = r.item.at(attr::kKey).scalar;
    // A value past one item has its chunks written already: when the head is not written
    // (a live entry, contention, an error), nothing will ever name them.
    struct Orphans {
      DynamodbBackend& b;
      const ddb::Item& head;
      bool written = false;
      ~Orphans() {
        if (!written) chunked::delete_chunks_of(*b.client_, b.options_.table, head, false);
      }
    } orphans{*this, r.item};
    std::optional<std::string> python_expire;
    for (int round = 0; round < kMaxRounds; ++round) {
      LiveRule rule{seconds_of(options_.now()), python_expire};
      r.condition_expression = rule.not_live();
      r.values.clear();
      rule.add_values(r.values);
      bind_names(r, r.condition_expression);
      if (detail::conditional([&] { wire().put_item(r); })) {
        orphans.written = true;
        stats_->sets.fetch_add(1, std::memory_order_relaxed);
        stats_->bytes_written.fetch_add(value.size(), std::memory_order_relaxed);
        return true;
      }
      auto item = read_consistent(stored);
      if (!item) continue;  // erased meanwhile
      Liveness l = liveness(*item, seconds_of(options_.now()));
      if (l.live) return false;
      python_expire = l.python_expire;
    }
    contention("add", key);
  });
}

// One conditional UpdateItem of expire, update_ts and expire_at: made only while the item is
// live (LiveRule, with a read when the first condition fails, as add()).
bool DynamodbBackend::touch(std::string_view key, Ttl ttl) {
  return measured(*stats_, Op::kTouch, [&]() -> bool {
    const bool with_expire_at = !options_.python_compat;
    ddb::Item head = detail::item_head(*this, key, key_prefix(), ttl, with_expire_at);
    const std::string stored = head.at(attr::kKey).scalar;
    ddb::UpdateItemRequest r;
    r.table_name = options_.table;
    r.key = key_item(stored);
    r.update_expression =
        head.count(attr::kExpireAt) ? "SET #x = :e, #u = :u, #t = :t" : "SET #x = :e, #u = :u REMOVE #t";
    std::optional<std::string> python_expire;
    for (int round = 0; round < kMaxRounds; ++round) {
      LiveRule rule{seconds_of(options_.now()), python_expire};
      // Not a chunked head: its chunks carry their own expire_at, which this would not move.
      r.condition_expression = "(" + rule.live() + ") AND attribute_not_exists(#w)";
      r.values = {{":e", head.at(attr::kExpire)}, {":u", head.at(attr::kUpdateTs)}};
      if (auto t = head.find(attr::kExpireAt); t != head.end()) r.values[":t"] = t->second;
      rule.add_values(r.values);
      bind_names(r, r.update_expression + " " + r.condition_expression);
      r.names["#w"] = chunked::kWriteId;
      if (detail::conditional([&] { wire().update_item(r); })) return true;
      auto item = read_consistent(stored);
      if (!item) return false;
      Liveness l = liveness(*item, seconds_of(options_.now()));
      if (!l.live) return false;
      if (item->count(chunked::kWriteId))
        throw WrongTypeError("key '" + std::string(key.substr(0, 64)) +
                             "' holds a value past one item (stored in chunks), which touch cannot re-time; "
                             "set it again with the new TTL");
      python_expire = l.python_expire;  // nullopt: it became live meanwhile; try again
    }
    contention("touch", key);
  });
}

// Three requests at most per round, one in the common case:
//   1. UpdateItem SET counter = counter + delta, if the item is a live counter and the sum
//      stays within int64_t;
//   2. else PutItem of a new counter at delta, if nothing live is there;
//   3. else a consistent read says why both failed: a value (WrongTypeError), an overflow
//      (InvalidArgumentError), or a change by another writer between 1 and 2 (again).
// Concurrent increments never lose an update: 1 is atomic on the item, and 2 only writes
// where no live item exists, so at most one creator wins and the rest add to its counter.
int64_t DynamodbBackend::increment(std::string_view key, int64_t delta, Ttl ttl) {
  return measured(*stats_, Op::kIncrement, [&]() -> int64_t {
    // Counters carry expire_at even with python_compat: the Python package cannot read them.
    ddb::Item created = detail::item_head(*this, key, key_prefix(), ttl, true);
    created.emplace(attr::kCounter, ddb::AttributeValue::N(delta));
    const std::string stored = created.at(attr::kKey).scalar;
    const int64_t limit = delta >= 0 ? std::numeric_limits<int64_t>::max() - delta
                                     : std::numeric_limits<int64_t>::min() - delta;
    std::optional<std::string> python_expire;
    for (int round = 0; round < kMaxRounds; ++round) {
      LiveRule rule{seconds_of(options_.now()), python_expire};

      ddb::UpdateItemRequest u;
      u.table_name = options_.table;
      u.key = key_item(stored);
      u.update_expression = "SET #c = #c + :d";
      u.condition_expression =
          "(" + rule.live() + ") AND attribute_exists(#c) AND #c " + (delta >= 0 ? "<=" : ">=") + " :lim";
      u.values = {{":d", ddb::AttributeValue::N(delta)}, {":lim", ddb::AttributeValue::N(limit)}};
      rule.add_values(u.values);
      bind_names(u, u.update_expression + " " + u.condition_expression);
      u.return_values = ddb::ReturnValues::kUpdatedNew;
      std::optional<ddb::Item> updated;
      if (detail::conditional([&] { updated = wire().update_item(u).attributes; })) {
        if (!updated || !updated->count(attr::kCounter))
          throw ProtocolError(
              "UpdateItem returned no `counter` for key '" + std::string(key.substr(0, 64)) + "'", false);
        return integer(updated->at(attr::kCounter), attr::kCounter, key);
      }

      ddb::PutItemRequest p;
      p.table_name = options_.table;
      p.item = created;
      p.condition_expression = rule.not_live();
      rule.add_values(p.values);
      bind_names(p, p.condition_expression);
      if (detail::conditional([&] { wire().put_item(p); })) return delta;

      auto item = read_consistent(stored);
      if (!item) continue;
      Liveness l = liveness(*item, seconds_of(options_.now()));
      python_expire = l.python_expire;
      if (!l.live) continue;
      auto c = item->find(attr::kCounter);
      if (c == item->end())
        throw WrongTypeError("key '" + std::string(key.substr(0, 64)) +
                             "' holds a value, not a counter; erase it or use another key");
      int64_t current = integer(c->second, attr::kCounter, key);
      if (delta >= 0 ? current > limit : current < limit)
        throw InvalidArgumentError(counter_message(key, current, delta));
    }
    contention("increment", key);
  });
}

std::vector<std::optional<Hit>> DynamodbBackend::get_many(const std::vector<std::string>& keys) {
  return measured(*stats_, Op::kGetMany, [&]() -> std::vector<std::optional<Hit>> {
    auto out = failing_open(options_, *stats_, "get_many", keys.empty() ? "" : keys.front(),
                            std::vector<std::optional<Hit>>(keys.size()), [&] {
                              const std::string prefix = key_prefix();
                              std::vector<ddb::Item> ask;
                              std::vector<std::string> stored;
                              stored.reserve(keys.size());
                              struct Slot {
                                std::string_view key;
                                std::optional<Hit> hit;
                              };
                              std::unordered_map<std::string, Slot> found;
                              for (const auto& k : keys) {
                                stored.push_back(stored_key(k, prefix));
                                if (found.emplace(stored.back(), Slot{k, std::nullopt}).second)
                                  ask.push_back(key_item(stored.back()));
                              }
                              auto items = wire().batch_get_all(options_.table, std::move(ask),
                                                                options_.consistent_read);
                              for (const auto& item : items) {
                                auto k = item.find(attr::kKey);
                                if (k == item.end()) continue;
                                auto slot = found.find(k->second.scalar);
                                if (slot == found.end() || !holds_key(item, slot->second.key)) continue;
                                try {
                                  slot->second.hit = detail::read_entry(options_, *client_, item);
                                } catch (const chunked::ChunksGone&) {
                                  // Overwritten meanwhile: read it again (counted as its own get).
                                  slot->second.hit = get_entry(slot->second.key);
                                }
                              }
                              std::vector<std::optional<Hit>> hits;
                              hits.reserve(keys.size());
                              for (const auto& s : stored) hits.push_back(found[s].hit);
                              return hits;
                            });
    for (const auto& h : out) count_read(*stats_, h);
    return out;
  });
}

void DynamodbBackend::set_many(const std::vector<std::pair<std::string, std::string>>& entries, Ttl ttl) {
  return measured(*stats_, Op::kSetMany, [&]() -> void {
    uint64_t n = 0, bytes = 0;
    bool written =
        failing_open(options_, *stats_, "set_many", entries.empty() ? "" : entries.front().first, false, [&] {
          // One batch may not name a key twice: the last value for a key wins, as with set().
          const std::string prefix = key_prefix();
          std::unordered_map<std::string_view, size_t> last;
          for (size_t i = 0; i < entries.size(); ++i) last[entries[i].first] = i;
          std::vector<ddb::WriteRequest> writes;
          writes.reserve(last.size());
          for (size_t i = 0; i < entries.size(); ++i) {
            if (last[entries[i].first] != i) continue;
            ddb::WriteRequest w;
            w.put_item = detail::build_item(*this, entries[i].first, prefix, entries[i].second, ttl, client_.get());
            writes.push_back(std::move(w));
            bytes += entries[i].second.size();
          }
          n = writes.size();
          wire().batch_write_all(options_.table, std::move(writes));
          return true;
        });
    if (!written) return;
    stats_->sets.fetch_add(n, std::memory_order_relaxed);
    stats_->bytes_written.fetch_add(bytes, std::memory_order_relaxed);
  });
}

void DynamodbBackend::erase_many(const std::vector<std::string>& keys) {
  return measured(*stats_, Op::kEraseMany, [&]() -> void {
    const std::string prefix = key_prefix();
    std::unordered_set<std::string> seen;  // one batch may not name a key twice
    std::vector<ddb::WriteRequest> deletes;
    for (const auto& k : keys) {
      std::string s = stored_key(k, prefix);
      if (!seen.insert(s).second) continue;
      ddb::WriteRequest w;
      w.delete_key = key_item(std::move(s));
      deletes.push_back(std::move(w));
    }
    const uint64_t n = deletes.size();
    std::vector<std::string> stored(seen.begin(), seen.end());
    // Chunks of values that never expire have no TTL: find them before their heads go.
    auto heads = chunked::never_expiring_heads(*client_, options_.table, stored);
    wire().batch_write_all(options_.table, std::move(deletes));
    for (const auto& head : heads) chunked::delete_chunks_of(*client_, options_.table, head, true);
    stats_->erases.fetch_add(n, std::memory_order_relaxed);
  });
}

void DynamodbBackend::clear(const std::function<void(uint64_t)>& progress) {
  return measured(*stats_, Op::kClear, [&]() -> void {
    if (options_.key_namespace.empty())
      clear_table(progress);
    else
      clear_namespace();
  });
}

// ---- asynchronous ----
//
// The common case is one request on the client's loop, accounted in stats as the
// synchronous call is; a namespace generation to read first is one more request there
// (prefix_async). What takes several dependent round trips (a value stored in chunks, a
// write replacing a never-expiring chunked value) runs the synchronous code on a helper
// thread of its own instead, so that the loop never blocks; such operations are rare and
// already cost several requests.

DynamodbBackend::~DynamodbBackend() {
  {
    // Closing first: a callback on the loop may still call offload() until the client is
    // gone, and a helper started after this wait would outlive the backend.
    std::unique_lock lock(helpers_->mu);
    helpers_->closing = true;
    helpers_->idle.wait(lock, [&] { return helpers_->running == 0; });
  }
  client_.reset();  // before options_, which callbacks read
}

namespace {

// Error kind of an exception from the library, or nullopt for anything else.
std::optional<ErrorKind> kind_of(const std::exception_ptr& e) {
  try {
    std::rethrow_exception(e);
  } catch (const Error& x) {
    return x.kind();
  } catch (...) {
  }
  return std::nullopt;
}

}  // namespace

template <class T, class F>
void DynamodbBackend::offload(Done<T> done, F f) {
  bool closing = false;
  {
    std::lock_guard lock(helpers_->mu);
    closing = helpers_->closing;
    if (!closing) ++helpers_->running;
  }
  if (closing)
    return done(std::make_exception_ptr(CancelledError("DynamoDB backend destroyed with the operation pending")));
  auto finished = [h = helpers_] {
    std::lock_guard lock(h->mu);
    if (--h->running == 0) h->idle.notify_all();
  };
  std::exception_ptr failed;
  try {
    std::thread([done, f = std::move(f), finished]() mutable {
      auto out = detail::outcome_of<T>(f);
      done(std::move(out));
      done = nullptr;  // the caller's state goes before the destructor may proceed
      finished();
    }).detach();
    return;
  } catch (...) {  // no thread to be had (std::system_error)
    failed = std::current_exception();
  }
  finished();
  done(std::move(failed));
}

// What the synchronous call's `measured` and `failing_open` do, for an asynchronous
// outcome: the latency since `start`, an error's kind counted, and, under fail_open for
// reads and sets (`miss` given), an error other than InvalidArgumentError logged and
// answered with `miss`.
template <class T>
dynamodb::Outcome<T> DynamodbBackend::settle(Op op, const char* name, std::string_view key,
                                             std::chrono::steady_clock::time_point start,
                                             dynamodb::Outcome<T> r,
                                             std::optional<dynamodb::Outcome<T>> miss) const {
  stats_->latency[static_cast<size_t>(op)].record(std::chrono::steady_clock::now() - start);
  if (r.ok()) return r;
  auto kind = kind_of(r.error());
  if (!kind) return r;
  stats_->count_error(*kind);
  if (!miss || !options_.fail_open || *kind == ErrorKind::kInvalidArgument) return r;
  try {
    std::rethrow_exception(r.error());
  } catch (const Error& e) {
    opened(options_, *stats_, name, key, e);
  }
  return std::move(*miss);
}

namespace {
// A value this size or smaller (with its key) always fits one item, whatever the options:
// larger ones may need chunks, which set() writes.
bool fits_one_item(const DynamodbOptions& o, std::string_view key, std::string_view value) {
  const std::size_t encoded = o.python_compat ? (value.size() + 2) / 3 * 4 : value.size();
  return encoded + 2 * key.size() + 512 <= kMaxItemBytes;  // key twice: a digest's full_key
}

// Completes `done` once all of `left` sub-operations have completed, with the first error
// if any failed (null: all succeeded). Each sub-operation calls one() exactly once, from any
// thread; what they wrote before is visible to `done` (the mutex orders it).
struct Join {
  std::mutex mu;
  size_t left;
  std::exception_ptr error;
  std::function<void(std::exception_ptr)> done;
  void one(std::exception_ptr e) {
    {
      std::lock_guard lock(mu);
      if (e && !error) error = std::move(e);
      if (--left > 0) return;
    }
    done(std::exchange(error, nullptr));
  }
};
std::shared_ptr<Join> join(size_t n, std::function<void(std::exception_ptr)> done) {
  auto j = std::make_shared<Join>();
  j->left = n;
  j->done = std::move(done);
  return j;
}
}  // namespace

namespace {
// One GetItem of an asynchronous read, from the request to the answer: the state is one
// allocation (a class derived from this one, which says what the answer goes to), and the
// client's callback captures only a pointer to it, which std::function stores without
// another. An answer naming a chunked head goes to chunked() instead (more round trips: the
// caller reads it on a helper thread).
struct AsyncGet {
  AsyncGet(DynamodbBackend* backend, std::string k, std::string p)
      : b(backend), key(std::move(k)), prefix(std::move(p)) {}
  virtual ~AsyncGet() = default;
  virtual void answered(ddb::Outcome<std::optional<Hit>> out) = 0;
  virtual void chunked() = 0;
  std::string stored() const { return b->stored_key(key, prefix); }

  DynamodbBackend* b;
  std::string key;
  std::string prefix;  // b->key_prefix(), resolved
};

// Sends op's GetItem; op->answered or op->chunked is called once, then op deleted.
void start_get(std::unique_ptr<AsyncGet> op) {
  std::string request;
  auto made = detail::outcome_of<void>(
      [&] { request = get_request(op->b->options(), op->stored(), op->b->options().consistent_read); });
  if (!made.ok()) return op->answered(std::move(made).error());
  ddb::Client& client = op->b->client();
  ddb::detail::get_item_body_async(
      client, std::move(request), [p = op.release()](std::string* body, std::exception_ptr error) {
        std::unique_ptr<AsyncGet> op(p);
        if (error) return op->answered(std::move(error));
        bool chunks = false;
        auto out = detail::outcome_of<std::optional<Hit>>([&]() -> std::optional<Hit> {
          try {
            return detail::read_answer(op->b->options(), nullptr, *body, op->key,
                                       op->b->stats().read_capacity_units);
          } catch (const detail::NeedsChunks&) {
            chunks = true;
            return std::nullopt;
          }
        });
        if (chunks) return op->chunked();
        op->answered(std::move(out));
      });
}
}  // namespace

// GetItem on the loop; a chunked head found there is read with its chunks on a helper thread.
void DynamodbBackend::fetch_async(std::string key, const std::string& prefix, Done<std::optional<Hit>> done) {
  struct Fetch final : AsyncGet {
    Fetch(DynamodbBackend* b, std::string k, std::string p, Done<std::optional<Hit>> d)
        : AsyncGet(b, std::move(k), std::move(p)), done(std::move(d)) {}
    void answered(ddb::Outcome<std::optional<Hit>> out) override { done(std::move(out)); }
    void chunked() override {
      std::string s = stored();
      b->offload(std::move(done),
                 [b = b, key = std::move(key), s = std::move(s)] { return b->read_stored(key, s); });
    }
    Done<std::optional<Hit>> done;
  };
  start_get(std::make_unique<Fetch>(this, std::move(key), prefix, std::move(done)));
}

// PutItem on the loop, conditioned on not replacing a never-expiring chunked value; that
// case, and values that may need chunks, run store() on a helper thread.
void DynamodbBackend::put_async(std::string key, const std::string& prefix, std::string value, Ttl ttl,
                                Done<void> done) {
  struct Args {
    std::string key, prefix, value;
  };
  auto args = std::make_shared<const Args>(Args{std::move(key), prefix, std::move(value)});
  auto sync = [this, args, ttl] { store(args->key, args->prefix, args->value, ttl); };
  if (!fits_one_item(options_, args->key, args->value)) return offload(std::move(done), std::move(sync));
  ddb::PutItemRequest r;
  auto made = detail::outcome_of<void>([&] {
    r.table_name = options_.table;
    r.item = detail::build_item(*this, args->key, prefix, args->value, ttl, nullptr);
    r.return_consumed_capacity = capacity_request(options_);
    chunked::set_no_cleanup_condition(r);
  });
  if (!made.ok()) return done(std::move(made).error());
  client_->put_item_async(std::move(r), [this, sync = std::move(sync),
                                         done = std::move(done)](ddb::Outcome<ddb::WriteResult> res) mutable {
    if (res.ok()) add_units(stats_->write_capacity_units, res.value().consumed);
    if (!res.ok() && kind_of(res.error()) == ErrorKind::kConditionFailed)
      return offload(std::move(done), std::move(sync));  // replacing a never-expiring chunked value
    done(res.ok() ? dynamodb::Outcome<void>() : dynamodb::Outcome<void>(std::move(res).error()));
  });
}

template <class Then>
void DynamodbBackend::prefix_async(Then then) {
  if (auto known = known_prefix()) return then(dynamodb::Outcome<std::string>(std::move(*known)));
  const auto now = std::chrono::steady_clock::now();
  ddb::GetItemRequest r = generation_request();
  r.return_consumed_capacity = capacity_request(options_);
  client_->get_item_async(std::move(r), [this, now, then = std::move(then)](ddb::Outcome<ddb::GetItemResult> res) mutable {
    if (res.ok()) add_units(stats_->read_capacity_units, res.value().consumed);
    then(detail::outcome_of<std::string>([&] { return generation_read(res.value().item, now); }));
  });
}

// As fetch_async, with the get's accounting (settle, count_read) in the same state: the
// whole get is one allocation of its own (when the prefix is known).
void DynamodbBackend::get_entry_async(std::string key, Done<std::optional<Hit>> done) {
  struct Get final : AsyncGet {
    Get(DynamodbBackend* b, std::string k, Done<std::optional<Hit>> d)
        : AsyncGet(b, std::move(k), std::string()), done(std::move(d)) {}
    void answered(ddb::Outcome<std::optional<Hit>> out) override {
      out = b->settle(Op::kGet, "get", std::string_view(key).substr(0, 64), start, std::move(out),
                      std::optional<dynamodb::Outcome<std::optional<Hit>>>(std::optional<Hit>()));
      if (out.ok()) count_read(*b->stats_, out.value());
      done(std::move(out));
    }
    void chunked() override {
      auto rest = std::make_shared<Get>(std::move(*this));  // the accounting, for the helper thread's answer
      b->offload<std::optional<Hit>>(
          [rest](ddb::Outcome<std::optional<Hit>> out) { rest->answered(std::move(out)); },
          [b = b, key = rest->key, stored = rest->stored()] { return b->read_stored(key, stored); });
    }
    const std::chrono::steady_clock::time_point start = std::chrono::steady_clock::now();
    Done<std::optional<Hit>> done;
  };
  // Owned by the callback below (called exactly once), then by start_get.
  auto* get = new Get(this, std::move(key), std::move(done));
  prefix_async([get](dynamodb::Outcome<std::string> prefix) {
    std::unique_ptr<Get> op(get);
    if (!prefix.ok()) return op->answered(std::move(prefix).error());
    op->prefix = std::move(prefix.value());
    start_get(std::move(op));
  });
}

void DynamodbBackend::set_async(std::string key, std::string value, Ttl ttl, Done<void> done) {
  const auto start = std::chrono::steady_clock::now();
  Done<void> finish = [this, start, bytes = uint64_t{value.size()}, name = key.substr(0, 64),
                       done = std::move(done)](dynamodb::Outcome<void> out) {
    const bool failed = !out.ok();
    out = settle(Op::kSet, "set", name, start, std::move(out),
                 std::optional<dynamodb::Outcome<void>>(dynamodb::Outcome<void>()));
    if (!failed) {
      stats_->sets.fetch_add(1, std::memory_order_relaxed);
      stats_->bytes_written.fetch_add(bytes, std::memory_order_relaxed);
    }
    done(std::move(out));
  };
  prefix_async([this, key = std::move(key), value = std::move(value), ttl,
                finish = std::move(finish)](dynamodb::Outcome<std::string> prefix) mutable {
    if (!prefix.ok()) return finish(std::move(prefix).error());
    put_async(std::move(key), prefix.value(), std::move(value), ttl, std::move(finish));
  });
}

void DynamodbBackend::erase_async(std::string key, Done<void> done) {
  const auto start = std::chrono::steady_clock::now();
  Done<void> finish = [this, start, name = key.substr(0, 64), done = std::move(done)](dynamodb::Outcome<void> out) {
    if (out.ok()) stats_->erases.fetch_add(1, std::memory_order_relaxed);
    done(settle<void>(Op::kErase, "erase", name, start, std::move(out), std::nullopt));
  };
  prefix_async([this, key = std::move(key), finish = std::move(finish)](dynamodb::Outcome<std::string> prefix) mutable {
    ddb::DeleteItemRequest plain;  // what delete_replacing takes
    auto made = detail::outcome_of<void>([&] {
      plain.table_name = options_.table;
      plain.key = key_item(stored_key(key, prefix.value()));  // rethrows the generation read's error
      plain.return_consumed_capacity = capacity_request(options_);
    });
    if (!made.ok()) return finish(std::move(made).error());
    ddb::DeleteItemRequest r = plain;
    chunked::set_no_cleanup_condition(r);
    client_->delete_item_async(std::move(r), [this, plain = std::move(plain),
                                              finish](ddb::Outcome<ddb::WriteResult> res) mutable {
      if (res.ok()) add_units(stats_->write_capacity_units, res.value().consumed);
      if (!res.ok() && kind_of(res.error()) == ErrorKind::kConditionFailed)  // a never-expiring chunked value
        return offload(finish, [this, plain = std::move(plain)] {
          add_units(stats_->write_capacity_units, chunked::delete_replacing(*client_, plain));
        });
      finish(res.ok() ? dynamodb::Outcome<void>() : dynamodb::Outcome<void>(std::move(res).error()));
    });
  });
}

// As get_many: every key checked before any request, each distinct key asked once, one
// get_many in stats (one latency, one fail-open for the whole call).
void DynamodbBackend::get_many_async(std::vector<std::string> keys, Done<std::vector<std::optional<Hit>>> done) {
  using Hits = std::vector<std::optional<Hit>>;
  const auto start = std::chrono::steady_clock::now();
  const size_t n = keys.size();
  Done<Hits> finish = [this, start, n, name = n ? keys.front().substr(0, 64) : std::string(),
                       done = std::move(done)](dynamodb::Outcome<Hits> out) {
    out = settle(Op::kGetMany, "get_many", name, start, std::move(out),
                 std::optional<dynamodb::Outcome<Hits>>(Hits(n)));
    if (out.ok())
      for (const auto& h : out.value()) count_read(*stats_, h);
    done(std::move(out));
  };
  prefix_async([this, keys = std::move(keys), finish = std::move(finish)](dynamodb::Outcome<std::string> prefix) mutable {
    const size_t n = keys.size();
    std::unordered_map<std::string, size_t> asked;  // key -> its index in `ask`
    std::vector<size_t> slot(n);                    // keys[i]'s answer: ask[slot[i]]'s
    std::vector<std::string> ask;
    auto checked = detail::outcome_of<void>([&] {
      const std::string& p = prefix.value();  // rethrows the generation read's error
      for (size_t i = 0; i < n; ++i) {
        stored_key(keys[i], p);
        auto [it, fresh] = asked.emplace(keys[i], ask.size());
        if (fresh) ask.push_back(std::move(keys[i]));
        slot[i] = it->second;
      }
    });
    if (!checked.ok()) return finish(std::move(checked).error());
    if (ask.empty()) return finish(Hits());
    auto got = std::make_shared<Hits>(ask.size());
    auto all = join(ask.size(), [got, slot = std::move(slot), finish](std::exception_ptr e) {
      if (e) return finish(std::move(e));
      Hits out;
      out.reserve(slot.size());
      for (size_t s : slot) out.push_back((*got)[s]);
      finish(std::move(out));
    });
    for (size_t s = 0; s < ask.size(); ++s)
      fetch_async(std::move(ask[s]), prefix.value(), [got, all, s](dynamodb::Outcome<std::optional<Hit>> r) {
        if (r.ok()) (*got)[s] = std::move(r.value());
        all->one(std::move(r).error());
      });
  });
}

// As set_many: the last value for a key wins (concurrent puts of one key would race), every
// entry checked before any request, one set_many in stats.
void DynamodbBackend::set_many_async(std::vector<std::pair<std::string, std::string>> entries, Ttl ttl,
                                     Done<void> done) {
  const auto start = std::chrono::steady_clock::now();
  std::vector<size_t> send;
  {
    std::unordered_map<std::string_view, size_t> last;  // views into entries: gone before they move
    for (size_t i = 0; i < entries.size(); ++i) last[entries[i].first] = i;
    for (size_t i = 0; i < entries.size(); ++i)
      if (last[entries[i].first] == i) send.push_back(i);
  }
  uint64_t bytes = 0;
  for (size_t i : send) bytes += entries[i].second.size();
  Done<void> finish = [this, start, n = uint64_t{send.size()}, bytes,
                       name = entries.empty() ? std::string() : entries.front().first.substr(0, 64),
                       done = std::move(done)](dynamodb::Outcome<void> out) {
    const bool failed = !out.ok();
    out = settle(Op::kSetMany, "set_many", name, start, std::move(out),
                 std::optional<dynamodb::Outcome<void>>(dynamodb::Outcome<void>()));
    if (!failed) {
      stats_->sets.fetch_add(n, std::memory_order_relaxed);
      stats_->bytes_written.fetch_add(bytes, std::memory_order_relaxed);
    }
    done(std::move(out));
  };
  prefix_async([this, entries = std::move(entries), send = std::move(send), ttl,
                finish = std::move(finish)](dynamodb::Outcome<std::string> prefix) mutable {
    auto checked = detail::outcome_of<void>([&] {
      const std::string& p = prefix.value();  // rethrows the generation read's error
      validate_ttl(ttl);
      for (size_t i : send) {
        stored_key(entries[i].first, p);
        check_value_size(entries[i].first, entries[i].second);
      }
    });
    if (!checked.ok()) return finish(std::move(checked).error());
    if (send.empty()) return finish(dynamodb::Outcome<void>());
    auto all = join(send.size(), [finish](std::exception_ptr e) { finish(dynamodb::Outcome<void>(std::move(e))); });
    for (size_t i : send)
      put_async(std::move(entries[i].first), prefix.value(), std::move(entries[i].second), ttl,
                [all](dynamodb::Outcome<void> r) { all->one(std::move(r).error()); });
  });
}

// One UpdateItem: the next generation. Every key of the namespace maps to new items from
// now on; this process sees it at once, others within namespace_refresh.
ddb::UpdateItemRequest DynamodbBackend::next_generation() const {
  ddb::UpdateItemRequest r;
  r.table_name = options_.table;
  r.key = key_item(generation_key());
  r.update_expression = "ADD #g :one";
  r.values = {{":one", ddb::AttributeValue::N(1)}};
  bind_names(r, r.update_expression);
  r.return_values = ddb::ReturnValues::kUpdatedNew;
  return r;
}

void DynamodbBackend::clear_namespace() { generation_cleared(wire().update_item(next_generation()).attributes); }

void DynamodbBackend::generation_cleared(const std::optional<ddb::Item>& attributes) {
  if (!attributes || !attributes->count(attr::kGeneration))
    throw ProtocolError("UpdateItem returned no `generation` for namespace '" + options_.key_namespace + "'",
                        false);
  int64_t gen = integer(attributes->at(attr::kGeneration), attr::kGeneration, generation_key());
  Generation& g = *generation_;
  std::lock_guard lock(g.mu);
  g.value = std::max(g.value, gen);
  g.known = true;
  g.read_at = std::chrono::steady_clock::now();
  emit(options_.log, LogLevel::kInfo,
       "namespace '" + options_.key_namespace + "' cleared: generation " + std::to_string(gen));
}

ddb::ScanRequest DynamodbBackend::clear_scan(int segment) const {
  ddb::ScanRequest scan;
  scan.table_name = options_.table;
  scan.projection_expression = "#k";
  scan.filter_expression = "attribute_not_exists(#g)";
  scan.names = {{"#k", attr::kKey}, {"#g", attr::kGeneration}};
  if (options_.clear_segments > 1) {
    scan.segment = segment;
    scan.total_segments = options_.clear_segments;
  }
  return scan;
}

namespace {
// The deletes of a clear Scan page's items.
std::vector<ddb::WriteRequest> deletes_of(const ddb::PageResult& page) {
  std::vector<ddb::WriteRequest> deletes;
  deletes.reserve(page.items.size());
  for (const auto& item : page.items) {
    auto k = item.find(attr::kKey);
    if (k == item.end()) continue;
    ddb::WriteRequest w;
    w.delete_key = key_item(k->second.scalar);
    deletes.push_back(std::move(w));
  }
  return deletes;
}
}  // namespace

// A parallel Scan (clear_segments segments, one thread each) of keys only, each page
// deleted with BatchWriteItem before the next is read. Namespace generation items are kept
// (a FilterExpression): generations must never go back, or a process still holding the
// old number would write where a cleared namespace's new items go. The first error stops
// every segment after its current page and is rethrown.
void DynamodbBackend::clear_table(const std::function<void(uint64_t)>& progress) {
  const int segments = options_.clear_segments;
  std::atomic<uint64_t> erased{0};
  std::atomic<bool> failed{false};
  std::mutex report_mu;  // progress: one call at a time, counts increasing
  std::exception_ptr error;
  auto scan_segment = [&](int segment) {
    try {
      wire().scan_all(clear_scan(segment), [&](ddb::PageResult& page) {
        std::vector<ddb::WriteRequest> deletes = deletes_of(page);
        const size_t n = deletes.size();
        if (n) wire().batch_write_all(options_.table, std::move(deletes));
        if (n && progress) {
          std::lock_guard lock(report_mu);
          progress(erased += n);
        } else {
          erased += n;
        }
        return !failed.load();
      });
    } catch (...) {
      std::lock_guard lock(report_mu);
      if (!error) error = std::current_exception();
      failed = true;
    }
  };
  if (segments == 1) {
    scan_segment(0);
  } else {
    std::vector<std::thread> threads;
    threads.reserve(static_cast<size_t>(segments));
    for (int i = 0; i < segments; ++i) threads.emplace_back(scan_segment, i);
    for (auto& t : threads) t.join();
  }
  if (error) std::rethrow_exception(error);
  table_cleared(options_, *stats_, erased.load());
}

// ---- asynchronous clear ----

// One full clear_async: its segments' shared state.
struct DynamodbBackend::ClearRun {
  std::function<void(uint64_t)> progress;
  // Called once, when the last segment has stopped: the first error, or the count erased.
  std::function<void(dynamodb::Outcome<void>, uint64_t erased)> finish;
  std::mutex mu;  // progress: one call at a time, counts increasing
  uint64_t erased = 0;
  int segments_left = 0;
  std::exception_ptr error;
  std::atomic<bool> failed{false};

  void deleted(uint64_t n) {
    std::lock_guard lock(mu);
    erased += n;
    if (n && progress) progress(erased);
  }
  void segment_done(std::exception_ptr e) {
    uint64_t n = 0;
    {
      std::lock_guard lock(mu);
      if (e) {
        failed = true;
        if (!error) error = std::move(e);
      }
      if (--segments_left > 0) return;
      n = erased;
    }
    finish(error ? dynamodb::Outcome<void>(std::exchange(error, nullptr)) : dynamodb::Outcome<void>(), n);
  }
};

void DynamodbBackend::clear_async(Done<void> done, std::function<void(uint64_t)> progress) {
  const auto start = std::chrono::steady_clock::now();
  Done<void> finish = [this, start, done = std::move(done)](dynamodb::Outcome<void> out) {
    done(settle<void>(Op::kClear, "clear", options_.table, start, std::move(out), std::nullopt));
  };
  if (!options_.key_namespace.empty()) {
    ddb::UpdateItemRequest r = next_generation();
    r.return_consumed_capacity = capacity_request(options_);
    return client_->update_item_async(std::move(r), [this, finish](ddb::Outcome<ddb::WriteResult> res) {
      if (res.ok()) add_units(stats_->write_capacity_units, res.value().consumed);
      finish(detail::outcome_of<void>([&] { generation_cleared(res.value().attributes); }));
    });
  }
  auto run = std::make_shared<ClearRun>();
  run->progress = std::move(progress);
  run->segments_left = options_.clear_segments;
  run->finish = [this, finish](dynamodb::Outcome<void> out, uint64_t erased) {
    if (out.ok()) table_cleared(options_, *stats_, erased);
    finish(std::move(out));
  };
  for (int i = 0; i < options_.clear_segments; ++i) clear_segment_async(run, clear_scan(i));
}

// One page of a segment: its keys deleted by BatchWriteItems of 25 at once, then the next page.
void DynamodbBackend::clear_segment_async(std::shared_ptr<ClearRun> run, ddb::ScanRequest scan) {
  scan.return_consumed_capacity = capacity_request(options_);
  ddb::ScanRequest next = scan;
  client_->scan_async(std::move(scan), [this, run, next = std::move(next)](ddb::Outcome<ddb::PageResult> res) mutable {
    if (!res.ok()) return run->segment_done(std::move(res).error());
    ddb::PageResult& page = res.value();
    add_units(stats_->read_capacity_units, page.consumed);
    std::vector<ddb::WriteRequest> deletes = deletes_of(page);
    const size_t n = deletes.size();
    auto after = [this, run, n, next = std::move(next), last = std::move(page.last_evaluated_key)](
                     std::exception_ptr e) mutable {
      if (e) return run->segment_done(std::move(e));
      run->deleted(n);
      if (!last || run->failed.load()) return run->segment_done(nullptr);
      next.exclusive_start_key = std::move(last);
      clear_segment_async(run, std::move(next));
    };
    if (n == 0) return after(nullptr);
    constexpr size_t kPerCall = 25;  // BatchWriteItem's limit
    const size_t calls = (n + kPerCall - 1) / kPerCall;
    auto all = join(calls, std::move(after));
    for (size_t c = 0; c < calls; ++c) {
      ddb::BatchWriteItemRequest w;
      w.return_consumed_capacity = capacity_request(options_);
      auto& list = w.request_items[options_.table];
      for (size_t i = c * kPerCall; i < std::min(n, (c + 1) * kPerCall); ++i) list.push_back(std::move(deletes[i]));
      client_->batch_write_item_async(std::move(w), [this, all](ddb::Outcome<ddb::BatchWriteItemResult> r) {
        if (!r.ok()) return all->one(std::move(r).error());
        for (const auto& used : r.value().consumed) add_units(stats_->write_capacity_units, used);
        auto left = r.value().unprocessed_items.find(options_.table);
        if (left == r.value().unprocessed_items.end() || left->second.empty()) return all->one(nullptr);
        // Leftovers (rare: a throttled table) go to batch_write_all on a helper thread, so
        // that the loop never sleeps: it re-sends them at once, as boto3 does, then backs off
        // after each later call that still leaves some.
        offload<void>([all](dynamodb::Outcome<void> o) { all->one(std::move(o).error()); },
                      [this, rest = std::move(left->second)]() mutable {
                        wire().batch_write_all(options_.table, std::move(rest));
                      });
      });
    }
  });
}

}  // namespace dynamodb_cache
