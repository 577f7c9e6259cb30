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

// The value of `name` in a flat field/value array (XINFO replies) as text; nullopt when it is
// absent or nil.
std::optional<std::string> FieldText(ReplyView map, absl::string_view name) {
  for (size_t i = 0; i + 1 < map.size(); i += 2) {
    if (map.element(i).str() != name) continue;
    const ReplyView value = map.element(i + 1);
    if (value.is_integer()) return absl::StrCat(value.integer());
    if (value.is_nil()) return std::nullopt;
    return std::string(value.str());
  }
  return std::nullopt;
}

bool BothHaveCounters(const KeyPages& pages) {
  return pages.source_caps.stream_counters() && pages.target_caps.stream_counters();
}

using StreamId = std::pair<uint64_t, uint64_t>;

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

// The start of the range after entry `id`: `(id` where the source takes exclusive ranges, else
// the next possible id.
std::string After(const KeyPages& pages, absl::string_view id) {
  if (pages.source_caps.exclusive_ranges()) return absl::StrCat("(", id);
  const std::optional<StreamId> parsed = ParseId(id);
  // Not an id Redis writes: the page is read again, nothing is lost.
  if (!parsed.has_value()) return std::string(id);
  if (parsed->second == std::numeric_limits<uint64_t>::max()) {
    return absl::StrCat(parsed->first + 1, "-0");
  }
  return absl::StrCat(parsed->first, "-", parsed->second + 1);
}

// Queues XADDs of the deleted pending entries from `*next` up to (not including) `before`, so
// that XCLAIM finds them; they are deleted again once claimed (DeletePhantoms).
void AddPhantoms(KeyPages& pages, std::set<StreamId>::const_iterator* next,
                 std::optional<StreamId> before) {
  for (; *next != pages.deleted_pending.end() && (!before || **next <= *before); ++*next) {
    if (before && **next == *before) continue;  // The entry exists.
    pages.arena.push_back(absl::StrCat((*next)->first, "-", (*next)->second));
    pages.target.Add({"XADD", pages.tmp, pages.arena.back(), "ferry", "deleted"});
  }
}

// XADDs the entries up to `last_id` page by page (and the phantoms of deleted pending
// entries); returns whether there were any.
absl::StatusOr<bool> CopyEntries(KeyPages& pages, const std::string& last_id) {
  std::string start = "-";
  int count = pages.options.page_elements;
  auto phantom = pages.deleted_pending.cbegin();
  bool any = !pages.deleted_pending.empty();
  while (true) {
    const std::string count_text = absl::StrCat(count);
    FERRY_ASSIGN_OR_RETURN(Reply page,
                           pages.Read({"XRANGE", pages.key, start, last_id, "COUNT", count_text}));
    uint64_t page_bytes = 0;
    std::vector<absl::string_view> argv;
    for (size_t i = 0; i < page.size(); ++i) {
      const ReplyView entry = page.element(i);
      const ReplyView fields = entry.element(1);
      AddPhantoms(pages, &phantom, ParseId(entry.element(0).str()));
      argv = {"XADD", pages.tmp, entry.element(0).str()};
      for (size_t f = 0; f < fields.size(); ++f) {
        argv.push_back(fields.element(f).str());
        page_bytes += fields.element(f).str().size();
      }
      pages.target.Add(argv);
    }
    if (page.size() < static_cast<size_t>(count)) AddPhantoms(pages, &phantom, std::nullopt);
    if (pages.target.queued() > 0) FERRY_RETURN_IF_ERROR(pages.Write("XADD").status());
    pages.bytes += page_bytes;
    any = any || page.size() > 0;
    if (page.size() < static_cast<size_t>(count)) return any;
    start = After(pages, page.element(page.size() - 1).element(0).str());
    count = pages.NextCount(page.size(), page_bytes);
  }
}

// Gives `tmp` the source's last id and counters. An empty stream is created first by an entry
// trimmed at once; XSETID then sets any last id (an empty stream has no top entry to respect)
// and, where both sides have them, the counters that entry moved.
absl::Status SetLastId(KeyPages& pages, const StreamInfo& info, bool has_entries) {
  if (!has_entries) pages.target.Add({"XADD", pages.tmp, "MAXLEN", "0", "0-1", "f", "v"});
  std::vector<absl::string_view> argv = {"XSETID", pages.tmp, info.last_id};
  if (BothHaveCounters(pages) && !info.entries_added.empty()) {
    argv.insert(argv.end(),
                {"ENTRIESADDED", info.entries_added, "MAXDELETEDID", info.max_deleted_id});
  }
  pages.target.Add(argv);
  return pages.Write("XSETID").status();
}

