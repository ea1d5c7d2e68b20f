// The public blocking API of dynamodb::Client over Impl::call() (client_attempt.cc; see
// client_impl.h), and the calls built of several: batch_get_all, batch_write_all, scan_all.
#include "dynamodb/client_impl.h"
#include "dynamodb/raw_call.h"
#include "dynamodb/wire.h"
#include "dynamodb_cache/dynamodb.h"

namespace dynamodb_cache::dynamodb {

Client::Client(ClientOptions options) : impl_(std::make_unique<Impl>(std::move(options))) {}
Client::~Client() = default;

const std::string& Client::region() const { return impl_->region; }
const std::string& Client::endpoint() const { return impl_->endpoint; }
const ClientStats& Client::stats() const { return impl_->stats; }

GetItemResult Client::get_item(const GetItemRequest& r) {
  return wire::decode_get_item(impl_->call(DDB_TARGET("GetItem"), wire::encode(r)));
}
WriteResult Client::put_item(const PutItemRequest& r) {
  return wire::decode_write(impl_->call(DDB_TARGET("PutItem"), wire::encode(r), r.resend_if_unknown));
}
WriteResult Client::delete_item(const DeleteItemRequest& r) {
  return wire::decode_write(impl_->call(DDB_TARGET("DeleteItem"), wire::encode(r), r.resend_if_unknown));
}
WriteResult Client::update_item(const UpdateItemRequest& r) {
  return wire::decode_write(impl_->call(DDB_TARGET("UpdateItem"), wire::encode(r), r.resend_if_unknown));
}
BatchGetItemResult Client::batch_get_item(const BatchGetItemRequest& r) {
  return wire::decode_batch_get(impl_->call(DDB_TARGET("BatchGetItem"), wire::encode(r)));
}
BatchWriteItemResult Client::batch_write_item(const BatchWriteItemRequest& r) {
  return wire::decode_batch_write(impl_->call(DDB_TARGET("BatchWriteItem"), wire::encode(r)));
}
PageResult Client::query(const QueryRequest& r) {
  return wire::decode_page(impl_->call(DDB_TARGET("Query"), wire::encode(r)));
}
PageResult Client::scan(const ScanRequest& r) {
  return wire::decode_page(impl_->call(DDB_TARGET("Scan"), wire::encode(r)));
}
TableDescription Client::create_table(const CreateTableRequest& r) {
  return wire::decode_table(impl_->call(DDB_TARGET("CreateTable"), wire::encode(r)), "TableDescription");
}
TableDescription Client::describe_table(const std::string& t) {
  return wire::decode_table(impl_->call(DDB_TARGET("DescribeTable"), wire::encode_table_name(t)), "Table");
}
TableDescription Client::delete_table(const std::string& t) {
  return wire::decode_table(impl_->call(DDB_TARGET("DeleteTable"), wire::encode_table_name(t)),
                            "TableDescription");
}
TimeToLiveDescription Client::update_time_to_live(const std::string& t, const std::string& attr, bool on) {
  return wire::decode_ttl(impl_->call(DDB_TARGET("UpdateTimeToLive"), wire::encode_update_ttl(t, attr, on)),
                          true);
}
TimeToLiveDescription Client::describe_time_to_live(const std::string& t) {
  return wire::decode_ttl(impl_->call(DDB_TARGET("DescribeTimeToLive"), wire::encode_table_name(t)), false);
}

namespace detail {

std::string raw_call(Client& client, const char* target, std::string body) {
  return Client::Impl::of(client).call(target, std::move(body));
}

}  // namespace detail

namespace {

// Sends `work` in calls of at most `per_call` entries; `send` performs one call and returns
// the entries it left unprocessed, which go first into the next call. Every call that comes
// back with leftovers is followed by a backoff; only calls that make no progress at all count
// against max_attempts, so a slow but moving batch always finishes. What is still left after
// that is reported, never dropped.
template <class T, class Send>
void drain(std::vector<T> work, size_t per_call, const char* what, const RetryOptions& retry,
           detail::Backoff& backoff, Sleeper& sleeper, ClientStats& stats, Send send) {
  const size_t total = work.size();
  std::vector<T> pending;
  size_t next = 0;
  int stalled = 0, backoff_round = 0;
  while (next < work.size() || !pending.empty()) {
    std::vector<T> batch = std::move(pending);
    pending.clear();
    while (batch.size() < per_call && next < work.size()) batch.push_back(std::move(work[next++]));
    const size_t sent = batch.size();
    pending = send(std::move(batch));
    if (pending.empty()) {
      stalled = backoff_round = 0;
      continue;
    }
    stalled = pending.size() < sent ? 0 : stalled + 1;
    if (stalled >= retry.max_attempts)
      throw ThrottlingError(200, std::string("Unprocessed") + what,
                            std::to_string(pending.size() + (work.size() - next)) + " of " +
                                std::to_string(total) + " requests still unprocessed after " +
                                std::to_string(stalled) + " calls without progress",
                            "");
    stats.retries.fetch_add(1, std::memory_order_relaxed);
    sleeper.sleep(backoff.delay(++backoff_round, true));
  }
}

}  // namespace

std::vector<Item> Client::batch_get_all(const std::string& table, std::vector<Item> keys,
                                        bool consistent_read, std::vector<ConsumedCapacity>* consumed) {
  std::vector<Item> out;
  out.reserve(keys.size());
  drain(std::move(keys), 100 /* BatchGetItem limit */, "Keys", impl_->options.retry, impl_->backoff,
        *impl_->sleeper, impl_->stats, [&](std::vector<Item> batch) {
          BatchGetItemRequest req;
          if (consumed) req.return_consumed_capacity = ReturnConsumedCapacity::kTotal;
          auto& ka = req.request_items[table];
          ka.consistent_read = consistent_read;
          ka.keys = std::move(batch);
          auto res = batch_get_item(req);
          for (auto& [t, items] : res.responses)
            for (auto& i : items) out.push_back(std::move(i));
          if (consumed) consumed->insert(consumed->end(), res.consumed.begin(), res.consumed.end());
          auto it = res.unprocessed_keys.find(table);
          return it == res.unprocessed_keys.end() ? std::vector<Item>{} : std::move(it->second.keys);
        });
  return out;
}

void Client::batch_write_all(const std::string& table, std::vector<WriteRequest> writes,
                             std::vector<ConsumedCapacity>* consumed) {
  drain(std::move(writes), 25 /* BatchWriteItem limit */, "Items", impl_->options.retry, impl_->backoff,
        *impl_->sleeper, impl_->stats, [&](std::vector<WriteRequest> batch) {
          BatchWriteItemRequest req;
          if (consumed) req.return_consumed_capacity = ReturnConsumedCapacity::kTotal;
          req.request_items[table] = std::move(batch);
          auto res = batch_write_item(req);
          if (consumed) consumed->insert(consumed->end(), res.consumed.begin(), res.consumed.end());
          auto it = res.unprocessed_items.find(table);
          return it == res.unprocessed_items.end() ? std::vector<WriteRequest>{} : std::move(it->second);
        });
}

void Client::scan_all(ScanRequest r, const std::function<bool(PageResult&)>& on_page) {
  for (;;) {
    auto page = scan(r);
    auto last = page.last_evaluated_key;
    if (!on_page(page) || !last) return;
    r.exclusive_start_key = std::move(last);
  }
}

}  // namespace dynamodb_cache::dynamodb
