// A small, hand-written DynamoDB client: one typed call per operation a cache needs, a retry
// loop around each (exponential backoff with full jitter, a retry quota), SigV4 on every
// attempt, CRC32 checks of every response.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <future>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "dynamodb_cache/aws.h"
#include "dynamodb_cache/http.h"
#include "dynamodb_cache/outcome.h"

namespace dynamodb_cache::dynamodb {

// ---- AttributeValue ----

enum class AttrType { kNull, kS, kN, kB, kBool, kM, kL, kSS, kNS, kBS };

// One DynamoDB attribute value. Binary data (B, BS) is held as raw bytes; base64 exists only
// on the wire. Numbers (N, NS) are kept as their decimal text, exactly as DynamoDB sends them.
struct AttributeValue {
  using Map = std::map<std::string, AttributeValue>;
  using List = std::vector<AttributeValue>;

  AttrType type = AttrType::kNull;
  std::string scalar;             // S text, N decimal text, B raw bytes
  bool boolean = false;           // BOOL
  std::vector<std::string> set;   // SS, NS (decimal text), BS (raw bytes)
  List list;                      // L
  Map map;                        // M

  static AttributeValue S(std::string v) { return scalar_of(AttrType::kS, std::move(v)); }
  static AttributeValue N(std::string decimal) { return scalar_of(AttrType::kN, std::move(decimal)); }
  static AttributeValue N(int64_t v) { return scalar_of(AttrType::kN, std::to_string(v)); }
  static AttributeValue B(std::string bytes) { return scalar_of(AttrType::kB, std::move(bytes)); }
  static AttributeValue Bool(bool v) {
    AttributeValue a;
    a.type = AttrType::kBool;
    a.boolean = v;
    return a;
  }
  static AttributeValue Null() { return AttributeValue{}; }
  static AttributeValue M(Map m) {
    AttributeValue a;
    a.type = AttrType::kM;
    a.map = std::move(m);
    return a;
  }
  static AttributeValue L(List l) {
    AttributeValue a;
    a.type = AttrType::kL;
    a.list = std::move(l);
    return a;
  }
  static AttributeValue SS(std::vector<std::string> s) { return set_of(AttrType::kSS, std::move(s)); }
  static AttributeValue NS(std::vector<std::string> s) { return set_of(AttrType::kNS, std::move(s)); }
  static AttributeValue BS(std::vector<std::string> s) { return set_of(AttrType::kBS, std::move(s)); }

  bool operator==(const AttributeValue&) const = default;

