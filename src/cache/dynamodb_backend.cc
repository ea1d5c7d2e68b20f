// DynamodbBackend: the public class, which forwards to its Impl (dynamodb_backend_impl.h),
// and what every operation of the Impl shares: construction, accounting, and the item
// functions that read or write chunked values through the client.
#include "dynamodb_cache/dynamodb_backend.h"

#include <unordered_map>

#include "cache/background_pool.h"
#include "cache/chunked.h"
#include "cache/dynamodb_backend_impl.h"
#include "cache/feed.h"
#include "util/crypto.h"
#include "util/log.h"

namespace dynamodb_cache {

// ---- the item functions that need a client ----

namespace detail {

dynamodb::Item build_item(const DynamodbOptions& o, std::string stored, std::string_view key, bool digest,
                          std::string_view value, Ttl ttl, dynamodb::Client* chunk_to, Ttl grace) {
  dynamodb::Item item = layout::encode_item(o, std::move(stored), key, digest, value, ttl, o.now());
  layout::add_grace(item, grace);
  const std::size_t size = layout::item_bytes(item);
  if (size <= layout::kMaxItemBytes) return item;
  if (!chunk_to)
    throw InvalidArgumentError(
        "value of " + std::to_string(value.size()) + " bytes for key '" + std::string(key.substr(0, 64)) +
        "' makes a " + std::to_string(size) + "-byte item; DynamoDB allows at most " +
        std::to_string(layout::kMaxItemBytes) + " (set() stores such values in chunks)");
  // Chunks hold the raw or compressed bytes (python_compat's base64 would only add a third:
  // the Python package cannot read a chunked value either way).
  std::string_view bytes = value;
  int inner = layout::kRaw;
  auto fmt = item.find(attr::kFormat);
  if (fmt != item.end() && fmt->second.scalar == std::to_string(layout::kZstd)) {
    bytes = item.at(attr::kValue).scalar;
    inner = layout::kZstd;
  }
  // Chunks expire with their head (also with python_compat, whose head has no expire_at).
  std::optional<int64_t> expire_at;
  if (auto t = item.find(attr::kExpireAt); t != item.end())
    expire_at = layout::integer(t->second, attr::kExpireAt, key);  // with add_grace's grace
  else if (int64_t ttl_s = layout::integer(item.at(attr::kExpire), attr::kExpire, key); ttl_s > 0)
    expire_at = layout::integer(item.at(attr::kUpdateTs), attr::kUpdateTs, key) + ttl_s;
  // Chunk keys derive from the key as stored (what readers find in the head item).
  auto head = chunked::write_chunks(*chunk_to, o.table, item.at(attr::kKey).scalar, bytes, inner, expire_at);
  chunked::add_head_attributes(item, head);
  return item;
}

bool holds_key(const dynamodb::Item& item, std::string_view key) { return layout::holds_key(item, key); }

namespace {
// A chunked value's chunks, read through `client` as the options say.
struct ClientChunks {
  const DynamodbOptions& o;
  dynamodb::Client& client;
  std::string operator()(std::string_view stored_key, const chunked::Head& head) const {
    return chunked::read_chunks(client, o.table, stored_key, head, o.consistent_read);
  }
};
}  // namespace

std::optional<Hit> read_entry(const DynamodbOptions& o, dynamodb::Client& client, const dynamodb::Item& item,
                              bool stale) {
  ClientChunks read{o, client};
  const layout::ChunkReader chunks(read);
  return layout::decode_entry(item, layout::seconds_of(o.now()), &chunks, stale);
}

std::optional<Hit> read_answer(const DynamodbOptions& o, dynamodb::Client* chunks_from,
                               const std::string& body, std::string_view key,
                               std::atomic<double>& read_units) {
  if (!chunks_from) return layout::decode_answer(body, key, o.now, nullptr, read_units);
  ClientChunks read{o, *chunks_from};
  const layout::ChunkReader chunks(read);
  return layout::decode_answer(body, key, o.now, &chunks, read_units);
}

dynamodb::GetItemRequest consistent_get(const std::string& table, const std::string& stored) {
  dynamodb::GetItemRequest r;
  r.table_name = table;
  r.key = layout::key_item(stored);
  r.consistent_read = true;
  return r;
}

void add_write_token(dynamodb::Item& item) {
  if (!item.count(chunked::kWriteId))
    item.insert_or_assign(attr::kVersion, dynamodb::AttributeValue::S(util::random_hex(8, "a write token")));
}

bool same_write(const std::optional<dynamodb::Item>& seen, const dynamodb::Item& written) {
  if (!seen) return false;
  for (const std::string& name : {std::string(chunked::kWriteId), attr::kVersion}) {
    auto w = written.find(name);
    if (w == written.end()) continue;
    auto s = seen->find(name);
    return s != seen->end() && s->second == w->second;
  }
  return false;
}

void Join::one(std::exception_ptr e) {
  {
    std::lock_guard lock(mu);
    if (e && !error) error = std::move(e);
    if (--left > 0) return;
  }
  done(std::exchange(error, nullptr));
}

std::shared_ptr<Join> join(size_t n, std::function<void(std::exception_ptr)> done) {
  auto j = std::make_shared<Join>();
  j->left = n;
  j->done = std::move(done);
  return j;
}

Distinct distinct(const std::vector<std::string>& keys) {
  Distinct d;
  d.slot.resize(keys.size());
  std::unordered_map<std::string_view, size_t> seen;  // key -> its index in d.first
  for (size_t i = 0; i < keys.size(); ++i) {
    auto [it, fresh] = seen.emplace(keys[i], d.first.size());
    if (fresh) d.first.push_back(i);
    d.slot[i] = it->second;
  }
  return d;
}

}  // namespace detail

// ---- the Impl's shared parts ----

namespace {
// `o` with its clock set, once the client and the table name are known to be there (the first
// checks, before those of the namespace in StoredKeys and of clear_segments).
DynamodbOptions checked(const std::shared_ptr<ddb::Client>& client, DynamodbOptions o) {
  if (!client) throw InvalidArgumentError("DynamodbBackend needs a client");
  if (o.table.empty()) throw InvalidArgumentError("DynamodbBackend needs a table name");
  if (!o.now) o.now = [] { return SystemClock::now(); };
  return o;
}
}  // namespace

DynamodbBackend::Impl::Impl(std::shared_ptr<ddb::Client> c, DynamodbOptions o, std::shared_ptr<CacheStats> s)
    : client(std::move(c)),
      options(checked(client, std::move(o))),
      stats_owner(std::move(s)),
      stats(*stats_owner),
      key_map(options) {
  if (options.clear_segments < 1 || options.clear_segments > 64)
    throw InvalidArgumentError("clear_segments must be 1 to 64 (one thread each)");
}

DynamodbBackend::Impl::~Impl() {
  {
    // Closing first: a callback on the loop may still call offload() until the client is
    // gone, and a helper started after this wait would outlive the backend.
    std::unique_lock lock(helpers->mu);
    helpers->closing = true;
    helpers->idle.wait(lock, [&] { return helpers->running == 0; });
  }
  client.reset();  // before options and stats, which callbacks read
}

ddb::ReturnConsumedCapacity DynamodbBackend::Impl::Metered::rcc() const {
  return track ? ddb::ReturnConsumedCapacity::kTotal : ddb::ReturnConsumedCapacity::kNone;
}

namespace {
void add_units(std::atomic<double>& to, const std::optional<ddb::ConsumedCapacity>& c) {
  if (c) to.fetch_add(c->capacity_units, std::memory_order_relaxed);
}
}  // namespace

ddb::GetItemResult DynamodbBackend::Impl::Metered::get_item(ddb::GetItemRequest r) {
  r.return_consumed_capacity = rcc();
  auto res = c.get_item(r);
  add_units(s.read_capacity_units, res.consumed);
  return res;
}

ddb::WriteResult DynamodbBackend::Impl::Metered::put_item(ddb::PutItemRequest r) {
  r.return_consumed_capacity = rcc();
  auto res = c.put_item(r);
  add_units(s.write_capacity_units, res.consumed);
  return res;
}

ddb::WriteResult DynamodbBackend::Impl::Metered::update_item(ddb::UpdateItemRequest r) {
  r.return_consumed_capacity = rcc();
  auto res = c.update_item(r);
  add_units(s.write_capacity_units, res.consumed);
  return res;
}

std::vector<ddb::Item> DynamodbBackend::Impl::Metered::batch_get_all(const std::string& table,
                                                                     std::vector<ddb::Item> keys,
                                                                     bool consistent) {
  std::vector<ddb::ConsumedCapacity> cc;
  auto items = c.batch_get_all(table, std::move(keys), consistent, track ? &cc : nullptr);
  for (auto& x : cc) add_units(s.read_capacity_units, x);
  return items;
}

void DynamodbBackend::Impl::Metered::batch_write_all(const std::string& table,
                                                     std::vector<ddb::WriteRequest> writes) {
  std::vector<ddb::ConsumedCapacity> cc;
  c.batch_write_all(table, std::move(writes), track ? &cc : nullptr);
  for (auto& x : cc) add_units(s.write_capacity_units, x);
}

void DynamodbBackend::Impl::Metered::scan_all(ddb::ScanRequest r,
                                              const std::function<bool(ddb::PageResult&)>& on_page) {
  r.return_consumed_capacity = rcc();
  c.scan_all(std::move(r), [&](ddb::PageResult& p) {
    add_units(s.read_capacity_units, p.consumed);
    return on_page(p);
  });
}

ddb::ReturnConsumedCapacity DynamodbBackend::Impl::capacity_request() const {
  return Metered{*client, stats, options.track_capacity}.rcc();
}

void DynamodbBackend::Impl::add_read_units(const std::optional<ddb::ConsumedCapacity>& c) const {
  add_units(stats.read_capacity_units, c);
}

void DynamodbBackend::Impl::add_write_units(const std::optional<ddb::ConsumedCapacity>& c) const {
  add_units(stats.write_capacity_units, c);
}

uint64_t DynamodbBackend::Impl::feed_hash(std::string_view key) const {
  return feed::key_hash(options.key_namespace, key);
}

std::vector<uint64_t> DynamodbBackend::Impl::feed_hashes(const std::vector<std::string>& keys) const {
  std::vector<uint64_t> out;
  out.reserve(keys.size());
  for (const auto& k : keys) out.push_back(feed_hash(k));
  return out;
}

void DynamodbBackend::Impl::published_store(std::string_view key) {
  if (options.publish_invalidations) publish({feed_hash(key)}, false);
}

void DynamodbBackend::Impl::publish(const std::vector<uint64_t>& hashes, bool every_shard) {
  const auto groups =
      every_shard ? std::vector<std::vector<uint64_t>>(feed::kShards, hashes) : feed::by_shard(hashes);
  for (uint64_t shard = 0; shard < groups.size(); ++shard) {
    if (groups[shard].empty()) continue;
    for (int attempt = 1;; ++attempt) {
      const auto sent = std::chrono::steady_clock::now();
      const int64_t wall_ms =
          std::chrono::duration_cast<std::chrono::milliseconds>(options.now().time_since_epoch()).count();
      ddb::UpdateItemRequest r =
          feed::publish_request(options.table, shard, feed::slot_of(wall_ms), groups[shard]);
      r.return_consumed_capacity = capacity_request();
      ddb::WriteResult res;
      try {
        res = client->update_item(r);
      } catch (const Error& e) {
        throw Error(
            e.kind(),
            std::string("written, but its invalidation could not be published (near caches may keep the "
                        "old value until their memory TTL): ") +
                e.what(),
            e.retryable());
      }
      add_write_units(res.consumed);
      if (res.consumed) feed_write_units.fetch_add(res.consumed->capacity_units, std::memory_order_relaxed);
      // Landed in a slot readers still read (feed.h's timing contract): done.
      if (std::chrono::steady_clock::now() - sent <= feed::kPublishDeadline) break;
      if (attempt == feed::kPublishTries)
        throw Error(ErrorKind::kTimeout,
                    "written, but its invalidation could not be published within " +
                        std::to_string(feed::kPublishDeadline.count()) + " ms in " +
                        std::to_string(feed::kPublishTries) +
                        " tries (near caches may keep the old value until their memory TTL)",
                    true);
    }
  }
}

std::string DynamodbBackend::Impl::key_prefix() {
  if (auto known = key_map.known_prefix()) return std::move(*known);
  // Read without the lock: threads arriving together may read it more than once, harmlessly.
  for (int round = 0;; ++round) {
    const auto asked = std::chrono::steady_clock::now();
    auto read =
        key_map.generation_read(wire().get_item(key_map.generation_request(options.table)).item, asked);
    if (read) return std::move(*read);
    // No generation item: the namespace's first use, or its item was deleted. Start it (a
    // generation never used before); when another process just did, read theirs.
    const detail::StoredKeys::Move start = key_map.move(options.table, std::nullopt, options.now());
    ddb::WriteResult res;
    if (detail::conditional([&] { res = wire().update_item(start.request); }))
      return key_map.prefix_of(key_map.moved(start, res.attributes));
    if (round == 2)  // created and deleted again between our requests, three times over
      throw Error(ErrorKind::kConditionFailed,
                  "namespace '" + options.key_namespace + "': its generation item '" +
                      key_map.generation_key() + "' keeps disappearing",
                  true);
  }
}

ddb::Item DynamodbBackend::Impl::item_for(std::string_view key, std::string_view prefix,
                                          std::string_view value, Ttl ttl, ddb::Client* chunk_to) const {
  // The arguments in the order set() always checked them: value size, ttl, then the key.
  layout::check_value_size(key, value);
  validate_ttl(ttl);
  return detail::build_item(options, key_map.stored_key(key, prefix), key, key_map.is_digest(key, prefix),
                            value, ttl, chunk_to);
}

std::string DynamodbBackend::Impl::get_request(std::string_view stored, bool consistent) const {
  return ddb::wire::encode_get_item(options.table, attr::kKey, stored, consistent, capacity_request());
}

ddb::DeleteItemRequest DynamodbBackend::Impl::erase_request(std::string stored) const {
  ddb::DeleteItemRequest r;
  r.table_name = options.table;
  r.key = layout::key_item(std::move(stored));
  r.return_consumed_capacity = capacity_request();
  return r;
}

ddb::Item DynamodbBackend::Impl::head_for(std::string_view key, Ttl ttl, bool expire_at) {
  const std::string prefix = key_prefix();
  validate_ttl(ttl);  // before the key, as every write checks its arguments
  return layout::item_head(key_map.stored_key(key, prefix), key, key_map.is_digest(key, prefix), ttl,
                           options.now(), expire_at);
}

void DynamodbBackend::Impl::record_latency(Op op, std::chrono::steady_clock::time_point start) const {
  stats.latency[static_cast<size_t>(op)].record(std::chrono::steady_clock::now() - start);
}

void DynamodbBackend::Impl::emit(LogLevel level, const std::string& message) const {
  detail::log_to(options.log, level, message);
}

bool DynamodbBackend::Impl::fails_open(const Error& e, const char* op, std::string_view key,
                                       bool may_fail_open) const {
  if (!may_fail_open || !options.fail_open || e.kind() == ErrorKind::kInvalidArgument) return false;
  stats.count_error(e.kind());
  stats.fail_open.fetch_add(1, std::memory_order_relaxed);
  emit(LogLevel::kWarning, std::string("fail-open: ") + op + " of key '" + std::string(key.substr(0, 64)) +
                               "' failed (" + to_string(e.kind()) + ": " + e.what() +
                               "); answered as a miss");
  return true;
}

void DynamodbBackend::Impl::count_read(const std::optional<Hit>& hit) const {
  (hit ? stats.hits : stats.misses).fetch_add(1, std::memory_order_relaxed);
  if (hit) stats.bytes_read.fetch_add(hit->value.size(), std::memory_order_relaxed);
}

void DynamodbBackend::Impl::count_write(uint64_t entries, uint64_t bytes) const {
  stats.sets.fetch_add(entries, std::memory_order_relaxed);
  stats.bytes_written.fetch_add(bytes, std::memory_order_relaxed);
}

// ---- the public class ----

namespace {
std::shared_ptr<CacheStats> stats_of(const DynamodbOptions& o, std::shared_ptr<CacheStats> own) {
  return o.stats ? o.stats : std::move(own);
}
}  // namespace

DynamodbBackend::DynamodbBackend(std::shared_ptr<dynamodb::Client> client, DynamodbOptions options) {
  stats_ = stats_of(options, stats_);
  impl_ = std::make_unique<Impl>(std::move(client), std::move(options), stats_);
}

// get_or_set's background loads use this object: none may outlive it (background_pool.h).
DynamodbBackend::~DynamodbBackend() { detail::backend_gone(this); }

std::optional<Hit> DynamodbBackend::get_entry(std::string_view key) { return impl_->get_entry(key); }
void DynamodbBackend::set(std::string_view key, std::string_view value, Ttl ttl) {
  impl_->set(key, value, ttl);
}
void DynamodbBackend::erase(std::string_view key) { impl_->erase(key); }
void DynamodbBackend::clear(const std::function<void(uint64_t)>& progress) { impl_->clear(progress); }
std::vector<std::optional<Hit>> DynamodbBackend::get_many(const std::vector<std::string>& keys) {
  return impl_->get_many(keys);
}
void DynamodbBackend::set_many(const std::vector<std::pair<std::string, std::string>>& entries, Ttl ttl) {
  impl_->set_many(entries, ttl);
}
void DynamodbBackend::erase_many(const std::vector<std::string>& keys) { impl_->erase_many(keys); }
bool DynamodbBackend::contains(std::string_view key) { return impl_->contains(key); }
bool DynamodbBackend::touch(std::string_view key, Ttl ttl) { return impl_->touch(key, ttl); }
bool DynamodbBackend::add(std::string_view key, std::string_view value, Ttl ttl) {
  return impl_->add(key, value, ttl);
}
int64_t DynamodbBackend::increment(std::string_view key, int64_t delta, Ttl ttl) {
  return impl_->increment(key, delta, ttl);
}

void DynamodbBackend::get_entry_async(std::string key, Done<std::optional<Hit>> done) {
  impl_->get_entry_async(std::move(key), std::move(done));
}
void DynamodbBackend::set_async(std::string key, std::string value, Ttl ttl, Done<void> done) {
  impl_->set_async(std::move(key), std::move(value), ttl, std::move(done));
}
void DynamodbBackend::erase_async(std::string key, Done<void> done) {
  impl_->erase_async(std::move(key), std::move(done));
}
void DynamodbBackend::get_many_async(std::vector<std::string> keys,
                                     Done<std::vector<std::optional<Hit>>> done) {
  impl_->get_many_async(std::move(keys), std::move(done));
}
void DynamodbBackend::set_many_async(std::vector<std::pair<std::string, std::string>> entries, Ttl ttl,
                                     Done<void> done) {
  impl_->set_many_async(std::move(entries), ttl, std::move(done));
}
void DynamodbBackend::clear_async(Done<void> done, std::function<void(uint64_t)> progress) {
  impl_->clear_async(std::move(done), std::move(progress));
}
void DynamodbBackend::run_blocking(std::function<void(std::exception_ptr)> work) {
  // The work completes its caller itself; offload's own completion only reports a refusal.
  impl_->offload<void>(
      [work](Outcome<void> refused) {
        if (!refused.ok()) work(std::move(refused).error());
      },
      [work] { work(nullptr); });
}

dynamodb::Item detail::make_item(const DynamodbBackend& b, std::string_view key, std::string_view value,
                                 Ttl ttl) {
  auto& impl = DynamodbBackendAccess::impl(b);
  return impl.item_for(key, impl.key_prefix(), value, ttl, nullptr);
}

std::optional<Hit> detail::read_item(const DynamodbBackend& b, const dynamodb::Item& item) {
  auto& impl = DynamodbBackendAccess::impl(b);
  try {
    return detail::read_entry(impl.options, *impl.client, item);
  } catch (const chunked::ChunksGone&) {
    return std::nullopt;  // overwritten or erased while being read
  }
}

const DynamodbOptions& DynamodbBackend::options() const { return impl_->options; }
dynamodb::Client& DynamodbBackend::client() { return *impl_->client; }

std::string DynamodbBackend::stored_key(std::string_view key, std::string_view prefix) const {
  return impl_->key_map.stored_key(key, prefix);
}
std::string DynamodbBackend::stored_key(std::string_view key) const { return stored_key(key, key_prefix()); }
std::string DynamodbBackend::key_prefix() const { return impl_->key_prefix(); }

}  // namespace dynamodb_cache
