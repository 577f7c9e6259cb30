// `ferry preflight` (preflight_report.h RunPreflight): the job's checks with every finding
// collected, and an estimate of the copy's duration from a measured sample.

#include <algorithm>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "common/base/status_macros.h"
#include "common/redis/connection.h"
#include "common/redis/endpoint.h"
#include "server/planner_internal.h"
#include "server/preflight_report.h"

namespace ferry::server {
namespace {

// Keys read for the estimate: enough to time, few enough that preflight stays short.
constexpr size_t kSampleKeys = 2000;
constexpr int kSampleScanRounds = 40;

// What reading the sample took.
struct Sample {
  size_t keys = 0;
  uint64_t bytes = 0;  // DUMP payloads.
  absl::Duration took;
};

// The node and database the sample is read from: the first with keys to copy.
std::optional<redis::Endpoint> SampleNode(const PlanRequest& request, const Plan& plan) {
  redis::Endpoint endpoint = request.source;
  for (const ferry::v1::ShardRef& shard : plan.shards) {
    if (shard.watch() || shard.reverse()) continue;
    if (!shard.source_node().empty()) {
      std::optional<redis::HostPort> node = redis::ParseAddress(shard.source_node());
      if (!node.has_value()) return std::nullopt;
      endpoint.host = node->host.empty() ? endpoint.host : node->host;
      endpoint.port = node->port;
      endpoint.db.reset();
    } else {
      endpoint.db = shard.source_db();
    }
    return endpoint;
  }
  return std::nullopt;
}

// SCAN (with the job's MATCH) until kSampleKeys keys, then MEMORY USAGE of each, then PTTL and
// DUMP of those not above big_key_bytes, pipelined as the agents read: all timed.
absl::StatusOr<Sample> ReadSample(const PlanRequest& request, const redis::Endpoint& node) {
  FERRY_ASSIGN_OR_RETURN(redis::Connection conn, redis::Connection::Open(node, request.connect));
  const absl::Time start = absl::Now();
  std::vector<std::string> keys;
  std::string cursor = "0";
  for (int round = 0; round < kSampleScanRounds && keys.size() < kSampleKeys; ++round) {
    std::vector<absl::string_view> argv = {"SCAN", cursor, "COUNT", "500"};
    if (!request.match.empty()) argv.insert(argv.end(), {"MATCH", request.match});
    FERRY_ASSIGN_OR_RETURN(redis::Reply reply, conn.Command(absl::MakeConstSpan(argv)));
    if (!reply.is_array() || reply.size() != 2) break;
    for (size_t i = 0; i < reply.element(1).size(); ++i) {
      keys.emplace_back(reply.element(1).element(i).str());
    }
    cursor = std::string(reply.element(0).str());
    if (cursor == "0") break;
  }
  if (keys.size() > kSampleKeys) keys.resize(kSampleKeys);
  std::vector<std::vector<std::string>> usage;
  for (const std::string& key : keys) usage.push_back({"MEMORY", "USAGE", key});
  FERRY_ASSIGN_OR_RETURN(std::vector<redis::Reply> sizes, redis::RunPipeline(conn, usage));
  std::vector<std::vector<std::string>> reads;
  for (size_t i = 0; i < keys.size(); ++i) {
    if (sizes[i].is_integer() &&
        static_cast<uint64_t>(sizes[i].integer()) > request.big_key_bytes) {
      continue;  // Copied in chunks: never read whole, not here either.
    }
    reads.push_back({"PTTL", keys[i]});
    reads.push_back({"DUMP", keys[i]});
  }
  FERRY_ASSIGN_OR_RETURN(std::vector<redis::Reply> replies, redis::RunPipeline(conn, reads));
  Sample sample;
  sample.took = absl::Now() - start;
  sample.keys = keys.size();
  for (size_t i = 1; i < replies.size(); i += 2) {
    if (replies[i].is_error()) {
      return absl::PermissionDeniedError(absl::StrCat("DUMP: ", replies[i].str()));
    }
    if (!replies[i].is_nil()) sample.bytes += replies[i].str().size();
  }
  return sample;
}

std::string Duration(absl::Duration d) {
  const double seconds = absl::ToDoubleSeconds(d);
  if (seconds < 1) return "under a second";
  if (seconds < 120) return absl::StrFormat("about %.0f s", seconds);
  if (seconds < 7200) return absl::StrFormat("about %.0f min", seconds / 60);
  return absl::StrFormat("about %.1f h", seconds / 3600);
}

// How long the copy may take, from a sample read as the agents read: the read rate of one
// connection, times the keys, over the shards read at once on a node, and as long again for the
// writes (an estimate: the target, the network and the values decide).
void EstimateDuration(const PlanRequest& request, const Plan& plan, Findings& findings) {
  if (plan.estimated_keys == 0) {
    findings.Info(check::kEstimate, "no keys to copy: the snapshot is immediate");
    return;
  }
  std::optional<redis::Endpoint> node = SampleNode(request, plan);
  if (!node.has_value()) return;
  absl::StatusOr<Sample> sample = ReadSample(request, *node);
  if (!sample.ok() || sample->keys == 0 || sample->took <= absl::ZeroDuration()) {
    findings.Info(check::kEstimate,
                  absl::StrCat("no estimate of the copy's duration: ",
                               sample.ok() ? "the sample found no key"
                                           : std::string(sample.status().message())));
    return;
  }
  std::map<std::string, int> shards_per_node;
  for (const ferry::v1::ShardRef& shard : plan.shards) {
    if (!shard.watch() && !shard.reverse()) ++shards_per_node[shard.source_node()];
  }
  int at_once = 1;
  for (const auto& [address, shards] : shards_per_node) {
    at_once = std::max(at_once, std::min(shards, std::max(request.parallel, 1)));
  }
  const double per_key = absl::ToDoubleSeconds(sample->took) / static_cast<double>(sample->keys);
  const double read = per_key * static_cast<double>(plan.estimated_keys);
  const double copy = 2 * read / at_once / std::max<size_t>(shards_per_node.size(), 1);
  findings.Info(
      check::kEstimate,
      absl::StrCat("the copy may take ", Duration(absl::Seconds(copy)),
                   " (an estimate: ", sample->keys,
                   " keys read with SCAN, MEMORY USAGE, PTTL "
                   "and DUMP in ",
                   absl::FormatDuration(absl::Trunc(sample->took, absl::Milliseconds(1))), ", ",
                   sample->bytes / sample->keys, " bytes each; ", plan.estimated_keys,
                   " keys at that rate, ", at_once, at_once == 1 ? " shard" : " shards",
                   " at once per source node, and as long again for the writes)"));
}

}  // namespace

PreflightReport RunPreflight(const PlanRequest& request) {
  Findings findings(/*collect_all=*/true);
  Plan plan;
  CheckAndPlan(request, findings, plan);
  bool errors = false;
  for (const Finding& f : findings.all()) errors = errors || f.severity == Severity::kError;
  // Nothing to sample when the source could not be planned.
  if (!plan.shards.empty() || !errors) EstimateDuration(request, plan, findings);
  PreflightReport report;
  report.findings = findings.all();
  report.source_keys = plan.estimated_keys;
  for (const ferry::v1::ShardRef& shard : plan.shards) {
    if (!shard.watch() && !shard.reverse()) ++report.shards;
  }
  return report;
}

}  // namespace ferry::server
