// The controller's handling of agent messages: a real Scheduler and JobStore (SQLite, in a temp
// file) fed sequences decoded from the fuzz input: reports with wrong epochs, unknown or other
// agents' leases, huge counters, finishes out of order, batches, disconnects, expiries, pauses,
// cutovers and restarts. Invariants: a report on a lease that a newer grant of its shard
// replaced, or that another agent holds, is refused; every answer can be built; and whatever
// was stored, a restarted controller loads it.

#include <fuzzer/FuzzedDataProvider.h>
#include <unistd.h>

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "common/base/logging.h"
#include "fuzz/fuzz_support.h"
#include "server/job_store.h"
#include "server/scheduler.h"

namespace ferry::fuzz {
namespace {

using ferry::v1::AgentMessage;
using ferry::v1::ControllerMessage;
using Lease = ControllerMessage::Lease;

// Keeps the leases the scheduler sends one agent.
class LeaseSink : public server::AgentSender {
 public:
  void Send(const ControllerMessage& message) override {
    absl::MutexLock lock(&mu_);
    if (message.has_lease()) leases_.push_back(message.lease());
  }
  std::vector<Lease> Take() {
    absl::MutexLock lock(&mu_);
    return std::exchange(leases_, {});
  }

 private:
  absl::Mutex mu_;
  std::vector<Lease> leases_ ABSL_GUARDED_BY(mu_);
};

struct KnownLease {
  Lease lease;
  std::string agent_id;
  std::string shard;  // job id + ShardRef bytes: which shard it is.
};

class World {
 public:
  explicit World(FuzzedDataProvider& input) : input_(input) {
    const char* dir = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
    path_ = absl::StrCat(dir, "/ferry-scheduler-fuzz-", getpid(), ".db");
    Remove();
  }
  ~World() {
    scheduler_.reset();
    store_.reset();
    Remove();
  }

  bool Start() {
    auto store = server::JobStore::Open(path_);
    Check(store.ok(), "the store does not open");
    store_ = std::move(*store);
    server::SchedulerOptions options;
    options.clock = [this] { return now_; };
    auto scheduler = server::Scheduler::Create(store_.get(), options);
    Check(scheduler.ok(), "the scheduler does not load what it stored");
    scheduler_ = std::move(*scheduler);
    agents_.clear();
    return true;
  }

  void SubmitJobs() {
    const int count = input_.ConsumeIntegralInRange(1, 2);
    for (int j = 0; j < count; ++j) {
      ferry::v1::JobSpec spec;
      spec.mutable_source()->set_uri("redis://127.0.0.1:6379");
      spec.mutable_source()->set_password("source-pass-123");
      spec.mutable_target()->set_uri("redis://127.0.0.1:6380");
      spec.mutable_target()->set_password("target-pass-456");
      spec.set_parallel(input_.ConsumeIntegralInRange(0, 3));
      spec.set_rate_limit(input_.ConsumeBool() ? 0 : input_.ConsumeFloatingPoint<double>());
      const bool live = input_.ConsumeBool();
      spec.set_live(live);
      absl::StatusOr<std::string> id = scheduler_->SubmitJob(spec);
      Check(id.ok(), "SubmitJob failed");
      jobs_.push_back(*id);
      server::PlanResult plan;
      const int shards = input_.ConsumeIntegralInRange(1, 4);
      for (int i = 0; i < shards; ++i) plan.shards.push_back(Shard(2, i));
      if (live) {
        plan.shards.push_back(Shard(-1, 0));
        plan.shards.back().set_watch(true);
        plan.shards.push_back(Shard(0, 0));
        plan.shards.back().set_reverse(true);
      }
      plan.estimated_keys = input_.ConsumeIntegral<uint64_t>();
      if (input_.ConsumeBool()) (void)scheduler_->SetPlan(*id, plan);
    }
  }

  // One operation; false when the input is used up.
  bool Step() {
    if (input_.remaining_bytes() == 0) return false;
    switch (input_.ConsumeIntegralInRange(0, 11)) {
      case 0:
        Register();
        break;
      case 1:
      case 2:
      case 3:
        Report();
        break;
      case 4:
        Batch();
        break;
      case 5:
        if (!agents_.empty()) {
          const size_t a = input_.ConsumeIntegralInRange<size_t>(0, agents_.size() - 1);
          scheduler_->DisconnectAgent(agents_[a].first);
          agents_.erase(agents_.begin() + a);
        }
        break;
      case 6:
        now_ += absl::Seconds(input_.ConsumeIntegralInRange(0, 40));
        (void)scheduler_->ExpireLeases(now_);
        break;
      case 7:
        JobCommand();
        break;
      case 8:  // The controller restarts: its agents reconnect as new ones.
        scheduler_.reset();
        store_.reset();
        Start();
        break;
      default:
        Read();
    }
    CollectLeases();
    return true;
  }

  void Finish() {
    Read();
    scheduler_.reset();
    store_.reset();
    Start();
    Check(scheduler_->ListJobs().size() == jobs_.size(), "jobs lost across a restart");
    Read();
  }

