#include "agent/value_compare.h"

#include <algorithm>
#include <cstdlib>
#include <functional>
#include <initializer_list>
#include <map>
#include <optional>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/types/span.h"
#include "agent/expiry.h"
#include "agent/shard_reader.h"
#include "agent/stream_copy.h"
#include "agent/value_copy.h"
#include "common/base/status_macros.h"
#include "common/redis/errors.h"

namespace ferry::agent {
namespace {

using redis::Reply;
using redis::ReplyView;
using Argv = std::initializer_list<absl::string_view>;

// One side's router, one page at a time.
class Side {
 public:
  Side(CompareSide side, absl::string_view name)
      : router_(*side.router), caps_(*side.caps), name_(name) {}

  const redis::Capabilities& caps() const { return caps_; }

  void Add(absl::Span<const absl::string_view> argv) {
    commands_.push_back(argv[0]);
    router_.Add(argv);
  }
  void Add(Argv argv) { Add(absl::MakeConstSpan(argv.begin(), argv.size())); }
  // Executes the page queued. The first error reply becomes a status naming this side and its
  // command (a redirect that outlived the router's retries: UNAVAILABLE, to be retried).
  absl::StatusOr<std::vector<Reply>> Execute();
  // One command alone.
  absl::StatusOr<Reply> Read(absl::Span<const absl::string_view> argv);
  absl::StatusOr<Reply> Read(Argv argv) {
    return Read(absl::MakeConstSpan(argv.begin(), argv.size()));
  }

 private:
  redis::Router& router_;
  const redis::Capabilities& caps_;
  const absl::string_view name_;
  std::vector<absl::string_view> commands_;  // The queued commands' names, for errors.
};

absl::StatusOr<std::vector<Reply>> Side::Execute() {
  const std::vector<absl::string_view> commands = std::move(commands_);
  commands_.clear();
  absl::StatusOr<std::vector<Reply>> replies = router_.Execute();
  if (!replies.ok()) return Annotate(replies.status(), name_);
  for (size_t i = 0; i < replies->size(); ++i) {
    if (!(*replies)[i].is_error()) continue;
    absl::Status status = ReplyStatus(name_, commands[i], (*replies)[i]);
    if (redis::Classify(status) == redis::ErrorClass::kRedirect) {
      return absl::UnavailableError(status.message());
    }
    return status;
  }
  return replies;
}

absl::StatusOr<Reply> Side::Read(absl::Span<const absl::string_view> argv) {
  Add(argv);
  FERRY_ASSIGN_OR_RETURN(std::vector<Reply> replies, Execute());
  return std::move(replies[0]);
}

// The target's answer about each member of a page: from one command over all of them
// (HMGET, SMISMEMBER, ZMSCORE) or from a pipeline of one command per member.
struct Answers {
  std::vector<Reply> replies;
  bool one_command;

