#include "util/time.h"

#include <cstdio>

namespace dynamodb_cache::util {

AmzDate amz_date(SysTime t) {
  using namespace std::chrono;
  const auto secs = floor<seconds>(t);
  const auto day = floor<days>(secs);
  const year_month_day ymd{day};
  const hh_mm_ss<seconds> hms{secs - day};
  AmzDate out;
  auto put = [&](size_t at, unsigned v, int width) {
    for (int i = width - 1; i >= 0; --i, v /= 10) out.chars[at + static_cast<size_t>(i)] = static_cast<char>('0' + v % 10);
  };
  put(0, static_cast<unsigned>(static_cast<int>(ymd.year())), 4);
  put(4, static_cast<unsigned>(ymd.month()), 2);
  put(6, static_cast<unsigned>(ymd.day()), 2);
  out.chars[8] = 'T';
  put(9, static_cast<unsigned>(hms.hours().count()), 2);
  put(11, static_cast<unsigned>(hms.minutes().count()), 2);
  put(13, static_cast<unsigned>(hms.seconds().count()), 2);
  out.chars[15] = 'Z';
  return out;
}

std::optional<SysTime> parse_iso8601(std::string_view s) {
  int y, mo, d, h, mi, sec;
  std::string str(s);
  int consumed = 0;
  if (std::sscanf(str.c_str(), "%4d-%2d-%2dT%2d:%2d:%2d%n", &y, &mo, &d, &h, &mi, &sec, &consumed) != 6)
    return std::nullopt;
  std::string_view rest = s.substr(static_cast<size_t>(consumed));
  if (!rest.empty() && rest.front() == '.') {
    rest.remove_prefix(1);
    while (!rest.empty() && rest.front() >= '0' && rest.front() <= '9') rest.remove_prefix(1);
  }
  long offset = 0;
  if (rest == "Z" || rest == "z" || rest.empty()) {
  } else if ((rest.size() == 6 && (rest[0] == '+' || rest[0] == '-') && rest[3] == ':')) {
    int oh = (rest[1] - '0') * 10 + (rest[2] - '0'), om = (rest[4] - '0') * 10 + (rest[5] - '0');
    offset = (oh * 3600L + om * 60L) * (rest[0] == '+' ? 1 : -1);
  } else {
    return std::nullopt;
  }
  if (mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || sec > 60) return std::nullopt;
  std::chrono::year_month_day ymd{std::chrono::year(y), std::chrono::month(static_cast<unsigned>(mo)),
                                  std::chrono::day(static_cast<unsigned>(d))};
  if (!ymd.ok()) return std::nullopt;
  auto tp = std::chrono::sys_days(ymd) + std::chrono::hours(h) + std::chrono::minutes(mi) +
            std::chrono::seconds(sec) - std::chrono::seconds(offset);
  // system_clock counts nanoseconds in 64 bits: it spans 1677..2262. Times outside (a
  // "never expires" 9999-12-31 from a credential_process) are clamped to 1970 / 2262 rather
  // than overflowed (found by fuzz/credentials_fuzz.cc).
  using namespace std::chrono;
  constexpr auto lo = sys_days(year(1970) / 1 / 1), hi = sys_days(year(2262) / 1 / 1);
  if (tp < lo) return SysTime(time_point_cast<system_clock::duration>(lo));
  if (tp > hi) return SysTime(time_point_cast<system_clock::duration>(hi));
  return std::chrono::time_point_cast<std::chrono::system_clock::duration>(tp);
}

std::optional<SysTime> parse_http_date(std::string_view s) {
  static constexpr std::string_view kMonths[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                                 "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
  // "Sun, 06 Nov 1994 08:49:37 GMT": fixed positions.
  if (s.size() != 29 || s.substr(3, 2) != ", " || s.substr(25) != " GMT") return std::nullopt;
  auto num = [&](size_t at, size_t len, int& out) {
    out = 0;
    for (size_t i = at; i < at + len; ++i) {
      if (s[i] < '0' || s[i] > '9') return false;
      out = out * 10 + (s[i] - '0');
    }
    return true;
  };
  int d, y, h, mi, sec;
  if (!num(5, 2, d) || s[7] != ' ' || s[11] != ' ' || !num(12, 4, y) || s[16] != ' ' || !num(17, 2, h) ||
      s[19] != ':' || !num(20, 2, mi) || s[22] != ':' || !num(23, 2, sec))
    return std::nullopt;
  unsigned mo = 0;
  while (mo < 12 && kMonths[mo] != s.substr(8, 3)) ++mo;
  if (mo == 12 || h > 23 || mi > 59 || sec > 60) return std::nullopt;
  std::chrono::year_month_day ymd{std::chrono::year(y), std::chrono::month(mo + 1),
                                  std::chrono::day(static_cast<unsigned>(d))};
  if (!ymd.ok()) return std::nullopt;
  return std::chrono::time_point_cast<std::chrono::system_clock::duration>(
      std::chrono::sys_days(ymd) + std::chrono::hours(h) + std::chrono::minutes(mi) + std::chrono::seconds(sec));
}

}  // namespace dynamodb_cache::util
