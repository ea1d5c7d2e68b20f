// libFuzzer target: base64 (src/util/crypto.h), the AVX2 kernels against the portable forms.
// Contract checked: for any text, base64_decode and detail::base64_decode_scalar give the
// same answer (the same bytes, or both nullopt); the same for the input mapped mostly onto
// the alphabet, with the length cut to whole quads and padding where the input says, so that
// near-valid texts are common; for any bytes, base64_append gives EVP_EncodeBlock's text
// (detail::base64_append_scalar) after what the string held, and it decodes back to them.
// Where the CPU has no AVX2 both sides run the same code.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "util/crypto.h"

namespace util = dynamodb_cache::util;

namespace {

void same_decode(std::string_view text) {
  if (util::base64_decode(text) != util::detail::base64_decode_scalar(text)) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view in(reinterpret_cast<const char*>(data), size);
  same_decode(in);

  // Bytes below 0xF0 become alphabet characters; the rest stay (outside the alphabet, or '=').
  constexpr std::string_view kAlphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string text(in.substr(0, size / 4 * 4));
  for (auto& c : text) {
    const auto b = static_cast<unsigned char>(c);
    c = b < 0xF0 ? kAlphabet[b & 63] : b == 0xF0 ? '=' : c;
  }
  same_decode(text);
  if (!text.empty()) {
    const size_t pad = static_cast<unsigned char>(in[0]) % 3;  // 0-2 '=' at the end
    text.replace(text.size() - pad, pad, pad, '=');
    same_decode(text);
  }

  std::string fast = "x", scalar = "x";
  util::base64_append(fast, in);
  util::detail::base64_append_scalar(scalar, in);
  if (fast != scalar) std::abort();
  const auto back = util::base64_decode(std::string_view(fast).substr(1));
  if (!back || *back != in) std::abort();
  return 0;
}
