// Process-wide warnings: each distinct message is printed once.
#include <gtest/gtest.h>

#include "util/warn.h"

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
