#include <zstd.h>

#include <charconv>
#include <cmath>
#include <mutex>
#include <unordered_map>
#include <utility>

#include "dynamodb_cache/backend.h"
#include "dynamodb_cache/errors.h"
#include "util/crypto.h"

namespace dynamodb_cache {

namespace ddb = dynamodb;

namespace {

constexpr std::size_t kMaxItemBytes = 400 * 1024;  // DynamoDB's item size limit
constexpr std::size_t kMaxDecompressed = 64u << 20;  // refuse absurd frame sizes from the table
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
  if (size == ZSTD_CONTENTSIZE_ERROR || size == ZSTD_CONTENTSIZE_UNKNOWN || size > kMaxDecompressed)
    throw CodecError("item '" + std::string(key) + "': compressed value is corrupt");
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

double number(const ddb::Item& item, const char* name, double fallback) {
  auto it = item.find(name);
  if (it == item.end() || it->second.type != ddb::AttrType::kN) return fallback;
  const std::string& s = it->second.scalar;
  double d = 0;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), d);
  if (ec != std::errc() || p != s.data() + s.size())
    throw CodecError(std::string("attribute '") + name + "' is not a number: " + s);
  return d;
}

ddb::Item key_item(std::string_view key) {
  ddb::Item k;
  k.emplace(attr::kKey, ddb::AttributeValue::S(std::string(key)));
  return k;
}

}  // namespace

DynamodbBackend::DynamodbBackend(std::shared_ptr<ddb::Client> client, DynamodbOptions options)
    : client_(std::move(client)), options_(std::move(options)) {
  if (!client_) throw InvalidArgumentError("DynamodbBackend needs a client");
  if (options_.table.empty()) throw InvalidArgumentError("DynamodbBackend needs a table name");
  if (!options_.now) options_.now = [] { return SystemClock::now(); };
}

ddb::Item DynamodbBackend::make_item(std::string_view key, std::string_view value, Ttl ttl) const {
  validate_key(key);
  if (ttl.count() < 0) throw InvalidArgumentError("ttl must not be negative");
  // Whole seconds, rounded up: the layout stores seconds, and a short TTL must not become 0
  // ("never").
  int64_t ttl_s = (ttl.count() + 999) / 1000;
  int64_t now_s = std::chrono::duration_cast<std::chrono::seconds>(options_.now().time_since_epoch()).count();

  ddb::Item item;
  item.emplace(attr::kKey, ddb::AttributeValue::S(std::string(key)));
  if (options_.python_compat) {
    item.emplace(attr::kValue, ddb::AttributeValue::B(util::base64_encode(value)));
  } else if (options_.compress_min_bytes > 0 && value.size() >= options_.compress_min_bytes) {
    std::string z = compress(value, options_.compress_level);
    bool smaller = z.size() < value.size();
    item.emplace(attr::kValue, ddb::AttributeValue::B(smaller ? std::move(z) : std::string(value)));
    item.emplace(attr::kFormat, ddb::AttributeValue::N(smaller ? kZstd : kRaw));
  } else {
    item.emplace(attr::kValue, ddb::AttributeValue::B(std::string(value)));
    item.emplace(attr::kFormat, ddb::AttributeValue::N(kRaw));
  }
  item.emplace(attr::kExpire, ddb::AttributeValue::N(ttl_s));
  item.emplace(attr::kUpdateTs, ddb::AttributeValue::N(now_s));
  if (ttl_s > 0 && !options_.python_compat)
    item.emplace(attr::kExpireAt, ddb::AttributeValue::N(now_s + ttl_s));

  std::size_t size = 0;
  for (const auto& [n, v] : item) size += attr_size(n, v);
  if (size > kMaxItemBytes)
    throw InvalidArgumentError("value of " + std::to_string(value.size()) + " bytes for key '" +
                               std::string(key.substr(0, 64)) + "' makes a " + std::to_string(size) +
                               "-byte item; DynamoDB allows at most " + std::to_string(kMaxItemBytes));
  return item;
}

