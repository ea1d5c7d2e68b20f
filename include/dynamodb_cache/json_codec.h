// JSON values through nlohmann/json (optional: include this header only if your project has
// nlohmann/json). JsonCodec<T> works for nlohmann::json itself (the Python package's
// JsonDict/JsonList caches) and for any T with to_json/from_json, so a user struct needs no
// hand-written codec.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

#include "dynamodb_cache/cache.h"

namespace dynamodb_cache {

template <class T = nlohmann::json>
struct JsonCodec {
  std::string encode(const T& value) const { return nlohmann::json(value).dump(); }
  T decode(std::string_view bytes) const { return nlohmann::json::parse(bytes).template get<T>(); }
};

template <>
struct DefaultCodec<nlohmann::json> : JsonCodec<nlohmann::json> {};

// A cache of JSON documents (objects, arrays, scalars).
using JsonCache = Cache<nlohmann::json, JsonCodec<nlohmann::json>>;

// A cache of T through its to_json/from_json.
template <class T>
using JsonObjectCache = Cache<T, JsonCodec<T>>;

}  // namespace dynamodb_cache
