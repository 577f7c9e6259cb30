#include "cli/args.h"

#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace ferry::cli {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

const std::vector<FlagSpec> kSpecs = {
    {"from", "URI", "source"},        {"batch", "N", "keys per round trip"},
    {"rate", "N", "keys per second"}, {"db", "LIST", "databases"},
    {"dry-run", "", "write nothing"},
};

absl::StatusOr<Args> Parse(const std::vector<std::string>& argv) {
  return Args::Parse(argv, kSpecs);
}

TEST(ArgsTest, TakesSeparateAndInlineValuesSwitchesAndPositionals) {
  absl::StatusOr<Args> args =
      Parse({"job-1", "--from", "redis://a", "--batch=50", "--dry-run", "job-2"});
  ASSERT_TRUE(args.ok()) << args.status();
  EXPECT_EQ(args->Get("from"), "redis://a");
  EXPECT_EQ(args->Get("batch"), "50");
  EXPECT_TRUE(args->Has("dry-run"));
  EXPECT_EQ(args->Get("dry-run"), "true");
  EXPECT_FALSE(args->Has("db"));
  EXPECT_EQ(args->Get("db", "fallback"), "fallback");
  EXPECT_THAT(args->positional(), ElementsAre("job-1", "job-2"));
}

TEST(ArgsTest, InlineValueMayHoldAnEqualsSignAndTheLastValueWins) {
  absl::StatusOr<Args> args = Parse({"--from=redis://u:p=q@h", "--batch", "1", "--batch", "2"});
  ASSERT_TRUE(args.ok()) << args.status();
  EXPECT_EQ(args->Get("from"), "redis://u:p=q@h");
  EXPECT_EQ(args->Get("batch"), "2");
}

TEST(ArgsTest, DoubleDashEndsTheOptions) {
  absl::StatusOr<Args> args = Parse({"--dry-run", "--", "--from", "x"});
  ASSERT_TRUE(args.ok()) << args.status();
  EXPECT_FALSE(args->Has("from"));
  EXPECT_THAT(args->positional(), ElementsAre("--from", "x"));
}

TEST(ArgsTest, RefusesUnknownFlagsMissingValuesAndValuedSwitches) {
  absl::StatusOr<Args> unknown = Parse({"--form", "x"});
  EXPECT_EQ(unknown.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(unknown.status().message(), "unknown option --form");

  absl::StatusOr<Args> missing = Parse({"--from"});
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(missing.status().message(), "--from needs a value (URI)");

  absl::StatusOr<Args> valued = Parse({"--dry-run=yes"});
  EXPECT_EQ(valued.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(valued.status().message(), "--dry-run takes no value");
}

TEST(ArgsTest, GetIntChecksTheRange) {
  absl::StatusOr<Args> args = Parse({"--batch", "0"});
  ASSERT_TRUE(args.ok());
  EXPECT_EQ(args->GetInt("rate", 7, 0, 10).value(), 7);  // Absent: the fallback.
  absl::StatusOr<int64_t> low = args->GetInt("batch", 1000, 1, 100000);
  EXPECT_EQ(low.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(low.status().message(), "--batch must be an integer from 1 to 100000, not \"0\"");
  EXPECT_EQ(args->GetInt("batch", 1000, 0, 100000).value(), 0);
  ASSERT_TRUE((args = Parse({"--batch", "12x"})).ok());
  EXPECT_FALSE(args->GetInt("batch", 1000, 1, 100000).ok());
}

TEST(ArgsTest, GetDoubleRefusesNegativesAndNaN) {
  absl::StatusOr<Args> args = Parse({"--rate", "2.5"});
  ASSERT_TRUE(args.ok());
  EXPECT_DOUBLE_EQ(args->GetDouble("rate", 0, 0).value(), 2.5);
  ASSERT_TRUE((args = Parse({"--rate", "-1"})).ok());
  EXPECT_THAT(args->GetDouble("rate", 0, 0).status().message(),
              HasSubstr("--rate must be a number >= 0"));
  ASSERT_TRUE((args = Parse({"--rate", "nan"})).ok());
  EXPECT_FALSE(args->GetDouble("rate", 0, 0).ok());
}

TEST(ArgsTest, GetIntListSplitsOnCommasAndRefusesNegatives) {
  absl::StatusOr<Args> args = Parse({"--db", "0,3,,15"});
  ASSERT_TRUE(args.ok());
  EXPECT_THAT(args->GetIntList("db").value(), ElementsAre(0, 3, 15));
  EXPECT_TRUE(args->GetIntList("from").value().empty());
  ASSERT_TRUE((args = Parse({"--db", "0,-1"})).ok());
  EXPECT_EQ(args->GetIntList("db").status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(HelpTextTest, AlignsTheHelpColumn) {
  const std::string help = HelpText("ferry x [options]", "Does x.",
                                    {{"from", "URI", "source"}, {"dry-run", "", "write nothing"}});
  EXPECT_EQ(help,
            "Usage: ferry x [options]\n\nDoes x.\n\nOptions:\n"
            "  --from URI source\n"
            "  --dry-run  write nothing\n");
}

}  // namespace
}  // namespace ferry::cli
