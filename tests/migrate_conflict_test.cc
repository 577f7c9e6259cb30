// --on-conflict skip|fail against keys written twice (issue 7, case 6): a rehash repeats keys and
// a resumed batch is written again, so the second write of a key meets the first (shard ends no
// longer overlap: agent/shard_walk.h, exact ends).
// Only a key whose target value differs from the source's is a conflict, and a conflicting key
// is reported once however often SCAN returned it.

#include <memory>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "common/testing/compare.h"
#include "common/testing/redis_helpers.h"
#include "common/testing/redis_server.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/ferry_cli.h"
#include "tests/fleet.h"

namespace ferry::testing {
namespace {

constexpr int kKeys = 60000;
constexpr uint64_t kSeed = 61;
constexpr int kPlanted = 501;
// Keys that already hold exactly the source's value on the target: not conflicts.
constexpr int kIdentical = 300;

// LoadMixedData's name of key `i`; its kind is i % 13, so a stride of 119 (2 mod 13) visits
// every kind (strings, hashes, sets, streams...).
std::string KeyName(int i) {
  static constexpr const char* kKinds[] = {"ascii", "binary", "utf8",  "empty", "int",
                                           "hash",  "list",   "set",   "zset",  "stream",
                                           "hll",   "geo",    "bitmap"};
  return absl::StrCat("mixed:", kSeed, ":", i, ":", kKinds[i % 13]);
}
std::string PlantedKey(int k) { return KeyName(k * 119); }
std::string IdenticalKey(int k) { return KeyName(k * 119 + 57); }

class MigrateConflictTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(RequireRedisServerBinary().ok());
    source_ = StartServer();
    target_ = StartServer();
    ASSERT_TRUE(source_ && target_);
    src_ = std::make_unique<redis::Connection>(Connect(*source_));
    dst_ = std::make_unique<redis::Connection>(Connect(*target_));
    ASSERT_TRUE(LoadMixedData(*src_, 0, kKeys, kSeed, 0.2).ok());
  }

  // On the target: kPlanted keys of the source's names with other values (strings over
  // strings, strings over hashes, hashes over strings...), and kIdentical keys copied exactly
  // (DUMP/RESTORE with their TTLs). Returns the planted names.
  std::set<std::string> PlantConflicts() {
    std::set<std::string> planted;
    for (int k = 0; k < kPlanted; ++k) {
      const std::string key = PlantedKey(k);
      planted.insert(key);
      auto reply = k % 2 == 0 ? dst_->Command({"SET", key, absl::StrCat("planted-", k)})
                              : dst_->Command({"HSET", key, "planted", absl::StrCat(k)});
      EXPECT_TRUE(reply.ok()) << reply.status();
    }
    for (int k = 0; k < kIdentical; ++k) {
      const std::string key = IdenticalKey(k);
      auto pttl = src_->Command({"PTTL", key});
      auto dump = src_->Command({"DUMP", key});
      EXPECT_TRUE(pttl.ok() && dump.ok() && !dump->is_nil()) << key;
      if (!pttl.ok() || !dump.ok() || dump->is_nil()) continue;
      const std::string ttl = absl::StrCat(std::max<int64_t>(pttl->integer(), 0));
      auto restored = dst_->Command({"RESTORE", key, ttl, dump->str()});
      EXPECT_TRUE(restored.ok()) << restored.status();
    }
    return planted;
  }

  // The planted keys still hold the target's values.
  void ExpectPlantedKept() {
    for (int k = 0; k < kPlanted; ++k) {
      const std::string key = PlantedKey(k);
      auto value =
          k % 2 == 0 ? dst_->Command({"GET", key}) : dst_->Command({"HGET", key, "planted"});
      ASSERT_TRUE(value.ok()) << key << ": " << value.status();
      EXPECT_EQ(value->str(), k % 2 == 0 ? absl::StrCat("planted-", k) : absl::StrCat(k)) << key;
    }
  }

  // Every key equals the source's but the planted ones, which all differ.
  void ExpectOnlyPlantedDiffer(const std::set<std::string>& planted) {
    auto diffs = CompareDatabases(*src_, 0, *dst_, 0);
    ASSERT_TRUE(diffs.ok()) << diffs.status();
    std::set<std::string> differing;
    for (const KeyDiff& diff : *diffs) {
      EXPECT_EQ(planted.count(diff.key), 1u) << DescribeDiff(diff);
      differing.insert(diff.key);
    }
    EXPECT_EQ(differing, planted);
  }

