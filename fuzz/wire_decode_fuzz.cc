// libFuzzer target: the DynamoDB JSON response decoders (src/dynamodb/wire.h).
// Input: byte 0 picks the decoder, the rest is the response body.
// Contract checked: a decoder returns or throws ProtocolError (any other exception escapes
// and libFuzzer reports it as a crash); decode_error never throws; and an item the decoder
// accepts survives encode -> decode unchanged (the encoder writes what the decoder reads).
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "dynamodb/wire.h"
#include "dynamodb_cache/errors.h"

namespace ddb = dynamodb_cache::dynamodb;
namespace wire = dynamodb_cache::dynamodb::wire;

namespace {

void round_trip(const ddb::Item& item) {
  std::string body = "{\"Item\":{\"x\":";
  wire::append_attribute_value(body, ddb::AttributeValue::M(item));
  body += "}}";
  auto again = wire::decode_get_item(body);  // must not throw: we wrote it
  if (!again.item || again.item->size() != 1 || again.item->begin()->second != ddb::AttributeValue::M(item))
    std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  std::string body;
  body.reserve(size + 64);  // the decoders want 64 bytes of padding (they copy otherwise)
  body.assign(reinterpret_cast<const char*>(data) + 1, size - 1);
  try {
    switch (data[0] % 8) {
      case 0: {
        auto r = wire::decode_get_item(body);
        if (r.item) round_trip(*r.item);
        break;
      }
      case 1: wire::decode_write(body); break;
      case 2: wire::decode_batch_get(body); break;
      case 3: wire::decode_batch_write(body); break;
      case 4: {
        auto page = wire::decode_page(body);
        for (const auto& item : page.items) round_trip(item);
        break;
      }
      case 5: wire::decode_table(body, data[0] & 8 ? "Table" : "TableDescription"); break;
      case 6: wire::decode_ttl(body, data[0] & 8); break;
      default: wire::decode_error(body); break;  // never throws: an escape is a crash
    }
  } catch (const dynamodb_cache::ProtocolError&) {
    if (data[0] % 8 == 7) std::abort();
  }
  return 0;
}
