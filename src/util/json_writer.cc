#include "util/json_writer.h"

#include "util/crypto.h"

namespace dynamodb_cache::util {

void JsonWriter::append_quoted(std::string_view s) {
  static constexpr char kHex[] = "0123456789abcdef";
  out_.push_back('"');
  size_t start = 0;
  for (size_t i = 0; i < s.size(); ++i) {
    auto c = static_cast<unsigned char>(s[i]);
    if (c >= 0x20 && c != '"' && c != '\\') continue;
    out_.append(s.data() + start, i - start);
    start = i + 1;
    switch (c) {
      case '"': out_.append("\\\""); break;
      case '\\': out_.append("\\\\"); break;
      case '\n': out_.append("\\n"); break;
      case '\r': out_.append("\\r"); break;
      case '\t': out_.append("\\t"); break;
      case '\b': out_.append("\\b"); break;
      case '\f': out_.append("\\f"); break;
      default:
        out_.append("\\u00");
        out_.push_back(kHex[c >> 4]);
        out_.push_back(kHex[c & 15]);
    }
  }
  out_.append(s.data() + start, s.size() - start);
  out_.push_back('"');
}

void JsonWriter::base64(std::string_view bytes) {
  prefix();
  out_.push_back('"');
  base64_append(out_, bytes);
  out_.push_back('"');
  comma_ = true;
}

}  // namespace dynamodb_cache::util