 private:
  ferry::v1::ShardRef Shard(int bits, int index) {
    ferry::v1::ShardRef shard;
    shard.set_shard_bits(bits);
    shard.set_shard_index(static_cast<uint64_t>(index));
    return shard;
  }

  void Remove() {
    for (const char* suffix : {"", "-wal", "-shm", "-journal"}) {
      unlink((path_ + suffix).c_str());
    }
  }

  void Register() {
    auto sink = std::make_shared<LeaseSink>();
    const int slots = input_.ConsumeIntegralInRange(0, 4);
    std::string id = scheduler_->RegisterAgent("host", slots, "ipv4:127.0.0.1:1", sink);
    agents_.emplace_back(std::move(id), sink);
  }

  void CollectLeases() {
    for (const auto& [agent_id, sink] : agents_) {
      for (Lease& lease : sink->Take()) {
        KnownLease known{lease, agent_id, lease.job_id() + lease.shard().SerializeAsString()};
        leases_.push_back(std::move(known));
      }
    }
  }

  uint64_t Counter() {
    switch (input_.ConsumeIntegralInRange(0, 3)) {
      case 0:
        return 0;
      case 1:
        return input_.ConsumeIntegralInRange<uint64_t>(0, 1000);
      case 2:
        return ~uint64_t{0} - input_.ConsumeIntegralInRange<uint64_t>(0, 3);
      default:
        return input_.ConsumeIntegral<uint64_t>();
    }
  }

  void FillCheckpoint(ferry::v1::Checkpoint& checkpoint) {
    checkpoint.set_cursor(Counter());
    checkpoint.set_done(input_.ConsumeBool());
    checkpoint.set_run_id(input_.ConsumeBool() ? "run-1" : "run-2");
    checkpoint.set_scanned(input_.ConsumeBool());
    checkpoint.set_pass(input_.ConsumeIntegralInRange<uint32_t>(0, 3));
    ferry::v1::Counters& counters = *checkpoint.mutable_counters();
    const google::protobuf::Descriptor* descriptor = counters.GetDescriptor();
    for (int i = 0; i < descriptor->field_count(); ++i) {
      counters.GetReflection()->SetUInt64(&counters, descriptor->field(i), Counter());
    }
    if (input_.ConsumeBool()) {
      ferry::v1::LiveStatus& live = *checkpoint.mutable_live();
      live.set_subscriptions(Counter());
      live.set_subscribed(input_.ConsumeBool());
      live.set_applying(input_.ConsumeBool());
      live.set_events(Counter());
      live.set_applied(Counter());
      live.set_dirty_keys(Counter());
      live.set_dirty_bytes(Counter());
      live.set_oldest_dirty_ms(static_cast<int64_t>(Counter()));
      live.set_events_per_second(input_.ConsumeFloatingPoint<double>());
      live.set_gaps(Counter());
      live.set_cutover_seq(Counter());
      live.set_events_after_marker(Counter());
    }
  }

  // A lease to report on: a real one (maybe with a wrong epoch) or a made-up one.
  const KnownLease* PickLease(std::string* lease_id, uint64_t* epoch) {
    if (leases_.empty() || input_.ConsumeIntegralInRange(0, 7) == 0) {
      *lease_id = input_.ConsumeRandomLengthString(8);
      *epoch = Counter();
      return nullptr;
    }
    const KnownLease& known = leases_[input_.ConsumeIntegralInRange<size_t>(0, leases_.size() - 1)];
    *lease_id = known.lease.lease_id();
    const int delta = input_.ConsumeIntegralInRange(-1, 1) * input_.ConsumeIntegralInRange(0, 1);
    *epoch = known.lease.epoch() + static_cast<uint64_t>(delta);
    return delta == 0 ? &known : nullptr;
  }

  // An agent's message; `known` is the lease it reports on when real and its epoch right.
  AgentMessage Message(const KnownLease** known) {
    AgentMessage message;
    std::string lease_id;
    uint64_t epoch = 0;
    *known = PickLease(&lease_id, &epoch);
    ferry::v1::Checkpoint* checkpoint = nullptr;
    google::protobuf::RepeatedPtrField<ferry::v1::FailedKey>* failed = nullptr;
    switch (input_.ConsumeIntegralInRange(0, 4)) {
      case 0: {
        auto* progress = message.mutable_progress();
        progress->set_lease_id(lease_id);
        progress->set_epoch(epoch);
        checkpoint = progress->mutable_checkpoint();
        failed = progress->mutable_failed_keys();
        break;
      }
      case 1: {
        auto* finished = message.mutable_finished();
        finished->set_lease_id(lease_id);
        finished->set_epoch(epoch);
        finished->set_status_code(input_.ConsumeIntegralInRange(-1, 17));
        finished->set_status_message(input_.ConsumeRandomLengthString(16));
        checkpoint = finished->mutable_checkpoint();
        failed = finished->mutable_failed_keys();
        break;
      }
      case 2: {
        auto* returned = message.mutable_returned();
        returned->set_lease_id(lease_id);
        returned->set_epoch(epoch);
        returned->set_draining(input_.ConsumeBool());
        checkpoint = returned->mutable_checkpoint();
        failed = returned->mutable_failed_keys();
        break;
      }
      case 3:
        message.mutable_heartbeat();
        *known = nullptr;
        return message;
      default:
        message.mutable_register_agent()->set_slots(input_.ConsumeIntegral<int32_t>());
        *known = nullptr;
        return message;
    }
    FillCheckpoint(*checkpoint);
    const int keys = input_.ConsumeIntegralInRange(0, 3);
    for (int i = 0; i < keys; ++i) {
      ferry::v1::FailedKey* key = failed->Add();
      key->set_key(input_.ConsumeRandomLengthString(8));
      key->set_reason(input_.ConsumeRandomLengthString(8));
    }
    return message;
  }

