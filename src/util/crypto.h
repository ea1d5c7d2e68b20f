// Hashing and encoding helpers over OpenSSL and zlib. Thread-safe, no state but constants.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace dynamodb_cache::util {

using Sha256 = std::array<unsigned char, 32>;

Sha256 sha256(std::string_view data);
Sha256 hmac_sha256(std::string_view key, std::string_view data);
// Lower-case hex of `data`.
std::string hex(std::string_view data);
// Appends the lower-case hex of `data` to `out` (no allocation when `out` has the room).
void hex_append(std::string& out, std::string_view data);
inline std::string hex(const Sha256& d) {
  return hex(std::string_view(reinterpret_cast<const char*>(d.data()), d.size()));
}
inline std::string_view view(const Sha256& d) {
  return {reinterpret_cast<const char*>(d.data()), d.size()};
}

// Standard base64 with padding.
std::string base64_encode(std::string_view bytes);
// Appends base64 of `bytes` to `out`.
void base64_append(std::string& out, std::string_view bytes);
// Decodes standard base64 (padding required, no whitespace). nullopt if malformed.
std::optional<std::string> base64_decode(std::string_view text);

uint32_t crc32(std::string_view data);

}  // namespace dynamodb_cache::util
