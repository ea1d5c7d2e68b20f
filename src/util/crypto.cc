#include "util/crypto.h"

#include "dynamodb_cache/errors.h"

// SHA256_Init/Update/Final are deprecated in OpenSSL 3 in favour of EVP, but stay supported
// throughout 3.x; OpenSSL 3.0's EVP_DigestInit_ex2 frees and allocates the provider's context
// on every call, and a signature takes five digests (measured: five mallocs per request and
// the provider dispatch around each). The low-level calls allocate nothing and use the same
// SHA extensions.
#define OPENSSL_SUPPRESS_DEPRECATED
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/sha.h>
#if DYNAMODB_CACHE_HAVE_ISAL
#include <isa-l/crc.h>
#else
#include <zlib.h>
#endif

#include <array>
#include <bit>
#include <cstring>
#include <stdexcept>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#define DYNAMODB_CACHE_BASE64_AVX2 1
#endif

namespace dynamodb_cache::util {

namespace {

void digest_into(std::string_view a, std::string_view b, unsigned char* out) {
  SHA256_CTX c;
  if (SHA256_Init(&c) != 1 || SHA256_Update(&c, a.data(), a.size()) != 1 ||
      (!b.empty() && SHA256_Update(&c, b.data(), b.size()) != 1) || SHA256_Final(out, &c) != 1)
    throw std::runtime_error("SHA-256 failed");
}

}  // namespace

Sha256 sha256(std::string_view data) {
  Sha256 out;
  digest_into(data, {}, out.data());
  return out;
}

// HMAC (RFC 2104) built on the digest: cheaper than OpenSSL 3's generic MAC objects for the
// short messages SigV4 signs.
HmacSha256Key::HmacSha256Key(std::string_view key) {
  static_assert(sizeof(SHA256_CTX) == kCtxBytes && alignof(SHA256_CTX) <= 8);
  constexpr size_t kBlock = 64;
  unsigned char k[kBlock] = {0};
  if (key.size() > kBlock) {
    auto d = sha256(key);
    std::memcpy(k, d.data(), d.size());
  } else if (!key.empty()) {  // an empty view's data() may be null: not memcpy's to take
    std::memcpy(k, key.data(), key.size());
  }
  unsigned char ipad[kBlock], opad[kBlock];
  for (size_t i = 0; i < kBlock; ++i) {
    ipad[i] = k[i] ^ 0x36;
    opad[i] = k[i] ^ 0x5c;
  }
  SHA256_CTX in, out;
  if (SHA256_Init(&in) != 1 || SHA256_Update(&in, ipad, kBlock) != 1 || SHA256_Init(&out) != 1 ||
      SHA256_Update(&out, opad, kBlock) != 1)
    throw std::runtime_error("SHA-256 failed");
  std::memcpy(inner_, &in, kCtxBytes);
  std::memcpy(outer_, &out, kCtxBytes);
}

Sha256 HmacSha256Key::mac(std::string_view data) const {
  SHA256_CTX c;
  Sha256 inner, out;
  std::memcpy(&c, inner_, kCtxBytes);
  if (SHA256_Update(&c, data.data(), data.size()) != 1 || SHA256_Final(inner.data(), &c) != 1)
    throw std::runtime_error("SHA-256 failed");
  std::memcpy(&c, outer_, kCtxBytes);
  if (SHA256_Update(&c, inner.data(), inner.size()) != 1 || SHA256_Final(out.data(), &c) != 1)
    throw std::runtime_error("SHA-256 failed");
  return out;
}

Sha256 hmac_sha256(std::string_view key, std::string_view data) { return HmacSha256Key(key).mac(data); }

namespace {
// kHexPairs[2b], kHexPairs[2b+1]: byte b's two lowercase digits, so a byte is one 2-byte copy.
// A signature hex-encodes three digests (96 bytes): per-nibble lookups were 2% of a get.
constexpr std::array<char, 512> kHexPairs = [] {
  std::array<char, 512> t{};
  constexpr char kDigits[] = "0123456789abcdef";
  for (size_t b = 0; b < 256; ++b) {
    t[2 * b] = kDigits[b >> 4];
    t[2 * b + 1] = kDigits[b & 15];
  }
  return t;
}();
}  // namespace

void hex_append(std::string& out, std::string_view data) {
  const size_t at = out.size();
  out.resize(at + data.size() * 2);
  char* o = out.data() + at;
  for (char c : data) {
    std::memcpy(o, &kHexPairs[2 * static_cast<unsigned char>(c)], 2);
    o += 2;
  }
}

std::string hex(std::string_view data) {
  std::string out;
  hex_append(out, data);
  return out;
}

std::string random_hex(std::size_t bytes, const char* what) {
  std::string raw(bytes, '\0');
  if (RAND_bytes(reinterpret_cast<unsigned char*>(raw.data()), static_cast<int>(bytes)) != 1)
    throw CodecError(std::string("cannot draw random bytes for ") + what + " (OpenSSL RAND_bytes)");
  return hex(raw);
}

void base64_append(std::string& out, std::string_view bytes) {
  size_t at = out.size();
  size_t n = 4 * ((bytes.size() + 2) / 3);
  out.resize(at + n + 1);  // EVP_EncodeBlock writes a trailing NUL
  int w = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data() + at),
                          reinterpret_cast<const unsigned char*>(bytes.data()),
                          static_cast<int>(bytes.size()));
  out.resize(at + static_cast<size_t>(w));
}

