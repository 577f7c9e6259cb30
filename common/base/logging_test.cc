// Text and JSON lines, levels, and escaping that keeps every JSON line parseable.

#include "common/base/logging.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace ferry {
namespace {

using ::testing::HasSubstr;
using ::testing::MatchesRegex;
using ::testing::Not;

class LoggingTest : public ::testing::Test {
 protected:
  void TearDown() override {
    SetLogFormat(LogFormat::kText);
    SetLogComponent("");
    SetMinLogLevel(LogLevel::kInfo);
  }
};

TEST_F(LoggingTest, TextLineAsBefore) {
  ::testing::internal::CaptureStderr();
  FERRY_LOG_FIELDS(Warning, LogJob("job-1")) << "planning failed";
  const std::string out = ::testing::internal::GetCapturedStderr();
  EXPECT_THAT(out, MatchesRegex("W [0-9T:.-]+Z logging_test.cc:[0-9]+\\] planning failed\n"));
}

TEST_F(LoggingTest, JsonLineHasTimeLevelComponentFieldsAndMessage) {
  SetLogFormat(LogFormat::kJson);
  SetLogComponent("agent");
  ::testing::internal::CaptureStderr();
  FERRY_LOG_FIELDS(Info, LogLease("job-1", "job-1-3-2")) << "lease \"x\"\n done";
  FERRY_LOG(Error) << "no fields";
  const std::string out = ::testing::internal::GetCapturedStderr();
  EXPECT_THAT(out, MatchesRegex("\\{\"time\":\"[0-9T:.-]+Z\",\"level\":\"info\","
                                "\"component\":\"agent\",\"job\":\"job-1\","
                                "\"lease\":\"job-1-3-2\",\"source\":\"logging_test.cc:[0-9]+\","
                                "\"message\":\"lease \\\\\"x\\\\\"\\\\n done\"\\}\n"
                                "\\{\"time\":\"[0-9T:.-]+Z\",\"level\":\"error\","
                                "\"component\":\"agent\",\"source\":\"logging_test.cc:[0-9]+\","
                                "\"message\":\"no fields\"\\}\n"));
}

TEST_F(LoggingTest, LevelsDropLinesBelowTheMinimum) {
  SetMinLogLevel(LogLevel::kWarning);
  ::testing::internal::CaptureStderr();
  FERRY_LOG(Info) << "dropped";
  FERRY_LOG(Warning) << "kept";
  const std::string out = ::testing::internal::GetCapturedStderr();
  EXPECT_THAT(out, Not(HasSubstr("dropped")));
  EXPECT_THAT(out, HasSubstr("kept"));
}

TEST(LoggingParseTest, LevelsAndFormats) {
  EXPECT_EQ(*ParseLogLevel("debug"), LogLevel::kDebug);
  EXPECT_EQ(*ParseLogLevel("WARNING"), LogLevel::kWarning);
  EXPECT_EQ(*ParseLogLevel("error"), LogLevel::kError);
  EXPECT_FALSE(ParseLogLevel("verbose").ok());
  EXPECT_EQ(*ParseLogFormat("json"), LogFormat::kJson);
  EXPECT_EQ(*ParseLogFormat("text"), LogFormat::kText);
  EXPECT_FALSE(ParseLogFormat("xml").ok());
}

TEST(JsonEscapeTest, ControlCharactersAndInvalidUtf8) {
  using internal::JsonEscape;
  EXPECT_EQ(JsonEscape("a\"b\\c\td\x01"), "a\\\"b\\\\c\\td\\u0001");
  EXPECT_EQ(JsonEscape("caf\xc3\xa9"), "caf\xc3\xa9");      // Valid UTF-8 kept.
  EXPECT_EQ(JsonEscape("\xff\xc3"), "\\u00ff\\u00c3");      // Invalid and truncated.
  EXPECT_EQ(JsonEscape("\xe2\x82\xac!"), "\xe2\x82\xac!");  // Three bytes.
  EXPECT_EQ(JsonEscape("\xc0\xaf"), "\\u00c0\\u00af");      // Overlong.
}

}  // namespace
}  // namespace ferry