 private:
  static AttributeValue scalar_of(AttrType t, std::string v) {
    AttributeValue a;
    a.type = t;
    a.scalar = std::move(v);
    return a;
  }
  static AttributeValue set_of(AttrType t, std::vector<std::string> s) {
    AttributeValue a;
    a.type = t;
    a.set = std::move(s);
    return a;
  }
};

using Item = std::map<std::string, AttributeValue>;
using Names = std::map<std::string, std::string>;   // "#k" -> "key"
using Values = std::map<std::string, AttributeValue>;  // ":v" -> value

// ---- requests and results ----

enum class ReturnConsumedCapacity { kNone, kTotal, kIndexes };
enum class ReturnValues { kNone, kAllOld, kUpdatedOld, kAllNew, kUpdatedNew };

struct ConsumedCapacity {
  std::string table_name;
  double capacity_units = 0;
  double read_capacity_units = 0;
  double write_capacity_units = 0;
};

struct GetItemRequest {
  std::string table_name;
  Item key;
  bool consistent_read = false;
  std::string projection_expression;
  Names names;
  ReturnConsumedCapacity return_consumed_capacity = ReturnConsumedCapacity::kNone;
};
struct GetItemResult {
  std::optional<Item> item;  // nullopt: no such item
  std::optional<ConsumedCapacity> consumed;
};

// What PutItem, DeleteItem and UpdateItem share: an optional condition, the names and
// values its expressions use, and what to return.
struct ConditionalWrite {
  std::string condition_expression;  // empty: unconditional
  Names names;
  Values values;
  ReturnValues return_values = ReturnValues::kNone;  // Put/Delete: kNone or kAllOld
  ReturnConsumedCapacity return_consumed_capacity = ReturnConsumedCapacity::kNone;
  // After an attempt whose outcome is unknown (it may have been applied but its answer was
  // lost: a connection reset or timeout after sending, a 5xx, an answer failing its CRC):
  // true (the AWS SDKs' way) sends the request again, which applies a non-idempotent write
  // twice if the first attempt was applied; false throws UnknownOutcomeError instead, so that
  // the caller can find out (the cache's exactly-once writes read the item back). Attempts
  // refused before anything was applied (throttling, a connection never made) are retried
  // either way.
  bool resend_if_unknown = true;
};

struct PutItemRequest : ConditionalWrite {
  std::string table_name;
  Item item;
};
struct DeleteItemRequest : ConditionalWrite {
  std::string table_name;
  Item key;
};
struct UpdateItemRequest : ConditionalWrite {
  std::string table_name;
  Item key;
  std::string update_expression;
};
struct WriteResult {
  std::optional<Item> attributes;  // old or new image, as asked by return_values
  std::optional<ConsumedCapacity> consumed;
};

struct KeysAndAttributes {
  std::vector<Item> keys;
  bool consistent_read = false;
  std::string projection_expression;
  Names names;
};
struct BatchGetItemRequest {
  std::map<std::string, KeysAndAttributes> request_items;  // table -> keys (<= 100 in all)
  ReturnConsumedCapacity return_consumed_capacity = ReturnConsumedCapacity::kNone;
};
struct BatchGetItemResult {
  std::map<std::string, std::vector<Item>> responses;
  std::map<std::string, KeysAndAttributes> unprocessed_keys;
  std::vector<ConsumedCapacity> consumed;
};

struct WriteRequest {
  std::optional<Item> put_item;    // exactly one of put_item / delete_key
  std::optional<Item> delete_key;
};
struct BatchWriteItemRequest {
  std::map<std::string, std::vector<WriteRequest>> request_items;  // <= 25 in all
  ReturnConsumedCapacity return_consumed_capacity = ReturnConsumedCapacity::kNone;
};
struct BatchWriteItemResult {
  std::map<std::string, std::vector<WriteRequest>> unprocessed_items;
  std::vector<ConsumedCapacity> consumed;
};

// What Query and Scan share.
struct PageRequest {
  std::string table_name;
  std::string index_name;            // empty: the table itself
  std::string filter_expression;
  std::string projection_expression;
  Names names;
  Values values;
  std::optional<int> limit;          // items evaluated per page
  std::optional<Item> exclusive_start_key;  // the previous page's last_evaluated_key
  bool consistent_read = false;
  ReturnConsumedCapacity return_consumed_capacity = ReturnConsumedCapacity::kNone;
};
struct QueryRequest : PageRequest {
  std::string key_condition_expression;
  bool scan_index_forward = true;
};
struct ScanRequest : PageRequest {
  std::optional<int> segment;         // parallel scan: this worker's segment
  std::optional<int> total_segments;  // and the number of segments
};
struct PageResult {  // Query and Scan
  std::vector<Item> items;
  int64_t count = 0;
  int64_t scanned_count = 0;
  std::optional<Item> last_evaluated_key;  // nullopt: last page
  std::optional<ConsumedCapacity> consumed;
};

enum class BillingMode { kPayPerRequest, kProvisioned };
enum class KeyType { kHash, kRange };
struct AttributeDefinition {
  std::string name;
  std::string type;  // "S", "N" or "B"
};
struct KeySchemaElement {
  std::string name;
  KeyType key_type = KeyType::kHash;
};
struct CreateTableRequest {
  std::string table_name;
  std::vector<AttributeDefinition> attribute_definitions;
  std::vector<KeySchemaElement> key_schema;
  BillingMode billing_mode = BillingMode::kPayPerRequest;
  int64_t read_capacity_units = 0;   // provisioned only
  int64_t write_capacity_units = 0;  // provisioned only
};
struct TableDescription {
  std::string table_name;
  std::string table_status;  // CREATING, ACTIVE, DELETING, UPDATING
  std::vector<AttributeDefinition> attribute_definitions;
  std::vector<KeySchemaElement> key_schema;
  BillingMode billing_mode = BillingMode::kProvisioned;
  int64_t read_capacity_units = 0;
  int64_t write_capacity_units = 0;
  int64_t item_count = 0;
  int64_t table_size_bytes = 0;
};

struct TimeToLiveDescription {
  std::string status;          // ENABLED, DISABLED, ENABLING, DISABLING
  std::string attribute_name;  // empty when disabled
};

// ---- retries ----

// Sleeping between retries, and the monotonic clock the operation deadline is measured on;
// injectable so backoff and deadlines are tested without sleeping. Thread-safe.
class Sleeper {
 public:
  virtual ~Sleeper() = default;
  virtual void sleep(std::chrono::microseconds d) = 0;
  virtual std::chrono::steady_clock::time_point now() { return std::chrono::steady_clock::now(); }
};
std::shared_ptr<Sleeper> real_sleeper();

// The AWS retry modes (AWS_RETRY_MODE, profile `retry_mode`), as the AWS SDKs and CLI run them:
// - kLegacy: botocore's legacy policy for DynamoDB: 10 attempts, 50 ms * 2^(n-1) without
//   jitter, no retry quota.
// - kStandard: 3 attempts, full jitter rand * min(20 s, 1 s * 2^(n-1)), the retry quota.
// - kAdaptive: kStandard plus a client-side rate limiter (a CUBIC token bucket) that slows
//   this client's sending after throttling answers and speeds it up again as calls succeed.
// - kUnset: the environment and profile decide; when neither sets a mode, this library's
//   own policy (unchanged from before the modes existed): the standard algorithm with the
//   delays below and default_max_attempts.
enum class RetryMode { kUnset, kLegacy, kStandard, kAdaptive };

struct RetryOptions {
  // Attempts per call, the first included. An explicit value (> 0) wins over everything;
  // 0 (default): AWS_MAX_ATTEMPTS, else the profile's max_attempts, else the mode's default
  // (3 in standard and adaptive, 10 in legacy), else default_max_attempts.
  int max_attempts = 0;
  // Attempts when nothing above sets them. Default 10: with 30% of requests failing
  // transiently, the chance that one call fails all 10 is 0.3^10 = 6e-6.
  int default_max_attempts = 10;
  RetryMode mode = RetryMode::kUnset;
  // Backoff before retry n (n = 1, 2, ...): uniform in [0, min(max_delay, base * 2^(n-1))]
  // (full jitter). Throttling uses its own, larger base, since retrying a throttled
  // partition quickly only adds load. Defaults 25 ms and 100 ms; max_delay 20 s. The legacy,
  // standard and adaptive modes use the SDKs' delays instead (above).
  std::chrono::milliseconds base_delay{25};
  std::chrono::milliseconds throttling_base_delay{100};
  std::chrono::milliseconds max_delay{20000};
  // Retry quota (token bucket, as the AWS SDKs' "standard" mode): each retry takes
  // retry_cost tokens (timeout_retry_cost after a timeout); a call that succeeds on its first
  // attempt returns 1 token, one that succeeds after retries returns what it took. When the
  // bucket is empty, calls fail at once instead of retrying: a failing service is not
  // stormed. Default 500 tokens, costs 5 and 10 (the SDKs' standard values); legacy mode
  // has no quota.
  int quota_capacity = 500;
  int retry_cost = 5;
  int timeout_retry_cost = 10;
  // Randomness for the jitter; default seeded from std::random_device.
  std::optional<uint64_t> jitter_seed;
  std::shared_ptr<Sleeper> sleeper;  // default real_sleeper()
};

// Counters since the client was made. Thread-safe (relaxed atomics).
struct ClientStats {
  std::atomic<uint64_t> calls{0};
  std::atomic<uint64_t> attempts{0};
  std::atomic<uint64_t> retries{0};
  std::atomic<uint64_t> quota_exhausted{0};
  std::atomic<uint64_t> failures{0};  // calls that threw
  // Asynchronous GetItems merged (ClientOptions::batch_gets): the BatchGetItem requests sent
  // for them, and the distinct keys those carried (keys per batch: batched_keys / batches).
  std::atomic<uint64_t> batches{0};
  std::atomic<uint64_t> batched_keys{0};
  // Hedged reads (ClientOptions::hedge): second copies of a GetItem sent, and operations
  // answered by their second copy (hedge_wins <= hedged; the rest were answered by the
  // first copy, or failed).
  std::atomic<uint64_t> hedged{0};
  std::atomic<uint64_t> hedge_wins{0};
};

// Completion of an asynchronous operation. Called exactly once, on one of the client's I/O
// threads (never on the calling thread from within the call, except when the operation is
// refused at once: see InFlightPolicy, or the client is being destroyed), and never after the
// client's destructor returned. An operation started on an I/O thread (from a callback)
// starts there at once, without a hand-off; if it fails before anything is sent (no
// credentials), it may then complete within the call.
// It must not block (it holds up every other operation of that I/O thread) and must not
// throw (an exception from it terminates the process). It may start new operations on the
// same client, but must not destroy the client.
template <class T>
using Callback = std::function<void(Outcome<T>)>;

// What an asynchronous call does when max_in_flight operations are already under way.
enum class InFlightPolicy {
  kWait,  // block the calling thread until one completes (on an I/O thread, in a callback: kFail)
  kFail,  // complete the call at once with OverloadedError, on the calling thread
};

// Hedged reads (ClientOptions::hedge): a GetItem whose answer is late is sent once more, and
// the first success answers it. Spends a bounded share of extra requests to cut the tail of
// read latency when a few answers are much slower than the rest (a slow server, a lost
// packet).
struct HedgeOptions {
  // Default false: no request is ever sent twice.
  bool enabled = false;
  // A GetItem not answered within this percentile of the I/O thread's recent GetItem
  // latencies (its last 512 successful answers) is sent once more. In (0, 100]. Default 95.
  double percentile = 95;
  // Never sooner than this after the first copy was sent. Default 5 ms.
  std::chrono::milliseconds floor{5};
  // The second copies sent are at most this share of the hedgeable GetItems sent (a token
  // bucket per I/O thread earning max_extra per GetItem, holding at most 10 hedges' worth),
  // so a slow service is not sent twice its load. In [0, 1]. Default 0.05.
  double max_extra = 0.05;
  // No hedging until the I/O thread has this many latencies (a percentile of few samples is
  // noise). At least 1. Default 50.
  int min_samples = 50;
};

struct ClientOptions {
  std::string region;    // empty: resolved from the environment (aws::resolve_region)
  std::string endpoint;  // empty: resolved (aws::resolve_dynamodb_endpoint)
  aws::ProfileOptions profile;
  std::shared_ptr<aws::CredentialsProvider> credentials;  // default: aws::make_default_chain
  std::shared_ptr<http::Transport> transport;             // default: http::make_default_transport()
  RetryOptions retry;
  // Deadline of one operation (one get_item, put_item, ...): every attempt and every backoff
  // together. Backoff never sleeps past it; a retry that cannot start before it is not made,
  // and the TimeoutError says this deadline, not the per-attempt transport timeout
  // (http::HttpOptions::request_timeout), expired. An attempt already under way is bounded by
  // the transport's own timeout, which the default transport clamps to this deadline; so a
  // call ends within about this deadline plus one request timeout. Default 30 s.
  std::chrono::milliseconds operation_timeout{30000};
  // Clock for X-Amz-Date; default system_clock. When DynamoDB rejects a signature as too
  // old or too new (clock skew), the client learns the offset from the answer's Date header,
  // adds it to this clock from then on (per client), and sends the request again.
  std::function<aws::SystemClock::time_point()> now;
  // Asynchronous API: event-loop threads, started on the first asynchronous call; the
  // operations are spread over them. Each keeps its own keep-alive connections: up to the
  // HTTP options' max_idle_connections, or max_in_flight / io_threads if more (connections
  // are only opened for operations in flight, and one closed just to open it again costs a
  // handshake). Default 1.
  int io_threads = 1;
  // Asynchronous operations under way at once per client (retries and backoff included); one
  // more is refused or waits, as in_flight_policy says. Default 4096.
  size_t max_in_flight = 4096;
  InFlightPolicy in_flight_policy = InFlightPolicy::kWait;
  // Asynchronous GetItems merged: the GetItems an I/O thread is sent within one turn of its
  // event loop (nothing waits for more to come) that ask for the same table with the same
  // ConsistentRead and ReturnConsumedCapacity, with string key attributes and no projection,
  // go as one BatchGetItem of up to 100 distinct keys (same read units); each caller still
  // gets its own GetItemResult, miss or error, as its GetItem would have: keys left in
  // UnprocessedKeys are retried after the retry policy's backoff within each operation's
  // deadline, a refused batch (ValidationException) is sent again as single GetItems, and
  // the same key asked for twice is read once. A GetItem alone in its turn goes as it is.
  // Counted in ClientStats::batches and batched_keys. Blocking calls are never merged.
  // Default false.
  bool batch_gets = false;
  // Hedged reads (see HedgeOptions): asynchronous GetItems only (get_item_async and the
  // backend's asynchronous gets), each sent on its own (a GetItem merged into a BatchGetItem
  // by batch_gets is not hedged; one alone in its turn is). Never a write, a BatchGetItem, a
  // Query or a Scan, and never on the blocking calls (they wait on one connection of their
  // thread) nor with a custom transport or a proxy. The second copy is signed again and goes
  // on another connection (the first one's is busy: one request per connection); the first
  // success completes the operation, once. The loser's answer is read whole and dropped (its
  // connection is reused only when that answer was complete, as any other). An error answer
  // while the other copy is in flight is dropped too: the operation's retry policy sees an
  // error only when no copy of the attempt can still succeed. One hedge per operation; the
  // operation deadline and the retries are unchanged. Counted in ClientStats::hedged and
  // hedge_wins.
  HedgeOptions hedge;
};

// Thread-safety: a Client is safe to use from any number of threads at once; share one.
class Client {
 public:
  // Resolves the region, the endpoint, the retry settings and the HTTP options now (throws
  // ConfigError when no region can be found, for a malformed endpoint or a bad setting;
  // InvalidArgumentError for a bad option). Credentials are not looked for here: the provider
  // chain is built, and asked at the first call, whose error says when none can be found
  // (CredentialsError). Makes no request.
  explicit Client(ClientOptions options = {});
  ~Client();
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  GetItemResult get_item(const GetItemRequest& r);
  WriteResult put_item(const PutItemRequest& r);
  WriteResult delete_item(const DeleteItemRequest& r);
  WriteResult update_item(const UpdateItemRequest& r);
  // One BatchGetItem call; leftovers are returned in unprocessed_keys.
  BatchGetItemResult batch_get_item(const BatchGetItemRequest& r);
  // One BatchWriteItem call; leftovers are returned in unprocessed_items.
  BatchWriteItemResult batch_write_item(const BatchWriteItemRequest& r);
  // BatchGetItem of any number of keys of one table: splits into calls of <= 100 keys and
  // retries UnprocessedKeys with backoff until all are read. Throws if it cannot finish
  // within the retry budget (nothing is dropped silently). Items come in no set order.
  std::vector<Item> batch_get_all(const std::string& table, std::vector<Item> keys,
                                  bool consistent_read = false,
                                  std::vector<ConsumedCapacity>* consumed = nullptr);
  // BatchWriteItem of any number of writes to one table: calls of <= 25, UnprocessedItems
  // retried with backoff until done; throws otherwise.
  void batch_write_all(const std::string& table, std::vector<WriteRequest> writes,
                       std::vector<ConsumedCapacity>* consumed = nullptr);
  PageResult query(const QueryRequest& r);
  PageResult scan(const ScanRequest& r);
  // Scans every page, calling on_page for each; on_page returns false to stop early.
  void scan_all(ScanRequest r, const std::function<bool(PageResult&)>& on_page);