  ReplyView operator[](size_t i) const {
    return one_command ? replies[0].element(i) : ReplyView(replies[i]);
  }
};

absl::StatusOr<Answers> Ask(Side& side, absl::string_view many, absl::string_view one,
                            bool use_many, absl::string_view key,
                            const std::vector<absl::string_view>& members) {
  if (use_many) {
    std::vector<absl::string_view> argv = {many, key};
    argv.insert(argv.end(), members.begin(), members.end());
    side.Add(argv);
  } else {
    for (absl::string_view member : members) side.Add({one, key, member});
  }
  FERRY_ASSIGN_OR_RETURN(std::vector<Reply> replies, side.Execute());
  return Answers{std::move(replies), use_many};
}

// Elements 0, stride, 2 * stride... of a flat array: the fields of HSCAN, the members of ZSCAN.
std::vector<absl::string_view> EveryNth(ReplyView elements, size_t stride) {
  std::vector<absl::string_view> picked;
  for (size_t i = 0; i + stride <= elements.size(); i += stride) {
    picked.push_back(elements.element(i).str());
  }
  return picked;
}

// Scores as numbers: versions print the same double differently ("0.1" and
// "0.10000000000000001"); strtod reads "inf", "+inf" and "-inf" too. Text that is no number is
// compared as text.
bool SameScore(absl::string_view a, absl::string_view b) {
  const auto parse = [](absl::string_view text) -> std::optional<double> {
    const std::string copy(text);
    char* end = nullptr;
    const double score = std::strtod(copy.c_str(), &end);
    if (copy.empty() || end != copy.c_str() + copy.size()) return std::nullopt;
    return score;
  };
  const std::optional<double> x = parse(a);
  const std::optional<double> y = parse(b);
  return x.has_value() && y.has_value() ? *x == *y : a == b;
}

// Two arrays of bulk strings (a stream entry's fields and values).
bool SameStrings(ReplyView a, ReplyView b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (a.element(i).str() != b.element(i).str()) return false;
  }
  return true;
}

// XINFO GROUPS elements by group name.
std::map<std::string, ReplyView> ByName(ReplyView groups) {
  std::map<std::string, ReplyView> by_name;
  for (size_t i = 0; i < groups.size(); ++i) {
    by_name.emplace(FieldText(groups.element(i), "name").value_or(""), groups.element(i));
  }
  return by_name;
}

// XINFO CONSUMERS as consumer name -> pending entries; consumers without any only with
// `idle_too`.
std::map<std::string, int64_t> PendingByConsumer(ReplyView consumers, bool idle_too) {
  std::map<std::string, int64_t> pending;
  for (size_t i = 0; i < consumers.size(); ++i) {
    const int64_t count = FieldValue(consumers.element(i), "pending").integer();
    if (count == 0 && !idle_too) continue;
    pending.emplace(FieldText(consumers.element(i), "name").value_or(""), count);
  }
  return pending;
}

// One key's comparison. Every detail it writes names places and counts, never value bytes.
class Comparer {
 public:
  Comparer(CompareSide source, CompareSide target, absl::string_view key, absl::string_view type,
           const ValueCompareOptions& options)
      : source_(source, "source"),
        target_(target, "target"),
        key_(key),
        type_(type),
        page_(std::max(options.page_elements, 1)),
        count_(absl::StrCat(page_)),
        chunk_(static_cast<int64_t>(std::max<uint64_t>(options.chunk_bytes, 1))),
        field_ttl_slack_ms_(options.field_ttl_slack_ms) {}

  absl::StatusOr<ValueDiff> Run();
  // Whether the key is still of the type compared on both sides.
  absl::StatusOr<bool> TypeUnchanged();

 private:
  struct Replies {
    std::vector<Reply> source;
    std::vector<Reply> target;
  };
  // Compares one page of source elements (HSCAN, SSCAN, ZSCAN) with the target.
  using PageCheck = absl::StatusOr<ValueDiff> (Comparer::*)(ReplyView elements);
  // Compares one item of a range ([id, ...]) on both sides, whose ids are equal: a detail, or
  // nullopt when they are equal.
  using ItemCheck = std::function<std::optional<std::string>(ReplyView, ReplyView)>;

  // The same commands as one page on each side, the source first: a side never keeps commands
  // queued after an error.
  absl::StatusOr<Replies> Both(std::initializer_list<Argv> page);
  ValueDiff Differs(absl::string_view what) const {
    return ValueDiff{false, absl::StrCat(type_, ": ", what)};
  }
  ValueDiff Counts(int64_t source, int64_t target, absl::string_view noun) const {
    return Differs(absl::StrCat(source, " ", noun, " on the source, ", target, " on the target"));
  }
  bool counters() const {
    return source_.caps().stream_counters() && target_.caps().stream_counters();
  }

  absl::StatusOr<ValueDiff> String();
  absl::StatusOr<ValueDiff> Scanned(absl::string_view scan, absl::string_view noun,
                                    PageCheck check);
  absl::StatusOr<ValueDiff> HashPage(ReplyView elements);
  // Hash field TTLs of one page's fields, where both sides have them.
  absl::StatusOr<ValueDiff> FieldTtls(const std::vector<absl::string_view>& fields);
  absl::StatusOr<ValueDiff> SetPage(ReplyView elements);
  absl::StatusOr<ValueDiff> ZsetPage(ReplyView elements);
  absl::StatusOr<ValueDiff> List();
  absl::StatusOr<ValueDiff> Stream();
  absl::StatusOr<ValueDiff> Ranges(const std::vector<absl::string_view>& before,
                                   const std::vector<absl::string_view>& after,
                                   absl::string_view what, const ItemCheck& check);
  absl::StatusOr<ValueDiff> Groups();
  absl::StatusOr<ValueDiff> Group(const std::string& name, ReplyView source, ReplyView target);
  absl::StatusOr<ValueDiff> Consumers(const std::string& group);

