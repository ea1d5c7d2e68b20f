// DynamodbBackend's clear, blocking and asynchronous (dynamodb_backend_impl.h): a namespace's
// by one UpdateItem of its generation, the whole table by a parallel Scan whose pages are
// deleted with BatchWriteItem.
#include <thread>

#include "cache/dynamodb_backend_impl.h"
#include "cache/feed.h"

namespace dynamodb_cache {

void DynamodbBackend::Impl::clear(const std::function<void(uint64_t)>& progress) {
  return measured(Op::kClear, [&]() -> void {
    if (key_map.has_namespace())
      publishing([&] { return std::vector<uint64_t>{feed::namespace_hash(options.key_namespace)}; }, true,
                 [&] { clear_namespace(); });
    else
      publishing([] { return std::vector<uint64_t>{feed::clear_all_hash()}; }, true,
                 [&] { clear_table(progress); });
  });
}

// One conditional UpdateItem of the generation in the common case (the generation this
// process knows is current): StoredKeys::move, from what was seen. When its condition fails
// (another process cleared or started the namespace, or this process knew an old generation),
// the item is read and the move made from there, so a clear that returns has taken effect:
// the namespace is at a generation it never used before.
void DynamodbBackend::Impl::clear_namespace() {
  std::optional<ddb::Item> seen = key_map.last_seen();
  bool read = !seen;
  constexpr int kMaxRounds = 16;  // as the atomic operations: a generation changed 16 times in a row
  for (int round = 0; round < kMaxRounds; ++round) {
    if (read) seen = wire().get_item(key_map.generation_request(options.table)).item;
    const detail::StoredKeys::Move move = key_map.move(options.table, seen, options.now());
    ddb::WriteResult res;
    if (detail::conditional([&] { res = wire().update_item(move.request); }))
      return generation_cleared(key_map.moved(move, res.attributes));
    read = true;
  }
  throw Error(ErrorKind::kConditionFailed,
              "clear of namespace '" + options.key_namespace + "' gave up: its generation changed under " +
                  std::to_string(kMaxRounds) + " conditional writes in a row",
              true);
}

void DynamodbBackend::Impl::generation_cleared(int64_t gen) {
  emit(LogLevel::kInfo,
       "namespace '" + options.key_namespace + "' cleared: generation " + std::to_string(gen));
}

// What a finished full clear() counts and logs.
void DynamodbBackend::Impl::table_cleared(uint64_t erased) {
  stats.erases.fetch_add(erased, std::memory_order_relaxed);
  emit(LogLevel::kInfo,
       "table '" + options.table + "' cleared: " + std::to_string(erased) + " items deleted");
}

ddb::ScanRequest DynamodbBackend::Impl::clear_scan(int segment) const {
  ddb::ScanRequest scan;
  scan.table_name = options.table;
  scan.projection_expression = "#k";
  // Feed items stay too (feed.h): deleting one could drop an invalidation a reader has not
  // read yet; they leave through native TTL.
  scan.filter_expression = "attribute_not_exists(#g) AND attribute_not_exists(#h)";
  scan.names = {{"#k", attr::kKey}, {"#g", attr::kGeneration}, {"#h", feed::kHashes}};
  if (options.clear_segments > 1) {
    scan.segment = segment;
    scan.total_segments = options.clear_segments;
  }
  return scan;
}

namespace {
// The deletes of a clear Scan page's items.
std::vector<ddb::WriteRequest> deletes_of(const ddb::PageResult& page) {
  std::vector<ddb::WriteRequest> deletes;
  deletes.reserve(page.items.size());
  for (const auto& item : page.items) {
    auto k = item.find(attr::kKey);
    if (k == item.end()) continue;
    ddb::WriteRequest w;
    w.delete_key = layout::key_item(k->second.scalar);
    deletes.push_back(std::move(w));
  }
  return deletes;
}
}  // namespace

// A parallel Scan (clear_segments segments, one thread each) of keys only, each page
// deleted with BatchWriteItem before the next is read. Namespace generation items are kept
// (a FilterExpression): generations must never go back, or a process still holding the
// old number would write where a cleared namespace's new items go. The first error stops
// every segment after its current page and is rethrown.
void DynamodbBackend::Impl::clear_table(const std::function<void(uint64_t)>& progress) {
  const int segments = options.clear_segments;
  std::atomic<uint64_t> erased{0};
  std::atomic<bool> failed{false};
  std::mutex report_mu;  // progress: one call at a time, counts increasing
  std::exception_ptr error;
  auto scan_segment = [&](int segment) {
    try {
      wire().scan_all(clear_scan(segment), [&](ddb::PageResult& page) {
        std::vector<ddb::WriteRequest> deletes = deletes_of(page);
        const size_t n = deletes.size();
        if (n) wire().batch_write_all(options.table, std::move(deletes));
        if (n && progress) {
          std::lock_guard lock(report_mu);
          progress(erased += n);
        } else {
          erased += n;
        }
        return !failed.load();
      });
    } catch (...) {
      std::lock_guard lock(report_mu);
      if (!error) error = std::current_exception();
      failed = true;
    }
  };
  if (segments == 1) {
    scan_segment(0);
  } else {
    std::vector<std::thread> threads;
    threads.reserve(static_cast<size_t>(segments));
    for (int i = 0; i < segments; ++i) threads.emplace_back(scan_segment, i);
    for (auto& t : threads) t.join();
  }
  if (error) std::rethrow_exception(error);
  table_cleared(erased.load());
}

// ---- asynchronous clear ----

// One full clear_async: its segments' shared state.
struct DynamodbBackend::Impl::ClearRun {
  std::function<void(uint64_t)> progress;
  // Called once, when the last segment has stopped: the first error, or the count erased.
  std::function<void(Outcome<void>, uint64_t erased)> finish;
  std::mutex mu;  // progress: one call at a time, counts increasing
  uint64_t erased = 0;
  int segments_left = 0;
  std::exception_ptr error;
  std::atomic<bool> failed{false};

