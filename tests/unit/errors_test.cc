// Errors callers can catch by what happened, and an Outcome that tells its error's kind
// without the caller rethrowing it.
#include "dynamodb_cache/errors.h"

#include <gtest/gtest.h>

#include <optional>
#include <stdexcept>
#include <type_traits>

#include "dynamodb_cache/outcome.h"

using namespace dynamodb_cache;

TEST(Outcome, TellsItsKindWithoutARethrowByTheCaller) {
  Outcome<int> ok(7);
  EXPECT_EQ(ok.kind(), std::nullopt);
  EXPECT_FALSE(ok.retryable());
  EXPECT_EQ(ok.error_as<Error>(), nullptr);

  Outcome<int> throttled(
      std::make_exception_ptr(ThrottlingError(400, "ThrottlingException", "slow down", "rid")));
  EXPECT_EQ(throttled.kind(), ErrorKind::kThrottling);
  EXPECT_TRUE(throttled.retryable());
  ASSERT_NE(throttled.error_as<ThrottlingError>(), nullptr);
  EXPECT_EQ(throttled.error_as<ServiceError>()->request_id(), "rid");
  EXPECT_EQ(throttled.error_as<ResourceNotFoundError>(), nullptr);

  Outcome<void> missing(
      std::make_exception_ptr(ResourceNotFoundError(400, "ResourceNotFoundException", "m", "", "t")));
  EXPECT_EQ(missing.kind(), ErrorKind::kResourceNotFound);
  EXPECT_FALSE(missing.retryable());
  ASSERT_NE(missing.error_as<ResourceNotFoundError>(), nullptr);
  EXPECT_EQ(missing.error_as<ResourceNotFoundError>()->table(), "t");
  EXPECT_EQ(Outcome<void>().kind(), std::nullopt);

  // An exception not of errors.h (a callback of the caller's own): no kind.
  Outcome<int> foreign(std::make_exception_ptr(std::runtime_error("mine")));
  EXPECT_FALSE(foreign.ok());
  EXPECT_EQ(foreign.kind(), std::nullopt);
  EXPECT_NE(foreign.error_as<std::runtime_error>(), nullptr);
}

TEST(Errors, KindsCallersBranchOnAreClassesUnderTheOldOnes) {
  static_assert(std::is_base_of_v<ServiceError, ResourceNotFoundError>);
  static_assert(std::is_base_of_v<ServiceError, ThrottlingError>);
  static_assert(std::is_base_of_v<ServiceError, ConditionFailedError>);
  static_assert(std::is_base_of_v<TransportError, CertificateError>);
  EXPECT_EQ(ConditionFailedError(400, "ConditionalCheckFailedException", "", "").kind(),
            ErrorKind::kConditionFailed);
  EXPECT_FALSE(ConditionFailedError(400, "ConditionalCheckFailedException", "", "").retryable());
  EXPECT_TRUE(ThrottlingError(400, "ThrottlingException", "", "").retryable());
  // Without a table, a missing resource reads as any service error.
  EXPECT_STREQ(ResourceNotFoundError(400, "ResourceNotFoundException", "gone", "r1").what(),
               "ResourceNotFoundException: gone (HTTP 400, request id r1)");
}