  std::unique_ptr<RedisServer> source_;
  std::unique_ptr<RedisServer> target_;
  std::unique_ptr<redis::Connection> src_;
  std::unique_ptr<redis::Connection> dst_;
};

TEST_F(MigrateConflictTest, FailIntoAnEmptyTargetFailsNothing) {
  CliResult r = RunFerry({"migrate", "--from", source_->uri(), "--to", target_->uri(), "--shards",
                          "16", "--on-conflict", "fail", "--progress", "none", "--output", "json"});
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_EQ(r.json_int("failed"), 0) << r.json_line();
  // Each key counted once as copied; a key SCAN returned again is a re-sent write.
  EXPECT_GE(r.json_int("scanned"), kKeys) << r.json_line();
  EXPECT_EQ(r.json_int("copied") + r.json_int("expired") + r.json_int("vanished"), kKeys)
      << r.json_line();
  EXPECT_EQ(
      r.json_int("copied") + r.json_int("resent") + r.json_int("expired") + r.json_int("vanished"),
      r.json_int("scanned"))
      << r.json_line();
  EXPECT_EQ(r.json_int("skipped"), 0) << r.json_line();
  EXPECT_TRUE(SameData(*src_, *dst_));
}

TEST_F(MigrateConflictTest, FailReportsEachRealConflictOnce) {
  const std::set<std::string> planted = PlantConflicts();
  Fleet fleet;
  ASSERT_TRUE(fleet.StartController().ok());
  ASSERT_TRUE(fleet.StartAgents(2, 4).ok()) << fleet.AllLogs();
  SubmitResult submit = fleet.Submit({"--from", source_->uri(), "--to", target_->uri(), "--shards",
                                      "16", "--on-conflict", "fail"});
  ASSERT_EQ(submit.exit_code, 0) << submit.out << submit.err;
  CliResult watch = fleet.Watch(submit.job_id);
  EXPECT_EQ(watch.exit_code, 1) << watch.output << "\n" << fleet.AllLogs();
  EXPECT_EQ(watch.json_int("failed"), kPlanted) << watch.json_line();
  EXPECT_GE(watch.json_int("scanned"), kKeys) << watch.json_line();

  // `ferry status --failed` lists every failed key once, with the total.
  CliResult status = fleet.Ferry("status", {submit.job_id, "--failed"});
  ASSERT_EQ(status.exit_code, 0) << status.output;
  EXPECT_THAT(status.output, ::testing::HasSubstr(absl::StrCat("failed keys: ", kPlanted)));
  std::multiset<std::string> listed;
  for (absl::string_view line : absl::StrSplit(status.output, '\n')) {
    // `    "KEY": REASON` (the planted names are plain ASCII).
    if (!absl::ConsumePrefix(&line, "    \"")) continue;
    const size_t end = line.find("\": ");
    ASSERT_NE(end, absl::string_view::npos) << line;
    EXPECT_THAT(std::string(line.substr(end)), ::testing::HasSubstr("exists on the target"));
    listed.insert(std::string(line.substr(0, end)));
  }
  EXPECT_EQ(listed.size(), planted.size());
  EXPECT_EQ(std::set<std::string>(listed.begin(), listed.end()), planted);

  ExpectPlantedKept();
  ExpectOnlyPlantedDiffer(planted);
}

TEST_F(MigrateConflictTest, SkipLeavesRealConflictsAndCopiesTheRest) {
  const std::set<std::string> planted = PlantConflicts();
  CliResult r = RunFerry({"migrate", "--from", source_->uri(), "--to", target_->uri(), "--shards",
                          "16", "--on-conflict", "skip", "--progress", "none", "--output", "json"});
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_EQ(r.json_int("failed"), 0) << r.json_line();
  const int64_t scanned = r.json_int("scanned");
  EXPECT_GE(scanned, kKeys) << r.json_line();
  // `skipped` counts writes left alone, as `copied` counts writes: a planted key SCAN returned
  // twice is skipped twice. So at least every planted key, at most one more per repeat.
  const int64_t skipped = r.json_int("skipped");
  EXPECT_GE(skipped, kPlanted) << r.json_line();
  EXPECT_LE(skipped, kPlanted + (scanned - kKeys)) << r.json_line();
  EXPECT_EQ(r.json_int("copied") + r.json_int("resent") + skipped + r.json_int("expired") +
                r.json_int("vanished"),
            scanned)
      << r.json_line();

  ExpectPlantedKept();
  ExpectOnlyPlantedDiffer(planted);
}

