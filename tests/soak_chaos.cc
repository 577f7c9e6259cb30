#include "tests/soak_chaos.h"

#include <signal.h>

#include <algorithm>
#include <iostream>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/base/status_macros.h"

namespace ferry::testing {
namespace {

// Relative weights of the faults, in Step()'s order.
constexpr int kWeights[] = {
    3,  // SIGKILL an agent
    2,  // SIGTERM an agent
    2,  // SIGKILL the controller
    1,  // SIGTERM the controller
    2,  // SIGSTOP a source
    2,  // SIGSTOP a target
    1,  // restart a target cluster node (a replica)
    1,  // fail a target primary over to its replica
    1,  // reshard the target
    5,  // a proxy fault
};

}  // namespace

Chaos::Chaos(ChaosTargets targets, uint64_t seed) : t_(targets), rng_(seed), start_(absl::Now()) {}

void Chaos::Log(const std::string& line) {
  const std::string stamped =
      absl::StrCat("+", absl::FormatDuration(absl::Trunc(absl::Now() - start_, absl::Seconds(1))),
                   " [round ", round_, "] ", line);
  std::cout << "soak: " << stamped << std::endl;
  log_.push_back(stamped);
}

absl::Duration Chaos::Uniform(absl::Duration low, absl::Duration high) {
  const double f = std::uniform_real_distribution<double>(0, 1)(rng_);
  return absl::Trunc(low + (high - low) * f, absl::Milliseconds(1));
}

absl::Duration Chaos::NextPause() { return Uniform(absl::Seconds(1), absl::Seconds(5)); }

void Chaos::NewRound(int round) {
  round_ = round;
  written_.clear();
  absl::StatusOr<std::vector<int>> primaries = t_.copy_target->PrimaryIndices();
  if (primaries.ok()) written_.insert(primaries->begin(), primaries->end());
}

absl::Status Chaos::Step() {
  std::discrete_distribution<int> pick(std::begin(kWeights), std::end(kWeights));
  switch (pick(rng_)) {
    case 0:
      return KillAgent(/*graceful=*/false);
    case 1:
      return KillAgent(/*graceful=*/true);
    case 2:
      return KillController(/*graceful=*/false);
    case 3:
      return KillController(/*graceful=*/true);
    case 4:
      return StopSource();
    case 5:
      return StopTarget();
    case 6:
      return RestartTargetNode();
    case 7:
      return FailOverTarget();
    case 8:
      return StartReshard();
    default:
      return ProxyFault();
  }
}

absl::Status Chaos::StartAgents() {
  int running = 0;
  for (int i = 0; i < t_.fleet->agent_count(); ++i) running += t_.fleet->agent(i).running();
  for (; running < t_.agents; ++running) {
    absl::StatusOr<int> index = t_.fleet->StartAgent(t_.agent_slots);
    if (!index.ok()) return index.status();
  }
  return absl::OkStatus();
}

absl::Status Chaos::KillAgent(bool graceful) {
  std::vector<int> running;
  for (int i = 0; i < t_.fleet->agent_count(); ++i) {
    if (t_.fleet->agent(i).running()) running.push_back(i);
  }
  if (running.empty()) return StartAgents();
  const int victim = running[std::uniform_int_distribution<size_t>(0, running.size() - 1)(rng_)];
  std::string how = "SIGKILL";
  if (graceful) {
    absl::StatusOr<int> code = t_.fleet->StopAgent(victim, absl::Seconds(60));
    if (!code.ok()) return Annotate(code.status(), "SIGTERM of an agent");
    how = absl::StrCat("SIGTERM (exit ", *code, ")");
  } else {
    t_.fleet->KillAgent(victim);
  }
  const absl::Duration down = Uniform(absl::Milliseconds(200), absl::Seconds(3));
  absl::SleepFor(down);
  FERRY_RETURN_IF_ERROR(StartAgents());
  Log(absl::StrCat(how, " ", t_.fleet->agent_name(victim), ", a new agent after ",
                   absl::FormatDuration(down)));
  return absl::OkStatus();
}

absl::Status Chaos::KillController(bool graceful) {
  std::string how = "SIGKILL";
  if (graceful) {
    absl::StatusOr<int> code = t_.fleet->StopController(absl::Seconds(30));
    if (!code.ok()) return Annotate(code.status(), "SIGTERM of the controller");
    how = absl::StrCat("SIGTERM (exit ", *code, ")");
  } else {
    t_.fleet->KillController();
  }
  const absl::Duration down = Uniform(absl::Milliseconds(200), absl::Seconds(3));
  absl::SleepFor(down);
  FERRY_RETURN_IF_ERROR(t_.fleet->StartController());
  Log(absl::StrCat(how, " the controller, restarted after ", absl::FormatDuration(down)));
  return absl::OkStatus();
}

absl::Status Chaos::StopServer(RedisServer& server, const std::string& name, absl::Duration pause) {
  if (kill(server.pid(), SIGSTOP) != 0) return absl::InternalError("SIGSTOP " + name);
  absl::SleepFor(pause);
  if (kill(server.pid(), SIGCONT) != 0) return absl::InternalError("SIGCONT " + name);
  Log(absl::StrCat("SIGSTOP ", name, " for ", absl::FormatDuration(pause)));
  return absl::OkStatus();
}

absl::Status Chaos::StopSource() {
  const bool live = std::bernoulli_distribution(0.5)(rng_);
  return StopServer(live ? *t_.live_source : *t_.copy_source,
                    live ? "the live source" : "the copy source",
                    Uniform(absl::Seconds(1), absl::Seconds(4)));
}

// A cluster node only while no reshard runs: a node stopped under redis-cli's MIGRATE can
// leave slots half moved, which is the test tool failing, not ferry.
absl::Status Chaos::StopTarget() {
  if (std::bernoulli_distribution(0.5)(rng_) || Resharding()) {
    return StopServer(*t_.live_target, "the live target",
                      Uniform(absl::Seconds(1), absl::Seconds(3)));
  }
  const absl::Duration pause = Uniform(absl::Milliseconds(500), t_.node_timeout * 0.4);
  absl::StatusOr<std::vector<int>> primaries = t_.copy_target->PrimaryIndices();
  if (!primaries.ok()) return primaries.status();
  const int node =
      (*primaries)[std::uniform_int_distribution<size_t>(0, primaries->size() - 1)(rng_)];
  return StopServer(t_.copy_target->node(node), absl::StrCat("target primary node ", node), pause);
}

// A replica that no copy of this round wrote to (never a primary since the round began) dies
// and restarts empty, then resyncs. A node the job wrote to is never restarted: its guard would
// rightly refuse another process at that address (see the soak's notes in ARCHITECTURE.md).
absl::Status Chaos::RestartTargetNode() {
  FERRY_RETURN_IF_ERROR(FinishReshard());
  absl::StatusOr<std::vector<int>> primaries = t_.copy_target->PrimaryIndices();
  if (!primaries.ok()) return primaries.status();
  std::vector<int> candidates;
  for (int i = 0; i < static_cast<int>(t_.copy_target->nodes().size()); ++i) {
    if (written_.count(i) == 0 &&
        std::find(primaries->begin(), primaries->end(), i) == primaries->end()) {
      candidates.push_back(i);
    }
  }
  if (candidates.empty()) return FailOverTarget();
  const int index =
      candidates[std::uniform_int_distribution<size_t>(0, candidates.size() - 1)(rng_)];
  RedisServer& node = t_.copy_target->node(index);
  node.Kill();
  FERRY_RETURN_IF_ERROR(node.Restart(/*keep_data=*/false));
  FERRY_RETURN_IF_ERROR(t_.copy_target->WaitHealthy(absl::Seconds(90)));
  Log(absl::StrCat("target replica node ", index, " killed and restarted empty (resynced)"));
  return absl::OkStatus();
}

// CLUSTER FAILOVER on a primary's replica: nothing acknowledged is lost.
absl::Status Chaos::FailOverTarget() {
  if (absl::Now() - last_failover_ < t_.node_timeout * 3) return ProxyFault();
  FERRY_RETURN_IF_ERROR(FinishReshard());
  absl::StatusOr<std::vector<int>> primaries = t_.copy_target->PrimaryIndices();
  if (!primaries.ok()) return primaries.status();
  const int old_primary =
      (*primaries)[std::uniform_int_distribution<size_t>(0, primaries->size() - 1)(rng_)];
  absl::StatusOr<int> new_primary = t_.copy_target->Failover(old_primary);
  if (!new_primary.ok()) return Annotate(new_primary.status(), "failover");
  written_.insert(*new_primary);
  last_failover_ = absl::Now();
  Log(absl::StrCat("target node ", old_primary, " failed over to its replica, node ",
                   *new_primary));
  return absl::OkStatus();
}

bool Chaos::Resharding() { return reshard_.has_value() && !reshard_->TryWait().has_value(); }

absl::Status Chaos::FinishReshard() {
  if (!reshard_.has_value()) return absl::OkStatus();
  absl::StatusOr<int> code = reshard_->Wait(absl::Minutes(5));
  reshard_.reset();
  if (!code.ok() || *code != 0) {
    return absl::InternalError(absl::StrCat("redis-cli --cluster reshard failed (",
                                            code.ok() ? absl::StrCat(*code) : "still running",
                                            "): ", FileTail(t_.copy_target->tool_log())));
  }
  return t_.copy_target->WaitHealthy(absl::Seconds(90));
}

absl::Status Chaos::StartReshard() {
  if (Resharding()) return ProxyFault();
  FERRY_RETURN_IF_ERROR(FinishReshard());
  absl::StatusOr<std::vector<int>> primaries = t_.copy_target->PrimaryIndices();
  if (!primaries.ok()) return primaries.status();
  if (primaries->size() < 2) return absl::InternalError("fewer than 2 target primaries");
  const size_t from = std::uniform_int_distribution<size_t>(0, primaries->size() - 1)(rng_);
  const size_t to = (from + 1) % primaries->size();
  const int slots = std::uniform_int_distribution<int>(50, 800)(rng_);
  absl::StatusOr<Subprocess> reshard =
      t_.copy_target->Reshard(slots, (*primaries)[from], (*primaries)[to]);
  if (!reshard.ok()) return reshard.status();
  reshard_ = *std::move(reshard);
  Log(absl::StrCat("reshard: ", slots, " slots from target node ", (*primaries)[from], " to node ",
                   (*primaries)[to], " (in the background)"));
  return absl::OkStatus();
}

absl::Status Chaos::ProxyFault() {
  const bool live = std::bernoulli_distribution(0.5)(rng_);
  FaultProxy* proxy = live ? t_.live_proxy : t_.copy_proxy;
  Fault fault = proxy->DrawFault();
  // Live sync's watcher is what drop-subscribers is for; the copy proxy has none.
  if (!live && fault.kind == FaultKind::kDropSubscribers) fault.kind = FaultKind::kReset;
  const int hit = proxy->Inject(fault);
  Log(absl::StrCat(live ? "live" : "copy", " source proxy: ", proxy->log().back(), " (", hit,
                   " hit)"));
  return absl::OkStatus();
}

absl::Status Chaos::Heal() {
  FERRY_RETURN_IF_ERROR(FinishReshard());
  for (RedisServer* server : {t_.copy_source, t_.live_source, t_.live_target}) {
    kill(server->pid(), SIGCONT);
  }
  FERRY_RETURN_IF_ERROR(StartAgents());
  FERRY_RETURN_IF_ERROR(t_.fleet->WaitForAgents(t_.agents, absl::Seconds(60)));
  return t_.copy_target->WaitHealthy(absl::Seconds(90));
}

}  // namespace ferry::testing
