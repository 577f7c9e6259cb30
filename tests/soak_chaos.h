#pragma once

// The seeded fault schedule of the chaos soak (tests/soak_test.cc): one fault at a time, each
// with its repair, drawn from a seed so that a failing run can be replayed with
// FERRY_SOAK_SEED. The faults: agents SIGKILLed and SIGTERMed (and new ones started), the
// controller SIGKILLed and SIGTERMed (and restarted on its state file), a source or a target
// SIGSTOPped for a few seconds, a target cluster node restarted (a replica the round never
// wrote to, killed and restarted empty: it resyncs), a target primary failed over gracefully,
// slots moved between the target's primaries (redis-cli --cluster reshard, in the background), and
// proxy faults (common/testing/fault_proxy.h) on either source. Test support only; one test
// thread drives it.

#include <cstdint>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "common/testing/fault_proxy.h"
#include "common/testing/process.h"
#include "common/testing/redis_cluster.h"
#include "common/testing/redis_server.h"
#include "tests/fleet.h"

namespace ferry::testing {

// What the faults act on; not owned.
struct ChaosTargets {
  Fleet* fleet = nullptr;
  int agents = 3;  // How many agents run between faults.
  int agent_slots = 2;
  RedisServer* copy_source = nullptr;
  RedisServer* live_source = nullptr;
  RedisCluster* copy_target = nullptr;
  RedisServer* live_target = nullptr;
  FaultProxy* copy_proxy = nullptr;
  FaultProxy* live_proxy = nullptr;
  // The target cluster's cluster-node-timeout: a SIGSTOP of a node stays well below it (no
  // automatic failover), and two failovers of one shard are further apart than twice it (a
  // primary votes once per 2 * node timeout for the replicas of one primary).
  absl::Duration node_timeout = absl::Seconds(6);
};

class Chaos {
 public:
  Chaos(ChaosTargets targets, uint64_t seed);

  // One fault and its repair (a restart, a SIGCONT), logged. A reshard is left running. An
  // error is the harness failing (a process that does not come back), not ferry.
  absl::Status Step();
  // How long to wait before the next Step: 1 to 5 s.
  absl::Duration NextPause();
  // Everything running again: the reshard finished (exit 0), the controller and targets.agents
  // agents up, the cluster healthy.
  absl::Status Heal();
  // A new copy job starts (call before it is planned): the target's primaries now are the
  // nodes it writes to.
  void NewRound(int round);

  const std::vector<std::string>& log() const { return log_; }
  int faults() const { return static_cast<int>(log_.size()); }

 private:
  absl::Status KillAgent(bool graceful);
  absl::Status KillController(bool graceful);
  absl::Status StopServer(RedisServer& server, const std::string& name, absl::Duration pause);
  absl::Status StopSource();
  absl::Status StopTarget();
  absl::Status RestartTargetNode();
  absl::Status FailOverTarget();
  absl::Status StartReshard();
  absl::Status ProxyFault();
  // Waits for the reshard in progress, if any; an error when it failed.
  absl::Status FinishReshard();
  bool Resharding();
  absl::Status StartAgents();
  absl::Duration Uniform(absl::Duration low, absl::Duration high);
  void Log(const std::string& line);

  ChaosTargets t_;
  std::mt19937_64 rng_;
  const absl::Time start_;
  int round_ = 0;
  // Target nodes that were primaries since the round began: never restarted in it.
  std::set<int> written_;
  absl::Time last_failover_ = absl::InfinitePast();
  std::optional<Subprocess> reshard_;
  std::vector<std::string> log_;
};

}  // namespace ferry::testing