absl::StatusOr<std::vector<Group>> ReadGroups(KeyPages& pages) {
  FERRY_ASSIGN_OR_RETURN(Reply reply, pages.Read({"XINFO", "GROUPS", pages.key}));
  std::vector<Group> groups;
  for (size_t i = 0; i < reply.size(); ++i) {
    const ReplyView g = reply.element(i);
    groups.push_back({FieldText(g, "name").value_or(""),
                      FieldText(g, "last-delivered-id").value_or("0-0"),
                      FieldText(g, "entries-read").value_or("")});
  }
  return groups;
}

// The group, and its consumers where the target can create them without a pending entry
// (the others appear with their first pending entry).
absl::Status CreateGroup(KeyPages& pages, const Group& group) {
  std::vector<absl::string_view> argv = {"XGROUP", "CREATE", pages.tmp, group.name,
                                         group.last_delivered_id};
  if (BothHaveCounters(pages) && !group.entries_read.empty()) {
    argv.insert(argv.end(), {"ENTRIESREAD", group.entries_read});
  }
  pages.target.Add(argv);
  Reply consumers;
  if (pages.target_caps.xgroup_createconsumer()) {
    FERRY_ASSIGN_OR_RETURN(consumers, pages.Read({"XINFO", "CONSUMERS", pages.key, group.name}));
    for (size_t i = 0; i < consumers.size(); ++i) {
      pages.arena.push_back(FieldText(consumers.element(i), "name").value_or(""));
      pages.target.Add({"XGROUP", "CREATECONSUMER", pages.tmp, group.name, pages.arena.back()});
    }
  }
  return pages.Write("XGROUP").status();
}

// Claims one page of XPENDING (id, consumer, idle ms, deliveries) for the same consumers.
absl::Status ClaimPage(KeyPages& pages, const Group& group, ReplyView page) {
  for (size_t i = 0; i < page.size(); ++i) {
    const ReplyView pending = page.element(i);
    pages.arena.push_back(absl::StrCat(pending.element(2).integer()));
    const absl::string_view idle = pages.arena.back();
    pages.arena.push_back(absl::StrCat(pending.element(3).integer()));
    pages.target.Add({"XCLAIM", pages.tmp, group.name, pending.element(1).str(), "0",
                      pending.element(0).str(), "IDLE", idle, "RETRYCOUNT", pages.arena.back(),
                      "FORCE", "JUSTID"});
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

// Deletes the phantoms of deleted pending entries once they are claimed, then sets the last id
// and counters again (XDEL moved them).
absl::Status DeletePhantoms(KeyPages& pages, const StreamInfo& info) {
  std::vector<absl::string_view> argv = {"XDEL", pages.tmp};
  for (const StreamId& id : pages.deleted_pending) {
    pages.arena.push_back(absl::StrCat(id.first, "-", id.second));
    argv.push_back(pages.arena.back());
  }
  pages.target.Add(argv);
  FERRY_RETURN_IF_ERROR(pages.Write("XDEL").status());
  return SetLastId(pages, info, /*has_entries=*/true);
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
    start = After(pages, page.element(page.size() - 1).element(0).str());
  }
  return absl::OkStatus();
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

absl::StatusOr<std::optional<std::string>> StreamFingerprint(KeyPages& pages,
                                                             absl::string_view key) {
  const std::string limit = absl::StrCat(pages.options.page_elements);
  pages.target.Add({"XRANGE", key, "-", "+", "COUNT", limit});
  pages.target.Add({"XINFO", "STREAM", key});
  pages.target.Add({"XINFO", "GROUPS", key});
  FERRY_ASSIGN_OR_RETURN(std::vector<Reply> replies, pages.target.Execute());
  const size_t page = static_cast<size_t>(pages.options.page_elements);
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
    pages.arena.push_back(FieldText(group, "name").value_or(""));
    pages.target.Add({"XPENDING", key, pages.arena.back(), "-", "+", limit});
  }
  if (pages.target.queued() == 0) return fingerprint;
  FERRY_ASSIGN_OR_RETURN(std::vector<Reply> pending, pages.target.Execute());
  pages.arena.clear();
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
  FERRY_RETURN_IF_ERROR(SetLastId(pages, info, has_entries));
  FERRY_ASSIGN_OR_RETURN(std::vector<Group> groups, ReadGroups(pages));
  for (const Group& group : groups) {
    FERRY_RETURN_IF_ERROR(CreateGroup(pages, group));
    FERRY_RETURN_IF_ERROR(CopyPending(pages, group));
    if (pages.refusal.has_value()) return absl::OkStatus();
  }
  // A pass that found deleted pending entries read every group's: the next one is the last.
  if (pages.again || pages.deleted_pending.empty()) return absl::OkStatus();
  return DeletePhantoms(pages, info);
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
