#include "agent/stream_copy.h"

#include <algorithm>
#include <limits>
#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "agent/shard_reader.h"
#include "common/base/status_macros.h"
#include "common/redis/errors.h"

namespace ferry::agent {
namespace {

using redis::Reply;
using redis::ReplyView;

// A consumer group as XINFO GROUPS describes it.
struct Group {
  std::string name;
  std::string last_delivered_id;
  std::string entries_read;  // Empty: unknown, or the source has no stream counters.
};

// From an XINFO GROUPS element or a group of XINFO STREAM FULL.
Group ParseGroup(ReplyView map) {
  return {FieldText(map, "name").value_or(""), FieldText(map, "last-delivered-id").value_or("0-0"),
          FieldText(map, "entries-read").value_or("")};
}

// Where the commands that build a stream go, and what the two sides have: the one description
// both the paged copy and the batch rebuild queue their commands through.
struct StreamTarget {
  redis::Router& router;
  absl::string_view tmp;
  bool counters;         // Both sides have the stream counters (ENTRIESADDED, ENTRIESREAD).
  bool create_consumer;  // The target has XGROUP CREATECONSUMER.
  ArgArena& arena;
};

StreamTarget TargetOf(KeyPages& pages) {
  return {pages.target, pages.tmp,
          pages.source_caps.stream_counters() && pages.target_caps.stream_counters(),
          pages.target_caps.xgroup_createconsumer(), pages.arena};
}

using StreamId = std::pair<uint64_t, uint64_t>;
using StreamIds = std::set<StreamId>;

// "ms-seq"; nullopt for anything else.
std::optional<StreamId> ParseId(absl::string_view id) {
  StreamId parsed;
  const size_t dash = id.find('-');
  if (dash == absl::string_view::npos || !absl::SimpleAtoi(id.substr(0, dash), &parsed.first) ||
      !absl::SimpleAtoi(id.substr(dash + 1), &parsed.second)) {
    return std::nullopt;
  }
  return parsed;
}

// ---- The commands that build a stream, shared by the paged copy and the batch rebuild.

// Queues XADDs of the deleted pending entries `phantoms` from `*next` up to (not including)
// `before`, so that XCLAIM finds them; they are deleted again once claimed (QueueDeletePhantoms).
void QueuePhantoms(const StreamTarget& out, const StreamIds& phantoms,
                   StreamIds::const_iterator* next, std::optional<StreamId> before) {
  for (; *next != phantoms.end() && (!before || **next <= *before); ++*next) {
    if (before && **next == *before) continue;  // The entry exists.
    out.arena.push_back(absl::StrCat((*next)->first, "-", (*next)->second));
    out.router.Add({"XADD", out.tmp, out.arena.back(), "ferry", "deleted"});
  }
}

// Queues an XADD with its id of each of `entries` ([id, [field, value...]], as XRANGE and
// XINFO STREAM FULL give them), the phantoms in order among them, and with `last` the phantoms
// after them. Returns the bytes of the fields and values.
uint64_t QueueEntries(const StreamTarget& out, ReplyView entries, const StreamIds& phantoms,
                      StreamIds::const_iterator* next, bool last) {
  uint64_t bytes = 0;
  std::vector<absl::string_view> argv;
  for (size_t i = 0; i < entries.size(); ++i) {
    const ReplyView entry = entries.element(i);
    const ReplyView fields = entry.element(1);
    QueuePhantoms(out, phantoms, next, ParseId(entry.element(0).str()));
    argv = {"XADD", out.tmp, entry.element(0).str()};
    for (size_t f = 0; f < fields.size(); ++f) {
      argv.push_back(fields.element(f).str());
      bytes += fields.element(f).str().size();
    }
    out.router.Add(argv);
  }
  if (last) QueuePhantoms(out, phantoms, next, std::nullopt);
  return bytes;
}

// Gives `tmp` the source's last id and counters. An empty stream is created first by an entry
// trimmed at once; XSETID then sets any last id (an empty stream has no top entry to respect)
// and, where both sides have them, the counters that entry moved.
// Copies the strings of `info` to the arena, as QueueGroup does.
void QueueLastId(const StreamTarget& out, const StreamInfo& info, bool has_entries) {
  if (!has_entries) out.router.Add({"XADD", out.tmp, "MAXLEN", "0", "0-1", "f", "v"});
  std::vector<absl::string_view> argv = {"XSETID", out.tmp, out.arena.emplace_back(info.last_id)};
  if (out.counters && !info.entries_added.empty()) {
    argv.insert(argv.end(), {"ENTRIESADDED", out.arena.emplace_back(info.entries_added),
                             "MAXDELETEDID", out.arena.emplace_back(info.max_deleted_id)});
  }
  out.router.Add(argv);
}

// Copies the group's strings to the arena: the batch rebuild's Group is gone before the
// Execute.
void QueueGroup(const StreamTarget& out, const Group& group) {
  std::vector<absl::string_view> argv = {"XGROUP", "CREATE", out.tmp,
                                         out.arena.emplace_back(group.name),
                                         out.arena.emplace_back(group.last_delivered_id)};
  if (out.counters && !group.entries_read.empty()) {
    argv.insert(argv.end(), {"ENTRIESREAD", out.arena.emplace_back(group.entries_read)});
  }
  out.router.Add(argv);
}

// Where the target can create a consumer without a pending entry (the others appear with
// their first pending entry).
void QueueConsumer(const StreamTarget& out, absl::string_view group, absl::string_view consumer) {
  if (!out.create_consumer) return;
  out.router.Add({"XGROUP", "CREATECONSUMER", out.tmp, group, consumer});
}

// Pending entry `id` of `group`, owned by `consumer`, idle `idle_ms` and delivered `deliveries`
// times.
void QueueClaim(const StreamTarget& out, absl::string_view group, absl::string_view consumer,
                absl::string_view id, int64_t idle_ms, int64_t deliveries) {
  const absl::string_view idle = out.arena.emplace_back(absl::StrCat(idle_ms));
  const absl::string_view count = out.arena.emplace_back(absl::StrCat(deliveries));
  out.router.Add({"XCLAIM", out.tmp, group, consumer, "0", id, "IDLE", idle, "RETRYCOUNT", count,
                  "FORCE", "JUSTID"});
}

// Deletes the phantoms once they are claimed, then sets the last id and counters again (XDEL
// moved them).
void QueueDeletePhantoms(const StreamTarget& out, const StreamIds& phantoms,
                         const StreamInfo& info) {
  std::vector<absl::string_view> argv = {"XDEL", out.tmp};
  for (const StreamId& id : phantoms) {
    argv.push_back(out.arena.emplace_back(absl::StrCat(id.first, "-", id.second)));
  }
  out.router.Add(argv);
  QueueLastId(out, info, /*has_entries=*/true);
}

// ---- The paged copy.

// XADDs the entries up to `last_id` page by page (and the phantoms of deleted pending
// entries); returns whether there were any.
absl::StatusOr<bool> CopyEntries(KeyPages& pages, const std::string& last_id) {
  const StreamTarget out = TargetOf(pages);
  std::string start = "-";
  int count = pages.options.page_elements;
  auto phantom = pages.deleted_pending.cbegin();
  bool any = !pages.deleted_pending.empty();
  while (true) {
    const std::string count_text = absl::StrCat(count);
    FERRY_ASSIGN_OR_RETURN(Reply page,
                           pages.Read({"XRANGE", pages.key, start, last_id, "COUNT", count_text}));
    const bool last = page.size() < static_cast<size_t>(count);
    const uint64_t page_bytes = QueueEntries(out, page, pages.deleted_pending, &phantom, last);
    if (pages.target.queued() > 0) FERRY_RETURN_IF_ERROR(pages.Write("XADD").status());
    pages.bytes += page_bytes;
    any = any || page.size() > 0;
    if (last) return any;
    start = RangeStartAfter(pages.source_caps, page.element(page.size() - 1).element(0).str());
    count = pages.NextCount(page.size(), page_bytes);
  }
}

absl::StatusOr<std::vector<Group>> ReadGroups(KeyPages& pages) {
  FERRY_ASSIGN_OR_RETURN(Reply reply, pages.Read({"XINFO", "GROUPS", pages.key}));
  std::vector<Group> groups;
  for (size_t i = 0; i < reply.size(); ++i) groups.push_back(ParseGroup(reply.element(i)));
  return groups;
}

// The group, and its consumers where the target can create them.
absl::Status CreateGroup(KeyPages& pages, const Group& group) {
  const StreamTarget out = TargetOf(pages);
  QueueGroup(out, group);
  Reply consumers;
  if (out.create_consumer) {
    FERRY_ASSIGN_OR_RETURN(consumers, pages.Read({"XINFO", "CONSUMERS", pages.key, group.name}));
    for (size_t i = 0; i < consumers.size(); ++i) {
      pages.arena.push_back(FieldText(consumers.element(i), "name").value_or(""));
      QueueConsumer(out, group.name, pages.arena.back());
    }
  }
  return pages.Write("XGROUP").status();
}

// Claims one page of XPENDING (id, consumer, idle ms, deliveries) for the same consumers.
absl::Status ClaimPage(KeyPages& pages, const Group& group, ReplyView page) {
  const StreamTarget out = TargetOf(pages);
  for (size_t i = 0; i < page.size(); ++i) {
    const ReplyView pending = page.element(i);
    QueueClaim(out, group.name, pending.element(1).str(), pending.element(0).str(),
               pending.element(2).integer(), pending.element(3).integer());
  }
  FERRY_ASSIGN_OR_RETURN(std::vector<Reply> claimed, pages.Write("XCLAIM"));
  for (size_t i = 0; i < claimed.size(); ++i) {
    if (claimed[i].size() == 1) continue;
    // Deleted from the stream: written as an entry by the next pass, unless this pass did.
    const std::optional<StreamId> id = ParseId(page.element(i).element(0).str());
    if (!id.has_value() || !pages.deleted_pending.insert(*id).second) {
      pages.refusal = absl::StrCat("a stream whose group '", group.name,
                                   "' has a pending entry that XCLAIM cannot recreate");
      break;
    }
    pages.again = true;
  }
  return absl::OkStatus();
}

absl::Status CopyPending(KeyPages& pages, const Group& group) {
  std::string start = "-";
  const int count = pages.options.page_elements;
  const std::string count_text = absl::StrCat(count);
  while (!pages.refusal.has_value()) {
    FERRY_ASSIGN_OR_RETURN(Reply page,
                           pages.Read({"XPENDING", pages.key, group.name, start, "+", count_text}));
    if (page.size() == 0) break;
    FERRY_RETURN_IF_ERROR(ClaimPage(pages, group, page));
    if (page.size() < static_cast<size_t>(count)) break;
    start = RangeStartAfter(pages.source_caps, page.element(page.size() - 1).element(0).str());
  }
  return absl::OkStatus();
}

// ---- The batch rebuild.

// The pending entries of `groups` (XINFO STREAM FULL) whose entry is not among `entries`.
StreamIds DeletedPending(ReplyView entries, ReplyView groups) {
  StreamIds deleted;
  for (size_t g = 0; g < groups.size(); ++g) {
    const ReplyView pel = FieldValue(groups.element(g), "pending");
    for (size_t p = 0; p < pel.size(); ++p) {
      if (std::optional<StreamId> id = ParseId(pel.element(p).element(0).str())) {
        deleted.insert(*id);
      }
    }
  }
  for (size_t i = 0; i < entries.size() && !deleted.empty(); ++i) {
    if (std::optional<StreamId> id = ParseId(entries.element(i).element(0).str())) {
      deleted.erase(*id);
    }
  }
  return deleted;
}

// A group of XINFO STREAM FULL with its consumers and pending entries ("pending": [id,
// consumer, delivery-time, delivery-count]). Names and ids are views of `map`, which outlives the
// Execute.
void QueueFullGroup(const StreamTarget& out, ReplyView map, int64_t source_now_ms) {
  QueueGroup(out, ParseGroup(map));
  const absl::string_view name = FieldValue(map, "name").str();
  const ReplyView consumers = FieldValue(map, "consumers");
  for (size_t c = 0; c < consumers.size(); ++c) {
    QueueConsumer(out, name, FieldValue(consumers.element(c), "name").str());
  }
  const ReplyView pel = FieldValue(map, "pending");
  for (size_t p = 0; p < pel.size(); ++p) {
    const ReplyView pending = pel.element(p);
    const int64_t idle = std::max<int64_t>(source_now_ms - pending.element(2).integer(), 0);
    QueueClaim(out, name, pending.element(1).str(), pending.element(0).str(), idle,
               pending.element(3).integer());
  }
}

// Appends a length-prefixed form of `reply` (bulk strings and arrays) to `out`.
void SerializeReply(ReplyView reply, std::string* out) {
  if (!reply.is_array()) {
    absl::StrAppend(out, reply.str().size(), ":", reply.str());
    return;
  }
  absl::StrAppend(out, "*", reply.size(), ":");
  for (size_t i = 0; i < reply.size(); ++i) SerializeReply(reply.element(i), out);
}

// Appends the fields `names` of the flat field/value array `map` to `out`.
void AppendFields(ReplyView map, std::initializer_list<absl::string_view> names, std::string* out) {
  for (absl::string_view name : names) {
    absl::StrAppend(out, name, "=", FieldText(map, name).value_or("nil"), ";");
  }
}

}  // namespace

ReplyView FieldValue(ReplyView map, absl::string_view name) {
  for (size_t i = 0; i + 1 < map.size(); i += 2) {
    if (map.element(i).str() == name) return map.element(i + 1);
  }
  return ReplyView(nullptr);
}

std::optional<std::string> FieldText(ReplyView map, absl::string_view name) {
  const ReplyView value = FieldValue(map, name);
  if (value.is_integer()) return absl::StrCat(value.integer());
  if (value.is_nil()) return std::nullopt;
  return std::string(value.str());
}

std::string RangeStartAfter(const redis::Capabilities& caps, absl::string_view id) {
  if (caps.exclusive_ranges()) return absl::StrCat("(", id);
  const std::optional<StreamId> parsed = ParseId(id);
  // Not an id Redis writes: the page is read again, nothing is lost.
  if (!parsed.has_value()) return std::string(id);
  if (parsed->second == std::numeric_limits<uint64_t>::max()) {
    return absl::StrCat(parsed->first + 1, "-0");
  }
  return absl::StrCat(parsed->first, "-", parsed->second + 1);
}

absl::StatusOr<std::optional<std::string>> StreamFingerprint(redis::Router& target,
                                                             absl::string_view key,
                                                             int max_elements) {
  const std::string limit = absl::StrCat(max_elements);
  target.Add({"XRANGE", key, "-", "+", "COUNT", limit});
  target.Add({"XINFO", "STREAM", key});
  target.Add({"XINFO", "GROUPS", key});
  FERRY_ASSIGN_OR_RETURN(std::vector<Reply> replies, target.Execute());
  const size_t page = static_cast<size_t>(max_elements);
  if (replies[0].is_error() || replies[1].is_error() || replies[2].is_error() ||
      replies[0].size() >= page) {
    return std::nullopt;
  }
  std::string fingerprint;
  SerializeReply(replies[0], &fingerprint);
  AppendFields(replies[1], {"length", "last-generated-id", "entries-added", "max-deleted-entry-id"},
               &fingerprint);
  for (size_t g = 0; g < replies[2].size(); ++g) {
    const ReplyView group = replies[2].element(g);
    AppendFields(group, {"name", "consumers", "pending", "last-delivered-id", "entries-read"},
                 &fingerprint);
    target.Add({"XPENDING", key, FieldValue(group, "name").str(), "-", "+", limit});
  }
  if (target.queued() == 0) return fingerprint;
  FERRY_ASSIGN_OR_RETURN(std::vector<Reply> pending, target.Execute());
  for (const Reply& entries : pending) {
    if (entries.is_error() || entries.size() >= page) return std::nullopt;
    for (size_t i = 0; i < entries.size(); ++i) {
      const ReplyView entry = entries.element(i);
      absl::StrAppend(&fingerprint, entry.element(0).str(), ",", entry.element(1).str().size(), ":",
                      entry.element(1).str(), "x", entry.element(3).integer(), ";");
    }
  }
  return fingerprint;
}

StreamInfo ParseStreamInfo(ReplyView xinfo) {
  StreamInfo info;
  info.last_id = FieldText(xinfo, "last-generated-id").value_or("0-0");
  info.entries_added = FieldText(xinfo, "entries-added").value_or("");
  info.max_deleted_id = FieldText(xinfo, "max-deleted-entry-id").value_or("0-0");
  return info;
}

absl::Status CopyStream(KeyPages& pages, const StreamInfo& info) {
  FERRY_ASSIGN_OR_RETURN(bool has_entries, CopyEntries(pages, info.last_id));
  QueueLastId(TargetOf(pages), info, has_entries);
  FERRY_RETURN_IF_ERROR(pages.Write("XSETID").status());
  FERRY_ASSIGN_OR_RETURN(std::vector<Group> groups, ReadGroups(pages));
  for (const Group& group : groups) {
    FERRY_RETURN_IF_ERROR(CreateGroup(pages, group));
    FERRY_RETURN_IF_ERROR(CopyPending(pages, group));
    if (pages.refusal.has_value()) return absl::OkStatus();
  }
  // A pass that found deleted pending entries read every group's: the next one is the last.
  if (pages.again || pages.deleted_pending.empty()) return absl::OkStatus();
  QueueDeletePhantoms(TargetOf(pages), pages.deleted_pending, info);
  return pages.Write("XDEL").status();
}

size_t AppendStreamRebuild(redis::Router& target, absl::string_view dest, ReplyView full,
                           const RebuildOptions& options, ArgArena& arena) {
  const size_t queued_before = target.queued();
  const bool known = options.source_caps != nullptr && options.target_caps != nullptr;
  const StreamTarget out = {
      target, dest,
      known && options.source_caps->stream_counters() && options.target_caps->stream_counters(),
      known && options.target_caps->xgroup_createconsumer(), arena};
  const ReplyView entries = FieldValue(full, "entries");
  const ReplyView groups = FieldValue(full, "groups");
  // The whole PEL is here: the entries XCLAIM needs are written in this one pass.
  const StreamIds phantoms = DeletedPending(entries, groups);
  auto next = phantoms.cbegin();
  QueueEntries(out, entries, phantoms, &next, /*last=*/true);
  const StreamInfo info = ParseStreamInfo(full);
  QueueLastId(out, info, entries.size() > 0 || !phantoms.empty());
  for (size_t g = 0; g < groups.size(); ++g) {
    QueueFullGroup(out, groups.element(g), options.source_now_ms);
  }
  if (!phantoms.empty()) QueueDeletePhantoms(out, phantoms, info);
  return target.queued() - queued_before;
}

uint64_t StreamEntryBytes(ReplyView full) {
  uint64_t bytes = 0;
  const ReplyView entries = FieldValue(full, "entries");
  for (size_t i = 0; i < entries.size(); ++i) {
    const ReplyView fields = entries.element(i).element(1);
    for (size_t f = 0; f < fields.size(); ++f) bytes += fields.element(f).str().size();
  }
  return bytes;
}

absl::StatusOr<Reply> KeyPages::Read(absl::Span<const absl::string_view> argv) {
  absl::StatusOr<Reply> reply = source.Command(argv);
  if (!reply.ok()) return Annotate(reply.status(), "source");
  return reply;
}

absl::StatusOr<std::vector<Reply>> KeyPages::Write(absl::string_view what) {
  absl::StatusOr<std::vector<Reply>> replies = target.Execute();
  arena.clear();
  if (!replies.ok()) return replies.status();
  for (const Reply& reply : *replies) {
    if (!reply.is_error()) continue;
    absl::Status status = ReplyStatus("target", what, reply);
    if (redis::Classify(status) == redis::ErrorClass::kRedirect) {
      return absl::UnavailableError(status.message());
    }
    return status;
  }
  return replies;
}

int KeyPages::NextCount(size_t elements, uint64_t page_bytes) const {
  const uint64_t per_element = std::max<uint64_t>(page_bytes / std::max<size_t>(elements, 1), 1);
  const uint64_t fits = std::max<uint64_t>(options.chunk_bytes / per_element, 1);
  return static_cast<int>(std::min<uint64_t>(fits, options.page_elements));
}

}  // namespace ferry::agent