  TableDescription create_table(const CreateTableRequest& r);
  TableDescription describe_table(const std::string& table);
  TableDescription delete_table(const std::string& table);
  TimeToLiveDescription update_time_to_live(const std::string& table, const std::string& attribute,
                                            bool enabled);
  TimeToLiveDescription describe_time_to_live(const std::string& table);

  // ---- asynchronous API ----
  // The same operations without blocking: the request goes to an I/O thread (an event loop
  // on epoll, ClientOptions::io_threads), which signs, sends, retries after backoff timers
  // (never sleeping), and calls `done` there (see Callback) with the result or the error the
  // synchronous call would have thrown. Same retry policy, quota, deadline and clock-skew
  // correction as the synchronous calls. Destroying the client completes every pending
  // operation with CancelledError before the destructor returns. With a custom
  // ClientOptions::transport or a proxy, the I/O thread calls that blocking transport itself
  // (correct, but one request at a time per I/O thread).
  // The future forms: the same, with the error rethrown by get().
  void get_item_async(GetItemRequest r, Callback<GetItemResult> done);
  void put_item_async(PutItemRequest r, Callback<WriteResult> done);
  void delete_item_async(DeleteItemRequest r, Callback<WriteResult> done);
  void update_item_async(UpdateItemRequest r, Callback<WriteResult> done);
  void batch_get_item_async(BatchGetItemRequest r, Callback<BatchGetItemResult> done);
  void batch_write_item_async(BatchWriteItemRequest r, Callback<BatchWriteItemResult> done);
  void query_async(QueryRequest r, Callback<PageResult> done);
  void scan_async(ScanRequest r, Callback<PageResult> done);
  std::future<GetItemResult> get_item_async(GetItemRequest r);
  std::future<WriteResult> put_item_async(PutItemRequest r);
  std::future<WriteResult> delete_item_async(DeleteItemRequest r);
  std::future<WriteResult> update_item_async(UpdateItemRequest r);
  std::future<BatchGetItemResult> batch_get_item_async(BatchGetItemRequest r);
  std::future<BatchWriteItemResult> batch_write_item_async(BatchWriteItemRequest r);
  std::future<PageResult> query_async(QueryRequest r);
  std::future<PageResult> scan_async(ScanRequest r);
  // Asynchronous operations under way now.
  size_t in_flight() const;
  // Connection counters of the asynchronous path's engines, summed (zeros before the first
  // asynchronous call). Waits for each I/O thread to answer.
  http::TransportStats io_stats() const;

  const std::string& region() const;
  const std::string& endpoint() const;
  const ClientStats& stats() const;

  // The implementation (src/dynamodb/client_impl.h), opaque here; named in this public section
  // only so that the library's private calls (src/dynamodb/raw_call.h) can reach it.
  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace dynamodb_cache::dynamodb
