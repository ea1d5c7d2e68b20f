// DynamodbBackend's blocking operations (dynamodb_backend_impl.h). Each is measured (latency,
// error kinds) and, for reads and sets, runs under fail_open; atomic operations (add, touch,
// increment) are conditional writes that state the liveness rule (layout::LiveRule).
#include <limits>
#include <unordered_map>
#include <unordered_set>

#include "cache/chunked.h"
#include "cache/dynamodb_backend_impl.h"
#include "dynamodb/raw_call.h"

namespace dynamodb_cache {

namespace {

// Rounds of condition-failed-then-read an atomic operation makes before it gives up. Each
// round that fails saw another writer change the item between two requests, so 16 in a
// row means a key rewritten continuously.
constexpr int kMaxRounds = 16;

[[noreturn]] void contention(const char* op, std::string_view key) {
  throw Error(ErrorKind::kConditionFailed,
              std::string(op) + " of key '" + std::string(key.substr(0, 64)) +
                  "' gave up: the item changed under " + std::to_string(kMaxRounds) +
                  " conditional writes in a row",
              true);
}

std::string counter_message(std::string_view key, int64_t current, int64_t delta) {
  return "counter '" + std::string(key.substr(0, 64)) + "' at " + std::to_string(current) + " + " +
         std::to_string(delta) + " would overflow int64";
}

}  // namespace

std::optional<ddb::Item> DynamodbBackend::Impl::read_consistent(const std::string& stored) {
  return wire().get_item(detail::consistent_get(options.table, stored)).item;
}

std::optional<Hit> DynamodbBackend::Impl::read_stored(std::string_view key, const std::string& stored,
                                                      bool consistent) {
  return chunked::read_retrying([&](bool reread) -> std::optional<Hit> {
    std::string body = ddb::detail::raw_call(
        *client, DDB_TARGET("GetItem"), get_request(stored, options.consistent_read || consistent || reread));
    return detail::read_answer(options, client.get(), body, key, stats.read_capacity_units);
  });
}

std::optional<Hit> DynamodbBackend::Impl::get_entry(std::string_view key, bool consistent) {
  return measured(Op::kGet, [&]() -> std::optional<Hit> {
    auto hit = failing_open("get", key, std::optional<Hit>(), [&]() -> std::optional<Hit> {
      return read_stored(key, key_map.stored_key(key, key_prefix()), consistent);
    });
    count_read(hit);
    return hit;
  });
}

bool DynamodbBackend::Impl::contains(std::string_view key) {
  return measured(Op::kContains, [&]() -> bool {
    return failing_open("contains", key, false, [&]() -> bool {
      ddb::GetItemRequest r;
      r.table_name = options.table;
      r.key = layout::key_item(key_map.stored_key(key, key_prefix()));
      r.consistent_read = options.consistent_read;
      r.projection_expression = "#k, #x, #u, #t, #f, #s";  // no value bytes on the wire
      r.names = {{"#k", attr::kKey},      {"#x", attr::kExpire},  {"#u", attr::kUpdateTs},
                 {"#t", attr::kExpireAt}, {"#f", attr::kFullKey}, {"#s", attr::kFreshUntil}};
      auto res = wire().get_item(r);
      return res.item && detail::holds_key(*res.item, key) &&
             layout::liveness(*res.item, layout::seconds_of(options.now())).live;
    });
  });
}

void DynamodbBackend::Impl::store(std::string_view key, std::string_view prefix, std::string_view value,
                                  Ttl ttl) {
  ddb::PutItemRequest r;
  r.table_name = options.table;
  r.item = item_for(key, prefix, value, ttl, client.get());
  r.return_consumed_capacity = capacity_request();
  add_write_units(chunked::put_replacing(*client, std::move(r)));
}

void DynamodbBackend::Impl::set(std::string_view key, std::string_view value, Ttl ttl) {
  return measured(Op::kSet, [&]() -> void {
    auto hashes = [&] { return std::vector<uint64_t>{feed_hash(key)}; };
    bool written = publishing(hashes, false, [&] {
      return failing_open("set", key, false, [&] {
        store(key, key_prefix(), value, ttl);
        return true;
      });
    });
    if (!written) return publish_quietly(hashes(), false);  // dropped, but it may have landed
    count_write(1, value.size());
  });
}

void DynamodbBackend::Impl::erase(std::string_view key) {
  return measured(Op::kErase, [&]() -> void {
    publishing([&] { return std::vector<uint64_t>{feed_hash(key)}; }, false,
               [&] {
                 add_write_units(chunked::delete_replacing(
                     *client, erase_request(key_map.stored_key(key, key_prefix()))));
               });
    stats.erases.fetch_add(1, std::memory_order_relaxed);
  });
}

// One conditional PutItem: written unless the item is live. A failed condition is checked
// with a consistent read, which tells a live item (false) from one that changed meanwhile or
// that only a condition on what the read saw can judge (LiveRule): then again.
// Exactly once (detail::write_once): the item carries a token, and after a lost answer the
// read finds this write (true), another live item (false), or none (sent again).
bool DynamodbBackend::Impl::add(std::string_view key, std::string_view value, Ttl ttl) {
  return measured(Op::kAdd, [&]() -> bool {
    return publishing([&] { return std::vector<uint64_t>{feed_hash(key)}; }, false,
                      [&]() -> bool {
                        ddb::PutItemRequest r;
                        r.table_name = options.table;
                        r.item = item_for(key, key_prefix(), value, ttl, client.get());
                        detail::add_write_token(r.item);
                        r.resend_if_unknown = false;
                        const std::string stored = r.item.at(attr::kKey).scalar;
                        // A value past one item has its chunks written already: when the head is not written
                        // (a live entry, contention, an error), nothing will ever name them.
                        // Unless an attempt's outcome was unknown: a head delayed in the network may still
                        // land and name them (chunks nothing names are better than a head whose chunks are
                        // gone).
                        struct Orphans {
                          Impl& b;
                          const ddb::Item& head;
                          bool written = false, maybe_named = false;
                          ~Orphans() {
                            if (!written && !maybe_named)
                              chunked::delete_chunks_of(*b.client, b.options.table, head, false);
                          }
                        } orphans{*this, r.item};
                        std::optional<layout::LiveInputs> seen;
                        int unknown_rounds = 0;
                        for (int round = 0; round < kMaxRounds; ++round) {
                          layout::LiveRule rule{layout::seconds_of(options.now()), seen};
                          r.condition_expression = rule.not_live();
                          r.values.clear();
                          rule.add_values(r.values, r.condition_expression);
                          layout::bind_names(r, r.condition_expression);
                          std::exception_ptr unknown;
                          const detail::Written w = detail::write_once([&] { wire().put_item(r); }, unknown);
                          std::optional<ddb::Item> item;
                          if (w == detail::Written::kUnknown) {
                            orphans.maybe_named = true;  // a late arrival of this head would name them
                            item = detail::read_back(unknown, [&] { return read_consistent(stored); });
                          } else if (w == detail::Written::kConditionFailed) {
                            item = read_consistent(stored);
                          }
                          if (w == detail::Written::kYes || detail::same_write(item, r.item)) {
                            orphans.written = true;
                            count_write(1, value.size());
                            return true;
                          }
                          if (w == detail::Written::kUnknown && ++unknown_rounds == detail::kMaxUnknownRounds)
                            std::rethrow_exception(unknown);
                          if (!item) continue;  // erased meanwhile
                          layout::Liveness l = layout::liveness(*item, layout::seconds_of(options.now()));
                          if (l.live) return false;
                          seen = std::move(l.seen);
                        }
                        contention("add", key);
                      });
  });
}

// One conditional UpdateItem of expire, update_ts and expire_at: made only while the item is
// live (LiveRule, with a read when the first condition fails, as add()).
bool DynamodbBackend::Impl::touch(std::string_view key, Ttl ttl) {
  return measured(Op::kTouch, [&]() -> bool {
    return publishing(
        [&] { return std::vector<uint64_t>{feed_hash(key)}; }, false,
        [&]() -> bool {
          const bool with_expire_at = !options.python_compat;
          ddb::Item head = head_for(key, ttl, with_expire_at);
          const std::string stored = head.at(attr::kKey).scalar;
          ddb::UpdateItemRequest r;
          r.table_name = options.table;
          r.key = layout::key_item(stored);
          // fresh_until goes: a touched entry has no grace (get_or_set's stale_if_error).
          r.update_expression = head.count(attr::kExpireAt) ? "SET #x = :e, #u = :u, #t = :t REMOVE #s"
                                                            : "SET #x = :e, #u = :u REMOVE #t, #s";
          std::optional<layout::LiveInputs> seen;
          for (int round = 0; round < kMaxRounds; ++round) {
            layout::LiveRule rule{layout::seconds_of(options.now()), seen};
            // Not a chunked head: its chunks carry their own expire_at, which this would not move.
            r.condition_expression = "(" + rule.live() + ") AND attribute_not_exists(#w)";
            r.values = {{":e", head.at(attr::kExpire)}, {":u", head.at(attr::kUpdateTs)}};
            if (auto t = head.find(attr::kExpireAt); t != head.end()) r.values[":t"] = t->second;
            rule.add_values(r.values, r.condition_expression);
            layout::bind_names(r, r.update_expression + " " + r.condition_expression);
            r.names["#w"] = chunked::kWriteId;
            if (detail::conditional([&] { wire().update_item(r); })) return true;
            auto item = read_consistent(stored);
            if (!item) return false;
            layout::Liveness l = layout::liveness(*item, layout::seconds_of(options.now()));
            if (!l.live) return false;
            if (item->count(chunked::kWriteId))
              throw WrongTypeError(
                  "key '" + std::string(key.substr(0, 64)) +
                  "' holds a value past one item (stored in chunks), which touch cannot re-time; "
                  "set it again with the new TTL");
            seen = std::move(l.seen);  // live: conditioned on what was read, again
          }
          contention("touch", key);
        });
  });
}

// Three requests at most per round, one in the common case:
//   1. UpdateItem SET counter = counter + delta, if the item is a live counter and the sum
//      stays within int64_t;
//   2. else PutItem of a new counter at delta, if nothing live is there;
//   3. else a consistent read says why both failed: a value (WrongTypeError), an overflow
//      (InvalidArgumentError), or a change by another writer between 1 and 2 (again).
// Concurrent increments never lose an update: 1 is atomic on the item, and 2 only writes
// where no live item exists, so at most one creator wins and the rest add to its counter.
// Exactly once: 1 and 2 write a token (detail::write_once) and are never sent twice. After a
// lost answer a consistent read settles it: the token there means applied, and the counter
// is this increment's result (nobody wrote since). Otherwise the increment may or may not have
// been applied (another writer replaced the token since, or a delayed attempt may still
// land): UnknownOutcomeError, never a second application.
int64_t DynamodbBackend::Impl::increment(std::string_view key, int64_t delta, Ttl ttl) {
  return measured(Op::kIncrement, [&]() -> int64_t {
    return publishing(
        [&] { return std::vector<uint64_t>{feed_hash(key)}; }, false,
        [&]() -> int64_t {
          // Counters carry expire_at even with python_compat: the Python package cannot read them.
          ddb::Item created = head_for(key, ttl, true);
          created.emplace(attr::kCounter, ddb::AttributeValue::N(delta));
          detail::add_write_token(created);
          const ddb::AttributeValue& token = created.at(attr::kVersion);
          const std::string stored = created.at(attr::kKey).scalar;
          // After a lost answer: the counter's value if this increment was applied; else throws.
          auto settle_unknown = [&](const std::exception_ptr& unknown) -> int64_t {
            auto item = detail::read_back(unknown, [&] { return read_consistent(stored); });
            if (!detail::same_write(item, created) || !item->count(attr::kCounter))
              std::rethrow_exception(unknown);
            return layout::integer(item->at(attr::kCounter), attr::kCounter, key);
          };
          const int64_t limit = delta >= 0 ? std::numeric_limits<int64_t>::max() - delta
                                           : std::numeric_limits<int64_t>::min() - delta;
          std::optional<layout::LiveInputs> seen;
          for (int round = 0; round < kMaxRounds; ++round) {
            layout::LiveRule rule{layout::seconds_of(options.now()), seen};

            ddb::UpdateItemRequest u;
            u.table_name = options.table;
            u.key = layout::key_item(stored);
            u.update_expression = "SET #c = #c + :d, #v = :v";
            u.condition_expression = "(" + rule.live() + ") AND attribute_exists(#c) AND #c " +
                                     (delta >= 0 ? "<=" : ">=") + " :lim";
            u.values = {{":d", ddb::AttributeValue::N(delta)},
                        {":lim", ddb::AttributeValue::N(limit)},
                        {":v", token}};
            rule.add_values(u.values, u.condition_expression);
            layout::bind_names(u, u.update_expression + " " + u.condition_expression);
            u.return_values = ddb::ReturnValues::kUpdatedNew;
            u.resend_if_unknown = false;
            std::optional<ddb::Item> updated;
            std::exception_ptr unknown;
            const detail::Written wu =
                detail::write_once([&] { updated = wire().update_item(u).attributes; }, unknown);
            if (wu == detail::Written::kUnknown) return settle_unknown(unknown);
            if (wu == detail::Written::kYes) {
              if (!updated || !updated->count(attr::kCounter))
                throw ProtocolError(
                    "UpdateItem returned no `counter` for key '" + std::string(key.substr(0, 64)) + "'",
                    false);
              return layout::integer(updated->at(attr::kCounter), attr::kCounter, key);
            }

            ddb::PutItemRequest p;
            p.table_name = options.table;
            p.item = created;
            p.condition_expression = rule.not_live();
            rule.add_values(p.values, p.condition_expression);
            layout::bind_names(p, p.condition_expression);
            p.resend_if_unknown = false;
            const detail::Written wp = detail::write_once([&] { wire().put_item(p); }, unknown);
            if (wp == detail::Written::kUnknown) return settle_unknown(unknown);
            if (wp == detail::Written::kYes) return delta;

            auto item = read_consistent(stored);
            if (!item) continue;
            layout::Liveness l = layout::liveness(*item, layout::seconds_of(options.now()));
            if (!l.live) {
              seen = std::move(l.seen);
              continue;
            }
            auto c = item->find(attr::kCounter);
            if (c == item->end())
              throw WrongTypeError("key '" + std::string(key.substr(0, 64)) +
                                   "' holds a value, not a counter; erase it or use another key");
            int64_t current = layout::integer(c->second, attr::kCounter, key);
            if (delta >= 0 ? current > limit : current < limit)
              throw InvalidArgumentError(counter_message(key, current, delta));
            // A live counter without expire_at (another tool's: no expire, or the Python rule's
            // expire and update_ts) fails the one-request condition every time: conditioned on what
            // was read instead, as touch does.
            seen = std::move(l.seen);
          }
          contention("increment", key);
        });
  });
}

std::vector<std::optional<Hit>> DynamodbBackend::Impl::get_many(const std::vector<std::string>& keys,
                                                                bool consistent) {
  return measured(Op::kGetMany, [&]() -> std::vector<std::optional<Hit>> {
    auto out = failing_open(
        "get_many", keys.empty() ? "" : keys.front(), std::vector<std::optional<Hit>>(keys.size()), [&] {
          const std::string prefix = key_prefix();
          const detail::Distinct d = detail::distinct(keys);
          std::unordered_map<std::string, size_t> asked;  // stored key -> distinct key
          std::vector<ddb::Item> ask;
          for (size_t j = 0; j < d.first.size(); ++j) {
            std::string stored = key_map.stored_key(keys[d.first[j]], prefix);
            ask.push_back(layout::key_item(stored));
            asked.emplace(std::move(stored), j);
          }
          std::vector<std::optional<Hit>> got(d.first.size());
          auto items =
              wire().batch_get_all(options.table, std::move(ask), options.consistent_read || consistent);
          for (const auto& item : items) {
            auto k = item.find(attr::kKey);
            if (k == item.end()) continue;
            auto j = asked.find(k->second.scalar);
            if (j == asked.end()) continue;
            const std::string& key = keys[d.first[j->second]];
            if (!detail::holds_key(item, key)) continue;
            try {
              got[j->second] = detail::read_entry(options, *client, item);
            } catch (const chunked::ChunksGone&) {
              // Overwritten meanwhile: read it again (counted as its own get).
              got[j->second] = get_entry(key, consistent);
            }
          }
          std::vector<std::optional<Hit>> hits;
          hits.reserve(keys.size());
          for (size_t s : d.slot) hits.push_back(got[s]);
          return hits;
        });
    for (const auto& h : out) count_read(h);
    return out;
  });
}

void DynamodbBackend::Impl::set_many(const std::vector<std::pair<std::string, std::string>>& entries,
                                     Ttl ttl) {
  return measured(Op::kSetMany, [&]() -> void {
    uint64_t n = 0, bytes = 0;
    auto hashes = [&] {
      std::vector<uint64_t> h;
      for (const auto& [k, v] : entries) h.push_back(feed_hash(k));
      return h;
    };
    bool written = publishing(hashes, false, [&] {
      return failing_open("set_many", entries.empty() ? "" : entries.front().first, false, [&] {
        const std::string prefix = key_prefix();
        const std::vector<size_t> send = detail::last_of_each_key(entries);
        std::vector<ddb::WriteRequest> writes;
        writes.reserve(send.size());
        for (size_t i : send) {
          ddb::WriteRequest w;
          w.put_item = item_for(entries[i].first, prefix, entries[i].second, ttl, client.get());
          writes.push_back(std::move(w));
          bytes += entries[i].second.size();
        }
        n = writes.size();
        wire().batch_write_all(options.table, std::move(writes));
        return true;
      });
    });
    if (!written) return publish_quietly(hashes(), false);  // dropped, but it may have landed
    count_write(n, bytes);
  });
}

void DynamodbBackend::Impl::erase_many(const std::vector<std::string>& keys) {
  return measured(Op::kEraseMany, [&]() -> void {
    publishing([&] { return feed_hashes(keys); }, false,
               [&] {
                 const std::string prefix = key_prefix();
                 std::unordered_set<std::string> seen;  // one batch may not name a key twice
                 std::vector<ddb::WriteRequest> deletes;
                 for (const auto& k : keys) {
                   std::string s = key_map.stored_key(k, prefix);
                   if (!seen.insert(s).second) continue;
                   ddb::WriteRequest w;
                   w.delete_key = layout::key_item(std::move(s));
                   deletes.push_back(std::move(w));
                 }
                 const uint64_t n = deletes.size();
                 std::vector<std::string> stored(seen.begin(), seen.end());
                 // Chunks of values that never expire have no TTL: find them before their heads go.
                 auto heads = chunked::never_expiring_heads(*client, options.table, stored);
                 wire().batch_write_all(options.table, std::move(deletes));
                 for (const auto& head : heads) chunked::delete_chunks_of(*client, options.table, head, true);
                 stats.erases.fetch_add(n, std::memory_order_relaxed);
               });
  });
}

}  // namespace dynamodb_cache
