// The cache table: create it, check it, drop it.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <string>

#include "dynamodb_cache/dynamodb.h"
#include "dynamodb_cache/stats.h"

namespace dynamodb_cache {

struct TableOptions {
  std::string name = "dynamodb-cache";
  // On-demand (pay per request) by default, as the Python package's example.
  dynamodb::BillingMode billing_mode = dynamodb::BillingMode::kPayPerRequest;
  int64_t read_capacity_units = 5;   // provisioned only
  int64_t write_capacity_units = 5;  // provisioned only
  // Turn on DynamoDB's native TTL on `expire_at`, so expired items are deleted for free.
  bool enable_ttl = true;
  // How long create()/drop() wait for the table to settle, and how often they look.
  std::chrono::milliseconds wait_timeout{std::chrono::minutes(5)};
  std::chrono::milliseconds poll_interval{200};
  // The logging hook (stats.h; the same one DynamodbOptions::log takes): non-fatal problems
  // (a service without UpdateTimeToLive, another TTL attribute) at LogLevel::kWarning.
  // Default none: the library itself never writes to stderr.
  LogHook log;
  // Deprecated: use `log`. Kept for source compatibility; when set, it receives the warnings
  // too (their message only).
  std::function<void(const std::string&)> warn;
};

// Thread-safety: safe to share; calls are independent DynamoDB requests.
class Table {
 public:
  Table(std::shared_ptr<dynamodb::Client> client, TableOptions options = {});

  // Creates the table with hash key `key` (S). An existing table with that key schema is
  // fine; one with another schema throws ConfigError. With wait, returns once the table is
  // ACTIVE (TimeoutError after wait_timeout), then enables native TTL if asked; a service
  // that refuses UpdateTimeToLive gets a warning, not a failure. A server that lacks the
  // operation (UnknownOperationException) is warned about only when this call made the table.
  void create(bool wait = true);
  bool exists();
  // Deletes the table; a missing table is not an error. With wait, returns once it is gone.
  void drop(bool wait = true);
  dynamodb::TableDescription describe();
  // Waits until the table is ACTIVE.
  void wait_active();

  const TableOptions& options() const { return options_; }

 private:
  std::shared_ptr<dynamodb::Client> client_;
  TableOptions options_;
};

}  // namespace dynamodb_cache
