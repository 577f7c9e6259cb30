#pragma once

// gtest assertions for absl::Status and absl::StatusOr, for every test of ferry.

#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "gtest/gtest.h"

#define FERRY_TESTING_CONCAT_INNER_(a, b) a##b
#define FERRY_TESTING_CONCAT_(a, b) FERRY_TESTING_CONCAT_INNER_(a, b)

// Fails the test (and returns from the function) unless `expr` is an OK absl::Status.
#define ASSERT_OK(expr)                                               \
  do {                                                                \
    const ::absl::Status ferry_testing_status_ = (expr);              \
    ASSERT_TRUE(ferry_testing_status_.ok()) << ferry_testing_status_; \
  } while (0)

// Records a failure (and goes on) unless `expr` is an OK absl::Status.
#define EXPECT_OK(expr)                                               \
  do {                                                                \
    const ::absl::Status ferry_testing_status_ = (expr);              \
    EXPECT_TRUE(ferry_testing_status_.ok()) << ferry_testing_status_; \
  } while (0)

// `ASSERT_OK_AND_ASSIGN(auto x, MakeX());` declares x from an OK absl::StatusOr<T>, or fails
// the test with its status and returns from the function.
#define ASSERT_OK_AND_ASSIGN(lhs, expr)                                                         \
  FERRY_TESTING_ASSERT_OK_AND_ASSIGN_(FERRY_TESTING_CONCAT_(ferry_testing_statusor_, __LINE__), \
                                      lhs, expr)

#define FERRY_TESTING_ASSERT_OK_AND_ASSIGN_(statusor, lhs, expr) \
  auto statusor = (expr);                                        \
  ASSERT_TRUE(statusor.ok()) << statusor.status();               \
  lhs = std::move(statusor).value()
