// Minimal streaming JSON writer appending to a std::string. Not thread-safe (one per call).
#pragma once

#include <string>
#include <string_view>

namespace dynamodb_cache::util {

class JsonWriter {
 public:
  explicit JsonWriter(std::string& out) : out_(out) {}

  void begin_object() { prefix(); out_.push_back('{'); comma_ = false; }
  void end_object() { out_.push_back('}'); comma_ = true; }
  void begin_array() { prefix(); out_.push_back('['); comma_ = false; }
  void end_array() { out_.push_back(']'); comma_ = true; }
  // Writes "k": (with a leading comma when needed); the value must follow.
  void key(std::string_view k) {
    prefix();
    append_quoted(k);
    out_.push_back(':');
    comma_ = false;
  }
  void string(std::string_view s) { prefix(); append_quoted(s); comma_ = true; }
  // A literal written as is: a number, true, false, null.
  void raw(std::string_view literal) { prefix(); out_.append(literal); comma_ = true; }
  void boolean(bool b) { raw(b ? "true" : "false"); }
  void integer(long long v) { raw(std::to_string(v)); }
  // "<base64 of bytes>"
  void base64(std::string_view bytes);

  // Convenience for the common `"k":"v"`.
  void field(std::string_view k, std::string_view v) { key(k); string(v); }

 private:
  void prefix() {
    if (comma_) out_.push_back(',');
  }
  void append_quoted(std::string_view s);

  std::string& out_;
  bool comma_ = false;
};

}  // namespace dynamodb_cache::util
