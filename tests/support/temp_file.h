// A file with the given content in a folder of this test process's own under the system's
// temporary directory (ddbc-test-PID); returns its path. Files are left for the OS to clean.
#pragma once

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>

namespace testing_support {

inline std::string temp_file(const std::string& name, const std::string& content) {
  auto dir = std::filesystem::temp_directory_path() / ("ddbc-test-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  auto p = dir / name;
  std::ofstream(p) << content;
  return p.string();
}

}  // namespace testing_support
