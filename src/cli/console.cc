// What the command line reads and writes: numeric arguments, standard input, standard output.
#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstdio>
#include <cstring>
#include <iostream>
#include <sstream>

#include "cli/common.h"
#include "util/text.h"

namespace dynamodb_cache::cli {

namespace {

// An argument quoted in a message: one line, bounded.
std::string quote_arg(const std::string& arg) { return "'" + util::printable(arg, 40) + "'"; }

std::string number_text(double v) {
  std::ostringstream out;
  out << v;
  return out.str();
}

}  // namespace

CLI::Validator whole_number(int64_t min, int64_t max, const std::string& max_text) {
  const std::string max_said = max_text.empty() ? std::to_string(max) : max_text;
  return CLI::Validator(
      [min, max, max_said](std::string& in) -> std::string {
        std::string_view digits(in);
        const bool negative = !digits.empty() && digits[0] == '-';
        if (!digits.empty() && (digits[0] == '-' || digits[0] == '+')) digits.remove_prefix(1);
        if (digits.empty() || digits.find_first_not_of("0123456789") != std::string_view::npos)
          return quote_arg(in) + " is not a whole number (decimal digits, optionally signed)";
        // from_chars reads decimal only; the sign is put back so INT64_MIN parses too.
        const std::string text = (negative ? "-" : "") + std::string(digits);
        int64_t v = 0;
        auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
        if (ec == std::errc::result_out_of_range || (ec == std::errc() && v > max))
          return (negative ? quote_arg(in) + " is less than the minimum, " + std::to_string(min)
                           : quote_arg(in) + " is more than the maximum, " + max_said);
        if (ec != std::errc() || end != text.data() + text.size())
          return quote_arg(in) + " is not a whole number (decimal digits, optionally signed)";
        if (v < min) return quote_arg(in) + " is less than the minimum, " + std::to_string(min);
        in = std::to_string(v);  // what CLI11 converts next: no leading zero it would read as octal
        return {};
      },
      "");
}

CLI::Validator decimal_number(double min, double max) {
  return CLI::Validator(
      [min, max](std::string& in) -> std::string {
        const size_t dot = in.find('.');
        const bool shape = !in.empty() && in != "." &&
                           in.find_first_not_of("0123456789.") == std::string::npos &&
                           (dot == std::string::npos || in.find('.', dot + 1) == std::string::npos);
        double v = 0;
        auto [end, ec] = std::from_chars(in.data(), in.data() + in.size(), v, std::chars_format::fixed);
        if (!shape || ec != std::errc() || end != in.data() + in.size())
          return quote_arg(in) + " is not a decimal number (digits, optionally a fraction: 2.5)";
        if (v < min) return quote_arg(in) + " is less than the minimum, " + number_text(min);
        if (v > max) return quote_arg(in) + " is more than the maximum, " + number_text(max);
        return {};
      },
      "");
}

CLI::Option* add_ttl_option(CLI::App* cmd, int64_t& ttl_seconds, const std::string& what) {
  const int64_t max_s = kMaxTtl.count() / 1000;
  return cmd->add_option("--ttl", ttl_seconds, what)
      ->transform(whole_number(0, max_s, std::to_string(max_s) + " s (10,000 years)"))
      ->type_name("SECONDS")
      ->capture_default_str();
}

std::string read_stdin(size_t max_bytes, const std::string& limit_said) {
  std::string data;
  char buf[65536];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, stdin)) > 0) {
    if (n > max_bytes - data.size())
      throw InvalidArgumentError("standard input holds more than " + std::to_string(max_bytes) + " bytes, " +
                                 limit_said);
    data.append(buf, n);
  }
  if (std::ferror(stdin)) throw InvalidArgumentError("cannot read standard input");
  return data;
}

std::string read_stdin() { return read_stdin(kMaxValueBytes, "the largest value (64 MiB)"); }

void keep_standard_fds_open() {
  // A descriptor of 0-2 left closed would be the next one opened (a connection to DynamoDB):
  // what is printed would go there. /dev/null opened the wrong way round takes its place, so
  // reading a closed stdin or writing a closed stdout still fails (EBADF), as it would have.
  for (int fd = 0; fd <= 2; ++fd) {
    if (fcntl(fd, F_GETFD) != -1 || errno != EBADF) continue;
    int got = open("/dev/null", (fd == 0 ? O_WRONLY : O_RDONLY));
    if (got >= 0 && got != fd) {
      dup2(got, fd);
      close(got);
    }
  }
}

void write_stdout(std::string_view bytes) {
  errno = 0;
  if (std::fwrite(bytes.data(), 1, bytes.size(), stdout) != bytes.size() || std::fflush(stdout) != 0)
    throw OutputError(std::string("cannot write standard output") +
                      (errno ? std::string(": ") + std::strerror(errno) : ""));
}

std::string stdout_failure() {
  errno = 0;
  const bool flushed = std::fflush(stdout) == 0;
  const int err = errno;
  if (flushed && !std::ferror(stdout) && std::cout.good()) return {};
  return std::string("cannot write standard output") + (err ? std::string(": ") + std::strerror(err) : "");
}

}  // namespace dynamodb_cache::cli