std::optional<Hit> DynamodbBackend::read_item(const ddb::Item& item) const {
  auto key_it = item.find(attr::kKey);
  std::string_view key = key_it == item.end() ? std::string_view("?") : std::string_view(key_it->second.scalar);
  double expire = number(item, attr::kExpire, 0);
  double update_ts = number(item, attr::kUpdateTs, 0);
  double now = std::chrono::duration<double>(options_.now().time_since_epoch()).count();
  std::optional<Ttl> left;
  if (expire != 0) {
    double remaining = update_ts + expire - now;  // > 0 exactly when now - update_ts < expire
    if (!(remaining > 0)) return std::nullopt;
    left = Ttl(static_cast<int64_t>(std::ceil(remaining * 1000)));
  }
  auto v = item.find(attr::kValue);
  if (v == item.end() || v->second.type != ddb::AttrType::kB)
    throw CodecError("item '" + std::string(key) + "' has no binary `value` attribute");
  auto fmt = item.find(attr::kFormat);
  if (fmt == item.end()) {
    // Written by the Python package (PynamoDB 5): the bytes are stored as base64 text.
    auto decoded = util::base64_decode(v->second.scalar);
    if (!decoded)
      throw CodecError("item '" + std::string(key) +
                       "' has no `fmt` marker and its value is not base64 (not a dynamodb_cache item)");
    return Hit{std::move(*decoded), left};
  }
  int f = static_cast<int>(number(item, attr::kFormat, 0));
  if (f == kRaw) return Hit{v->second.scalar, left};
  if (f == kZstd) return Hit{decompress(v->second.scalar, key), left};
  throw CodecError("item '" + std::string(key) + "' has value format " + fmt->second.scalar +
                   ", unknown to this version");
}

std::optional<Hit> DynamodbBackend::get_entry(std::string_view key) {
  validate_key(key);
  ddb::GetItemRequest r;
  r.table_name = options_.table;
  r.key = key_item(key);
  r.consistent_read = options_.consistent_read;
  auto res = client_->get_item(r);
  if (!res.item) return std::nullopt;
  return read_item(*res.item);
}

void DynamodbBackend::set(std::string_view key, std::string_view value, Ttl ttl) {
  ddb::PutItemRequest r;
  r.table_name = options_.table;
  r.item = make_item(key, value, ttl);
  client_->put_item(r);
}

void DynamodbBackend::erase(std::string_view key) {
  validate_key(key);
  ddb::DeleteItemRequest r;
  r.table_name = options_.table;
  r.key = key_item(key);
  client_->delete_item(r);
}

std::vector<std::optional<Hit>> DynamodbBackend::get_many(const std::vector<std::string>& keys) {
  std::vector<ddb::Item> ask;
  std::unordered_map<std::string_view, std::optional<Hit>> found;
  for (const auto& k : keys) {
    validate_key(k);
    if (found.emplace(k, std::nullopt).second) ask.push_back(key_item(k));
  }
  auto items = client_->batch_get_all(options_.table, std::move(ask), options_.consistent_read);
  for (const auto& item : items) {
    auto k = item.find(attr::kKey);
    if (k == item.end()) continue;
    auto slot = found.find(k->second.scalar);
    if (slot != found.end()) slot->second = read_item(item);
  }
  std::vector<std::optional<Hit>> out;
  out.reserve(keys.size());
  for (const auto& k : keys) out.push_back(found[k]);
  return out;
}

void DynamodbBackend::set_many(const std::vector<std::pair<std::string, std::string>>& entries, Ttl ttl) {
  // One batch may not name a key twice: the last value for a key wins, as with set().
  std::unordered_map<std::string_view, size_t> last;
  for (size_t i = 0; i < entries.size(); ++i) last[entries[i].first] = i;
  std::vector<ddb::WriteRequest> writes;
  writes.reserve(last.size());
  for (size_t i = 0; i < entries.size(); ++i) {
    if (last[entries[i].first] != i) continue;
    ddb::WriteRequest w;
    w.put_item = make_item(entries[i].first, entries[i].second, ttl);
    writes.push_back(std::move(w));
  }
  client_->batch_write_all(options_.table, std::move(writes));
}

void DynamodbBackend::clear(const std::function<void(uint64_t)>& progress) {
  ddb::ScanRequest scan;
  scan.table_name = options_.table;
  scan.projection_expression = "#k";
  scan.names = {{"#k", attr::kKey}};
  uint64_t erased = 0;
  client_->scan_all(scan, [&](ddb::PageResult& page) {
    std::vector<ddb::WriteRequest> deletes;
    deletes.reserve(page.items.size());
    for (auto& item : page.items) {
      auto k = item.find(attr::kKey);
      if (k == item.end()) continue;
      ddb::WriteRequest w;
      w.delete_key = key_item(k->second.scalar);
      deletes.push_back(std::move(w));
    }
    erased += deletes.size();
    client_->batch_write_all(options_.table, std::move(deletes));
    if (progress) progress(erased);
    return true;
  });
}

