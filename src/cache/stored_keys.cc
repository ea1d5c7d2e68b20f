// Stored keys and namespace generations (stored_keys.h).
#include "cache/stored_keys.h"

#include <algorithm>

#include "cache/feed.h"
#include "cache/item_layout.h"
#include "dynamodb_cache/errors.h"
#include "util/crypto.h"

namespace dynamodb_cache::detail {

namespace {
const std::string& checked_namespace(const DynamodbOptions& o) {
  const std::string& ns = o.key_namespace;
  if (ns.size() > 64 ||
      ns.find_first_not_of("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-") !=
          std::string::npos)
    throw InvalidArgumentError("namespace '" + ns.substr(0, 64) +
                               "' must be 1-64 characters of A-Z a-z 0-9 _ . -");
  if (o.namespace_refresh.count() < 0) throw InvalidArgumentError("namespace_refresh must not be negative");
  return ns;
}
}  // namespace

StoredKeys::StoredKeys(const DynamodbOptions& o)
    : ns_(checked_namespace(o)), refresh_(o.namespace_refresh), long_keys_(o.long_keys) {}

std::string StoredKeys::stored_key(std::string_view key, std::string_view prefix) const {
  validate_key(key, long_keys_ ? kMaxLongKeyBytes : 2048);
  if (is_digest(key, prefix)) {
    std::string s(prefix);
    s += layout::kDigestMark;
    s += util::hex(util::sha256(key));
    return s;
  }
  if (prefix.empty() && key.starts_with(feed::kFeedPrefix))
    throw InvalidArgumentError("cache keys beginning with '" + std::string(feed::kFeedPrefix) +
                               "' are reserved for the invalidation feed (use a namespace or another key)");
  if (prefix.size() + key.size() > 2048)
    throw InvalidArgumentError("cache key is " + std::to_string(key.size()) +
                               " bytes; with the namespace prefix '" + std::string(prefix) +
                               "' it exceeds DynamoDB's 2048 (the long_keys option stores it)");
  return std::string(prefix) + std::string(key);
}

bool StoredKeys::is_digest(std::string_view key, std::string_view prefix) const {
  return long_keys_ && (prefix.size() + key.size() > 2048 || key.starts_with(layout::kDigestMark));
}

void StoredKeys::forget_generation() {
  std::lock_guard lock(mu_);
  known_ = false;
}

std::string StoredKeys::generation_key() const { return ns_ + ":generation"; }

std::string StoredKeys::prefix_of(int64_t generation) const {
  return ns_ + ":" + std::to_string(generation) + ":";
}

std::optional<std::string> StoredKeys::known_generation() const {
  const auto now = std::chrono::steady_clock::now();
  std::lock_guard lock(mu_);
  if (known_ && now - read_at_ < refresh_) return prefix_of(generation_);
  return std::nullopt;
}

dynamodb::GetItemRequest StoredKeys::generation_request(const std::string& table) const {
  dynamodb::GetItemRequest r;
  r.table_name = table;
  r.key = layout::key_item(generation_key());
  r.consistent_read = true;
  r.projection_expression = "#k, #g";  // #k: an item without `generation` is told from none
  r.names = {{"#k", attr::kKey}, {"#g", attr::kGeneration}};
  return r;
}

namespace {
// The generation `item`, a generation item, holds: nullopt when it is not an integer from 0
// to kMaxGeneration. CodecError when it has no `generation`: a key outside namespaces was
// stored under the generation item's name.
std::optional<int64_t> generation_in(const dynamodb::Item& item, const std::string& ns,
                                     const std::string& key) {
  auto it = item.find(attr::kGeneration);
  if (it == item.end())
    throw CodecError("namespace '" + ns + "': item '" + key +
                     "' has no `generation`: a value stored outside namespaces under that key took the "
                     "place of the namespace's generation item; erase that key or use another namespace");
  std::optional<int64_t> g;
  try {
    g = layout::integer(it->second, attr::kGeneration, key);
  } catch (const CodecError&) {
  }
  if (g && *g >= 0 && *g <= kMaxGeneration) return g;
  return std::nullopt;
}
}  // namespace

std::optional<std::string> StoredKeys::generation_read(const std::optional<dynamodb::Item>& item,
                                                       std::chrono::steady_clock::time_point asked) {
  if (!item) return std::nullopt;
  const std::optional<int64_t> read = generation_in(*item, ns_, generation_key());
  if (!read) {
    const auto& v = item->at(attr::kGeneration);  // a number's text is digits, '-', '.', 'e': safe to show
    throw CodecError(
        "namespace '" + ns_ + "': item '" + generation_key() + "' holds generation " +
        (v.type == dynamodb::AttrType::kN ? v.scalar.substr(0, 40) : std::string("of another type")) +
        ", not an integer from 0 to " + std::to_string(kMaxGeneration) +
        "; clearing the namespace replaces it with a new generation");
  }
  std::lock_guard lock(mu_);
  // The answer asked last wins (not the largest generation: an item set back by hand is
  // followed, so every process agrees within namespace_refresh); an answer asked before the
  // one known, such as a read that crossed this process's own clear, is older news.
  if (!known_ || asked >= read_at_) {
    generation_ = *read;
    known_ = true;
    read_at_ = asked;
  }
  return prefix_of(generation_);
}

std::optional<dynamodb::Item> StoredKeys::last_seen() const {
  std::lock_guard lock(mu_);
  if (!known_) return std::nullopt;
  return dynamodb::Item{{attr::kGeneration, dynamodb::AttributeValue::N(generation_)}};
}

StoredKeys::Move StoredKeys::move(const std::string& table, const std::optional<dynamodb::Item>& seen,
                                  SystemClock::time_point now) const {
  const int64_t clock = std::clamp<int64_t>(
      std::chrono::duration_cast<std::chrono::microseconds>(now.time_since_epoch()).count(), 0,
      kMaxGeneration);
  Move m;
  dynamodb::UpdateItemRequest& r = m.request;
  r.table_name = table;
  r.key = layout::key_item(generation_key());
  r.update_expression = "SET #g = :next";
  if (!seen) {
    m.next = clock;
    r.condition_expression = "attribute_not_exists(#k)";
  } else {
    const std::optional<int64_t> g = generation_in(*seen, ns_, generation_key());
    m.next = g && *g < kMaxGeneration ? std::max(*g + 1, clock) : clock;
    r.condition_expression = "#g = :seen";
    r.values[":seen"] = seen->at(attr::kGeneration);
  }
  r.values[":next"] = dynamodb::AttributeValue::N(m.next);
  layout::bind_names(r, r.update_expression + " " + r.condition_expression);
  r.return_values = dynamodb::ReturnValues::kUpdatedNew;
  return m;
}

int64_t StoredKeys::moved(const Move& move, const std::optional<dynamodb::Item>& attributes) {
  const dynamodb::AttributeValue* got = nullptr;
  if (attributes)
    if (auto it = attributes->find(attr::kGeneration); it != attributes->end()) got = &it->second;
  if (!got || got->type != dynamodb::AttrType::kN || got->scalar != std::to_string(move.next))
    throw ProtocolError("UpdateItem of the generation of namespace '" + ns_ +
                            "' did not return the generation written (" + std::to_string(move.next) + ")",
                        false);
  std::lock_guard lock(mu_);
  generation_ = move.next;
  known_ = true;
  read_at_ = std::chrono::steady_clock::now();
  return move.next;
}

}  // namespace dynamodb_cache::detail
