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
#include "agent/value_compare_internal.h"
#include "agent/value_copy.h"
#include "common/base/status_macros.h"
#include "common/redis/errors.h"

namespace ferry::agent {
namespace value_compare_internal {

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
}  // namespace value_compare_internal

using value_compare_internal::Comparer;

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