// ---- asynchronous ----

DynamodbBackend::~DynamodbBackend() { client_.reset(); }  // before options_, which callbacks read

namespace {
// Runs `f` and completes `done` with its error when it throws before the operation started
// (an invalid key, a value too large): the same error the synchronous call throws.
template <class T, class F>
void or_fail(const Backend::Done<T>& done, F&& f) {
  try {
    f();
  } catch (...) {
    done(std::current_exception());
  }
}
}  // namespace

void DynamodbBackend::get_entry_async(std::string key, Done<std::optional<Hit>> done) {
  or_fail(done, [&] {
    validate_key(key);
    ddb::GetItemRequest r;
    r.table_name = options_.table;
    r.key = key_item(key);
    r.consistent_read = options_.consistent_read;
    client_->get_item_async(std::move(r), [this, done](ddb::Outcome<ddb::GetItemResult> res) {
      if (!res.ok()) return done(std::move(res).error());
      std::optional<dynamodb::Outcome<std::optional<Hit>>> out;
      try {
        auto& item = res.value().item;
        out.emplace(item ? read_item(*item) : std::nullopt);
      } catch (...) {
        out.emplace(std::current_exception());
      }
      done(std::move(*out));
    });
  });
}

void DynamodbBackend::set_async(std::string key, std::string value, Ttl ttl, Done<void> done) {
  or_fail(done, [&] {
    ddb::PutItemRequest r;
    r.table_name = options_.table;
    r.item = make_item(key, value, ttl);
    client_->put_item_async(std::move(r), [done](ddb::Outcome<ddb::WriteResult> res) {
      done(res.ok() ? dynamodb::Outcome<void>() : dynamodb::Outcome<void>(std::move(res).error()));
    });
  });
}

void DynamodbBackend::erase_async(std::string key, Done<void> done) {
  or_fail(done, [&] {
    validate_key(key);
    ddb::DeleteItemRequest r;
    r.table_name = options_.table;
    r.key = key_item(key);
    client_->delete_item_async(std::move(r), [done](ddb::Outcome<ddb::WriteResult> res) {
      done(res.ok() ? dynamodb::Outcome<void>() : dynamodb::Outcome<void>(std::move(res).error()));
    });
  });
}

void DynamodbBackend::get_many_async(std::vector<std::string> keys, Done<std::vector<std::optional<Hit>>> done) {
  if (keys.empty()) return done(std::vector<std::optional<Hit>>());
  struct State {
    std::mutex mu;
    std::vector<std::optional<Hit>> results;
    std::exception_ptr error;
    size_t left;
    Done<std::vector<std::optional<Hit>>> done;
  };
  auto st = std::make_shared<State>();
  st->results.resize(keys.size());
  st->left = keys.size();
  st->done = std::move(done);
  for (size_t i = 0; i < keys.size(); ++i)
    get_entry_async(std::move(keys[i]), [st, i](dynamodb::Outcome<std::optional<Hit>> r) {
      {
        std::lock_guard lock(st->mu);
        if (r.ok())
          st->results[i] = std::move(r.value());
        else if (!st->error)
          st->error = std::move(r).error();
        if (--st->left > 0) return;
      }
      if (st->error) return st->done(std::exchange(st->error, nullptr));
      st->done(std::move(st->results));
    });
}

void DynamodbBackend::set_many_async(std::vector<std::pair<std::string, std::string>> entries, Ttl ttl,
                                     Done<void> done) {
  if (entries.empty()) return done(dynamodb::Outcome<void>());
  struct State {
    std::mutex mu;
    std::exception_ptr error;
    size_t left;
    Done<void> done;
  };
  auto st = std::make_shared<State>();
  st->left = entries.size();
  st->done = std::move(done);
  for (auto& [k, v] : entries)
    set_async(std::move(k), std::move(v), ttl, [st](dynamodb::Outcome<void> r) {
      {
        std::lock_guard lock(st->mu);
        if (!r.ok() && !st->error) st->error = std::move(r).error();
        if (--st->left > 0) return;
      }
      st->done(st->error ? dynamodb::Outcome<void>(std::exchange(st->error, nullptr)) : dynamodb::Outcome<void>());
    });
}

}  // namespace dynamodb_cache
