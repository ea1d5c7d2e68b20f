// The atomic and multi-key commands: add, incr, decr, touch, mget, mset.
#include <cstdio>

#include "cli/common.h"
#include "util/crypto.h"

namespace dynamodb_cache::cli {

namespace {

// mget/mset print and read one `KEY<TAB>BASE64` line per key: keys holding a tab or a line
// break could not be told apart, so they are refused.
void check_line_key(const std::string& key) {
  if (key.find_first_of("\t\r\n") != std::string::npos)
    throw InvalidArgumentError(
        "key '" + util::base64_encode(key.substr(0, 64)) +
        "' (base64) holds a tab or line break, which the KEY<TAB>VALUE lines cannot carry");
}

// The most standard input mset reads. Every line is held and checked before the first write,
// so the input is bounded; 256 MiB holds three lines with a largest value (kMaxValueBytes,
// 64 MiB, is 85.3 MiB as base64), and the decoded values take up to 192 MiB more.
constexpr size_t kMaxMsetInputBytes = size_t{256} << 20;

DynamodbBackend backend(const GlobalOptions& g) {
  return DynamodbBackend(make_client(g), backend_options(g));
}

}  // namespace

void add_cache_commands(CLI::App& app, GlobalOptions& g, std::function<int()>& run) {
  // Parsed values live as long as `app` does: the command callbacks run after parsing.
  struct State {
    std::string key, value;
    std::vector<std::string> keys;
    int64_t delta = 1;
    int64_t ttl = 0;
  };
  auto st = std::make_shared<State>();

  auto* add = app.add_subcommand(
      "add", "Store a value only if the key has no live entry: exit 0 if written, 1 if it was live");
  add->add_option("KEY", st->key, "Cache key")->required();
  auto* add_value = add->add_option("VALUE", st->value, "The value; omitted: read standard input");
  add_ttl_option(add, st->ttl, "Seconds to live; 0 = never expires");
  add->callback([&g, &run, st, add_value] {
    run = [&g, st, add_value] {
      std::string value = add_value->count() ? st->value : read_stdin();
      return backend(g).add(st->key, value, std::chrono::seconds(st->ttl)) ? kOk : kMiss;
    };
  });

  for (bool up : {true, false}) {
    auto* cmd = app.add_subcommand(
        up ? "incr" : "decr", std::string("Atomically ") + (up ? "add DELTA to" : "subtract DELTA from") +
                                  " a counter and print its new value; a missing or expired key starts at 0");
    cmd->add_option("KEY", st->key, "Counter key")->required();
    cmd->add_option("DELTA", st->delta, "Amount, a whole number (default 1)")
        ->transform(whole_number(INT64_MIN, INT64_MAX))
        ->capture_default_str();
    add_ttl_option(cmd, st->ttl, "Seconds to live when the counter is created; 0 = never expires");
    cmd->callback([&g, &run, st, up] {
      run = [&g, st, up] {
        auto b = backend(g);
        auto ttl = std::chrono::seconds(st->ttl);
        int64_t v = up ? b.increment(st->key, st->delta, ttl) : b.decrement(st->key, st->delta, ttl);
        write_stdout(std::to_string(v) + "\n");
        return kOk;
      };
    });
  }

  auto* touch = app.add_subcommand("touch", "Give a live entry a new TTL from now; exit 1 on a miss");
  touch->add_option("KEY", st->key, "Cache key")->required();
  add_ttl_option(touch, st->ttl, "New seconds to live; 0 = never expires")->required()->default_str("");
  touch->callback([&g, &run, st] {
    run = [&g, st] { return backend(g).touch(st->key, std::chrono::seconds(st->ttl)) ? kOk : kMiss; };
  });

  auto* mget = app.add_subcommand(
      "mget", "Print one line per KEY: KEY<TAB>BASE64VALUE, the value empty on a miss (batched reads)");
  mget->add_option("KEY", st->keys, "Cache keys")->required();
  mget->callback([&g, &run, st] {
    run = [&g, st] {
      for (const auto& k : st->keys) check_line_key(k);
      auto hits = backend(g).get_many(st->keys);
      std::string out;
      for (size_t i = 0; i < hits.size(); ++i) {
        out += st->keys[i];
        out += '\t';
        if (hits[i]) util::base64_append(out, hits[i]->value);
        out += '\n';
      }
      write_stdout(out);
      return kOk;
    };
  });

  auto* mset = app.add_subcommand("mset",
                                  "Store the KEY<TAB>BASE64VALUE lines of standard input (batched writes); "
                                  "every line is checked before any write; at most 256 MiB of input");
  add_ttl_option(mset, st->ttl, "Seconds to live; 0 = never expires");
  mset->callback([&g, &run, st] {
    run = [&g, st] {
      std::string in = read_stdin(kMaxMsetInputBytes,
                                  "mset's limit (256 MiB; every line is held until all are checked): "
                                  "split the lines over several runs");
      std::vector<std::pair<std::string, std::string>> entries;
      size_t line_no = 0;
      for (size_t pos = 0; pos < in.size();) {
        size_t end = in.find('\n', pos);
        if (end == std::string::npos) end = in.size();
        std::string_view line(in.data() + pos, end - pos);
        pos = end + 1;
        ++line_no;
        if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
        if (line.empty()) continue;
        size_t tab = line.find('\t');
        auto value = tab == std::string_view::npos ? std::nullopt : util::base64_decode(line.substr(tab + 1));
        if (!value)
          throw InvalidArgumentError("standard input line " + std::to_string(line_no) +
                                     " is not KEY<TAB>BASE64VALUE");
        std::string key(line.substr(0, tab));
        validate_key(key);
        entries.emplace_back(std::move(key), std::move(*value));
      }
      backend(g).set_many(entries, std::chrono::seconds(st->ttl));
      return kOk;
    };
  });
}

}  // namespace dynamodb_cache::cli