// A hash table's DUMP lists its elements in bucket order, and RESTORE rebuilds the buckets in
// another order: the same big hash or set dumps differently once restored. Such keys, already
// on the target with the source's content, are not conflicts; one changed field is.
TEST(MigrateConflictEncodingTest, RestoredHashTablesAreComparedByContent) {
  ASSERT_TRUE(RequireRedisServerBinary().ok());
  auto source = StartServer();
  auto target = StartServer();
  ASSERT_TRUE(source && target);
  redis::Connection src = Connect(*source);
  redis::Connection dst = Connect(*target);
  // Past every listpack limit; values raw, integer-encoded and LZF-compressed (> 20 bytes).
  std::vector<std::string> hash = {"HSET", "big:hash"};
  std::vector<std::string> set = {"SADD", "big:set"};
  std::vector<std::string> zset = {"ZADD", "big:zset"};
  std::vector<std::string> list = {"RPUSH", "big:list"};
  for (int j = 0; j < 600; ++j) {
    hash.push_back(absl::StrCat("f", j));
    hash.push_back(j % 3 == 0   ? std::string(40, 'v')
                   : j % 3 == 1 ? absl::StrCat(j * 7)
                                : absl::StrCat("val", j));
    set.push_back(j % 2 == 0 ? absl::StrCat(j * 13)
                             : absl::StrCat("member-", j, std::string(30, 'x')));
    zset.push_back(absl::StrCat(j % 17));
    zset.push_back(absl::StrCat("m", j));
    list.push_back(absl::StrCat("e", j));
  }
  for (const auto* argv : {&hash, &set, &zset, &list}) {
    std::vector<absl::string_view> views(argv->begin(), argv->end());
    ASSERT_TRUE(src.Command(absl::MakeConstSpan(views)).ok());
  }
  bool reordered = false;
  for (const char* key : {"big:hash", "big:set", "big:zset", "big:list"}) {
    auto dump = src.Command({"DUMP", key});
    ASSERT_TRUE(dump.ok() && !dump->is_nil()) << key;
    ASSERT_TRUE(dst.Command({"RESTORE", key, "0", dump->str()}).ok()) << key;
    auto again = dst.Command({"DUMP", key});
    ASSERT_TRUE(again.ok()) << key;
    reordered = reordered || again->str() != dump->str();
  }
  ASSERT_TRUE(reordered) << "no payload changed on RESTORE: the test proves nothing";

  CliResult same = RunFerry({"migrate", "--from", source->uri(), "--to", target->uri(),
                             "--on-conflict", "fail", "--progress", "none", "--output", "json"});
  EXPECT_EQ(same.exit_code, 0) << same.output;
  EXPECT_EQ(same.json_int("failed"), 0) << same.json_line();
  EXPECT_EQ(same.json_int("copied"), same.json_int("scanned")) << same.json_line();

  ASSERT_TRUE(dst.Command({"HSET", "big:hash", "f1", "changed"}).ok());
  ASSERT_TRUE(dst.Command({"SREM", "big:set", "0"}).ok());
  CliResult changed = RunFerry({"migrate", "--from", source->uri(), "--to", target->uri(),
                                "--on-conflict", "fail", "--progress", "none", "--output", "json"});
  EXPECT_EQ(changed.exit_code, 1) << changed.output;
  EXPECT_EQ(changed.json_int("failed"), 2) << changed.json_line();
  EXPECT_THAT(changed.json_line(), ::testing::HasSubstr("\"key\":\"big:hash\""));
  EXPECT_THAT(changed.json_line(), ::testing::HasSubstr("\"key\":\"big:set\""));
}

}  // namespace
}  // namespace ferry::testing
