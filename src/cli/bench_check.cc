#include "cli/bench_check.h"

#include <algorithm>
#include <charconv>
#include <limits>
#include <unordered_map>

namespace dynamodb_cache::cli::check {

namespace {

constexpr int64_t kNever = std::numeric_limits<int64_t>::max();
constexpr int64_t kBeforeAll = std::numeric_limits<int64_t>::min();

bool take_number(std::string_view& s, uint64_t& out) {
  auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
  if (ec != std::errc() || ptr == s.data() || ptr == s.data() + s.size() || *ptr != ':') return false;
  s.remove_prefix(static_cast<size_t>(ptr - s.data()) + 1);
  return true;
}

}  // namespace

std::string encode_value(std::string_view run, uint64_t id, std::size_t size) {
  std::string v = "chk:";
  v.append(run);
  v += ':' + std::to_string(id >> 40) + ':' + std::to_string(id & ((uint64_t{1} << 40) - 1)) + ':';
  if (v.size() < size) v.append(size - v.size(), '.');
  return v;
}

uint64_t decode_value(std::string_view run, std::string_view bytes) {
  if (bytes.substr(0, 4) != "chk:") return kForeign;
  bytes.remove_prefix(4);
  if (bytes.substr(0, run.size()) != run || bytes.size() <= run.size() || bytes[run.size()] != ':')
    return kForeign;
  bytes.remove_prefix(run.size() + 1);
  uint64_t process = 0, seq = 0;
  if (!take_number(bytes, process) || !take_number(bytes, seq) || process >= (uint64_t{1} << 23) ||
      seq >= (uint64_t{1} << 40))
    return kForeign;
  if (bytes.find_first_not_of('.') != std::string_view::npos) return kForeign;
  return value_id(process, seq);
}

std::string describe(uint64_t id) {
  if (id == kPrepared) return "prepared";
  if (id == kAbsent) return "miss";
  if (id == kForeign) return "foreign";
  return std::to_string(id >> 40) + ":" + std::to_string(id & ((uint64_t{1} << 40) - 1));
}

Report check_history(std::vector<Op> ops, uint64_t initial, int64_t bound_ns, std::size_t keep) {
  Report report;
  std::vector<Violation> found;
  // Writes grouped by key, each group in start order; reads likewise, apart.
  std::vector<Op> writes, reads;
  for (Op& op : ops) {
    if (op.kind == Kind::kGet) {
      if (op.ok) reads.push_back(op);
    } else {
      writes.push_back(op);
    }
  }
  ops.clear();
  ops.shrink_to_fit();
  auto by_key_start = [](const Op& a, const Op& b) {
    return a.key != b.key ? a.key < b.key : a.start < b.start;
  };
  std::sort(writes.begin(), writes.end(), by_key_start);
  std::sort(reads.begin(), reads.end(), by_key_start);

  // Per key, with the prepared state as a write before all others, acknowledged:
  struct W {
    Op op;
    int64_t replaced = kNever;       // sets: when the first replacing write was acknowledged
    size_t replaced_by = 0;          // ... and which (index in the key's list)
    int64_t best_miss = kBeforeAll;  // erases in start order up to here: latest `replaced`
    size_t best_miss_at = 0;         //   of any of them, and which erase that was
  };
  std::vector<W> key_writes;
  std::unordered_map<uint64_t, size_t> by_value;  // set's id -> index in key_writes
  size_t wi = 0, ri = 0;
  while (ri < reads.size()) {
    const uint64_t key = reads[ri].key;
    while (wi < writes.size() && writes[wi].key < key) ++wi;
    key_writes.clear();
    by_value.clear();
    key_writes.push_back(
        W{Op{key, initial == kAbsent ? Kind::kErase : Kind::kSet, true, kBeforeAll, kBeforeAll, initial}});
    for (; wi < writes.size() && writes[wi].key == key; ++wi) key_writes.push_back(W{writes[wi]});
    const size_t n = key_writes.size();
    // Suffix minima of acknowledgement times: of all writes, and of sets alone (what
    // replaces a miss).
    std::vector<std::pair<int64_t, size_t>> any_min(n + 1, {kNever, 0}), set_min(n + 1, {kNever, 0});
    for (size_t i = n; i-- > 0;) {
      const Op& o = key_writes[i].op;
      any_min[i] = any_min[i + 1];
      set_min[i] = set_min[i + 1];
      if (o.ok && o.end < any_min[i].first) any_min[i] = {o.end, i};
      if (o.ok && o.kind == Kind::kSet && o.end < set_min[i].first) set_min[i] = {o.end, i};
    }
    // The first write invoked after time t.
    auto after = [&](int64_t t) {
      return static_cast<size_t>(std::upper_bound(key_writes.begin(), key_writes.end(), t,
                                                  [](int64_t v, const W& w) { return v < w.op.start; }) -
                                 key_writes.begin());
    };
    for (size_t i = 0; i < n; ++i) {
      W& w = key_writes[i];
      const auto& [at, by] = (w.op.kind == Kind::kSet ? any_min : set_min)[after(w.op.end)];
      w.replaced = at;
      w.replaced_by = by;
      if (w.op.kind == Kind::kSet && w.op.value != kPrepared) by_value.emplace(w.op.value, i);
      if (w.op.kind == Kind::kSet && w.op.value == kPrepared && i == 0) by_value.emplace(kPrepared, 0);
      w.best_miss = i ? key_writes[i - 1].best_miss : kBeforeAll;
      w.best_miss_at = i ? key_writes[i - 1].best_miss_at : 0;
      if (w.op.kind == Kind::kErase && (w.best_miss == kBeforeAll || w.replaced > w.best_miss)) {
        w.best_miss = w.replaced;
        w.best_miss_at = i;
      }
    }
    for (; ri < reads.size() && reads[ri].key == key; ++ri) {
      const Op& r = reads[ri];
      ++report.reads;
      // Writes invoked before the read ended: [0, p).
      const size_t p = after(r.end - 1);
      const W* source = nullptr;  // the candidate least replaced
      if (r.value == kAbsent) {
        if (p > 0 && key_writes[p - 1].best_miss != kBeforeAll)
          source = &key_writes[key_writes[p - 1].best_miss_at];
      } else if (auto it = by_value.find(r.value); it != by_value.end() && it->second < p) {
        source = &key_writes[it->second];
      }
      if (!source) {
        ++report.unwritten;
        found.push_back(Violation{r, "unwritten", kAbsent, 0});
      } else if (source->replaced != kNever && source->replaced < r.start - bound_ns) {
        ++report.stale;
        const Op& by = key_writes[source->replaced_by].op;
        found.push_back(Violation{r, "stale", by.value, by.end});
      }
    }
  }
  const size_t k = std::min(keep, found.size());
  std::partial_sort(found.begin(), found.begin() + static_cast<std::ptrdiff_t>(k), found.end(),
                    [](const Violation& a, const Violation& b) { return a.read.start < b.read.start; });
  found.resize(k);
  report.first = std::move(found);
  return report;
}

}  // namespace dynamodb_cache::cli::check
