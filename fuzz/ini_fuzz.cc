// libFuzzer target: the AWS shared config/credentials file parser (src/aws/config.h).
// read_ini takes a path, so each input is written to one temporary file first.
// Contract checked: parsing never throws or crashes, whatever the bytes; keys come out
// lower-cased and trimmed, without '='; section names and values come out trimmed; and the
// profile lookups (config_section, credentials_section) agree with the parsed file.
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "aws/config.h"

namespace detail = dynamodb_cache::aws::detail;

namespace {

const std::string& scratch_file() {
  static const std::string path = [] {
    char tmpl[] = "/tmp/ini_fuzz.XXXXXX";
    int fd = mkstemp(tmpl);
    if (fd < 0) std::abort();
    close(fd);
    std::string p = tmpl;
    std::atexit([] { std::remove(scratch_file().c_str()); });
    return p;
  }();
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
  const std::string& path = scratch_file();
  FILE* f = std::fopen(path.c_str(), "wb");
  if (!f) std::abort();
  if (size && std::fwrite(data, 1, size, f) != size) std::abort();
  std::fclose(f);

  auto ini = detail::read_ini(path);
  for (const auto& [section, keys] : ini) {
    check(trimmed(section));
    for (const auto& [k, v] : keys) {
      check(trimmed(k) && trimmed(v) && k.find('=') == std::string::npos);
      for (char c : k) check(!(c >= 'A' && c <= 'Z'));
    }
  }
  // Profile lookups over the same file, as credentials file and as config file.
  detail::ResolvedProfile p{"default", path, path};
  auto cred = detail::credentials_section(p);
  check(cred.has_value() == ini.contains("default"));
  auto conf = detail::config_section(p);
  check(conf.has_value() == (ini.contains("profile default") || ini.contains("default")));
  return 0;
}