std::string base64_encode(std::string_view bytes) {
  std::string out;
  base64_append(out, bytes);
  return out;
}

namespace {

// kBase64[k][byte]: what a character in position k (0-3) of a quad contributes to the quad's
// three output bytes, already shifted to where they go (output byte j in bits 8j..8j+7), or
// kBase64Bad for every byte outside the standard alphabet ('=' and white space included). A
// quad is then four table lookups OR-ed together.
constexpr uint32_t kBase64Bad = 1u << 24;
constexpr std::array<std::array<uint32_t, 256>, 4> kBase64 = [] {
  std::array<std::array<uint32_t, 256>, 4> t{};
  for (auto& row : t) row.fill(kBase64Bad);
  constexpr char kAlphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  for (uint32_t v = 0; v < 64; ++v) {
    const auto c = static_cast<unsigned char>(kAlphabet[v]);
    t[0][c] = v << 2;
    t[1][c] = (v >> 4) | ((v & 15) << 12);
    t[2][c] = ((v >> 2) << 8) | ((v & 3) << 22);
    t[3][c] = v << 16;
  }
  return t;
}();

#if DYNAMODB_CACHE_BASE64_AVX2
// Decodes 32 characters per step while at least `avail` output bytes stay writable beyond the
// 24 each step produces (every step stores 32). Returns the characters consumed (a multiple of
// 32); `bad` gets a non-zero bit if any of them is outside the alphabet. Classification by the
// two nibbles of each character (Mula and Lemire, "Faster Base64 Encoding and Decoding using
// AVX2 Instructions", 2018): a character is valid exactly when lut_lo[low nibble] and
// lut_hi[high nibble] share no bit; then one more lookup by the high nibble ('/' apart) gives
// the offset from the character to its 6-bit value. Measured: about a tenth of the scalar
// loop's instructions for a 1 KB value.
__attribute__((target("avx2"))) size_t base64_decode_avx2(const unsigned char* in, size_t chars, unsigned char* out,
                                                          size_t out_room, uint32_t& bad) {
  const __m256i lut_lo = _mm256_setr_epi8(0x15, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x13, 0x1A, 0x1B,
                                          0x1B, 0x1B, 0x1A, 0x15, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11,
                                          0x13, 0x1A, 0x1B, 0x1B, 0x1B, 0x1A);
  const __m256i lut_hi = _mm256_setr_epi8(0x10, 0x10, 0x01, 0x02, 0x04, 0x08, 0x04, 0x08, 0x10, 0x10, 0x10, 0x10, 0x10,
                                          0x10, 0x10, 0x10, 0x10, 0x10, 0x01, 0x02, 0x04, 0x08, 0x04, 0x08, 0x10, 0x10,
                                          0x10, 0x10, 0x10, 0x10, 0x10, 0x10);
  // Offsets by high nibble: 2 -> '+' (62 - 0x2B), 3 -> digits, 4-5 -> 'A'-'Z', 6-7 -> 'a'-'z';
  // index 1 is '/' (high nibble 2 minus one from the compare below).
  const __m256i lut_roll = _mm256_setr_epi8(0, 16, 19, 4, -65, -65, -71, -71, 0, 0, 0, 0, 0, 0, 0, 0, 0, 16, 19, 4, -65,
                                            -65, -71, -71, 0, 0, 0, 0, 0, 0, 0, 0);
  const __m256i nibble = _mm256_set1_epi8(0x0F);
  const __m256i slash = _mm256_set1_epi8('/');
  // Per 128-bit lane: the three bytes of each 32-bit group, most significant first.
  const __m256i pack = _mm256_setr_epi8(2, 1, 0, 6, 5, 4, 10, 9, 8, 14, 13, 12, -1, -1, -1, -1, 2, 1, 0, 6, 5, 4, 10,
                                        9, 8, 14, 13, 12, -1, -1, -1, -1);
  const __m256i gather = _mm256_setr_epi32(0, 1, 2, 4, 5, 6, 7, 7);
  __m256i bad_v = _mm256_setzero_si256();
  size_t i = 0;
  for (; i + 32 <= chars && i / 4 * 3 + 32 <= out_room; i += 32, out += 24) {
    const __m256i c = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(in + i));
    const __m256i hi = _mm256_and_si256(_mm256_srli_epi32(c, 4), nibble);
    const __m256i lo = _mm256_and_si256(c, nibble);
    bad_v = _mm256_or_si256(bad_v, _mm256_and_si256(_mm256_shuffle_epi8(lut_lo, lo), _mm256_shuffle_epi8(lut_hi, hi)));
    const __m256i roll = _mm256_shuffle_epi8(lut_roll, _mm256_add_epi8(_mm256_cmpeq_epi8(c, slash), hi));
    const __m256i v = _mm256_add_epi8(c, roll);  // 6-bit values, one per byte
    // [a b c d] -> a<<6|b and c<<6|d (16-bit), then a<<18|b<<12|c<<6|d (32-bit).
    const __m256i ab_cd = _mm256_maddubs_epi16(v, _mm256_set1_epi32(0x01400140));
    const __m256i abcd = _mm256_madd_epi16(ab_cd, _mm256_set1_epi32(0x00011000));
    const __m256i bytes = _mm256_permutevar8x32_epi32(_mm256_shuffle_epi8(abcd, pack), gather);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(out), bytes);
  }
  if (!_mm256_testz_si256(bad_v, bad_v)) bad |= kBase64Bad;
  return i;
}

