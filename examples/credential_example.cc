// The Python dynamodb_cache README example, in C++: a database credential read from a slow
// source (AWS Secrets Manager, here simulated) and cached in DynamoDB for an hour.
//
// Credentials, region and endpoint come from the environment like any AWS tool
// (AWS_ENDPOINT_URL_DYNAMODB for a local DynamoDB). Table: $DYNAMODB_CACHE_TABLE or
// "dynamodb-cache".
#include <cstdlib>
#include <iostream>

#include "dynamodb_cache/dynamodb_cache.h"
#include "dynamodb_cache/json_codec.h"

struct DatabaseCredential {
  std::string host;
  int port = 0;
  std::string database;
  std::string username;
  std::string password;
};
// to_json/from_json: all a struct needs to be cached (JsonObjectCache).
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(DatabaseCredential, host, port, database, username, password)

std::ostream& operator<<(std::ostream& os, const DatabaseCredential& c) {
  return os << "DatabaseCredential(host='" << c.host << "', port=" << c.port << ", database='" << c.database
            << "', username='" << c.username << "', password='" << c.password << "')";
}

DatabaseCredential get_credential_from_aws_secret_manager() {
  std::cout << "read credential from aws secret manager" << std::endl;
  return {"www.db.com", 5432, "mydatabase", "alice", "123456"};
}

int main() try {
  using namespace dynamodb_cache;
  const char* t = std::getenv("DYNAMODB_CACHE_TABLE");
  std::string table_name = t && *t ? t : "dynamodb-cache";

  auto client = std::make_shared<dynamodb::Client>();  // the usual AWS environment
  TableOptions table;
  table.name = table_name;  // on-demand billing: pay per request
  Table(client, table).create(/*wait=*/true);

  DynamodbOptions options;
  options.table = table_name;
  JsonObjectCache<DatabaseCredential> cache(std::make_shared<DynamodbBackend>(client, options));

  auto get_credential = [&] {
    return cache.get_or_set("my_db_credential", get_credential_from_aws_secret_manager,
                            std::chrono::hours(1));
  };

  cache.erase("my_db_credential");  // start cold, so every run shows the one slow read
  std::cout << get_credential() << std::endl;
  std::cout << get_credential() << std::endl;  // from the cache: no second read
  return 0;
} catch (const dynamodb_cache::Error& e) {
  std::cerr << "error: " << e.what() << std::endl;
  return 2;
}
