// The stream part of Comparer (value_compare_internal.h): entries in ranges, groups, consumers
// and pending entries.

#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "agent/stream_copy.h"
#include "agent/value_compare_internal.h"
#include "agent/value_copy.h"
#include "common/base/status_macros.h"

namespace ferry::agent::value_compare_internal {

absl::StatusOr<ValueDiff> Comparer::Stream() {
  FERRY_ASSIGN_OR_RETURN(Replies head, Both({{"XLEN", key_}, {"XINFO", "STREAM", key_}}));
  if (head.source[0].integer() != head.target[0].integer()) {
    return Counts(head.source[0].integer(), head.target[0].integer(), "entries");
  }
  const StreamInfo source = ParseStreamInfo(head.source[1]);
  const StreamInfo target = ParseStreamInfo(head.target[1]);
  if (source.last_id != target.last_id) {
    return Differs(absl::StrCat("last id ", source.last_id, " vs ", target.last_id));
  }
  if (counters() && source.entries_added != target.entries_added) {
    return Differs(
        absl::StrCat("entries-added ", source.entries_added, " vs ", target.entries_added));
  }
  if (counters() && source.max_deleted_id != target.max_deleted_id) {
    return Differs(absl::StrCat("max-deleted-entry-id ", source.max_deleted_id, " vs ",
                                target.max_deleted_id));
  }
  const ItemCheck entry = [](ReplyView s, ReplyView t) -> std::optional<std::string> {
    if (SameStrings(s.element(1), t.element(1))) return std::nullopt;
    return absl::StrCat("entry ", s.element(0).str(), " differs");
  };
  FERRY_ASSIGN_OR_RETURN(ValueDiff entries,
                         Ranges({"XRANGE", key_}, {"+", "COUNT", count_}, "entry ", entry));
  if (!entries.equal) return entries;
  return Groups();
}

// Pages of a range command (argv `before`, the start, `after`) on both sides, each side's next
// page from after the last item of its page before; items ([id, ...]) compared in order.
// `what` names an item in details ("entry ").
absl::StatusOr<ValueDiff> Comparer::Ranges(const std::vector<absl::string_view>& before,
                                           const std::vector<absl::string_view>& after,
                                           absl::string_view what, const ItemCheck& check) {
  std::string source_start = "-";
  std::string target_start = "-";
  const auto argv = [&](absl::string_view start) {
    std::vector<absl::string_view> command = before;
    command.push_back(start);
    command.insert(command.end(), after.begin(), after.end());
    return command;
  };
  while (true) {
    FERRY_ASSIGN_OR_RETURN(Reply source, source_.Read(argv(source_start)));
    FERRY_ASSIGN_OR_RETURN(Reply target, target_.Read(argv(target_start)));
    const size_t common = std::min(source.size(), target.size());
    for (size_t i = 0; i < common; ++i) {
      const absl::string_view id = source.element(i).element(0).str();
      const absl::string_view other = target.element(i).element(0).str();
      if (id != other) {
        return Differs(absl::StrCat(what, id, " on the source, ", other, " on the target"));
      }
      if (std::optional<std::string> diff = check(source.element(i), target.element(i))) {
        return Differs(*diff);
      }
    }
    if (source.size() != target.size()) {
      const bool source_longer = source.size() > target.size();
      const ReplyView extra = (source_longer ? source : target).element(common);
      return Differs(absl::StrCat(what, extra.element(0).str(), " is only on the ",
                                  source_longer ? "source" : "target"));
    }
    if (common < static_cast<size_t>(page_)) return ValueDiff{};
    const absl::string_view last = source.element(common - 1).element(0).str();
    source_start = RangeStartAfter(source_.caps(), last);
    target_start = RangeStartAfter(target_.caps(), last);
  }
}

// XINFO GROUPS, matched by name.
absl::StatusOr<ValueDiff> Comparer::Groups() {
  FERRY_ASSIGN_OR_RETURN(Replies groups, Both({{"XINFO", "GROUPS", key_}}));
  const ReplyView source = groups.source[0];
  const std::map<std::string, ReplyView> target = ByName(groups.target[0]);
  if (source.size() != target.size()) {
    return Counts(static_cast<int64_t>(source.size()), static_cast<int64_t>(target.size()),
                  "groups");
  }
  for (size_t i = 0; i < source.size(); ++i) {
    const std::string name = FieldText(source.element(i), "name").value_or("");
    const auto found = target.find(name);
    if (found == target.end()) {
      return Differs(absl::StrCat("group ", name, " is missing on the target"));
    }
    FERRY_ASSIGN_OR_RETURN(ValueDiff diff, Group(name, source.element(i), found->second));
    if (!diff.equal) return diff;
  }
  return ValueDiff{};
}

// One group: its XINFO GROUPS fields, its consumers, then its pending entries page by page.
absl::StatusOr<ValueDiff> Comparer::Group(const std::string& name, ReplyView source,
                                          ReplyView target) {
  const std::string group = absl::StrCat("group ", name, " ");
  const auto field = [&](absl::string_view f) {
    return std::make_pair(FieldText(source, f).value_or("nil"),
                          FieldText(target, f).value_or("nil"));
  };
  if (const auto [s, t] = field("last-delivered-id"); s != t) {
    return Differs(absl::StrCat(group, "last-delivered-id differs (", s, " vs ", t, ")"));
  }
  if (const auto [s, t] = field("pending"); s != t) {
    return Differs(
        absl::StrCat(group, "has ", s, " pending entries on the source, ", t, " on the target"));
  }
  // A source that does not know its entries-read (nil) leaves the target's to XGROUP CREATE.
  if (const auto [s, t] = field("entries-read"); counters() && s != "nil" && s != t) {
    return Differs(absl::StrCat(group, "entries-read ", s, " vs ", t));
  }
  FERRY_ASSIGN_OR_RETURN(ValueDiff consumers, Consumers(name));
  if (!consumers.equal) return consumers;
  const ItemCheck pending = [&group](ReplyView s, ReplyView t) -> std::optional<std::string> {
    const absl::string_view id = s.element(0).str();
    if (s.element(1).str() != t.element(1).str()) {
      return absl::StrCat(group, "pending entry ", id, " has another owner on the target");
    }
    if (s.element(3).integer() == t.element(3).integer()) return std::nullopt;
    return absl::StrCat(group, "pending entry ", id, " has delivery count ", s.element(3).integer(),
                        " on the source, ", t.element(3).integer(), " on the target");
  };
  return Ranges({"XPENDING", key_, name}, {"+", count_}, absl::StrCat(group, "pending entry "),
                pending);
}

// Consumer names and pending counts. A target without XGROUP CREATECONSUMER cannot be given a
// consumer that owns nothing, so those are compared only where it has it.
absl::StatusOr<ValueDiff> Comparer::Consumers(const std::string& group) {
  FERRY_ASSIGN_OR_RETURN(Replies replies, Both({{"XINFO", "CONSUMERS", key_, group}}));
  const bool idle_too = target_.caps().xgroup_createconsumer();
  const std::map<std::string, int64_t> source = PendingByConsumer(replies.source[0], idle_too);
  const std::map<std::string, int64_t> target = PendingByConsumer(replies.target[0], idle_too);
  const std::string prefix = absl::StrCat("group ", group, " ");
  if (source.size() != target.size()) {
    return Differs(absl::StrCat(prefix, "has ", source.size(), " consumers on the source, ",
                                target.size(), " on the target"));
  }
  for (const auto& [name, pending] : source) {
    const auto found = target.find(name);
    if (found == target.end()) {
      return Differs(absl::StrCat(prefix, "consumer ", name, " is missing on the target"));
    }
    if (found->second != pending) {
      return Differs(absl::StrCat(prefix, "consumer ", name, " has ", pending,
                                  " pending entries on the source, ", found->second,
                                  " on the target"));
    }
  }
  return ValueDiff{};
}

}  // namespace ferry::agent::value_compare_internal
