// `dynamodb-cache bench`: the load generator (see bench/README.md).
#include "cli/common.h"

namespace dynamodb_cache::cli {

void add_bench_command(CLI::App&, GlobalOptions&, std::function<int()>&) {}

}  // namespace dynamodb_cache::cli
