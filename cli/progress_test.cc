#include "cli/progress.h"

#include <string>

#include "cli/cutover.h"
#include "cli/live.h"
#include "gmock/gmock.h"
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
            "\"value_differs\":0,\"ttl_differs\":0,\"resent\":0,"
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

namespace pb = ::ferry::v1;

pb::NodeLive Node(const std::string& node, int db, const std::string& state, bool in_sync) {
  pb::NodeLive n;
  n.set_node(node);
  n.set_db(db);
  n.set_state(state);
  n.set_in_sync(in_sync);
  return n;
}

// Two nodes in sync, following 2,100 events/s.
pb::LiveProgress InSync() {
  pb::LiveProgress l;
  l.set_in_sync(true);
  l.set_lag_ms(35);
  l.set_events_per_second(2100);
  l.set_dirty_keys(12);
  l.set_dirty_bytes(1200);
  l.set_gaps(1);
  l.set_rescans(1);
  l.set_applied(10234);
  l.set_deleted(12);
  *l.add_nodes() = Node("10.0.0.5:6379", 0, "in sync", true);
  pb::NodeLive* second = l.add_nodes();
  *second = Node("10.0.0.6:6379", 3, "in sync", true);
  second->set_rescans(1);
  second->mutable_status()->set_oldest_dirty_ms(35);
  second->mutable_status()->set_events_per_second(2100);
  second->mutable_status()->set_dirty_keys(12);
  second->mutable_status()->set_dirty_bytes(1200);
  second->mutable_status()->set_gaps(1);
  second->mutable_status()->set_last_gap("the subscription was dropped");
  return l;
}

TEST(LiveLineTest, InSyncOnlyWhenTheJobSaysSo) {
  pb::LiveProgress l = InSync();
  EXPECT_EQ(LiveLine(pb::JOB_STATE_LIVE, l),
            "live: lag 35 ms, 2.1k events/s, 12 dirty keys (1.2 kB), 1 gap, 1 rescan, in sync");
  l.set_in_sync(false);  // Every node says in sync, the job does not: no claim.
  EXPECT_EQ(LiveLine(pb::JOB_STATE_LIVE, l),
            "live: lag 35 ms, 2.1k events/s, 12 dirty keys (1.2 kB), 1 gap, 1 rescan; not in "
            "sync");
}

TEST(LiveLineTest, NamesTheNodesNotInSyncAndWhyTheyRescan) {
  pb::LiveProgress l;
  l.set_lag_ms(1250);
  l.set_gaps(2);
  l.set_rescans(2);
  pb::NodeLive* rescanning = l.add_nodes();
  *rescanning = Node("a:1", 0, "rescanning", false);
  rescanning->mutable_status()->set_last_gap("FLUSHDB on the source");
  *l.add_nodes() = Node("b:2", 0, "in sync", true);
  *l.add_nodes() = Node("c:3", 0, "subscribing", false);
  *l.add_nodes() = Node("d:4", 1, "rescanning", false);
  *l.add_nodes() = Node("e:5", 0, "snapshot", false);
  *l.add_nodes() = Node("f:6", 0, "snapshot", false);
  EXPECT_EQ(LiveLine(pb::JOB_STATE_LIVE, l),
            "live: lag 1.2 s, 0 events/s, 0 dirty keys, 2 gaps, 2 rescans; not in sync: "
            "rescanning a:1 db 0 (FLUSHDB on the source), c:3 db 0 subscribing, rescanning d:4 "
            "db 1 and 2 more");
}

TEST(LiveLineTest, ACutoverDrainsThenIsReady) {
  pb::LiveProgress l = InSync();
  EXPECT_EQ(LiveLine(pb::JOB_STATE_CUTOVER, l),
            "cutover: waiting for the markers, 12 dirty keys to drain, lag 35 ms, 2.1k events/s");
  l.set_dirty_keys(0);
  l.set_events_per_second(0);
  EXPECT_EQ(LiveLine(pb::JOB_STATE_CUTOVER, l),
            "cutover: waiting for the markers, lag 35 ms, 0 events/s");
  EXPECT_EQ(LiveLine(pb::JOB_STATE_CUTOVER_READY, l),
            "cutover ready: converged, 0 dirty keys, 1 gap, 1 rescan");
}

TEST(ProgressLineTest, ALiveJobShowsTheBarUntilItsSnapshotIsDone) {
  ProgressSnapshot s;
  s.counters.set_scanned(10);
  s.counters.set_copied(10);
  s.live = InSync();
  s.state = pb::JOB_STATE_RUNNING;
  EXPECT_FALSE(ShowsLiveLine(s));
  EXPECT_EQ(ProgressLine(s), "copied 10/0 keys, 10.0k keys/s, 0.0 MB/s");
  for (pb::JobState state :
       {pb::JOB_STATE_LIVE, pb::JOB_STATE_CUTOVER, pb::JOB_STATE_CUTOVER_READY}) {
    s.state = state;
    EXPECT_TRUE(ShowsLiveLine(s));
    EXPECT_EQ(ProgressLine(s), LiveLine(state, *s.live));
  }
  s.live.reset();  // Not a live job.
  EXPECT_FALSE(ShowsLiveLine(s));
}

