#pragma once

// What value_compare.cc and value_compare_stream.cc share: one side's pages and the Comparer of
// one key (value_compare.h says what is compared). Internal to those two files.

#include <cstdint>
#include <functional>
#include <initializer_list>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "agent/value_compare.h"
#include "common/redis/connection.h"

namespace ferry::agent::value_compare_internal {

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

struct Answers {
  std::vector<Reply> replies;
  bool one_command;

  ReplyView operator[](size_t i) const {
    return one_command ? replies[0].element(i) : ReplyView(replies[i]);
  }
};

absl::StatusOr<Answers> Ask(Side& side, absl::string_view many, absl::string_view one,
                            bool use_many, absl::string_view key,
                            const std::vector<absl::string_view>& members);
// Elements 0, stride, 2 * stride... of a flat array: the fields of HSCAN, the members of ZSCAN.
std::vector<absl::string_view> EveryNth(redis::ReplyView elements, size_t stride);
// Scores as numbers ("0.1" and "0.10000000000000001" are the same score).
bool SameScore(absl::string_view a, absl::string_view b);
// Two arrays of bulk strings (a stream entry's fields and values).
bool SameStrings(redis::ReplyView a, redis::ReplyView b);
// XINFO GROUPS elements by group name.
std::map<std::string, redis::ReplyView> ByName(redis::ReplyView groups);
// XINFO CONSUMERS as consumer name -> pending entries; consumers without any only with
// `idle_too`.
std::map<std::string, int64_t> PendingByConsumer(redis::ReplyView consumers, bool idle_too);

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
}  // namespace ferry::agent::value_compare_internal
