#include "util/crypto.h"

#include <openssl/evp.h>
#include <zlib.h>

#include <cstring>
#include <stdexcept>

namespace dynamodb_cache::util {

namespace {

// Fetched once: OpenSSL 3 otherwise looks the algorithm up on every one-shot call.
const EVP_MD* sha256_md() {
  static EVP_MD* md = EVP_MD_fetch(nullptr, "SHA256", nullptr);
  return md;
}

struct MdCtx {
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  ~MdCtx() { EVP_MD_CTX_free(ctx); }
};

// One context per thread, reused: allocation per hash is measurable on the signing path.
EVP_MD_CTX* thread_ctx() {
  thread_local MdCtx c;
  return c.ctx;
}

void digest_into(EVP_MD_CTX* ctx, std::string_view a, std::string_view b, unsigned char* out) {
  if (EVP_DigestInit_ex2(ctx, sha256_md(), nullptr) != 1 ||
      EVP_DigestUpdate(ctx, a.data(), a.size()) != 1 ||
      (!b.empty() && EVP_DigestUpdate(ctx, b.data(), b.size()) != 1) ||
      EVP_DigestFinal_ex(ctx, out, nullptr) != 1)
    throw std::runtime_error("SHA-256 failed");
}

}  // namespace

Sha256 sha256(std::string_view data) {
  Sha256 out;
  digest_into(thread_ctx(), data, {}, out.data());
  return out;
}

// HMAC (RFC 2104) built on the digest: cheaper than OpenSSL 3's generic MAC objects for the
// short messages SigV4 signs.
Sha256 hmac_sha256(std::string_view key, std::string_view data) {
  constexpr size_t kBlock = 64;
  unsigned char k[kBlock] = {0};
  if (key.size() > kBlock) {
    auto d = sha256(key);
    std::memcpy(k, d.data(), d.size());
  } else {
    std::memcpy(k, key.data(), key.size());
  }
  unsigned char ipad[kBlock], opad[kBlock];
  for (size_t i = 0; i < kBlock; ++i) {
    ipad[i] = k[i] ^ 0x36;
    opad[i] = k[i] ^ 0x5c;
  }
  Sha256 inner, out;
  EVP_MD_CTX* ctx = thread_ctx();
  digest_into(ctx, {reinterpret_cast<char*>(ipad), kBlock}, data, inner.data());
  digest_into(ctx, {reinterpret_cast<char*>(opad), kBlock}, view(inner), out.data());
  return out;
}

std::string hex(std::string_view data) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out(data.size() * 2, '\0');
  for (size_t i = 0; i < data.size(); ++i) {
    auto b = static_cast<unsigned char>(data[i]);
    out[2 * i] = kDigits[b >> 4];
    out[2 * i + 1] = kDigits[b & 15];
  }
  return out;
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

std::optional<std::string> base64_decode(std::string_view text) {
  if (text.size() % 4 != 0) return std::nullopt;
  if (text.empty()) return std::string();
  size_t pad = 0;
  if (text.back() == '=') ++pad;
  if (text.size() >= 2 && text[text.size() - 2] == '=') ++pad;
  // EVP_DecodeBlock rejects characters outside the alphabet but trims surrounding whitespace;
  // strict input keeps "not base64" detectable (Python-package items vs ours).
  auto edge_ok = [](char c) { return c != ' ' && c != '\t' && c != '\r' && c != '\n'; };
  if (!edge_ok(text.front()) || !edge_ok(text.back())) return std::nullopt;
  if (std::memchr(text.data(), '=', text.size() - pad) != nullptr) return std::nullopt;
  std::string out(text.size() / 4 * 3, '\0');
  int n = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                          reinterpret_cast<const unsigned char*>(text.data()),
                          static_cast<int>(text.size()));
  if (n < 0) return std::nullopt;
  out.resize(static_cast<size_t>(n) - pad);
  return out;
}

uint32_t crc32(std::string_view data) {
  uLong c = ::crc32(0L, Z_NULL, 0);
  // zlib takes uInt lengths: feed large inputs in pieces.
  while (!data.empty()) {
    auto n = static_cast<uInt>(std::min<size_t>(data.size(), 1u << 30));
    c = ::crc32(c, reinterpret_cast<const Bytef*>(data.data()), n);
    data.remove_prefix(n);
  }
  return static_cast<uint32_t>(c);
}

}  // namespace dynamodb_cache::util
