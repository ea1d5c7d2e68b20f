// Process-wide warnings: each distinct message is printed once.
#include "util/warn.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "util/log.h"

using dynamodb_cache::util::warn_once;

TEST(WarnOnce, EachMessageOncePerProcess) {
  testing::internal::CaptureStderr();
  bool first = warn_once("warn_test: the server lacks X");
  bool again = warn_once("warn_test: the server lacks X");
  bool other = warn_once("warn_test: the server lacks Y");
  std::string err = testing::internal::GetCapturedStderr();
  EXPECT_TRUE(first);
  EXPECT_FALSE(again);
  EXPECT_TRUE(other);
  EXPECT_EQ(err, "warning: warn_test: the server lacks X\nwarning: warn_test: the server lacks Y\n");
}

// Issue 25, item 8: one hook hears everything no object's own hook takes; a hook that throws
// never fails the library's call; without any hook nothing is said anywhere.
TEST(LogHook, AnObjectsHookFirstThenTheProcessHook) {
  using dynamodb_cache::LogHook;
  using dynamodb_cache::LogLevel;
  std::vector<std::string> process, own;
  dynamodb_cache::set_log_hook([&](LogLevel, std::string_view m) { process.emplace_back(m); });
  LogHook mine = [&](LogLevel, std::string_view m) { own.emplace_back(m); };
  dynamodb_cache::detail::log_to(mine, LogLevel::kInfo, "to mine");
  dynamodb_cache::detail::log_to({}, LogLevel::kInfo, "to the process");
  EXPECT_EQ(own, std::vector<std::string>{"to mine"});
  EXPECT_EQ(process, std::vector<std::string>{"to the process"});
  dynamodb_cache::set_log_hook([](LogLevel, std::string_view) { throw 42; });
  dynamodb_cache::detail::log_to({}, LogLevel::kError, "swallowed");
  dynamodb_cache::set_log_hook(nullptr);
  testing::internal::CaptureStderr();
  dynamodb_cache::detail::log_to({}, LogLevel::kError, "heard by nobody");
  EXPECT_EQ(testing::internal::GetCapturedStderr(), "");
  EXPECT_EQ(process.size(), 1u);
}