  Side source_;
  Side target_;
  const absl::string_view key_;
  const absl::string_view type_;
  const int page_;
  const std::string count_;  // page_ as text.
  const int64_t chunk_;
  const int64_t field_ttl_slack_ms_;
};

absl::StatusOr<ValueDiff> Comparer::Run() {
  if (type_ == "string") return String();
  if (type_ == "hash") return Scanned("HSCAN", "fields", &Comparer::HashPage);
  if (type_ == "set") return Scanned("SSCAN", "members", &Comparer::SetPage);
  if (type_ == "zset") return Scanned("ZSCAN", "members", &Comparer::ZsetPage);
  if (type_ == "list") return List();
  return Stream();
}

absl::StatusOr<bool> Comparer::TypeUnchanged() {
  FERRY_ASSIGN_OR_RETURN(Replies types, Both({{"TYPE", key_}}));
  return types.source[0].str() == type_ && types.target[0].str() == type_;
}

absl::StatusOr<Comparer::Replies> Comparer::Both(std::initializer_list<Argv> page) {
  Replies replies;
  for (Argv argv : page) source_.Add(argv);
  FERRY_ASSIGN_OR_RETURN(replies.source, source_.Execute());
  for (Argv argv : page) target_.Add(argv);
  FERRY_ASSIGN_OR_RETURN(replies.target, target_.Execute());
  return replies;
}

// STRLEN, then GETRANGE windows.
absl::StatusOr<ValueDiff> Comparer::String() {
  FERRY_ASSIGN_OR_RETURN(Replies lengths, Both({{"STRLEN", key_}}));
  const int64_t length = lengths.source[0].integer();
  if (length != lengths.target[0].integer()) {
    return Differs(absl::StrCat("length ", length, " vs ", lengths.target[0].integer()));
  }
  for (int64_t offset = 0; offset < length; offset += chunk_) {
    const std::string start = absl::StrCat(offset);
    const std::string end = absl::StrCat(std::min(offset + chunk_, length) - 1);
    FERRY_ASSIGN_OR_RETURN(Replies window, Both({{"GETRANGE", key_, start, end}}));
    if (window.source[0].str() != window.target[0].str()) {
      return Differs(absl::StrCat("bytes differ at offset ", start, "..", end));
    }
  }
  return ValueDiff{};
}

// The cardinalities, then every page of the source's SCAN looked up on the target.
absl::StatusOr<ValueDiff> Comparer::Scanned(absl::string_view scan, absl::string_view noun,
                                            PageCheck check) {
  FERRY_ASSIGN_OR_RETURN(Replies lengths, Both({{LengthCommand(type_), key_}}));
  if (lengths.source[0].integer() != lengths.target[0].integer()) {
    return Counts(lengths.source[0].integer(), lengths.target[0].integer(), noun);
  }
  std::string cursor = "0";
  do {
    FERRY_ASSIGN_OR_RETURN(Reply page, source_.Read({scan, key_, cursor, "COUNT", count_}));
    if (page.size() != 2) return absl::InternalError(absl::StrCat("source ", scan, ": bad reply"));
    cursor = std::string(page.element(0).str());
    if (page.element(1).size() == 0) continue;
    FERRY_ASSIGN_OR_RETURN(ValueDiff diff, (this->*check)(page.element(1)));
    if (!diff.equal) return diff;
  } while (cursor != "0");
  return ValueDiff{};
}

absl::StatusOr<ValueDiff> Comparer::HashPage(ReplyView elements) {
  const std::vector<absl::string_view> fields = EveryNth(elements, 2);
  FERRY_ASSIGN_OR_RETURN(Answers values,
                         Ask(target_, "HMGET", "HGET", /*use_many=*/true, key_, fields));
  for (size_t i = 0; i < fields.size(); ++i) {
    if (values[i].is_nil()) return Differs("a field is missing on the target");
    if (values[i].str() != elements.element(2 * i + 1).str()) {
      return Differs("a field's value differs");
    }
  }
  if (!source_.caps().hash_field_ttl() || !target_.caps().hash_field_ttl()) return ValueDiff{};
  return FieldTtls(fields);
}

absl::StatusOr<ValueDiff> Comparer::FieldTtls(const std::vector<absl::string_view>& fields) {
  const std::string count = absl::StrCat(fields.size());
  std::vector<absl::string_view> argv = {"HPEXPIRETIME", key_, "FIELDS", count};
  argv.insert(argv.end(), fields.begin(), fields.end());
  FERRY_ASSIGN_OR_RETURN(Reply source, source_.Read(argv));
  FERRY_ASSIGN_OR_RETURN(Reply target, target_.Read(argv));
  for (size_t i = 0; i < fields.size(); ++i) {
    const int64_t at_source = source.element(i).integer();
    const int64_t at_target = target.element(i).integer();
    // Gone (expired) since its value was compared: nothing left to compare.
    if (at_source == kVanished || at_target == kVanished) continue;
    if ((at_source == kNoExpiry) != (at_target == kNoExpiry)) {
      return Differs(absl::StrCat("a field has a TTL on the ",
                                  at_source == kNoExpiry ? "target" : "source", " only"));
    }
    if (std::abs(at_source - at_target) > field_ttl_slack_ms_) {
      return Differs(absl::StrCat("a field's expiry time differs by ",
                                  std::abs(at_source - at_target), " ms"));
    }
  }
  return ValueDiff{};
}

absl::StatusOr<ValueDiff> Comparer::SetPage(ReplyView elements) {
  const std::vector<absl::string_view> members = EveryNth(elements, 1);
  FERRY_ASSIGN_OR_RETURN(Answers found, Ask(target_, "SMISMEMBER", "SISMEMBER",
                                            target_.caps().smismember(), key_, members));
  for (size_t i = 0; i < members.size(); ++i) {
    if (found[i].integer() != 1) return Differs("a member is missing on the target");
  }
  return ValueDiff{};
}

absl::StatusOr<ValueDiff> Comparer::ZsetPage(ReplyView elements) {
  const std::vector<absl::string_view> members = EveryNth(elements, 2);
  FERRY_ASSIGN_OR_RETURN(
      Answers scores, Ask(target_, "ZMSCORE", "ZSCORE", target_.caps().zmscore(), key_, members));
  for (size_t i = 0; i < members.size(); ++i) {
    if (scores[i].is_nil()) return Differs("a member is missing on the target");
    if (!SameScore(scores[i].str(), elements.element(2 * i + 1).str())) {
      return Differs("a member's score differs");
    }
  }
  return ValueDiff{};
}

// LLEN, then LRANGE windows element by element.
absl::StatusOr<ValueDiff> Comparer::List() {
  FERRY_ASSIGN_OR_RETURN(Replies lengths, Both({{"LLEN", key_}}));
  const int64_t length = lengths.source[0].integer();
  if (length != lengths.target[0].integer()) {
    return Counts(length, lengths.target[0].integer(), "elements");
  }
  for (int64_t start = 0; start < length; start += page_) {
    const std::string first = absl::StrCat(start);
    const std::string last = absl::StrCat(start + page_ - 1);
    FERRY_ASSIGN_OR_RETURN(Replies window, Both({{"LRANGE", key_, first, last}}));
    const ReplyView source = window.source[0];
    const ReplyView target = window.target[0];
    const size_t common = std::min(source.size(), target.size());
    for (size_t i = 0; i < common; ++i) {
      if (source.element(i).str() != target.element(i).str()) {
        return Differs(absl::StrCat("element ", start + static_cast<int64_t>(i), " differs"));
      }
    }
    if (source.size() != target.size()) {
      return Differs(absl::StrCat("element ", start + static_cast<int64_t>(common),
                                  " is missing on the ",
                                  source.size() < target.size() ? "source" : "target"));
    }
    if (common == 0) break;  // Shortened on both sides meanwhile.
  }
  return ValueDiff{};
}

// XLEN and XINFO STREAM, the entries, then the consumer groups.
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

}  // namespace

absl::StatusOr<ValueDiff> CompareValue(CompareSide source, CompareSide target,
                                       absl::string_view key, absl::string_view type,
                                       const ValueCompareOptions& options) {
  if (LengthCommand(type).empty()) {
    return absl::InvalidArgumentError(absl::StrCat("cannot compare a value of type '", type, "'"));
  }
  Comparer comparer(source, target, key, type, options);
  absl::StatusOr<ValueDiff> diff = comparer.Run();
  // An error reply about the key (WRONGTYPE, XINFO's "no such key") is per key: TYPE tells
  // whether the key changed.
  if (!diff.ok() && redis::Classify(diff.status()) != redis::ErrorClass::kPerKey) return diff;
  FERRY_ASSIGN_OR_RETURN(bool unchanged, comparer.TypeUnchanged());
  if (!unchanged) {
    return ValueDiff{false,
                     absl::StrCat(type, ": the key changed type or vanished while it was compared"),
                     /*type_changed=*/true};
  }
  return diff;
}

}  // namespace ferry::agent
