// Batches of agent messages (scheduler_batch.cc): one commit, and no Ack before it.

#include <sqlite3.h>

#include <map>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "server/scheduler_test_fixture.h"

namespace ferry::server {
namespace {

// Records, at each Ack, the cursors committed in the state file, read on a connection of its
// own: what a controller restarted at that moment would find.
class CommittedCursorsSender : public AgentSender {
 public:
  explicit CommittedCursorsSender(std::string path) : path_(std::move(path)) {}

  void Send(const ControllerMessage& message) override {
    absl::MutexLock lock(&mu_);
    messages_.push_back(message);
    if (message.has_ack()) committed_at_ack_[message.ack().lease_id()] = CommittedCursors();
  }
  std::vector<ControllerMessage> messages() {
    absl::MutexLock lock(&mu_);
    return messages_;
  }
  std::set<uint64_t> committed_at_ack(const std::string& lease_id) {
    absl::MutexLock lock(&mu_);
    return committed_at_ack_[lease_id];
  }

 private:
  std::set<uint64_t> CommittedCursors() {
    std::set<uint64_t> cursors;
    sqlite3* db = nullptr;
    if (sqlite3_open_v2(path_.c_str(), &db, SQLITE_OPEN_READONLY, nullptr) == SQLITE_OK) {
      sqlite3_stmt* select = nullptr;
      sqlite3_prepare_v2(db, "SELECT checkpoint FROM shards", -1, &select, nullptr);
      while (select != nullptr && sqlite3_step(select) == SQLITE_ROW) {
        ferry::v1::Checkpoint checkpoint;
        checkpoint.ParseFromArray(sqlite3_column_blob(select, 0), sqlite3_column_bytes(select, 0));
        cursors.insert(checkpoint.cursor());
      }
      sqlite3_finalize(select);
    }
    sqlite3_close(db);
    return cursors;
  }

  const std::string path_;
  absl::Mutex mu_;
  std::vector<ControllerMessage> messages_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, std::set<uint64_t>> committed_at_ack_ ABSL_GUARDED_BY(mu_);
};

AgentMessage ProgressAt(const Lease& lease, uint64_t epoch, uint64_t cursor) {
  AgentMessage message;
  message.mutable_progress()->set_lease_id(lease.lease_id());
  message.mutable_progress()->set_epoch(epoch);
  message.mutable_progress()->mutable_checkpoint()->set_cursor(cursor);
  return message;
}

TEST_F(SchedulerTest, ABatchIsAcknowledgedOnlyOnceCommittedAndRefusesStaleReportsAlone) {
  std::string job = Submit();
  Plan(job, 3);
  auto checking = std::make_shared<CommittedCursorsSender>(path_);
  const std::string a = scheduler_->RegisterAgent("a", 2, "ipv4:127.0.0.1:1", checking);
  FakeAgent b = Connect(1);
  std::vector<Lease> a_leases;
  for (const ControllerMessage& m : checking->messages()) {
    if (m.has_lease()) a_leases.push_back(m.lease());
  }
  ASSERT_EQ(a_leases.size(), 2u);
  std::vector<Lease> b_leases = b.sender->Leases();
  ASSERT_EQ(b_leases.size(), 1u);

  const AgentMessage first = ProgressAt(a_leases[0], a_leases[0].epoch(), 101);
  const AgentMessage second = ProgressAt(b_leases[0], b_leases[0].epoch(), 303);
  const AgentMessage stale = ProgressAt(a_leases[1], a_leases[1].epoch() + 7, 999);
  const std::vector<absl::Status> statuses =
      scheduler_->HandleAgentMessages({{a, &first}, {b.id, &second}, {a, &stale}});
  ASSERT_EQ(statuses.size(), 3u);
  EXPECT_TRUE(statuses[0].ok()) << statuses[0];
  EXPECT_TRUE(statuses[1].ok()) << statuses[1];
  EXPECT_EQ(statuses[2].code(), absl::StatusCode::kFailedPrecondition);

  // When the Ack went out, the checkpoints of the whole batch were in the file already.
  EXPECT_EQ(checking->committed_at_ack(a_leases[0].lease_id()).count(101), 1u);
  EXPECT_EQ(checking->committed_at_ack(a_leases[0].lease_id()).count(303), 1u);
  EXPECT_EQ(checking->committed_at_ack(a_leases[0].lease_id()).count(999), 0u);
  EXPECT_EQ(b.sender->Take(ControllerMessage::kAck).size(), 1u);
  int revokes = 0;
  for (const ControllerMessage& m : checking->messages()) {
    if (m.has_revoke()) {
      EXPECT_EQ(m.revoke().lease_id(), a_leases[1].lease_id());
      ++revokes;
    }
  }
  EXPECT_EQ(revokes, 1);

  Reopen();  // What a restart finds: both acknowledged checkpoints.
  auto shown = scheduler_->GetJob(job, true);
  ASSERT_TRUE(shown.ok());
  std::set<uint64_t> cursors;
  for (const auto& shard : shown->shards()) cursors.insert(shard.cursor());
  EXPECT_EQ(cursors, (std::set<uint64_t>{0, 101, 303}));
}

}  // namespace
}  // namespace ferry::server