TEST(LiveSectionTest, StatusShowsTheLineTheFiguresAndOneRowPerNode) {
  pb::LiveProgress l = InSync();
  l.set_cutover_error("writes went on after the marker (3 events)");
  EXPECT_EQ(LiveSection(pb::JOB_STATE_LIVE, l),
            "  live: lag 35 ms, 2.1k events/s, 12 dirty keys (1.2 kB), 1 gap, 1 rescan, in sync\n"
            "  while following: 10,234 keys written and 12 deleted on the target; 1 gap, 1 "
            "rescan\n"
            "  last cutover did not converge: writes went on after the marker (3 events)\n"
            "    NODE           DB  STATE                  LAG      EVENTS/S  DIRTY      GAPS  "
            "RESCANS LAST GAP\n"
            "    10.0.0.5:6379  0   in sync                0 ms     0         0          0     0"
            "       -\n"
            "    10.0.0.6:6379  3   in sync                35 ms    2.1k      12         1     1"
            "       the subscription was dropped\n");
}

TEST(LiveJsonTest, EveryFieldAndEachNode) {
  pb::LiveProgress l = InSync();
  l.set_verify_job_id("v1");
  l.mutable_nodes()->DeleteSubrange(0, 1);
  EXPECT_EQ(LiveJson(l),
            "{\"in_sync\":true,\"lag_ms\":35,\"events_per_second\":2100.0,\"dirty_keys\":12,"
            "\"dirty_bytes\":1200,\"gaps\":1,\"rescans\":1,\"applied\":10234,\"deleted\":12,"
            "\"cutover_error\":null,\"verify_job_id\":\"v1\",\"nodes\":[{\"node\":"
            "\"10.0.0.6:6379\",\"db\":3,\"state\":\"in sync\",\"in_sync\":true,\"lag_ms\":35,"
            "\"events_per_second\":2100.0,\"dirty_keys\":12,\"dirty_bytes\":1200,\"gaps\":1,"
            "\"rescans\":1,\"last_gap\":\"the subscription was dropped\"}]}");
}

TEST(FormatReportTest, ALiveJobsReportEndsWithWhatTheFollowingDid) {
  JobReport r;
  r.state = "cutover-ready";
  r.totals.counters.set_scanned(1000);
  r.totals.counters.set_copied(1000);
  r.totals.elapsed = absl::Seconds(600);
  r.totals.state = pb::JOB_STATE_CUTOVER_READY;
  pb::LiveProgress l = InSync();
  l.set_verify_job_id("v1");
  r.totals.live = l;
  // No keys/s: the time includes the following.
  EXPECT_EQ(FormatReport(r, /*json=*/false),
            "cutover-ready in 600.0s: 1,000 keys copied, 0 skipped, 0 vanished, 0 expired, 0 "
            "failed; 0.0 MB\n"
            "  while following: 10,234 keys written and 12 deleted on the target; 1 gap, 1 "
            "rescan\n"
            "  verification: job v1 (ferry watch v1)\n");
  const std::string json = FormatReport(r, /*json=*/true);
  EXPECT_NE(json.find(",\"warnings\":[],\"live\":{\"in_sync\":true,"), std::string::npos) << json;
  r.totals.live.reset();
  EXPECT_EQ(FormatReport(r, /*json=*/true).find("\"live\""), std::string::npos);
}

CutoverOutcome Outcome(pb::JobState state) {
  CutoverOutcome o;
  o.job_id = "j1";
  o.job.set_id("j1");
  o.job.set_state(state);
  *o.job.mutable_live() = InSync();
  o.elapsed = absl::Milliseconds(3200);
  return o;
}

TEST(FormatCutoverTest, ConvergedWithItsFiguresAndTheVerificationInJson) {
  CutoverOutcome o = Outcome(pb::JOB_STATE_CUTOVER_READY);
  EXPECT_EQ(FormatCutover(o, /*json=*/false),
            "cutover ready in 3.2s: job j1 converged, every write made before the cutover is on "
            "the target\n"
            "  while following: 10,234 keys written and 12 deleted on the target; 1 gap, 1 "
            "rescan\n");
  o.verify_report = "{\"kind\":\"verify\",\"state\":\"equal\"}\n";
  const std::string json = FormatCutover(o, /*json=*/true);
  EXPECT_THAT(json, ::testing::StartsWith("{\"kind\":\"cutover\",\"job_id\":\"j1\",\"state\":"
                                          "\"cutover-ready\",\"converged\":true,\"seconds\":"
                                          "3.200,\"error\":null,\"live\":{"));
  EXPECT_THAT(json,
              ::testing::EndsWith(",\"verify\":{\"kind\":\"verify\",\"state\":\"equal\"}}\n"));
}