  // The agent that sends: one of the connected ones or an unknown id.
  std::string Sender() {
    if (agents_.empty() || input_.ConsumeIntegralInRange(0, 7) == 0) return "agent-unknown";
    return agents_[input_.ConsumeIntegralInRange<size_t>(0, agents_.size() - 1)].first;
  }

  // A report on a lease that a newer grant of the same shard replaced, or sent by another agent
  // than the one holding it, must be refused: a shard is never owned twice.
  void CheckRefused(const std::string& agent_id, const AgentMessage& message,
                    const KnownLease* known, const absl::Status& status) {
    if (known == nullptr || !status.ok()) return;
    Check(known->agent_id == agent_id, "a report on another agent's lease was accepted");
    for (const KnownLease& other : leases_) {
      Check(other.shard != known->shard || other.lease.epoch() <= known->lease.epoch(),
            "a report on a replaced lease was accepted");
    }
    (void)message;
  }

  void Report() {
    const std::string agent_id = Sender();
    const KnownLease* known = nullptr;
    const AgentMessage message = Message(&known);
    const absl::Status status = scheduler_->HandleAgentMessage(agent_id, message);
    CheckRefused(agent_id, message, known, status);
  }

  void Batch() {
    const int count = input_.ConsumeIntegralInRange(1, 4);
    std::vector<std::string> senders;
    std::vector<AgentMessage> messages;
    std::vector<const KnownLease*> known(count);
    for (int i = 0; i < count; ++i) {
      senders.push_back(Sender());
      messages.push_back(Message(&known[i]));
    }
    server::Scheduler::AgentBatch batch;
    for (int i = 0; i < count; ++i) batch.emplace_back(senders[i], &messages[i]);
    const std::vector<absl::Status> statuses = scheduler_->HandleAgentMessages(batch);
    Check(statuses.size() == batch.size(), "one status per message");
    // Only the first report of a batch is checked: later ones may follow a grant made by an
    // earlier one in the same batch, which this harness has not seen yet.
    CheckRefused(senders[0], messages[0], known[0], statuses[0]);
  }

  void JobCommand() {
    if (jobs_.empty()) return;
    const std::string& id = jobs_[input_.ConsumeIntegralInRange<size_t>(0, jobs_.size() - 1)];
    switch (input_.ConsumeIntegralInRange(0, 3)) {
      case 0:
        (void)scheduler_->PauseJob(id);
        break;
      case 1:
        (void)scheduler_->ResumeJob(id);
        break;
      case 2:
        (void)scheduler_->CancelJob(id);
        break;
      default: {
        ferry::v1::CutoverJobRequest request;
        request.set_job_id(id);
        request.set_no_verify(input_.ConsumeBool());
        (void)scheduler_->CutoverJob(request);
      }
    }
  }

  void Read() {
    for (const std::string& id : jobs_) {
      absl::StatusOr<ferry::v1::Job> job = scheduler_->GetJob(id, true);
      Check(job.ok(), "GetJob of a submitted job failed");
      const std::string text = job->DebugString();
      Check(text.find("source-pass-123") == std::string::npos &&
                text.find("target-pass-456") == std::string::npos,
            "a job shows a password");
      ferry::v1::ListFailedKeysRequest request;
      request.set_job_id(id);
      request.set_page_size(input_.ConsumeIntegralInRange(0, 3));
      (void)scheduler_->ListFailedKeys(request);
    }
    (void)scheduler_->ListJobs();
    (void)scheduler_->ListAgents();
  }

  FuzzedDataProvider& input_;
  std::string path_;
  absl::Time now_ = absl::FromUnixSeconds(1700000000);
  std::unique_ptr<server::JobStore> store_;
  std::unique_ptr<server::Scheduler> scheduler_;
  std::vector<std::pair<std::string, std::shared_ptr<LeaseSink>>> agents_;
  std::vector<std::string> jobs_;
  std::vector<KnownLease> leases_;
};

}  // namespace
}  // namespace ferry::fuzz

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  ferry::SetMinLogLevel(ferry::LogLevel::kError);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  FuzzedDataProvider input(data, size);
  ferry::fuzz::World world(input);
  world.Start();
  world.SubmitJobs();
  for (int step = 0; step < 64 && world.Step(); ++step) {
  }
  world.Finish();
  return 0;
}
