#include "server/job_store.h"

#include <sqlite3.h>
#include <sys/stat.h>
#include <unistd.h>

#include <string>

#include "common/testing/process.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "proto/wire/shard.h"

namespace ferry::server {
namespace {

using ::testing::ElementsAre;

std::string TempPath(const std::string& name) {
  std::string path =
      ::ferry::testing::ProcessTempDir() + "/" + name + "-" + std::to_string(getpid()) + ".db";
  unlink(path.c_str());
  unlink((path + "-wal").c_str());
  unlink((path + "-shm").c_str());
  return path;
}

JobRecord MakeJob(const std::string& id) {
  JobRecord job;
  job.id = id;
  job.spec.mutable_source()->set_uri("redis://src:6379");
  job.spec.mutable_source()->set_password("source-secret");
  job.spec.mutable_target()->set_uri("redis://dst:6379");
  job.create_time = job.update_time = absl::FromUnixSeconds(1700000000);
  return job;
}

std::vector<ShardRecord> TwoShards() {
  std::vector<ShardRecord> shards(2);
  shards[0].shard.set_source_db(0);
  shards[0].shard.set_shard_bits(1);
  shards[0].shard.set_shard_index(0);
  shards[1].shard.set_source_db(0);
  shards[1].shard.set_shard_bits(1);
  shards[1].shard.set_shard_index(1);
  return shards;
}

TEST(JobStoreTest, FileIsPrivate) {
  const std::string path = TempPath("private");
  ASSERT_TRUE(JobStore::Open(path).ok());
  struct stat st;
  ASSERT_EQ(stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600);
}

TEST(JobStoreTest, NarrowsModeOfExistingFile) {
  const std::string path = TempPath("narrow");
  FILE* f = fopen(path.c_str(), "w");
  ASSERT_NE(f, nullptr);
  fclose(f);
  chmod(path.c_str(), 0644);
  ASSERT_TRUE(JobStore::Open(path).ok());
  struct stat st;
  ASSERT_EQ(stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600);
}

TEST(JobStoreTest, JobsSurviveReopenWithSpecAndWarnings) {
  const std::string path = TempPath("jobs");
  {
    auto store = JobStore::Open(path);
    ASSERT_TRUE(store.ok()) << store.status();
    JobRecord a = MakeJob("a");
    JobRecord b = MakeJob("b");
    ASSERT_TRUE((*store)->CreateJob(&a).ok());
    ASSERT_TRUE((*store)->CreateJob(&b).ok());
    EXPECT_LT(a.seq, b.seq);
    a.state = ferry::v1::JOB_STATE_FAILED;
    a.error = "planning failed: boom";
    a.warnings = {"first warning", "second warning"};
    ASSERT_TRUE((*store)->UpdateJob(a).ok());
  }
  auto store = JobStore::Open(path);
  ASSERT_TRUE(store.ok());
  auto jobs = (*store)->LoadJobs();
  ASSERT_TRUE(jobs.ok());
  ASSERT_EQ(jobs->size(), 2u);
  EXPECT_EQ((*jobs)[0].id, "a");
  EXPECT_EQ((*jobs)[0].state, ferry::v1::JOB_STATE_FAILED);
  EXPECT_EQ((*jobs)[0].error, "planning failed: boom");
  EXPECT_THAT((*jobs)[0].warnings, ElementsAre("first warning", "second warning"));
  EXPECT_EQ((*jobs)[0].spec.source().password(), "source-secret");
  EXPECT_EQ((*jobs)[0].create_time, absl::FromUnixSeconds(1700000000));
  EXPECT_EQ((*jobs)[1].id, "b");
  EXPECT_TRUE((*jobs)[1].warnings.empty());
}

TEST(JobStoreTest, CheckpointsAndFailedKeysSurviveReopen) {
  const std::string path = TempPath("shards");
  const std::string binary_key("k\0\xff", 3);
  {
    auto store = JobStore::Open(path);
    ASSERT_TRUE(store.ok());
    JobRecord job = MakeJob("j");
    ASSERT_TRUE((*store)->CreateJob(&job).ok());
    job.planned = true;
    std::vector<ShardRecord> shards = TwoShards();
    ASSERT_TRUE((*store)->SavePlan(job, &shards).ok());
    ASSERT_NE(shards[0].id, shards[1].id);
    ShardRecord& s = shards[1];
    s.state = ferry::v1::SHARD_STATE_LEASED;
    s.lease_id = "j-2-3";
    s.epoch = 3;
    s.agent_id = "agent-1";
    s.checkpoint.set_cursor(0xfedcba9876543210ULL);  // Above INT64_MAX.
    s.checkpoint.set_run_id("run-1");
    s.checkpoint.mutable_counters()->set_copied(7);
    ferry::v1::FailedKey failed;
    failed.set_key(binary_key);
    failed.set_reason("too big");
    ferry::v1::FailedKey other;
    other.set_key("other");
    other.set_reason("wrong type");
    // A key reported twice (SCAN returned it twice) is stored once.
    ASSERT_TRUE((*store)->UpdateShard(s, {failed, other, failed}).ok());
  }
  auto store = JobStore::Open(path);
  ASSERT_TRUE(store.ok());
  auto jobs = (*store)->LoadJobs();
  ASSERT_TRUE(jobs.ok());
  EXPECT_TRUE((*jobs)[0].planned);
  auto shards = (*store)->LoadShards();
  ASSERT_TRUE(shards.ok());
  ASSERT_EQ(shards->size(), 2u);
  const ShardRecord& s = (*shards)[1];
  EXPECT_EQ(s.job_id, "j");
  EXPECT_EQ(s.shard.shard_index(), 1u);
  EXPECT_EQ(s.state, ferry::v1::SHARD_STATE_LEASED);
  EXPECT_EQ(s.epoch, 3u);
  EXPECT_EQ(s.lease_id, "j-2-3");
  EXPECT_EQ(s.checkpoint.cursor(), 0xfedcba9876543210ULL);
  EXPECT_EQ(s.checkpoint.run_id(), "run-1");
  EXPECT_EQ(s.checkpoint.counters().copied(), 7u);

  EXPECT_EQ(*(*store)->CountFailedKeys("j"), 2u);
  auto page = (*store)->ListFailedKeys("j", 0, 1);
  ASSERT_TRUE(page.ok());
  ASSERT_EQ(page->size(), 1u);
  EXPECT_EQ((*page)[0].key, binary_key);
  EXPECT_EQ((*page)[0].reason, "too big");
  auto next = (*store)->ListFailedKeys("j", (*page)[0].id, 10);
  ASSERT_TRUE(next.ok());
  EXPECT_EQ(next->size(), 1u);
}

TEST(JobStoreTest, UnknownShardOrJobIsNotFound) {
  auto store = JobStore::Open(TempPath("unknown"));
  ASSERT_TRUE(store.ok());
  ShardRecord shard;
  shard.id = 99;
  shard.job_id = "nope";
  EXPECT_EQ((*store)->UpdateShard(shard).code(), absl::StatusCode::kNotFound);
  EXPECT_EQ((*store)->UpdateJob(MakeJob("nope")).code(), absl::StatusCode::kNotFound);
}

TEST(JobStoreTest, FailedTransactionLeavesNothingBehind) {
  auto store = JobStore::Open(TempPath("rollback"));
  ASSERT_TRUE(store.ok());
  JobRecord job = MakeJob("j");
  ASSERT_TRUE((*store)->CreateJob(&job).ok());
  std::vector<ShardRecord> shards = TwoShards();
  shards[1].shard.set_shard_index(0);  // Duplicate shard key: the insert fails.
  EXPECT_FALSE((*store)->SavePlan(job, &shards).ok());
  EXPECT_TRUE((*store)->LoadShards()->empty());
}

TEST(JobStoreTest, ClusterShardsKeepTheirSchemeAndSlots) {
  const std::string path = TempPath("cluster");
  auto store = JobStore::Open(path);
  ASSERT_TRUE(store.ok());
  JobRecord job = MakeJob("job-c");
  ASSERT_TRUE((*store)->CreateJob(&job).ok());
  std::vector<ShardRecord> shards = TwoShards();
  shards[0].shard.set_source_node("10.0.0.1:7000");
  shards[0].shard.set_scan_scheme(ferry::v1::SCAN_SCHEME_PER_SLOT);
  wire::AddSlotRanges({{0, 100}}, shards[0].shard.mutable_slots());
  shards[1].shard.set_source_node("10.0.0.1:7000");
  wire::AddSlotRanges({{0, 5460}, {6000, 6000}}, shards[1].shard.mutable_slots());
  ASSERT_TRUE((*store)->SavePlan(job, &shards).ok());
  store->reset();
  store = JobStore::Open(path);
  ASSERT_TRUE(store.ok());
  auto loaded = (*store)->LoadShards();
  ASSERT_TRUE(loaded.ok());
  ASSERT_EQ(loaded->size(), 2u);
  EXPECT_EQ((*loaded)[0].shard.scan_scheme(), ferry::v1::SCAN_SCHEME_PER_SLOT);
  EXPECT_EQ(wire::SlotRangesFromProto((*loaded)[0].shard.slots()), (redis::SlotRanges{{0, 100}}));
  EXPECT_EQ((*loaded)[1].shard.scan_scheme(), ferry::v1::SCAN_SCHEME_SINGLE_DICT);
  EXPECT_EQ(wire::SlotRangesFromProto((*loaded)[1].shard.slots()),
            (redis::SlotRanges{{0, 5460}, {6000, 6000}}));
}

TEST(JobStoreTest, StateFilesFromBeforeClustersGainTheColumns) {
  const std::string path = TempPath("old-schema");
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(path.c_str(), &db), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(db,
                         "CREATE TABLE shards (id INTEGER PRIMARY KEY AUTOINCREMENT, job_id TEXT "
                         "NOT NULL, source_node TEXT NOT NULL, source_db INTEGER NOT NULL, "
                         "shard_bits INTEGER NOT NULL, shard_index INTEGER NOT NULL, target_db "
                         "INTEGER NOT NULL, state INTEGER NOT NULL, checkpoint BLOB NOT NULL, "
                         "lease_id TEXT NOT NULL DEFAULT '', epoch INTEGER NOT NULL DEFAULT 0, "
                         "agent_id TEXT NOT NULL DEFAULT '', error TEXT NOT NULL DEFAULT '', "
                         "UNIQUE (job_id, source_node, source_db, shard_bits, shard_index)); "
                         "INSERT INTO shards (job_id, source_node, source_db, shard_bits, "
                         "shard_index, target_db, state, checkpoint) "
                         "VALUES ('old', '', 0, 0, 0, 0, 1, x'');",
                         nullptr, nullptr, nullptr),
            SQLITE_OK);
  sqlite3_close(db);
  auto store = JobStore::Open(path);
  ASSERT_TRUE(store.ok()) << store.status();
  auto loaded = (*store)->LoadShards();
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  ASSERT_EQ(loaded->size(), 1u);
  EXPECT_TRUE((*loaded)[0].shard.slots().empty());
  EXPECT_EQ((*loaded)[0].shard.scan_scheme(), ferry::v1::SCAN_SCHEME_SINGLE_DICT);
  // One process at a time: a second store on the same file is refused while the first lives.
  auto second = JobStore::Open(path);
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(second.status().message()), ::testing::HasSubstr("in use"));
  store->reset();
  ASSERT_TRUE(JobStore::Open(path).ok());  // Idempotent.
}