TEST(FormatCutoverTest, NotConvergedSaysWhyAndWhatToDo) {
  CutoverOutcome o = Outcome(pb::JOB_STATE_LIVE);
  o.job.mutable_live()->set_cutover_error("the dirty keys kept growing: are the writers stopped?");
  EXPECT_EQ(FormatCutover(o, /*json=*/false),
            "cutover did not converge in 3.2s: the dirty keys kept growing: are the writers "
            "stopped?\njob j1 is live again and follows the source: stop the writers, then run "
            "ferry cutover j1 again\n");
  const std::string json = FormatCutover(o, /*json=*/true);
  EXPECT_THAT(json, ::testing::HasSubstr(",\"converged\":false,"));
  EXPECT_THAT(json, ::testing::HasSubstr(
                        ",\"error\":\"the dirty keys kept growing: are the writers stopped?\","));
  EXPECT_THAT(json, ::testing::EndsWith(",\"verify\":null}\n"));
}

TEST(CutoverRequestTest, NoneAsksForNoVerificationAndQuickIsSaid) {
  CutoverOptions options;
  options.timeout_seconds = 90;
  pb::CutoverJobRequest quick = CutoverRequest("j1", options);
  EXPECT_EQ(quick.job_id(), "j1");
  EXPECT_EQ(quick.timeout_seconds(), 90u);
  EXPECT_EQ(quick.verify_mode(), pb::VERIFY_MODE_QUICK);  // FULL is the proto's zero value.
  EXPECT_FALSE(quick.no_verify());
  options.verify = CutoverVerify::kFull;
  EXPECT_EQ(CutoverRequest("j1", options).verify_mode(), pb::VERIFY_MODE_FULL);
  options.verify = CutoverVerify::kNone;
  EXPECT_TRUE(CutoverRequest("j1", options).no_verify());
}

TEST(CutoverHintTest, NamesTheServedAddressAndTheFlagsItNeeds) {
  EXPECT_EQ(ServedAddress("127.0.0.1:0", 40123), "127.0.0.1:40123");
  EXPECT_EQ(ServedAddress("[::1]:7700", 7700), "[::1]:7700");
  EXPECT_EQ(ServedAddress("unix:/run/ferry.sock", 0), "unix:/run/ferry.sock");
  ServeRequest serve;
  EXPECT_EQ(ClientFlagsFor("127.0.0.1:7700", serve), "--controller 127.0.0.1:7700");
  serve.tls_cert = "c.pem";
  serve.token = "secret-token";
  const std::string flags = ClientFlagsFor("10.0.0.1:7700", serve);
  EXPECT_EQ(flags, "--controller 10.0.0.1:7700 --tls-ca FILE --token-file FILE");
  EXPECT_EQ(CutoverHint("j1", flags, "/tmp/s.db"),
            "to cut over, stop the writers, then from another shell: ferry cutover --controller "
            "10.0.0.1:7700 --tls-ca FILE --token-file FILE j1");
  const std::string without = CutoverHint("j1", "", "/tmp/s.db");
  EXPECT_THAT(without, ::testing::HasSubstr("--listen"));
  EXPECT_THAT(without, ::testing::HasSubstr("--state /tmp/s.db"));
}

TEST(LiveNoticesTest, TellsTheSnapshotDoneOnceAndEachCutoverThatDidNotConverge) {
  LiveNotices notices("HINT", /*bar=*/false);
  pb::Job job;
  const auto notice = [&](pb::JobState state, const std::string& error) {
    job.set_state(state);
    job.mutable_live()->set_cutover_error(error);
    ::testing::internal::CaptureStderr();
    notices(job);
    return ::testing::internal::GetCapturedStderr();
  };
  EXPECT_EQ(notice(pb::JOB_STATE_RUNNING, ""), "");
  EXPECT_EQ(notice(pb::JOB_STATE_LIVE, ""),
            "live: the snapshot is done and the target follows the source; HINT\n");
  EXPECT_EQ(notice(pb::JOB_STATE_LIVE, ""), "");
  EXPECT_EQ(notice(pb::JOB_STATE_CUTOVER, ""),
            "cutover: waiting for the markers, then draining the dirty keys\n");
  EXPECT_EQ(notice(pb::JOB_STATE_LIVE, "writers still running"),
            "cutover did not converge (the job is still live): writers still running\n");
  EXPECT_EQ(notice(pb::JOB_STATE_LIVE, "writers still running"), "");
}

}  // namespace
}  // namespace ferry::cli