  void deleted(uint64_t n) {
    std::lock_guard lock(mu);
    erased += n;
    if (n && progress) progress(erased);
  }
  void segment_done(std::exception_ptr e) {
    uint64_t n = 0;
    {
      std::lock_guard lock(mu);
      if (e) {
        failed = true;
        if (!error) error = std::move(e);
      }
      if (--segments_left > 0) return;
      n = erased;
    }
    finish(error ? Outcome<void>(std::exchange(error, nullptr)) : Outcome<void>(), n);
  }
};

void DynamodbBackend::Impl::clear_async(Done<void> done, std::function<void(uint64_t)> progress) {
  if (options.publish_invalidations)  // the blocking clear publishes before it returns
    return offload<void>(std::move(done), [this, progress = std::move(progress)] { clear(progress); });
  const auto start = std::chrono::steady_clock::now();
  Done<void> finish = [this, start, done = std::move(done)](Outcome<void> out) {
    done(settle<void>(Op::kClear, "clear", options.table, start, std::move(out), std::nullopt));
  };
  if (key_map.has_namespace()) {
    // The one UpdateItem of clear_namespace's common case on the loop; anything more (no
    // generation known, its condition failed) is clear_namespace on a helper thread.
    const std::optional<ddb::Item> seen = key_map.last_seen();
    if (!seen) return offload<void>(std::move(finish), [this] { clear_namespace(); });
    auto move =
        std::make_shared<const detail::StoredKeys::Move>(key_map.move(options.table, seen, options.now()));
    ddb::UpdateItemRequest r = move->request;
    r.return_consumed_capacity = capacity_request();
    return client->update_item_async(std::move(r), [this, move, finish](ddb::Outcome<ddb::WriteResult> res) {
      if (res.ok()) add_write_units(res.value().consumed);
      if (!res.ok() && detail::kind_of(res.error()) == ErrorKind::kConditionFailed)
        return offload<void>(finish, [this] { clear_namespace(); });
      finish(detail::outcome_of<void>(
          [&] { generation_cleared(key_map.moved(*move, res.value().attributes)); }));
    });
  }
  auto run = std::make_shared<ClearRun>();
  run->progress = std::move(progress);
  run->segments_left = options.clear_segments;
  run->finish = [this, finish](Outcome<void> out, uint64_t erased) {
    if (out.ok()) table_cleared(erased);
    finish(std::move(out));
  };
  for (int i = 0; i < options.clear_segments; ++i) clear_segment_async(run, clear_scan(i));
}

// One page of a segment: its keys deleted by BatchWriteItems of 25 at once, then the next page.
void DynamodbBackend::Impl::clear_segment_async(std::shared_ptr<ClearRun> run, ddb::ScanRequest scan) {
  scan.return_consumed_capacity = capacity_request();
  ddb::ScanRequest next = scan;
  client->scan_async(std::move(scan), [this, run,
                                       next = std::move(next)](ddb::Outcome<ddb::PageResult> res) mutable {
    if (!res.ok()) return run->segment_done(std::move(res).error());
    ddb::PageResult& page = res.value();
    add_read_units(page.consumed);
    std::vector<ddb::WriteRequest> deletes = deletes_of(page);
    const size_t n = deletes.size();
    auto after = [this, run, n, next = std::move(next),
                  last = std::move(page.last_evaluated_key)](std::exception_ptr e) mutable {
      if (e) return run->segment_done(std::move(e));
      run->deleted(n);
      if (!last || run->failed.load()) return run->segment_done(nullptr);
      next.exclusive_start_key = std::move(last);
      clear_segment_async(run, std::move(next));
    };
    if (n == 0) return after(nullptr);
    constexpr size_t kPerCall = 25;  // BatchWriteItem's limit
    const size_t calls = (n + kPerCall - 1) / kPerCall;
    auto all = detail::join(calls, std::move(after));
    for (size_t c = 0; c < calls; ++c) {
      ddb::BatchWriteItemRequest w;
      w.return_consumed_capacity = capacity_request();
      auto& list = w.request_items[options.table];
      for (size_t i = c * kPerCall; i < std::min(n, (c + 1) * kPerCall); ++i)
        list.push_back(std::move(deletes[i]));
      client->batch_write_item_async(std::move(w), [this, all](ddb::Outcome<ddb::BatchWriteItemResult> r) {
        if (!r.ok()) return all->one(std::move(r).error());
        for (const auto& used : r.value().consumed) add_write_units(used);
        auto left = r.value().unprocessed_items.find(options.table);
        if (left == r.value().unprocessed_items.end() || left->second.empty()) return all->one(nullptr);
        // Leftovers (rare: a throttled table) go to batch_write_all on a helper thread, so
        // that the loop never sleeps: it re-sends them at once, as boto3 does, then backs off
        // after each later call that still leaves some.
        offload<void>([all](Outcome<void> o) { all->one(std::move(o).error()); },
                      [this, rest = std::move(left->second)]() mutable {
                        wire().batch_write_all(options.table, std::move(rest));
                      });
      });
    }
  });
}

}  // namespace dynamodb_cache
