// Time formatting and parsing in UTC. Thread-safe.
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <string_view>

namespace dynamodb_cache::util {

using SysTime = std::chrono::system_clock::time_point;

// "20150830T123600Z": 16 characters, no terminator, held in place (the signer makes one per
// request: no allocation, and no gmtime_r with its time-zone lock).
struct AmzDate {
  char chars[16];
  std::string_view view() const { return {chars, sizeof chars}; }
};
AmzDate amz_date(SysTime t);
// "2015-08-30T12:36:00Z" and variants with fractional seconds or a +00:00 offset.
std::optional<SysTime> parse_iso8601(std::string_view text);
// An HTTP Date header, IMF-fixdate: "Sun, 06 Nov 1994 08:49:37 GMT" (RFC 9110 5.6.7).
std::optional<SysTime> parse_http_date(std::string_view text);

}  // namespace dynamodb_cache::util
