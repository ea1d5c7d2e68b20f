// One DynamoDB operation with a request body the caller encoded, answered with the 200
// answer's body undecoded (private): for a caller that reads only what it needs from an
// answer (DynamodbBackend's gets: wire::decode_get_item_fields) instead of building the typed
// result. The same retries, deadline, stats and errors as the typed calls of Client, which
// are built on the same two functions. Implemented in client.cc (raw_call) and
// client_async.cc (raw_call_async); thread-safety as Client's.
#pragma once

#include <exception>
#include <functional>
#include <string>

#include "dynamodb/get_batch.h"
#include "dynamodb_cache/dynamodb.h"

// The X-Amz-Target of an operation, e.g. DDB_TARGET("GetItem"): a string literal, as raw_call
// needs (it is kept, not copied, while the operation lasts).
#define DDB_TARGET(op) "DynamoDB_20120810." op

namespace dynamodb_cache::dynamodb::detail {

// Sends `body` (wire::encode or wire::encode_get_item) as operation `target` (DDB_TARGET) and
// returns the 200 answer's body; throws the typed error otherwise.
std::string raw_call(Client& client, const char* target, std::string body);

// Called once with the 200 answer's body (non-null; it may be moved from) and no error, or
// with a null body and the error; on an I/O thread, under Callback's rules.
using BodyDone = std::function<void(std::string* body, std::exception_ptr error)>;

// raw_call on the client's I/O threads. A `done` that captures at most one pointer (or two,
// trivially copyable) is stored without an allocation: the operation then costs one
// allocation of its own. `may_batch`: a GetItem that ClientOptions::batch_gets may merge
// into a BatchGetItem.
void raw_call_async(Client& client, const char* target, std::string body, BodyDone done,
                    bool may_batch = true);

// raw_call_async of the GetItem that `key` (wire::batchable_get's, one key attribute; moved
// from) names: ClientOptions::batch_gets merges it into a BatchGetItem, and only a GetItem sent
// alone is encoded, with encode_get_item of the arguments `key` was made from (the body it
// sends is the one raw_call_async would have been handed).
void raw_get_async(Client& client, wire::BatchableGet&& key, BodyDone done);

// Whether `client` merges GetItems (ClientOptions::batch_gets, on its own loops): a key is
// worth handing over to raw_get_async only then.
bool merges_gets(Client& client);

}  // namespace dynamodb_cache::dynamodb::detail
