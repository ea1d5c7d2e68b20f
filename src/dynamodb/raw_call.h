// GetItem answered with the body undecoded (private): for a caller that reads only what it
// needs from the answer (DynamodbBackend's gets: wire::decode_get_item_fields) instead of
// building a GetItemResult. Implemented in client.cc; thread-safety as Client's.
#pragma once

#include <exception>
#include <functional>
#include <string>

#include "dynamodb_cache/dynamodb.h"

namespace dynamodb_cache::dynamodb::detail {

// Client::get_item with a request body the caller encoded (wire::encode_get_item or
// wire::encode): the same retries, deadline, stats and errors; returns the 200 answer's body.
std::string get_item_body(Client& client, std::string request);

// Called once with the 200 answer's body (non-null; it may be moved from) and no error, or
// with a null body and the error; on an I/O thread, under Callback's rules.
using BodyDone = std::function<void(std::string* body, std::exception_ptr error)>;

// Client::get_item_async with a request body the caller encoded, completed with the answer's
// body. A `done` that captures at most one pointer (or two, trivially copyable) is stored
// without an allocation: the operation then costs one allocation of its own.
void get_item_body_async(Client& client, std::string request, BodyDone done);

}  // namespace dynamodb_cache::dynamodb::detail
