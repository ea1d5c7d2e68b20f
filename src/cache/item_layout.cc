// The item layout (item_layout.h): pure functions, no client.
#include "cache/item_layout.h"

#include <zstd.h>

#include <array>
#include <charconv>
#include <cmath>
#include <cstdio>

#include "dynamodb_cache/errors.h"
#include "util/crypto.h"  // base64

namespace dynamodb_cache::layout {

namespace {

struct CCtx {
  ZSTD_CCtx* c = ZSTD_createCCtx();
  ~CCtx() { ZSTD_freeCCtx(c); }
};
struct DCtx {
  ZSTD_DCtx* d = ZSTD_createDCtx();
  ~DCtx() { ZSTD_freeDCtx(d); }
};

// `s` whole as a double (std::from_chars's reading); false when it is not one. The numbers of
// every get (expire, update_ts: whole seconds) take a shortcut: up to 15 digits are exact in
// a double, and from_chars costs ~150 instructions each.
bool to_double(std::string_view s, double& d) {
  if (!s.empty() && s.size() <= 15) {
    int64_t n = 0;
    size_t i = 0;
    while (i < s.size() && s[i] >= '0' && s[i] <= '9') n = n * 10 + (s[i++] - '0');
    if (i == s.size()) {
      d = static_cast<double>(n);
      return true;
    }
  }
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), d);
  return ec == std::errc() && p == s.data() + s.size();
}

// A number attribute as a double; `fallback` when absent or not a number type.
double number(const ItemView& item, Name name, double fallback) {
  auto a = item.get(name);
  if (!a || a->type != ddb::AttrType::kN) return fallback;
  std::string_view s = a->scalar;
  double d = 0;
  if (!to_double(s, d))
    throw CodecError(std::string("attribute '") + name_of(name) + "' is not a number: " + std::string(s));
  return d;
}

}  // namespace

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
    throw CodecError("item '" + std::string(key) +
                     "': compressed value is corrupt (no valid zstd frame header)");
  // set() never writes more than kMaxValueBytes, so a larger frame was written by something
  // else; refusing it bounds the memory one read can take.
  if (size > kMaxValueBytes)
    throw CodecError("item '" + std::string(key) + "': compressed value declares " + std::to_string(size) +
                     " bytes, over the limit of " + std::to_string(kMaxValueBytes) + " bytes (64 MiB)");
  std::string out(static_cast<size_t>(size), '\0');
  size_t n = ZSTD_decompressDCtx(ctx.d, out.data(), out.size(), in.data(), in.size());
  if (ZSTD_isError(n) || n != size)
    throw CodecError("item '" + std::string(key) + "': compressed value is corrupt");
  return out;
}

std::span<const std::string_view> field_names() {
  static const std::array<std::string_view, kNames> names = [] {
    std::array<std::string_view, kNames> a;
    for (size_t i = 0; i < kNames; ++i) a[i] = name_of(static_cast<Name>(i));
    return a;
  }();
  return names;
}

std::string ItemView::take_value() const {
  if (item_) return item_->at(attr::kValue).scalar;
  return std::move(fields_->fields[kValueName].bytes);
}

std::optional<chunked::Head> ItemView::head() const {
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
                               std::to_string(kMaxValueBytes) + " bytes (64 MiB)");
}

