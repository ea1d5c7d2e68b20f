// Hashing and encoding helpers over OpenSSL and zlib. Thread-safe, no state but constants.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace dynamodb_cache::util {

using Sha256 = std::array<unsigned char, 32>;

Sha256 sha256(std::string_view data);
Sha256 hmac_sha256(std::string_view key, std::string_view data);

// An HMAC-SHA256 key with its two padded key blocks already hashed: each mac() then hashes
// two SHA-256 blocks fewer than hmac_sha256 (SigV4 signs every request with a key that
// changes once a day). Holds key material, like the key it was made from. Thread-safe for
// concurrent mac() calls (const, no state changes).
class HmacSha256Key {
 public:
  explicit HmacSha256Key(std::string_view key = {});
  Sha256 mac(std::string_view data) const;

 private:
  // OpenSSL SHA256_CTX midstates after the ipad / opad block, kept opaque here (crypto.cc
  // checks the size); copied out before each use.
  static constexpr std::size_t kCtxBytes = 112;
  alignas(8) unsigned char inner_[kCtxBytes];
  alignas(8) unsigned char outer_[kCtxBytes];
};
// Lower-case hex of `data`.
std::string hex(std::string_view data);
// `bytes` random bytes (OpenSSL's RAND_bytes) as 2 * bytes lower-case hex digits: write ids
// and tokens. Throws CodecError naming `what` when no random bytes can be drawn.
std::string random_hex(std::size_t bytes, const char* what);
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

namespace detail {
// Whether base64_append and base64_decode run AVX2 kernels on this CPU (checked once).
bool base64_uses_avx2();
// The portable forms every CPU runs, same contract: for tests and benchmarks to hold the
// kernels to.
void base64_append_scalar(std::string& out, std::string_view bytes);
std::optional<std::string> base64_decode_scalar(std::string_view text);
}  // namespace detail

uint32_t crc32(std::string_view data);

}  // namespace dynamodb_cache::util
