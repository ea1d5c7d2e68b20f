#include "dynamodb_cache/table.h"

#include <thread>

#include "dynamodb_cache/dynamodb_backend.h"  // attr::
#include "dynamodb_cache/errors.h"
#include "util/log.h"
#include "util/text.h"

namespace dynamodb_cache {

namespace ddb = dynamodb;

Table::Table(std::shared_ptr<ddb::Client> client, TableOptions options)
    : client_(std::move(client)), options_(std::move(options)) {
  if (!client_) throw InvalidArgumentError("Table needs a client");
  if (options_.name.size() < 3 || options_.name.size() > 255)
    throw InvalidArgumentError("table name must be 3 to 255 characters: '" + options_.name + "'");
}

ddb::TableDescription Table::describe() { return client_->describe_table(options_.name); }

bool Table::exists() {
  try {
    describe();
    return true;
  } catch (const ServiceError& e) {
    if (e.kind() == ErrorKind::kResourceNotFound) return false;
    throw;
  }
}

namespace {

// ConfigError unless `d` has the cache layout's key schema: a single hash key `key` (S).
void check_schema(const TableOptions& o, const ddb::TableDescription& d) {
  bool ok = d.key_schema.size() == 1 && d.key_schema[0].name == attr::kKey &&
            d.key_schema[0].key_type == ddb::KeyType::kHash;
  for (const auto& a : d.attribute_definitions)
    if (a.name == attr::kKey && a.type != "S") ok = false;
  if (ok) return;
  std::string got;
  for (const auto& k : d.key_schema)
    got += (got.empty() ? "" : ", ") + util::printable(k.name, 64) +
           (k.key_type == ddb::KeyType::kHash ? " (HASH)" : " (RANGE)");
  throw ConfigError("table '" + o.name + "' exists with key schema [" + got +
                    "], not the cache layout's single hash key `key` (S)");
}

// Hands a warning to the options' hooks, `log` and the deprecated `warn`; what they throw is
// swallowed (stats.h: a logging hook's exceptions never fail the call).
void warn(const TableOptions& o, const std::string& message) {
  detail::log_to(o.log, LogLevel::kWarning, message);
  try {
    if (o.warn) o.warn(message);
  } catch (...) {
  }
}

// Turns on native TTL on expire_at; a server without it (or another TTL attribute) is warned
// about, never a failure. `created`: this create() made the table.
void enable_ttl(ddb::Client& client, const TableOptions& o, bool created) {
  try {
    auto ttl = client.describe_time_to_live(o.name);
    if ((ttl.status == "ENABLED" || ttl.status == "ENABLING")) {
      if (ttl.attribute_name != attr::kExpireAt)
        warn(o, "table '" + o.name + "' already uses native TTL on `" +
                    util::printable(ttl.attribute_name, 64) +
                    "`; expired cache items are filtered on read but not deleted by DynamoDB");
      return;
    }
    client.update_time_to_live(o.name, attr::kExpireAt, true);
  } catch (const ServiceError& e) {
    if (e.retryable()) throw;
    if (e.name() == "UnknownOperationException") {
      // dynalite and some other local servers do not implement UpdateTimeToLive. That is a
      // fact about the server, said when the table is made; every later create() of the
      // same table would only repeat it.
      if (created)
        warn(o, "the DynamoDB server at " + client.endpoint() +
                    " has no native TTL (UpdateTimeToLive: UnknownOperationException; local servers "
                    "such as dynalite lack it): expired items are still filtered on read, but "
                    "nothing deletes them");
      return;
    }
    warn(o, "could not enable native TTL on table '" + o.name + "' (" + e.name() +
                "); expired items are still filtered on read, but DynamoDB will not delete them");
  }
}

}  // namespace

void Table::create(bool wait) {
  ddb::CreateTableRequest r;
  r.table_name = options_.name;
  r.attribute_definitions = {{attr::kKey, "S"}};
  r.key_schema = {{attr::kKey, ddb::KeyType::kHash}};
  r.billing_mode = options_.billing_mode;
  r.read_capacity_units = options_.read_capacity_units;
  r.write_capacity_units = options_.write_capacity_units;
  bool created = true;
  try {
    client_->create_table(r);
  } catch (const ServiceError& e) {
    if (e.name() != "ResourceInUseException") throw;
    check_schema(options_, describe());  // already there (or being made): fine if it is ours
    created = false;
  }
  if (!wait) return;
  wait_active();
  if (options_.enable_ttl) enable_ttl(*client_, options_, created);
}

void Table::wait_active() {
  auto deadline = std::chrono::steady_clock::now() + options_.wait_timeout;
  for (;;) {
    auto d = describe();
    if (d.table_status == "ACTIVE") {
      check_schema(options_, d);
      return;
    }
    if (std::chrono::steady_clock::now() >= deadline)
      throw TimeoutError("table '" + options_.name + "' is still " + util::printable(d.table_status, 64) +
                         " after " + std::to_string(options_.wait_timeout.count()) + " ms");
    std::this_thread::sleep_for(options_.poll_interval);
  }
}

void Table::drop(bool wait) {
  auto deadline = std::chrono::steady_clock::now() + options_.wait_timeout;
  for (;;) {
    try {
      client_->delete_table(options_.name);
      break;
    } catch (const ServiceError& e) {
      if (e.kind() == ErrorKind::kResourceNotFound) return;
      // Still being created or updated: it can be deleted once that settles.
      if (e.name() != "ResourceInUseException" || !wait || std::chrono::steady_clock::now() >= deadline)
        throw;
      std::this_thread::sleep_for(options_.poll_interval);
    }
  }
  if (!wait) return;
  while (exists()) {
    if (std::chrono::steady_clock::now() >= deadline)
      throw TimeoutError("table '" + options_.name + "' is still being deleted after " +
                         std::to_string(options_.wait_timeout.count()) + " ms");
    std::this_thread::sleep_for(options_.poll_interval);
  }
}

}  // namespace dynamodb_cache