// A state file of the version before ShardRef (the same columns, written by that version's
// SQL): its cluster shard reads back whole, and new shards go into the same table.
TEST(JobStoreTest, StateFilesOfThePreviousVersionLoadIntoShardRefs) {
  const std::string path = TempPath("previous-version");
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(path.c_str(), &db), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(db,
                         "CREATE TABLE shards (id INTEGER PRIMARY KEY AUTOINCREMENT, job_id TEXT "
                         "NOT NULL, source_node TEXT NOT NULL, source_db INTEGER NOT NULL, "
                         "shard_bits INTEGER NOT NULL, shard_index INTEGER NOT NULL, target_db "
                         "INTEGER NOT NULL, state INTEGER NOT NULL, checkpoint BLOB NOT NULL, "
                         "lease_id TEXT NOT NULL DEFAULT '', epoch INTEGER NOT NULL DEFAULT 0, "
                         "agent_id TEXT NOT NULL DEFAULT '', error TEXT NOT NULL DEFAULT '', "
                         "scan_scheme INTEGER NOT NULL DEFAULT 0, slots TEXT NOT NULL DEFAULT '', "
                         "UNIQUE (job_id, source_node, source_db, shard_bits, shard_index)); "
                         "INSERT INTO shards (job_id, source_node, source_db, shard_bits, "
                         "shard_index, target_db, state, checkpoint, lease_id, epoch, agent_id, "
                         "error, scan_scheme, slots) VALUES ('old', '10.0.0.2:7001', 0, 2, 3, 5, "
                         "4, x'', 'l', 7, 'a', 'boom', 1, '100-200');",
                         nullptr, nullptr, nullptr),
            SQLITE_OK);
  sqlite3_close(db);
  auto store = JobStore::Open(path);
  ASSERT_TRUE(store.ok()) << store.status();
  auto loaded = (*store)->LoadShards();
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  ASSERT_EQ(loaded->size(), 1u);
  const ShardRecord& r = (*loaded)[0];
  EXPECT_EQ(r.job_id, "old");
  EXPECT_EQ(r.shard.source_node(), "10.0.0.2:7001");
  EXPECT_EQ(r.shard.source_db(), 0);
  EXPECT_EQ(r.shard.shard_bits(), 2);
  EXPECT_EQ(r.shard.shard_index(), 3u);
  EXPECT_EQ(r.shard.target_db(), 5);
  EXPECT_EQ(r.shard.scan_scheme(), ferry::v1::SCAN_SCHEME_PER_SLOT);
  EXPECT_EQ(wire::SlotRangesFromProto(r.shard.slots()), (redis::SlotRanges{{100, 200}}));
  EXPECT_EQ(r.state, ferry::v1::SHARD_STATE_FAILED);
  EXPECT_EQ(r.lease_id, "l");
  EXPECT_EQ(r.epoch, 7u);
  EXPECT_EQ(r.agent_id, "a");
  EXPECT_EQ(r.error, "boom");
}

}  // namespace
}  // namespace ferry::server