bool fits_one_item(const DynamodbOptions& o, std::string_view key, std::string_view value) {
  const std::size_t encoded = o.python_compat ? (value.size() + 2) / 3 * 4 : value.size();
  return encoded + 2 * key.size() + 512 <= kMaxItemBytes;  // key twice: a digest's full_key
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

namespace {
// A number attribute's text; nullopt when absent or of another type. CodecError when it is
// no number.
std::optional<std::string> number_text(const ItemView& item, Name name) {
  auto a = item.get(name);
  if (!a || a->type != ddb::AttrType::kN) return std::nullopt;
  (void)number(item, name, 0);  // checked here, so that liveness(LiveInputs) cannot fail
  return std::string(a->scalar);
}
double parsed(const std::optional<std::string>& text) {
  double d = 0;
  if (text) to_double(*text, d);
  return d;
}
}  // namespace

Liveness liveness(const ItemView& item, double now) {
  return liveness(LiveInputs{number_text(item, kExpireName), number_text(item, kExpireAtName),
                             number_text(item, kUpdateTsName), number_text(item, kFreshUntilName)},
                  now);
}

Liveness liveness(LiveInputs in, double now) {
  Liveness l;
  const double expire = parsed(in.expire);
  l.seen = std::move(in);
  if (expire == 0) {
    l.live = true;
    return l;
  }
  // > 0 exactly when now < fresh_until, or now < expire_at, or now - update_ts < expire.
  const double remaining = (l.seen.fresh_until ? parsed(l.seen.fresh_until)
                            : l.seen.expire_at ? parsed(l.seen.expire_at)
                                               : parsed(l.seen.update_ts) + expire) -
                           now;
  if (!(remaining > 0)) {  // NaN included
    l.stale = l.seen.fresh_until && l.seen.expire_at && now < parsed(l.seen.expire_at);
    return l;
  }
  l.live = true;
  // Clamped before the conversion: an expire of 1e16, 1e300 or inf (the Python package can
  // store any of them) would overflow int64_t milliseconds, which is undefined behaviour.
  constexpr double kMaxS = static_cast<double>(kMaxTtl.count()) / 1000;
  l.left = remaining >= kMaxS ? kMaxTtl : Ttl(static_cast<int64_t>(std::ceil(remaining * 1000)));
  return l;
}

namespace {
// "The rule's inputs are still `in`": each number equal, each absent one absent or no number.
std::string unchanged(const LiveInputs& in) {
  std::string e;
  auto one = [&](const std::optional<std::string>& v, const char* name, const char* value) {
    if (!e.empty()) e += " AND ";
    e += v ? std::string(name) + " = " + value
           : std::string("(attribute_not_exists(") + name + ") OR NOT attribute_type(" + name + ", :num))";
  };
  one(in.expire, "#x", ":sx");
  one(in.expire_at, "#t", ":st");
  one(in.update_ts, "#u", ":su");
  one(in.fresh_until, "#s", ":sf");
  return e;
}
}  // namespace

std::string LiveRule::live() const {
  if (seen && liveness(*seen, now).live) return "attribute_exists(#k) AND " + unchanged(*seen);
  return "attribute_exists(#k) AND (#x = :z OR #s > :now OR (attribute_not_exists(#s) AND #t > :now))";
}
std::string LiveRule::not_live() const {
  if (seen && !liveness(*seen, now).live) return "attribute_not_exists(#k) OR (" + unchanged(*seen) + ")";
  return "attribute_not_exists(#k) OR ((#x < :z OR #x > :z) AND (#s <= :now OR (attribute_not_exists(#s) AND "
         "#t <= "
         ":now)))";
}
void LiveRule::add_values(ddb::Values& v, std::string_view expression) const {
  auto add = [&](const char* ph, auto make) {
    if (expression.find(ph) != std::string_view::npos) v[ph] = make();
  };
  add(":z", [] { return ddb::AttributeValue::N(0); });
  add(":now", [&] { return ddb::AttributeValue::N(decimal(now)); });
  add(":num", [] { return ddb::AttributeValue::S("N"); });
  if (seen) {
    add(":sx", [&] { return ddb::AttributeValue::N(*seen->expire); });
    add(":st", [&] { return ddb::AttributeValue::N(*seen->expire_at); });
    add(":su", [&] { return ddb::AttributeValue::N(*seen->update_ts); });
    add(":sf", [&] { return ddb::AttributeValue::N(*seen->fresh_until); });
  }
}

void bind_names(ddb::ConditionalWrite& w, std::string_view expressions) {
  static const std::pair<const char*, const std::string*> kNames[] = {
      {"#k", &attr::kKey},        {"#x", &attr::kExpire},     {"#u", &attr::kUpdateTs},
      {"#t", &attr::kExpireAt},   {"#s", &attr::kFreshUntil}, {"#c", &attr::kCounter},
      {"#g", &attr::kGeneration}, {"#v", &attr::kVersion}};
  for (const auto& [ph, name] : kNames)
    if (expressions.find(ph) != std::string_view::npos) w.names[ph] = *name;
}

bool holds_key(const ItemView& item, std::string_view key) {
  auto fk = item.get(kFullKeyName);
  return !fk || fk->scalar == key;
}

ddb::Item item_head(std::string stored, std::string_view key, bool digest, Ttl ttl,
                    SystemClock::time_point now, bool expire_at) {
  validate_ttl(ttl);
  // Whole seconds, rounded up: the layout stores seconds, and a short TTL must not become 0
  // ("never"). At most kMaxTtl, so now_s + ttl_s cannot overflow.
  int64_t ttl_s = (ttl.count() + 999) / 1000;
  int64_t now_s = whole_seconds_of(now);
  ddb::Item item;
  item.emplace(attr::kKey, ddb::AttributeValue::S(std::move(stored)));
  item.emplace(attr::kExpire, ddb::AttributeValue::N(ttl_s));
  item.emplace(attr::kUpdateTs, ddb::AttributeValue::N(now_s));
  if (ttl_s > 0 && expire_at) item.emplace(attr::kExpireAt, ddb::AttributeValue::N(now_s + ttl_s));
  if (digest) item.emplace(attr::kFullKey, ddb::AttributeValue::S(std::string(key)));
  return item;
}

void add_grace(ddb::Item& item, Ttl grace) {
  auto x = item.find(attr::kExpire);
  if (grace.count() <= 0 || x == item.end() || x->second.scalar == "0") return;
  const int64_t fresh =
      integer(item.at(attr::kUpdateTs), attr::kUpdateTs, "") + integer(x->second, attr::kExpire, "");
  item.insert_or_assign(attr::kFreshUntil, ddb::AttributeValue::N(fresh));
  item.insert_or_assign(attr::kExpireAt, ddb::AttributeValue::N(fresh + (grace.count() + 999) / 1000));
}

ddb::Item encode_item(const DynamodbOptions& options, std::string stored, std::string_view key, bool digest,
                      std::string_view value, Ttl ttl, SystemClock::time_point now) {
  check_value_size(key, value);
  ddb::Item item = item_head(std::move(stored), key, digest, ttl, now, !options.python_compat);
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
  return item;
}

std::size_t item_bytes(const ddb::Item& item) {
  std::size_t size = 0;
  for (const auto& [n, v] : item) size += n.size() + v.scalar.size();
  return size;
}

std::optional<Hit> decode_entry(const ItemView& item, double now, const ChunkReader* chunks, bool stale) {
  auto key_attr = item.get(kKeyName);
  std::string_view key = key_attr ? key_attr->scalar : std::string_view("?");
  Liveness l = liveness(item, now);
  if (stale ? !l.stale : !l.live) return std::nullopt;
  // A stale entry's ttl_left is the grace left (to expire_at), rounded down.
  if (stale) l.left = Ttl(static_cast<int64_t>(std::floor((parsed(l.seen.expire_at) - now) * 1000)));
  if (auto c = item.get(kCounterName); c && !item.get(kValueName))
    return Hit{std::to_string(integer(*c, attr::kCounter, key)), l.left, true};
  if (auto head = item.head()) {
    if (!chunks) throw NeedsChunks{};
    std::string stored = (*chunks)(key, *head);
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

std::optional<Hit> decode_answer(const std::string& body, std::string_view key,
                                 const std::function<SystemClock::time_point()>& now,
                                 const ChunkReader* chunks, std::atomic<double>& read_units) {
  ddb::wire::GetItemFields fields;
  ddb::wire::decode_get_item_fields(body, field_names(), fields);
  if (fields.kind != ddb::wire::GetItemFields::kOther) {
    if (fields.capacity_units != 0) read_units.fetch_add(fields.capacity_units, std::memory_order_relaxed);
    if (fields.kind == ddb::wire::GetItemFields::kNoItem) return std::nullopt;
    ItemView item(fields);
    if (!holds_key(item, key)) return std::nullopt;
    return decode_entry(item, seconds_of(now()), chunks);
  }
  // Anything unusual (a chunked head, attributes of other types...): the whole Item.
  auto res = ddb::wire::decode_get_item(body);
  if (res.consumed) read_units.fetch_add(res.consumed->capacity_units, std::memory_order_relaxed);
  // full_key is compared before any chunk is read: a digest's chunks are the key's only.
  if (!res.item || !holds_key(*res.item, key)) return std::nullopt;
  return decode_entry(*res.item, seconds_of(now()), chunks);
}

}  // namespace dynamodb_cache::layout
