#include "cli/progress.h"

#include <string>

#include "gtest/gtest.h"

namespace ferry::cli {
namespace {

TEST(ProgressLineTest, CountsPercentRatesShardsAndEta) {
  ProgressSnapshot s;
  s.counters.set_scanned(500);
  s.counters.set_copied(400);
  s.counters.set_skipped(50);
  s.estimated_keys = 1000;
  s.counters.set_bytes(4'000'000);
  s.shards_total = 8;
  s.shards_done = 3;
  s.elapsed = absl::Seconds(2);
  // 450 of 1000 keys dealt with; 250 scanned/s leaves 500 keys for 2 s.
  EXPECT_EQ(ProgressLine(s),
            "copied 400/1,000 keys (45%), 250 keys/s, 2.0 MB/s, shards 3/8, ETA 2s");
}

TEST(ProgressLineTest, BigCountsGetSeparatorsAndFailuresAreShown) {
  ProgressSnapshot s;
  s.counters.set_scanned(1'500'000);
  s.counters.set_copied(1'234'567);
  s.counters.set_failed(3);
  s.estimated_keys = 2'000'000;
  s.elapsed = absl::Seconds(1);
  EXPECT_EQ(ProgressLine(s),
            "copied 1,234,567/2,000,000 keys (62%), 1.50M keys/s, 0.0 MB/s, 3 failed, ETA 0s");
}

TEST(ProgressLineTest, NoEstimateMeansNoPercentNorEta) {
  ProgressSnapshot s;
  s.counters.set_scanned(10);
  s.counters.set_copied(10);
  // No time elapsed yet: rates are taken over 1 ms rather than divided by zero.
  EXPECT_EQ(ProgressLine(s), "copied 10/0 keys, 10.0k keys/s, 0.0 MB/s");
}

TEST(ProgressLineTest, TheControllersRatesAndEtaWinOverAverages) {
  ProgressSnapshot s;
  s.counters.set_scanned(500);
  s.counters.set_copied(500);
  s.estimated_keys = 1000;
  s.elapsed = absl::Seconds(2);
  s.keys_per_second = 100;
  s.bytes_per_second = 3e6;
  s.eta_seconds = 7;
  EXPECT_EQ(ProgressLine(s), "copied 500/1,000 keys (50%), 100 keys/s, 3.0 MB/s, ETA 7s");
  s.eta_seconds.reset();  // The controller knows none: no guess.
  EXPECT_EQ(ProgressLine(s), "copied 500/1,000 keys (50%), 100 keys/s, 3.0 MB/s");
}

TEST(ProgressLineTest, PercentStopsAtOneHundredWhenTheEstimateWasLow) {
  ProgressSnapshot s;
  s.counters.set_scanned(150);
  s.counters.set_copied(150);
  s.estimated_keys = 100;
  s.elapsed = absl::Seconds(1);
  EXPECT_EQ(ProgressLine(s), "copied 150/100 keys (100%), 150 keys/s, 0.0 MB/s");
}

JobReport SampleReport() {
  JobReport r;
  r.state = "done-with-errors";
  r.totals.counters.set_scanned(1000);
  r.totals.counters.set_copied(995);
  r.totals.counters.set_skipped(2);
  r.totals.counters.set_vanished(1);
  r.totals.counters.set_failed(2);
  r.totals.counters.set_bytes(5'000'000);
  r.totals.elapsed = absl::Seconds(2);
  r.failed_keys = {{"k\n1", "OOM"}};
  r.warnings = {"target not empty"};
  return r;
}

TEST(FormatReportTest, TextListsTotalsFailedKeysAndWarnings) {
  EXPECT_EQ(FormatReport(SampleReport(), /*json=*/false),
            "done-with-errors in 2.0s: 995 keys copied, 2 skipped, 1 vanished, 0 expired, 2 "
            "failed; 5.0 MB, 500 keys/s\n"
            "  failed: \"k\\n1\": OOM\n"
            "  ... and 1 more\n"
            "warning: target not empty\n");
}

TEST(FormatReportTest, TextOfADryRunAndOfAnError) {
  JobReport r;
  r.state = "dry-run";
  r.dry_run = true;
  r.totals.counters.set_scanned(1000);
  r.totals.elapsed = absl::Seconds(1);
  r.status = absl::UnavailableError("source gone");
  EXPECT_EQ(FormatReport(r, /*json=*/false),
            "dry run (nothing written): dry-run in 1.0s: 0 keys copied (1,000 would be), 0 "
            "skipped, 0 vanished, 0 expired, 0 failed; 0.0 MB, 1.0k keys/s\n"
            "error: source gone\n");
}

TEST(FormatReportTest, JsonHasEveryFieldAndEscapesKeys) {
  EXPECT_EQ(FormatReport(SampleReport(), /*json=*/true),
            "{\"kind\":\"copy\",\"state\":\"done-with-errors\",\"dry_run\":false,\"scanned\":1000,"
            "\"copied\":995,\"skipped\":2,\"vanished\":1,\"expired\":0,\"failed\":2,"
            "\"bytes\":5000000,\"verified\":0,\"missing\":0,\"extra\":0,\"type_differs\":0,"
            "\"value_differs\":0,\"ttl_differs\":0,"
            "\"estimated_keys\":0,\"shards_total\":0,\"shards_done\":0,\"seconds\":2.000,"
            "\"keys_per_second\":500,\"error\":null,\"warnings\":[\"target not empty\"],"
            "\"per_db\":[],\"failed_keys\":[{\"key\":\"k\\n1\",\"reason\":\"OOM\"}]}\n");
  JobReport failed;
  failed.state = "failed";
  failed.status = absl::PermissionDeniedError("NOPERM \"RESTORE\"");
  EXPECT_NE(FormatReport(failed, /*json=*/true).find(",\"error\":\"NOPERM \\\"RESTORE\\\"\","),
            std::string::npos);
}

TEST(FormatReportTest, AVerificationSaysWhatDiffersPerKindAndDatabase) {
  JobReport r;
  r.state = "different";
  r.totals.verify = true;
  r.totals.elapsed = absl::Seconds(1);
  ferry::v1::Counters& c = r.totals.counters;
  c.set_scanned(2000);
  c.set_verified(997);
  c.set_missing(2);
  c.set_ttl_differs(1);
  ferry::v1::Counters db0, db3;
  db0.set_verified(500);
  db0.set_missing(2);
  db3.set_verified(497);
  db3.set_ttl_differs(1);
  r.per_db = {{0, db0}, {3, db3}};
  r.failed_keys = {{"a", "missing on the target"}, {"b", "missing on the target"}};
  EXPECT_EQ(FormatReport(r, /*json=*/false),
            "verify: different in 1.0s: 2,000 keys checked (source and target), 997 source keys "
            "equal on the target, 3 differences (2 missing, 1 TTL), 0 gone or expired during "
            "the check, 0 could not be compared; 2.0k keys/s\n"
            "  db 0: 500 equal, 2 differences (2 missing)\n"
            "  db 3: 497 equal, 1 differences (1 TTL)\n"
            "  \"a\": missing on the target\n"
            "  \"b\": missing on the target\n"
            "  ... and 1 more (ferry status JOB --differences lists them all)\n");
  const std::string json = FormatReport(r, /*json=*/true);
  EXPECT_NE(json.find("{\"kind\":\"verify\",\"state\":\"different\""), std::string::npos);
  EXPECT_NE(json.find("\"per_db\":[{\"db\":0,\"scanned\":0"), std::string::npos);
  EXPECT_NE(json.find("\"missing\":2"), std::string::npos);
}

TEST(ProgressLineTest, AVerificationCountsKeysCheckedAndDifferences) {
  ProgressSnapshot s;
  s.verify = true;
  s.counters.set_scanned(500);
  s.counters.set_extra(3);
  s.estimated_keys = 1000;
  s.elapsed = absl::Seconds(1);
  EXPECT_EQ(ProgressLine(s), "checked 500/1,000 keys (50%), 500 keys/s, 3 differences, ETA 1s");
}

TEST(JsonStringTest, EscapesQuotesBackslashesControlAndNonAsciiBytes) {
  EXPECT_EQ(JsonString("plain"), "\"plain\"");
  EXPECT_EQ(JsonString(std::string("a\"b\\c\n\x01\xff", 8)), "\"a\\\"b\\\\c\\n\\u0001\\u00ff\"");
}

TEST(ParseProgressModeTest, KnowsItsModesAndRefusesOthers) {
  ProgressMode mode = ProgressMode::kNone;
  ASSERT_TRUE(ParseProgressMode("bar", &mode).ok());
  EXPECT_EQ(mode, ProgressMode::kBar);
  ASSERT_TRUE(ParseProgressMode("log", &mode).ok());
  EXPECT_EQ(mode, ProgressMode::kLog);
  ASSERT_TRUE(ParseProgressMode("none", &mode).ok());
  EXPECT_EQ(mode, ProgressMode::kNone);
  ASSERT_TRUE(ParseProgressMode("auto", &mode).ok());
  EXPECT_NE(mode, ProgressMode::kNone);
  const absl::Status bad = ParseProgressMode("fancy", &mode);
  EXPECT_EQ(bad.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(bad.message(), "--progress must be auto, bar, log or none, not \"fancy\"");
}

}  // namespace
}  // namespace ferry::cli
