#include "cache/chunked.h"

#include <algorithm>
#include <charconv>
#include <unordered_map>
#include <vector>

#include "dynamodb_cache/dynamodb_backend.h"
#include "dynamodb_cache/errors.h"
#include "util/crypto.h"

namespace dynamodb_cache::chunked {

namespace ddb = dynamodb;

namespace {

// Head attributes besides the one-item layout's.
constexpr const char* kChunks = "chunks";
constexpr const char* kBytes = "bytes";
constexpr const char* kCrc = "crc32";
constexpr const char* kInnerFormat = "cfmt";

constexpr uint64_t kMaxChunks = (kMaxValueBytes + kChunkBytes - 1) / kChunkBytes;

std::string new_write_id() { return util::random_hex(16, "a write id"); }

// An unsigned number attribute; nullopt when absent, CodecError when not a whole number.
std::optional<uint64_t> whole_number(const ddb::Item& item, const std::string& name) {
  auto it = item.find(name);
  if (it == item.end()) return std::nullopt;
  const std::string& s = it->second.scalar;
  uint64_t v = 0;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (it->second.type != ddb::AttrType::kN || ec != std::errc() || p != s.data() + s.size())
    throw CodecError(std::string("attribute '") + name + "' is not a whole number: " + s.substr(0, 32));
  return v;
}

const std::string& key_of(const ddb::Item& item) {
  static const std::string unknown = "?";
  auto it = item.find(attr::kKey);
  return it == item.end() ? unknown : it->second.scalar;
}

ddb::Item key_item(std::string key) {
  ddb::Item k;
  k.emplace(attr::kKey, ddb::AttributeValue::S(std::move(key)));
  return k;
}

template <class Request, class Call>
std::optional<ddb::ConsumedCapacity> write_replacing(ddb::Client& client, Request r, Call call) {
  if (!r.condition_expression.empty())
    throw InvalidArgumentError("chunked::put/delete_replacing takes unconditional requests");
  Request first = r;
  set_no_cleanup_condition(first);
  // Not resent by the client after a lost answer: the replacing write below is the same write,
  // idempotent, and it learns what it replaced. Its failure then does not say that nothing was
  // written (the first may have been): UnknownOutcomeError.
  first.resend_if_unknown = false;
  std::exception_ptr first_unknown;
  try {
    return call(client, first).consumed;
  } catch (const UnknownOutcomeError&) {
    first_unknown = std::current_exception();
  } catch (const ServiceError& e) {
    if (e.kind() != ErrorKind::kConditionFailed) throw;
  }
  // The key holds a never-expiring chunked value (or the outcome of the first write is
  // unknown): replace it, learn its write id, clean up. That value may be this very write,
  // applied by an attempt whose answer was lost: its chunks are the ones just written, and stay.
  r.return_values = ddb::ReturnValues::kAllOld;
  ddb::WriteResult res;
  try {
    res = call(client, r);
  } catch (const Error& e) {
    if (!first_unknown || e.kind() == ErrorKind::kUnknownOutcome) throw;
    throw UnknownOutcomeError(std::string(e.what()) +
                                  "; an earlier attempt's outcome is unknown, so the value may have been written",
                              e.retryable());
  }
  bool ours = false;
  if constexpr (requires { r.item; }) {
    auto old_id = res.attributes ? res.attributes->find(kWriteId) : ddb::Item::iterator();
    auto new_id = r.item.find(kWriteId);
    ours = res.attributes && old_id != res.attributes->end() && new_id != r.item.end() && old_id->second == new_id->second;
  }
  if (res.attributes && !ours) delete_chunks_of(client, r.table_name, *res.attributes, true);
  return res.consumed;
}

}  // namespace

void set_no_cleanup_condition(ddb::ConditionalWrite& w) {
  w.condition_expression = "attribute_not_exists(#cw) OR #ce <> :c0";
  w.names = {{"#cw", kWriteId}, {"#ce", attr::kExpire}};
  w.values = {{":c0", ddb::AttributeValue::N(0)}};
}

void delete_chunks_of(ddb::Client& client, const std::string& table, const ddb::Item& old,
                      bool only_never_expiring) {
  try {
    auto head = parse_head(old);
    if (!head) return;
    if (only_never_expiring && whole_number(old, attr::kExpire).value_or(0) != 0) return;
    std::vector<ddb::WriteRequest> deletes(head->chunks);
    for (uint64_t i = 0; i < head->chunks; ++i)
      deletes[i].delete_key = key_item(chunk_key(key_of(old), head->write_id, i));
    client.batch_write_all(table, std::move(deletes));
  } catch (const Error&) {
    // Best effort (see chunked.h): leftovers wait for their TTL or clear().
  }
}

std::string chunk_key(std::string_view head_key, std::string_view write_id, uint64_t index) {
  constexpr std::size_t kMaxPrefix = 1900;
  std::size_t n = std::min(head_key.size(), kMaxPrefix);
  // Do not cut a UTF-8 sequence: back up over continuation bytes.
  while (n < head_key.size() && n > 0 && (static_cast<unsigned char>(head_key[n]) & 0xC0) == 0x80) --n;
  std::string k(head_key.substr(0, n));
  k += "#chunk:";
  k += write_id;
  k += ':';
  k += std::to_string(index);
  return k;
}

Head write_chunks(ddb::Client& client, const std::string& table, std::string_view head_key,
                  std::string_view stored, int inner_format, std::optional<int64_t> expire_at) {
  Head h;
  h.write_id = new_write_id();
  h.bytes = stored.size();
  h.chunks = (stored.size() + kChunkBytes - 1) / kChunkBytes;
  h.crc32 = util::crc32(stored);
  h.inner_format = inner_format;
  std::vector<ddb::WriteRequest> puts(h.chunks);
  for (uint64_t i = 0; i < h.chunks; ++i) {
    ddb::Item item = key_item(chunk_key(head_key, h.write_id, i));
    item.emplace(attr::kValue, ddb::AttributeValue::B(std::string(stored.substr(i * kChunkBytes, kChunkBytes))));
    item.emplace(attr::kFormat, ddb::AttributeValue::N(kChunkFormat));
    if (expire_at) item.emplace(attr::kExpireAt, ddb::AttributeValue::N(*expire_at));
    puts[i].put_item = std::move(item);
  }
  client.batch_write_all(table, std::move(puts));
  return h;
}

void add_head_attributes(ddb::Item& item, const Head& h) {
  item.erase(attr::kValue);
  item.insert_or_assign(attr::kFormat, ddb::AttributeValue::N(kHeadFormat));
  item.insert_or_assign(kWriteId, ddb::AttributeValue::S(h.write_id));
  item.insert_or_assign(kChunks, ddb::AttributeValue::N(static_cast<int64_t>(h.chunks)));
  item.insert_or_assign(kBytes, ddb::AttributeValue::N(static_cast<int64_t>(h.bytes)));
  item.insert_or_assign(kCrc, ddb::AttributeValue::N(static_cast<int64_t>(h.crc32)));
  item.insert_or_assign(kInnerFormat, ddb::AttributeValue::N(h.inner_format));
}

std::optional<Head> parse_head(const ddb::Item& item) {
  auto fmt = whole_number(item, attr::kFormat);
  if (fmt != static_cast<uint64_t>(kHeadFormat)) return std::nullopt;
  const std::string& key = key_of(item);
  auto bad = [&](const std::string& what) {
    return CodecError("item '" + key.substr(0, 64) + "' is the head of a chunked value but " + what);
  };
  Head h;
  auto wid = item.find(kWriteId);
  if (wid == item.end() || wid->second.type != ddb::AttrType::kS || wid->second.scalar.size() != 32 ||
      wid->second.scalar.find_first_not_of("0123456789abcdef") != std::string::npos)
    throw bad("its write id is missing or malformed");
  h.write_id = wid->second.scalar;
  auto chunks = whole_number(item, kChunks);
  auto bytes = whole_number(item, kBytes);
  auto crc = whole_number(item, kCrc);
  auto inner = whole_number(item, kInnerFormat);
  if (!chunks || !bytes || !crc || !inner) throw bad("chunks, bytes, crc32 or cfmt is missing");
  if (*bytes > kMaxValueBytes || *chunks > kMaxChunks || *chunks == 0 || *bytes < *chunks)
    throw bad("it names " + std::to_string(*chunks) + " chunks of " + std::to_string(*bytes) +
              " bytes in all, beyond the limit of " + std::to_string(kMaxValueBytes) + " bytes");
  if (*crc > UINT32_MAX || (*inner != 1 && *inner != 2)) throw bad("its crc32 or cfmt is out of range");
  h.chunks = *chunks;
  h.bytes = *bytes;
  h.crc32 = static_cast<uint32_t>(*crc);
  h.inner_format = static_cast<int>(*inner);
  return h;
}

std::string read_chunks(ddb::Client& client, const std::string& table, std::string_view head_key,
                        const Head& h, bool consistent_read) {
  std::vector<std::string> parts(h.chunks);
  std::vector<bool> have(h.chunks, false);
  std::unordered_map<std::string, uint64_t> index;
  for (uint64_t i = 0; i < h.chunks; ++i) index.emplace(chunk_key(head_key, h.write_id, i), i);
  uint64_t received = 0;
  // Asks for the chunks not yet received, kChunksPerBatchGet per BatchGetItem.
  auto fetch_missing = [&](bool consistent) {
    std::vector<ddb::Item> keys;
    auto flush = [&] {
      for (auto& item : client.batch_get_all(table, std::move(keys), consistent)) {
        auto it = index.find(key_of(item));
        if (it == index.end() || have[it->second]) continue;
        auto v = item.find(attr::kValue);
        if (v == item.end() || v->second.type != ddb::AttrType::kB ||
            whole_number(item, attr::kFormat) != static_cast<uint64_t>(kChunkFormat))
          throw CodecError("chunk '" + it->first.substr(0, 64) + "' is not a chunk item");
        parts[it->second] = std::move(v->second.scalar);
        have[it->second] = true;
        ++received;
      }
      keys.clear();
    };
    for (uint64_t i = 0; i < h.chunks; ++i) {
      if (have[i]) continue;
      keys.push_back(key_item(chunk_key(head_key, h.write_id, i)));
      if (keys.size() == kChunksPerBatchGet) flush();
    }
    if (!keys.empty()) flush();
  };
  fetch_missing(consistent_read);
  // An eventually consistent read may not see chunks written just before the head yet.
  if (received < h.chunks && !consistent_read) fetch_missing(true);
  if (received < h.chunks) throw ChunksGone{};

  std::string out;
  out.reserve(h.bytes);
  for (auto& p : parts) {
    if (p.size() > h.bytes - out.size())
      throw CodecError("chunked value '" + std::string(head_key.substr(0, 64)) + "' is longer than its head says");
    out += p;
    std::string().swap(p);
  }
  if (out.size() != h.bytes || util::crc32(out) != h.crc32)
    throw CodecError("chunked value '" + std::string(head_key.substr(0, 64)) +
                     "' does not match its head's length and CRC-32");
  return out;
}

std::vector<ddb::Item> never_expiring_heads(ddb::Client& client, const std::string& table,
                                            const std::vector<std::string>& head_keys) {
  constexpr std::size_t kPerCall = 100;  // BatchGetItem's limit
  constexpr int kTries = 3;
  std::vector<ddb::Item> heads;
  try {
    for (std::size_t start = 0; start < head_keys.size(); start += kPerCall) {
      ddb::KeysAndAttributes ask;
      ask.projection_expression = "#k, #x, #f, #w, #n, #b, #c, #i";
      ask.names = {{"#k", attr::kKey},  {"#x", attr::kExpire}, {"#f", attr::kFormat}, {"#w", kWriteId},
                   {"#n", kChunks},     {"#b", kBytes},        {"#c", kCrc},          {"#i", kInnerFormat}};
      for (std::size_t i = start; i < std::min(head_keys.size(), start + kPerCall); ++i)
        ask.keys.push_back(key_item(head_keys[i]));
      for (int attempt = 0; attempt < kTries && !ask.keys.empty(); ++attempt) {
        ddb::BatchGetItemRequest r;
        r.request_items[table] = ask;
        auto res = client.batch_get_item(r);
        for (auto& item : res.responses[table])
          if (whole_number(item, attr::kFormat) == static_cast<uint64_t>(kHeadFormat) &&
              whole_number(item, attr::kExpire).value_or(0) == 0)
            heads.push_back(std::move(item));
        auto left = res.unprocessed_keys.find(table);
        ask.keys = left == res.unprocessed_keys.end() ? std::vector<ddb::Item>{} : std::move(left->second.keys);
      }
    }
  } catch (const Error&) {
    // Best effort, as delete_chunks_of.
  }
  return heads;
}

std::optional<ddb::ConsumedCapacity> put_replacing(ddb::Client& client, ddb::PutItemRequest r) {
  return write_replacing(client, std::move(r), [](ddb::Client& c, const ddb::PutItemRequest& req) { return c.put_item(req); });
}

std::optional<ddb::ConsumedCapacity> delete_replacing(ddb::Client& client, ddb::DeleteItemRequest r) {
  return write_replacing(client, std::move(r),
                  [](ddb::Client& c, const ddb::DeleteItemRequest& req) { return c.delete_item(req); });
}

}  // namespace dynamodb_cache::chunked
