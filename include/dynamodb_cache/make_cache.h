// make_cache(): the common case in one line, a typed cache over a DynamoDB table, optionally with a
// memory layer in front and a namespace:
//   auto cache = dynamodb_cache::make_cache<std::string>("my-table");
//   auto cache = dynamodb_cache::make_cache<std::string>("my-table", {.memory =
//   dynamodb_cache::MemoryOptions{},
//                                                               .ns = "orders"});
// It builds the pieces a program would otherwise build itself (a dynamodb::Client configured
// from the environment and AWS profile as the CLI is, a DynamodbBackend, a MemoryBackend and
// a LayeredBackend over them); they stay available for anything make_cache() does not cover.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

#include "dynamodb_cache/cache.h"
#include "dynamodb_cache/dynamodb.h"
#include "dynamodb_cache/dynamodb_backend.h"
#include "dynamodb_cache/layered_backend.h"
#include "dynamodb_cache/memory_backend.h"
#include "dynamodb_cache/table.h"

namespace dynamodb_cache {

// Every member has a default initializer, so designated initializers naming only some of
// them draw no -Wmissing-field-initializers.
struct CacheOptions {
  // A memory layer in front of the table, with these bounds; none (the default) when unset.
  std::optional<MemoryOptions> memory{};
  // The longest the memory layer keeps a copy (LayeredOptions::upper_max_age): it does not
  // hear of other processes' writes, so it may serve an overwritten value until then. Zero
  // (the default): for the value's whole TTL.
  Ttl memory_max_age{0};
  // A key namespace (DynamodbOptions::key_namespace); empty (the default): none.
  std::string ns{};
  // Create the table when it does not exist (Table::create, waiting until it is ACTIVE);
  // needs dynamodb:CreateTable. Default false: the table must exist.
  bool create_table = false;
  // The client to use; default: a new one from `client` below.
  std::shared_ptr<dynamodb::Client> shared_client{};
  // Region, endpoint, credentials, retries; default: from the environment and the AWS
  // profile, as the CLI and the AWS SDKs read them (README "Configuration").
  dynamodb::ClientOptions client{};
  // Everything else about the table's use; its `table` and `key_namespace` are set by make_cache().
  DynamodbOptions backend{};
  // Billing mode and TTL settings for create_table; its `name` is set by make_cache().
  TableOptions table_options{};
  // The options of the Cache<T> itself (cache.h: TTL jitter); make_backend() ignores them.
  TypedOptions typed{};
};

// The backend make_cache() builds: a DynamodbBackend on table `table` (empty: $DYNAMODB_CACHE_TABLE,
// else "dynamodb-cache", as the CLI), under a LayeredBackend with a MemoryBackend on top when
// options.memory is set. Throws as the constructors (and Table::create) do.
std::shared_ptr<Backend> make_backend(std::string_view table, CacheOptions options = {});

// A Cache<T, Codec> over make_backend(table, options).
template <class T, class Codec = DefaultCodec<T>>
Cache<T, Codec> make_cache(std::string_view table, CacheOptions options = {}) {
  const TypedOptions typed = options.typed;
  validate_ttl_jitter(typed.ttl_jitter);  // before any network call
  return Cache<T, Codec>(make_backend(table, std::move(options)), {}, typed);
}

}  // namespace dynamodb_cache
