#include "cli/live.h"

#include <algorithm>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"

namespace ferry::cli {
namespace {

using ferry::v1::JobState;
using ferry::v1::LiveProgress;
using ferry::v1::NodeLive;

// Nodes not in sync named in the live line; the others are counted.
constexpr size_t kNodesNamed = 3;

std::string Lag(int64_t ms) {
  if (ms < 1000) return absl::StrCat(std::max<int64_t>(ms, 0), " ms");
  return absl::StrFormat("%.1f s", ms / 1000.0);
}

std::string Bytes(uint64_t n) {
  if (n >= 1'000'000'000) return absl::StrFormat("%.1f GB", n / 1e9);
  if (n >= 1'000'000) return absl::StrFormat("%.1f MB", n / 1e6);
  if (n >= 1'000) return absl::StrFormat("%.1f kB", n / 1e3);
  return absl::StrCat(n, " B");
}

// "1 gap", "2 gaps".
std::string Counted(uint64_t n, absl::string_view noun) {
  return absl::StrCat(CountText(n), " ", noun, n == 1 ? "" : "s");
}

std::string DirtyKeys(const LiveProgress& l) {
  std::string out = Counted(l.dirty_keys(), "dirty key");
  if (l.dirty_keys() > 0) absl::StrAppend(&out, " (", Bytes(l.dirty_bytes()), ")");
  return out;
}

std::string GapsAndRescans(const LiveProgress& l) {
  return absl::StrCat(Counted(l.gaps(), "gap"), ", ", Counted(l.rescans(), "rescan"));
}

// "rescanning 10.0.0.5:6379 db 0 (subscription dropped)", "10.0.0.5:6379 db 0 subscribing".
std::string NodeNotInSync(const NodeLive& n) {
  const std::string where = absl::StrCat(n.node(), " db ", n.db());
  if (n.state() != "rescanning") {
    return absl::StrCat(where, " ", n.state().empty() ? "not in sync" : n.state());
  }
  std::string out = absl::StrCat("rescanning ", where);
  if (!n.status().last_gap().empty()) absl::StrAppend(&out, " (", n.status().last_gap(), ")");
  return out;
}

std::string NotInSync(const LiveProgress& l) {
  std::vector<std::string> named;
  size_t others = 0;
  for (const NodeLive& n : l.nodes()) {
    if (n.in_sync()) continue;
    if (named.size() < kNodesNamed) {
      named.push_back(NodeNotInSync(n));
    } else {
      ++others;
    }
  }
  std::string out = "not in sync";
  if (!named.empty()) absl::StrAppend(&out, ": ", absl::StrJoin(named, ", "));
  if (others > 0) absl::StrAppend(&out, " and ", others, " more");
  return out;
}

std::string JsonText(const std::string& text) { return text.empty() ? "null" : JsonString(text); }

std::string NodeJson(const NodeLive& n) {
  const ferry::v1::LiveStatus& s = n.status();
  return absl::StrCat(
      "{\"node\":", JsonString(n.node()), ",\"db\":", n.db(), ",\"state\":", JsonString(n.state()),
      ",\"in_sync\":", n.in_sync() ? "true" : "false", ",\"lag_ms\":", s.oldest_dirty_ms(),
      absl::StrFormat(",\"events_per_second\":%.1f", s.events_per_second()),
      ",\"dirty_keys\":", s.dirty_keys(), ",\"dirty_bytes\":", s.dirty_bytes(),
      ",\"gaps\":", s.gaps(), ",\"rescans\":", n.rescans(),
      ",\"last_gap\":", JsonText(s.last_gap()), "}");
}

}  // namespace

bool ShowsLiveLine(const ProgressSnapshot& s) {
  return s.live.has_value() &&
         (s.state == ferry::v1::JOB_STATE_LIVE || s.state == ferry::v1::JOB_STATE_CUTOVER ||
          s.state == ferry::v1::JOB_STATE_CUTOVER_READY);
}

std::string SnapshotLine(const ProgressSnapshot& s) {
  return absl::StrCat("snapshot: ", CountText(s.counters.copied()), " keys copied, ",
                      CountText(s.counters.failed()), " failed, shards ", s.shards_done, "/",
                      s.shards_total);
}

std::string LiveLine(JobState state, const LiveProgress& l) {
  const std::string lag = absl::StrCat("lag ", Lag(l.lag_ms()));
  const std::string events = absl::StrCat(RateText(l.events_per_second()), " events/s");
  if (state == ferry::v1::JOB_STATE_CUTOVER) {
    std::string out = "cutover: waiting for the markers";
    if (l.dirty_keys() > 0) {
      absl::StrAppend(&out, ", ", Counted(l.dirty_keys(), "dirty key"), " to drain");
    }
    return absl::StrCat(out, ", ", lag, ", ", events);
  }
  if (state == ferry::v1::JOB_STATE_CUTOVER_READY) {
    return absl::StrCat("cutover ready: converged, ", DirtyKeys(l), ", ", GapsAndRescans(l));
  }
  std::string out =
      absl::StrCat("live: ", lag, ", ", events, ", ", DirtyKeys(l), ", ", GapsAndRescans(l));
  absl::StrAppend(&out, l.in_sync() ? ", in sync" : absl::StrCat("; ", NotInSync(l)));
  return out;
}

std::string LiveReport(const LiveProgress& l) {
  std::string out =
      absl::StrCat("  while following: ", Counted(l.applied(), "key"), " written and ",
                   CountText(l.deleted()), " deleted on the target; ", GapsAndRescans(l), "\n");
  if (!l.cutover_error().empty()) {
    absl::StrAppend(&out, "  last cutover did not converge: ", l.cutover_error(), "\n");
  }
  if (!l.verify_job_id().empty()) {
    absl::StrAppend(&out, "  verification: job ", l.verify_job_id(), " (ferry watch ",
                    l.verify_job_id(), ")\n");
  }
  return out;
}

std::string LiveSection(JobState state, const LiveProgress& l) {
  std::string out = absl::StrCat("  ", LiveLine(state, l), "\n", LiveReport(l));
  if (l.nodes().empty()) return out;
  size_t width = 4;
  for (const NodeLive& n : l.nodes()) width = std::max(width, n.node().size());
  const auto row = [&](absl::string_view node, absl::string_view db, absl::string_view node_state,
                       absl::string_view lag, absl::string_view events, absl::string_view dirty,
                       absl::string_view gaps, absl::string_view rescans,
                       absl::string_view last_gap) {
    std::string line = absl::StrFormat("    %-*s  %-3s %-22s %-8s %-9s %-10s %-5s %-7s %s",
                                       static_cast<int>(width), node, db, node_state, lag, events,
                                       dirty, gaps, rescans, last_gap);
    line.erase(line.find_last_not_of(' ') + 1);
    return line + "\n";
  };
  absl::StrAppend(
      &out, row("NODE", "DB", "STATE", "LAG", "EVENTS/S", "DIRTY", "GAPS", "RESCANS", "LAST GAP"));
  for (const NodeLive& n : l.nodes()) {
    const ferry::v1::LiveStatus& s = n.status();
    absl::StrAppend(
        &out, row(n.node(), absl::StrCat(n.db()), n.state(), Lag(s.oldest_dirty_ms()),
                  RateText(s.events_per_second()), CountText(s.dirty_keys()), CountText(s.gaps()),
                  CountText(n.rescans()), s.last_gap().empty() ? "-" : s.last_gap()));
  }
  return out;
}

std::string LiveJson(const LiveProgress& l) {
  std::string out = absl::StrCat(
      "{\"in_sync\":", l.in_sync() ? "true" : "false", ",\"lag_ms\":", l.lag_ms(),
      absl::StrFormat(",\"events_per_second\":%.1f", l.events_per_second()),
      ",\"dirty_keys\":", l.dirty_keys(), ",\"dirty_bytes\":", l.dirty_bytes(),
      ",\"gaps\":", l.gaps(), ",\"rescans\":", l.rescans(), ",\"applied\":", l.applied(),
      ",\"deleted\":", l.deleted(), ",\"cutover_error\":", JsonText(l.cutover_error()),
      ",\"verify_job_id\":", JsonText(l.verify_job_id()), ",\"nodes\":[");
  for (int i = 0; i < l.nodes_size(); ++i) {
    absl::StrAppend(&out, i ? "," : "", NodeJson(l.nodes(i)));
  }
  return out + "]}";
}

}  // namespace ferry::cli