bool have_avx2() {
  static const bool yes = __builtin_cpu_supports("avx2");
  return yes;
}
#endif

}  // namespace

// Strict (RFC 4648 standard alphabet, padded, no white space or line breaks anywhere): input
// that is not exactly base64 stays detectable (Python-package items vs ours). Table lookups
// rather than OpenSSL's EVP_DecodeBlock, which took about 3x the instructions per character
// (measured: a quarter of a get's user-space instructions on the asynchronous path).
std::optional<std::string> base64_decode(std::string_view text) {
  if (text.size() % 4 != 0) return std::nullopt;
  if (text.empty()) return std::string();
  size_t pad = 0;
  if (text.back() == '=') ++pad;
  if (text.size() >= 2 && text[text.size() - 2] == '=') ++pad;
  const auto* in = reinterpret_cast<const unsigned char*>(text.data());
  const size_t full = text.size() - (pad ? 4 : 0);  // characters in quads without padding
  std::string out(text.size() / 4 * 3 - pad, '\0');
  auto* o = reinterpret_cast<unsigned char*>(out.data());
  uint32_t bad = 0;
  size_t i = 0;
#if DYNAMODB_CACHE_BASE64_AVX2
  if (full >= 64 && have_avx2()) {
    i = base64_decode_avx2(in, full, o, out.size(), bad);
    o += i / 4 * 3;
  }
#endif
  if constexpr (std::endian::native == std::endian::little) {
    // While another full quad follows, store all four bytes of v at once: the fourth (junk)
    // lands on the next quad's first output byte, which that quad overwrites. One store
    // instead of three, and no shifts (measured: about a fifth of the loop's instructions).
    for (; i + 4 < full; i += 4, o += 3) {
      const uint32_t v = kBase64[0][in[i]] | kBase64[1][in[i + 1]] | kBase64[2][in[i + 2]] | kBase64[3][in[i + 3]];
      bad |= v;
      std::memcpy(o, &v, 4);
    }
  }
  for (; i < full; i += 4, o += 3) {
    const uint32_t v = kBase64[0][in[i]] | kBase64[1][in[i + 1]] | kBase64[2][in[i + 2]] | kBase64[3][in[i + 3]];
    bad |= v;
    o[0] = static_cast<unsigned char>(v);
    o[1] = static_cast<unsigned char>(v >> 8);
    o[2] = static_cast<unsigned char>(v >> 16);
  }
  if (pad) {  // the last quad: "xyz=" is two bytes, "xy==" one
    const uint32_t v = kBase64[0][in[full]] | kBase64[1][in[full + 1]] | (pad == 1 ? kBase64[2][in[full + 2]] : 0);
    bad |= v;
    o[0] = static_cast<unsigned char>(v);
    if (pad == 1) o[1] = static_cast<unsigned char>(v >> 8);
  }
  if (bad & kBase64Bad) return std::nullopt;  // a byte outside the alphabet
  return out;
}

uint32_t crc32(std::string_view data) {
#if DYNAMODB_CACHE_HAVE_ISAL
  // crc32_gzip_refl is zlib's CRC-32 (reflected IEEE polynomial, inverted in and out), with the
  // widest kernel this CPU runs picked at run time.
  return crc32_gzip_refl(0, reinterpret_cast<const unsigned char*>(data.data()), data.size());
#else
  uLong c = ::crc32(0L, Z_NULL, 0);
  // zlib takes uInt lengths: feed large inputs in pieces.
  while (!data.empty()) {
    auto n = static_cast<uInt>(std::min<size_t>(data.size(), 1u << 30));
    c = ::crc32(c, reinterpret_cast<const Bytef*>(data.data()), n);
    data.remove_prefix(n);
  }
  return static_cast<uint32_t>(c);
#endif
}

}  // namespace dynamodb_cache::util
