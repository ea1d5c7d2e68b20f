// Stored keys and namespace generations (stored_keys.h).
#include "cache/stored_keys.h"

#include <algorithm>

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
  if (prefix.size() + key.size() > 2048)
    throw InvalidArgumentError("cache key is " + std::to_string(key.size()) +
                               " bytes; with the namespace prefix '" + std::string(prefix) +
                               "' it exceeds DynamoDB's 2048 (the long_keys option stores it)");
  return std::string(prefix) + std::string(key);
}

bool StoredKeys::is_digest(std::string_view key, std::string_view prefix) const {
  return long_keys_ && (prefix.size() + key.size() > 2048 || key.starts_with(layout::kDigestMark));
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
  r.projection_expression = "#g";
  r.names = {{"#g", attr::kGeneration}};
  return r;
}

std::string StoredKeys::generation_read(const std::optional<dynamodb::Item>& item,
                                        std::chrono::steady_clock::time_point asked) {
  int64_t read = 0;  // no item: nothing cleared yet
  if (item)
    if (auto it = item->find(attr::kGeneration); it != item->end())
      read = layout::integer(it->second, attr::kGeneration, generation_key());
  std::lock_guard lock(mu_);
  generation_ = std::max(generation_, read);  // generations only grow; a full clear keeps their items
  known_ = true;
  read_at_ = asked;
  return prefix_of(generation_);
}

dynamodb::UpdateItemRequest StoredKeys::next_generation(const std::string& table) const {
  dynamodb::UpdateItemRequest r;
  r.table_name = table;
  r.key = layout::key_item(generation_key());
  r.update_expression = "ADD #g :one";
  r.values = {{":one", dynamodb::AttributeValue::N(1)}};
  layout::bind_names(r, r.update_expression);
  r.return_values = dynamodb::ReturnValues::kUpdatedNew;
  return r;
}

int64_t StoredKeys::generation_cleared(const std::optional<dynamodb::Item>& attributes) {
  if (!attributes || !attributes->count(attr::kGeneration))
    throw ProtocolError("UpdateItem returned no `generation` for namespace '" + ns_ + "'", false);
  int64_t gen = layout::integer(attributes->at(attr::kGeneration), attr::kGeneration, generation_key());
  std::lock_guard lock(mu_);
  generation_ = std::max(generation_, gen);
  known_ = true;
  read_at_ = std::chrono::steady_clock::now();
  return gen;
}

}  // namespace dynamodb_cache::detail
