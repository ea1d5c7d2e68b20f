#include <gtest/gtest.h>
#include <zlib.h>

#include <algorithm>
#include <cstdio>
#include <ctime>
#include <iostream>
#include <optional>
#include <random>
#include <string>

#include "util/crypto.h"
#include "util/json_writer.h"
#include "util/time.h"

using namespace dynamodb_cache::util;

TEST(Crypto, Sha256KnownAnswers) {
  EXPECT_EQ(hex(sha256("")), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(hex(sha256("abc")), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

TEST(Crypto, HmacRfc4231) {
  // RFC 4231 test case 2 and 6 (key longer than the block).
  EXPECT_EQ(hex(hmac_sha256("Jefe", "what do ya want for nothing?")),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
  EXPECT_EQ(hex(hmac_sha256(std::string(131, '\xaa'), "Test Using Larger Than Block-Size Key - Hash Key First")),
            "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54");
  // An empty key (a default-constructed HmacSha256Key's): a known value, and under UBSan no
  // memcpy from the empty view's null data().
  EXPECT_EQ(hex(hmac_sha256("", "")), "b613679a0814d9ec772f95d778c35fc5ff1697c493715653c6c712144292c5ad");
  EXPECT_EQ(hex(HmacSha256Key().mac("")), "b613679a0814d9ec772f95d778c35fc5ff1697c493715653c6c712144292c5ad");
}

TEST(Crypto, Base64RoundTripAndStrictness) {
  for (std::string s : std::vector<std::string>{"", "f", "fo", "foo", "foob", "fooba", "foobar", std::string("\0\xff\x10", 3)}) {
    auto enc = base64_encode(s);
    auto dec = base64_decode(enc);
    ASSERT_TRUE(dec) << enc;
    EXPECT_EQ(*dec, s);
  }
  EXPECT_EQ(base64_encode("foobar"), "Zm9vYmFy");
  EXPECT_FALSE(base64_decode("Zm9"));        // length not a multiple of 4
  EXPECT_FALSE(base64_decode("Zm9v!mFy"));   // not in the alphabet
  EXPECT_FALSE(base64_decode(" Zm9vYmF"));   // whitespace
  EXPECT_FALSE(base64_decode("{\"a\": 1}")); // JSON is not base64
  EXPECT_FALSE(base64_decode("Zm=vYmFy"));   // padding in the middle
  EXPECT_EQ(base64_decode("QQ=="), std::optional<std::string>("A"));   // one byte after padding
  EXPECT_EQ(base64_decode("QUI="), std::optional<std::string>("AB"));  // two bytes
  EXPECT_EQ(base64_decode("+/+/"), std::optional<std::string>("\xfb\xff\xbf"));
  EXPECT_FALSE(base64_decode("QQ=A"));       // '=' before the last character
  EXPECT_FALSE(base64_decode("Q==="));       // three padding characters
  EXPECT_FALSE(base64_decode("Zm9v\nYmFy"));  // a line break inside
  EXPECT_FALSE(base64_decode(std::string("Zm9v\0mFy", 8)));  // a NUL inside
  EXPECT_FALSE(base64_decode("Zm9vYmF\xc3"));  // a byte above 0x7f
}

// Every length and every byte value through both decoding loops (the four-byte stores while
// another quad follows, then the last quads), and a bad character caught in every position.
TEST(Crypto, Base64EveryLengthAndPosition) {
  std::string bytes;
  for (size_t n = 0; n <= 260; ++n) {
    auto enc = base64_encode(bytes);
    auto dec = base64_decode(enc);
    ASSERT_TRUE(dec) << n;
    ASSERT_EQ(*dec, bytes) << n;
    for (size_t i = 0; i < enc.size() && enc[i] != '='; ++i) {
      std::string bad = enc;
      bad[i] = '*';
      ASSERT_FALSE(base64_decode(bad)) << n << " at " << i;
    }
    bytes.push_back(static_cast<char>((n * 37 + 11) & 0xff));
  }
}

// Every byte value at every position of a value long enough for the 32-character vector steps
// (on CPUs with AVX2) and the scalar tail: exactly the 64 alphabet characters decode, each to
// its own 6 bits, wherever it stands.
TEST(Crypto, Base64EveryByteValueAtEveryPosition) {
  constexpr std::string_view kAlphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string bytes(300, '\0');
  for (size_t i = 0; i < bytes.size(); ++i) bytes[i] = static_cast<char>((i * 151 + 7) & 0xff);
  const std::string enc = base64_encode(bytes);  // 400 characters, no padding
  ASSERT_EQ(enc.size(), 400u);
  for (size_t pos = 0; pos < enc.size(); ++pos) {
    for (int b = 0; b < 256; ++b) {
      if (b == '=' && pos == enc.size() - 1) continue;  // padding there is valid (tested above)
      std::string text = enc;
      text[pos] = static_cast<char>(b);
      auto dec = base64_decode(text);
      const size_t v = kAlphabet.find(static_cast<char>(b));
      if (v == std::string_view::npos) {
        ASSERT_FALSE(dec) << "byte " << b << " at " << pos;
        continue;
      }
      ASSERT_TRUE(dec) << "byte " << b << " at " << pos;
      // The character's 6 bits land at bit offset 6 * pos of the output, most significant first.
      std::string want = bytes;
      for (int k = 0; k < 6; ++k) {
        const size_t bit = 6 * pos + static_cast<size_t>(k);
        const auto mask = static_cast<unsigned char>(0x80u >> (bit % 8));
        auto& byte = reinterpret_cast<unsigned char&>(want[bit / 8]);
        byte = static_cast<unsigned char>(((v >> (5 - k)) & 1) ? (byte | mask) : (byte & ~mask));
      }
      ASSERT_EQ(*dec, want) << "byte " << b << " at " << pos;
    }
  }
}

namespace {

constexpr std::string_view kAlphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

// Base64 the slow and obvious way, six bits at a time, to hold the kernels to.
std::string reference_encode(std::string_view bytes) {
  std::string out;
  uint32_t acc = 0;
  int bits = 0;
  for (unsigned char b : bytes) {
    acc = acc << 8 | b;
    for (bits += 8; bits >= 6; bits -= 6) out.push_back(kAlphabet[(acc >> (bits - 6)) & 63]);
  }
  if (bits) out.push_back(kAlphabet[(acc << (6 - bits)) & 63]);
  while (out.size() % 4) out.push_back('=');
  return out;
}

// base64_decode's contract, spelled out: a multiple of 4 characters, at most two '=' and only
// at the end, every other character in the alphabet; the bits of a padded quad's last
// character that no byte takes are ignored.
std::optional<std::string> reference_decode(std::string_view text) {
  if (text.size() % 4) return std::nullopt;
  size_t pad = 0;
  while (pad < 2 && pad < text.size() && text[text.size() - 1 - pad] == '=') ++pad;
  std::string out;
  uint32_t acc = 0;
  int bits = 0;
  for (char c : text.substr(0, text.size() - pad)) {
    const size_t v = kAlphabet.find(c);
    if (v == std::string_view::npos) return std::nullopt;
    acc = acc << 6 | static_cast<uint32_t>(v);
    if ((bits += 6) >= 8) out.push_back(static_cast<char>(acc >> (bits -= 8)));
  }
  return out;
}

std::string random_bytes(size_t n, std::mt19937& rng) {
  std::string s(n, '\0');
  for (auto& c : s) c = static_cast<char>(rng());
  return s;
}

}  // namespace

// The AVX2 kernels (where the CPU has them) and the portable loops against the reference, for
// every length through several vector steps and both tails, at every alignment of 32.
TEST(Crypto, Base64KernelsMatchTheReference) {
  std::cout << "base64 kernels: " << (detail::base64_uses_avx2() ? "AVX2" : "scalar only") << "\n";
  std::mt19937 rng(26);
  std::string buffer(300 + 64, '\0');
  for (size_t n = 0; n <= 300; ++n) {
    const std::string bytes = random_bytes(n, rng);
    const std::string want = reference_encode(bytes);
    for (size_t at = 0; at < 32; ++at) {
      buffer.replace(at, n, bytes);
      const std::string_view in(buffer.data() + at, n);
      std::string enc = "prefix";
      base64_append(enc, in);
      ASSERT_EQ(enc, "prefix" + want) << n << " at " << at;
      std::string scalar = "prefix";
      detail::base64_append_scalar(scalar, in);
      ASSERT_EQ(scalar, "prefix" + want) << n << " at " << at;
      buffer.replace(at, want.size(), want);
      const std::string_view text(buffer.data() + at, want.size());
      ASSERT_EQ(base64_decode(text), std::optional<std::string>(bytes)) << n << " at " << at;
      ASSERT_EQ(detail::base64_decode_scalar(text), std::optional<std::string>(bytes)) << n << " at " << at;
    }
  }
}

// Every byte value at every position of texts of every length up to 132 characters (so every
// size of the vector loop's rest, with and without padding), and then a second '=' or
// stranger in the last quad: both decoders give the reference's answer, bytes or nullopt.
TEST(Crypto, Base64EveryByteInEveryTailAgreesWithTheReference) {
  std::mt19937 rng(27);
  for (size_t n = 0; n <= 99; ++n) {
    const std::string enc = reference_encode(random_bytes(n, rng));
    for (size_t pos = 0; pos < enc.size(); ++pos) {
      for (int b = 0; b < 256; ++b) {
        std::string text = enc;
        text[pos] = static_cast<char>(b);
        const auto want = reference_decode(text);
        ASSERT_EQ(base64_decode(text), want) << n << ": byte " << b << " at " << pos;
        ASSERT_EQ(detail::base64_decode_scalar(text), want) << n << ": byte " << b << " at " << pos;
        if (pos + 1 < enc.size() && b != '=') {  // and padding after it
          text[enc.size() - 1] = '=';
          ASSERT_EQ(base64_decode(text), reference_decode(text)) << n << ": byte " << b << " at " << pos << "+=";
        }
      }
    }
  }
}

// Padding and the bytes after it in every combination, at the end of texts long enough for
// the vector steps: "xy==", "xyz=", "x===", "xy=z", "=...", and the unused bits of a padded
// quad's last character set (accepted and ignored, as before).
TEST(Crypto, Base64PaddingEdgesAtEveryLength) {
  const std::string_view kLast = "AQgw+/=*";
  for (size_t quads = 1; quads <= 20; ++quads) {
    const std::string body = reference_encode(std::string(quads * 3 - 3, 'q'));
    for (char a : kLast)
      for (char b : kLast)
        for (char c : kLast)
          for (char d : kLast) {
            const std::string text = body + a + b + c + d;
            const auto want = reference_decode(text);
            ASSERT_EQ(base64_decode(text), want) << text;
            ASSERT_EQ(detail::base64_decode_scalar(text), want) << text;
          }
  }
}

// Garbage of every length up to 300, mostly alphabet: both decoders agree with the reference.
TEST(Crypto, Base64RandomTextAgreesWithTheReference) {
  std::mt19937 rng(28);
  const std::string kChars = std::string(kAlphabet) + "=\n *-_\x80\xff" + std::string(1, '\0');
  for (int round = 0; round < 20000; ++round) {
    std::string text(rng() % 76 * 4, 'A');
    for (auto& c : text) c = kAlphabet[rng() % 64];
    for (int k = static_cast<int>(rng() % 3); k > 0 && !text.empty(); --k) text[rng() % text.size()] = kChars[rng() % kChars.size()];
    if (!text.empty() && rng() % 2) text.back() = '=';
    if (text.size() > 1 && rng() % 4 == 0) text[text.size() - 2] = '=';
    const auto want = reference_decode(text);
    ASSERT_EQ(base64_decode(text), want) << text;
    ASSERT_EQ(detail::base64_decode_scalar(text), want) << text;
  }
}

TEST(Crypto, Crc32MatchesZlib) {
  EXPECT_EQ(crc32("123456789"), 0xCBF43926u);
  EXPECT_EQ(crc32(""), 0u);
  // x-amz-crc32 is zlib's CRC-32, whichever implementation computes ours (ISA-L or zlib):
  // every length through several folding blocks and tails, at every alignment of 8.
  std::string bytes(70000, '\0');
  uint32_t x = 12345;
  for (auto& b : bytes) b = static_cast<char>((x = x * 1103515245u + 12345u) >> 24);
  auto zlib = [](std::string_view d) {
    return static_cast<uint32_t>(::crc32(0L, reinterpret_cast<const Bytef*>(d.data()), static_cast<uInt>(d.size())));
  };
  const std::string_view all(bytes);
  for (size_t n = 0; n <= 1100; ++n)
    for (size_t at = 0; at < 8; ++at) ASSERT_EQ(crc32(all.substr(at, n)), zlib(all.substr(at, n))) << n << " at " << at;
  for (size_t n : {4095, 4096, 4097, 65536, 69990}) ASSERT_EQ(crc32(all.substr(3, n)), zlib(all.substr(3, n))) << n;
}

TEST(JsonWriter, EscapesEverythingJsonRequires) {
  std::string out;
  JsonWriter w(out);
  w.begin_object();
  w.field("k", std::string("a\"b\\c\n\t\x01", 8));
  w.key("n");
  w.raw("12");
  w.key("l");
  w.begin_array();
  w.boolean(true);
  w.string("x");
  w.end_array();
  w.end_object();
  EXPECT_EQ(out, R"({"k":"a\"b\\c\n\t\u0001","n":12,"l":[true,"x"]})");
}

namespace {
// JSON's escaping, one byte at a time.
std::string reference_quoted(std::string_view s) {
  std::string out = "\"";
  for (unsigned char c : s) {
    if (c == '"') out += "\\\"";
    else if (c == '\\') out += "\\\\";
    else if (c == '\n') out += "\\n";
    else if (c == '\r') out += "\\r";
    else if (c == '\t') out += "\\t";
    else if (c == '\b') out += "\\b";
    else if (c == '\f') out += "\\f";
    else if (c < 0x20) {
      char u[8];
      std::snprintf(u, sizeof u, "\\u%04x", c);
      out += u;
    } else {
      out.push_back(static_cast<char>(c));
    }
  }
  return out + "\"";
}
}  // namespace

// Every byte value in every position of strings of 0-40 bytes (the word-at-a-time scan's
// steps, its overlapping last word and its short forms), among bytes that need no escaping
// (from ' ' and '!' next to the quote to 0x7f-0xff), and once more with a second byte that
// needs escaping after it.
TEST(JsonWriter, EveryByteInEveryPositionMatchesAReferenceEscaper) {
  const std::string kPlain = std::string("a !#[]~\x7f\x80\xc3\xff", 11) + "Z09";
  std::mt19937 rng(29);
  for (size_t n = 0; n <= 40; ++n) {
    for (size_t pos = 0; pos < std::max<size_t>(n, 1); ++pos) {
      for (int b = 0; b < 256; ++b) {
        std::string s(n, 'x');
        for (auto& c : s) c = kPlain[rng() % kPlain.size()];
        if (n) s[pos] = static_cast<char>(b);
        for (int twice = 0; twice < 2; ++twice) {
          if (twice && pos + 1 < n) s[pos + 1 + rng() % (n - pos - 1)] = "\"\\\x1f\n"[rng() % 4];
          std::string out = "{";
          JsonWriter(out).string(s);
          ASSERT_EQ(out, "{" + reference_quoted(s)) << n << ": byte " << b << " at " << pos;
        }
      }
    }
  }
}

TEST(Time, AmzDateAndIso8601) {
  auto t = parse_iso8601("2015-08-30T12:36:00Z");
  ASSERT_TRUE(t);
  EXPECT_EQ(amz_date(*t).view(), "20150830T123600Z");
  EXPECT_EQ(amz_date(*parse_iso8601("2024-02-29T23:59:59.123Z")).view(), "20240229T235959Z");
  EXPECT_EQ(amz_date(*parse_iso8601("2024-01-01T02:00:00+02:00")).view(), "20240101T000000Z");
  EXPECT_FALSE(parse_iso8601("yesterday"));
  EXPECT_FALSE(parse_iso8601("2024-02-30T00:00:00Z"));
}

// amz_date does its own calendar arithmetic: it must agree with the C library's gmtime_r on
// every day from 1970 to 2200 (leap years, 2100 not one), at a different second of each.
TEST(Time, AmzDateAgreesWithGmtime) {
  for (std::time_t s = 0; s < std::time_t{7'258'118'400}; s += 86'400 + 7) {
    std::tm tm{};
    ASSERT_TRUE(gmtime_r(&s, &tm));
    char want[17];
    std::strftime(want, sizeof want, "%Y%m%dT%H%M%SZ", &tm);
    ASSERT_EQ(amz_date(std::chrono::system_clock::from_time_t(s) + std::chrono::milliseconds(999)).view(),
              std::string_view(want))
        << s;
  }
}
