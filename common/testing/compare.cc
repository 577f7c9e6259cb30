#include "common/testing/compare.h"

#include <algorithm>
#include <cstdlib>
#include <set>
#include <string>
#include <tuple>
#include <utility>

#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/base/status_macros.h"
#include "common/redis/errors.h"

namespace ferry::testing {
namespace {

using Commands = std::vector<std::vector<std::string>>;

// What one side holds for one key, reduced to something comparable with ==.
struct Value {
  std::string type;       // TYPE reply; "none" when the key does not exist.
  int64_t pttl = -2;      // PTTL reply: -1 no TTL, -2 missing.
  std::string canonical;  // Equal exactly when the values are equal.
  size_t elements = 0;
  size_t bytes = 0;  // Payload bytes, for messages (values themselves are never printed).
};

absl::Status ReplyStatus(redis::ReplyView reply, absl::string_view what) {
  if (!reply.is_error()) return absl::OkStatus();
  return Annotate(redis::StatusFromReplyError(reply.str()), what);
}

// Appends a length-prefixed encoding of `reply` (recursively) to value->canonical.
void Serialize(redis::ReplyView reply, Value* value) {
  switch (reply.type()) {
    case redis::ReplyView::Type::kString:
    case redis::ReplyView::Type::kStatus:
      absl::StrAppend(&value->canonical, "$", reply.str().size(), ":", reply.str());
      value->bytes += reply.str().size();
      break;
    case redis::ReplyView::Type::kInteger:
      absl::StrAppend(&value->canonical, ":", reply.integer(), ";");
      break;
    case redis::ReplyView::Type::kNil:
      value->canonical += "_";
      break;
    case redis::ReplyView::Type::kError:
      absl::StrAppend(&value->canonical, "!", reply.str().size(), ":", reply.str());
      break;
    case redis::ReplyView::Type::kArray:
      absl::StrAppend(&value->canonical, "*", reply.size(), ":");
      for (size_t i = 0; i < reply.size(); ++i) Serialize(reply.element(i), value);
      break;
  }
}

void SerializeString(absl::string_view s, Value* value) {
  absl::StrAppend(&value->canonical, "$", s.size(), ":", s);
  value->bytes += s.size();
}

// The value of `name` in a flat field/value array (XINFO replies), as text.
std::string Field(redis::ReplyView map, absl::string_view name) {
  for (size_t i = 0; i + 1 < map.size(); i += 2) {
    if (map.element(i).str() != name) continue;
    redis::ReplyView v = map.element(i + 1);
    return v.is_integer() ? absl::StrCat(v.integer()) : std::string(v.str());
  }
  return "";
}

// Commands that read the value of a key of `type`: the canonical form's ingredients.
void AppendValueCommands(const std::string& type, const std::string& key, Commands* cmds) {
  if (type == "none") return;
  if (type == "string") {
    cmds->push_back({"GET", key});
  } else if (type == "hash") {
    cmds->push_back({"HGETALL", key});
  } else if (type == "list") {
    cmds->push_back({"LRANGE", key, "0", "-1"});
  } else if (type == "set") {
    cmds->push_back({"SMEMBERS", key});
  } else if (type == "zset") {
    cmds->push_back({"ZRANGE", key, "0", "-1", "WITHSCORES"});
  } else if (type == "stream") {
    cmds->push_back({"XRANGE", key, "-", "+"});
    cmds->push_back({"XINFO", "STREAM", key});
    cmds->push_back({"XINFO", "GROUPS", key});
  } else {
    cmds->push_back({"DUMP", key});  // Module types: byte-exact payloads.
  }
}

// Turns the replies of AppendValueCommands into value's canonical form. For streams, returns
// the group names (sorted) whose consumers are still to be read. `stream_counters`:
// CompareOptions::stream_counters.
std::vector<std::string> Canonicalize(const std::vector<redis::Reply>& replies, size_t first,
                                      bool stream_counters, Value* value) {
  const redis::ReplyView main = replies[first];
  if (main.is_error() || (value->type != "hash" && value->type != "set")) {
    Serialize(main, value);
    value->elements = value->type == "zset" ? main.size() / 2 : std::max<size_t>(main.size(), 1);
  } else if (value->type == "hash") {
    std::vector<std::pair<absl::string_view, absl::string_view>> pairs;
    for (size_t i = 0; i + 1 < main.size(); i += 2) {
      pairs.emplace_back(main.element(i).str(), main.element(i + 1).str());
    }
    std::sort(pairs.begin(), pairs.end());
    for (const auto& [field, v] : pairs) {
      SerializeString(field, value);
      SerializeString(v, value);
    }
    value->elements = pairs.size();
  } else {
    std::vector<absl::string_view> members;
    for (size_t i = 0; i < main.size(); ++i) members.push_back(main.element(i).str());
    std::sort(members.begin(), members.end());
    for (absl::string_view m : members) SerializeString(m, value);
    value->elements = members.size();
  }
  if (value->type != "stream") return {};

  const redis::ReplyView info = replies[first + 1];
  const redis::ReplyView groups = replies[first + 2];
  absl::StrAppend(&value->canonical, "|last-generated-id=", Field(info, "last-generated-id"));
  // Redis 7.0 and later also count entries ever added and know the last id deleted (empty on
  // older servers, which do not have them).
  if (stream_counters) {
    absl::StrAppend(&value->canonical, "|entries-added=", Field(info, "entries-added"),
                    "|max-deleted-entry-id=", Field(info, "max-deleted-entry-id"));
  }
  std::vector<std::tuple<std::string, std::string, std::string, std::string>> sorted;
  for (size_t i = 0; i < groups.size(); ++i) {
    redis::ReplyView g = groups.element(i);
    sorted.emplace_back(Field(g, "name"), Field(g, "last-delivered-id"), Field(g, "pending"),
                        stream_counters ? Field(g, "entries-read") : "");
  }
  std::sort(sorted.begin(), sorted.end());
  std::vector<std::string> names;
  for (const auto& [name, last_delivered, pending, entries_read] : sorted) {
    absl::StrAppend(&value->canonical, "|group=", name.size(), ":", name, ",", last_delivered, ",",
                    pending, ",", entries_read);
    names.push_back(name);
  }
  return names;
}

// Appends the pending entries of a group (XPENDING's extended form, in id order: id, owner and
// delivery count; idle times differ by the time between the reads) to `value`.
void AppendPending(redis::ReplyView pending, Value* value) {
  value->canonical += "|pending=";
  for (size_t p = 0; p < pending.size(); ++p) {
    redis::ReplyView entry = pending.element(p);
    const absl::string_view owner = entry.element(1).str();
    absl::StrAppend(&value->canonical, entry.element(0).str(), ",", owner.size(), ":", owner, "x",
                    entry.element(3).integer(), ";");
  }
}

// Appends the consumers (name and pending count, sorted) and the pending entries of each
// (key index, group) in `stream_groups` to that key's canonical value.
absl::Status AppendConsumers(redis::Connection& conn, const std::vector<std::string>& keys,
                             const std::vector<std::pair<size_t, std::string>>& stream_groups,
                             std::vector<Value>* values) {
  Commands cmds;
  for (const auto& [i, group] : stream_groups) {
    cmds.push_back({"XINFO", "CONSUMERS", keys[i], group});
    cmds.push_back({"XPENDING", keys[i], group, "-", "+", "1000000000"});
  }
  FERRY_ASSIGN_OR_RETURN(std::vector<redis::Reply> replies, redis::RunPipeline(conn, cmds));
  for (size_t j = 0; j < stream_groups.size(); ++j) {
    const redis::ReplyView infos = replies[2 * j];
    std::vector<std::pair<std::string, std::string>> consumers;
    for (size_t c = 0; c < infos.size(); ++c) {
      redis::ReplyView consumer = infos.element(c);
      consumers.emplace_back(Field(consumer, "name"), Field(consumer, "pending"));
    }
    std::sort(consumers.begin(), consumers.end());
    Value& value = (*values)[stream_groups[j].first];
    absl::StrAppend(&value.canonical, "|consumers=", stream_groups[j].second.size(), ":",
                    stream_groups[j].second);
    for (const auto& [name, pending] : consumers) {
      absl::StrAppend(&value.canonical, ",", name.size(), ":", name, "=", pending);
    }
    FERRY_RETURN_IF_ERROR(ReplyStatus(replies[2 * j + 1], "XPENDING"));
    AppendPending(replies[2 * j + 1], &value);
  }
  return absl::OkStatus();
}

// Reads type, PTTL and canonical value of each key of `keys` in `db`: three pipelined round
// trips (the last only for streams with groups).
absl::StatusOr<std::vector<Value>> FetchValues(redis::Connection& conn, int db,
                                               const std::vector<std::string>& keys,
                                               bool stream_counters) {
  FERRY_RETURN_IF_ERROR(conn.Select(db));
  Commands cmds;
  for (const std::string& key : keys) {
    cmds.push_back({"TYPE", key});
    cmds.push_back({"PTTL", key});
  }
  FERRY_ASSIGN_OR_RETURN(std::vector<redis::Reply> replies, redis::RunPipeline(conn, cmds));
  std::vector<Value> values(keys.size());
  for (size_t i = 0; i < keys.size(); ++i) {
    FERRY_RETURN_IF_ERROR(ReplyStatus(replies[2 * i], "TYPE"));
    FERRY_RETURN_IF_ERROR(ReplyStatus(replies[2 * i + 1], "PTTL"));
    values[i].type = std::string(replies[2 * i].str());
    values[i].pttl = replies[2 * i + 1].integer();
  }

  cmds.clear();
  std::vector<size_t> first(keys.size());
  for (size_t i = 0; i < keys.size(); ++i) {
    first[i] = cmds.size();
    AppendValueCommands(values[i].type, keys[i], &cmds);
  }
  if (cmds.empty()) return values;
  FERRY_ASSIGN_OR_RETURN(replies, redis::RunPipeline(conn, cmds));
  std::vector<std::pair<size_t, std::string>> stream_groups;  // (key index, group)
  for (size_t i = 0; i < keys.size(); ++i) {
    if (values[i].type == "none") continue;
    for (std::string& group : Canonicalize(replies, first[i], stream_counters, &values[i])) {
      stream_groups.emplace_back(i, std::move(group));
    }
  }
  if (!stream_groups.empty()) {
    FERRY_RETURN_IF_ERROR(AppendConsumers(conn, keys, stream_groups, &values));
  }
  return values;
}

std::string SizeText(const Value& v) {
  return absl::StrCat(v.elements, v.elements == 1 ? " element/" : " elements/", v.bytes, " bytes");
}

void CompareKey(const std::string& key, int db, const Value& s, const Value& t,
                absl::Duration slack, std::vector<KeyDiff>* diffs) {
  if (s.type == "none" || s.pttl == -2) return;  // Gone from the source meanwhile.
  if (t.type == "none" || t.pttl == -2) {
    // TTLs may differ by `slack`: a key that expires within it may be gone from the target
    // already (the source is read first).
    if (s.pttl >= 0 && s.pttl <= absl::ToInt64Milliseconds(slack)) return;
    diffs->push_back({key, "missing in target", db});
    return;
  }
  if (s.type != t.type) {
    diffs->push_back({key, absl::StrCat("type ", s.type, " vs ", t.type), db});
    return;
  }
  if (s.canonical != t.canonical) {
    diffs->push_back(
        {key, absl::StrCat("value differs (source ", SizeText(s), ", target ", SizeText(t), ")"),
         db});
  }
  const int64_t slack_ms = absl::ToInt64Milliseconds(slack);
  const bool same_ttl = (s.pttl == -1 && t.pttl == -1) ||
                        (s.pttl >= 0 && t.pttl >= 0 && std::llabs(s.pttl - t.pttl) <= slack_ms);
  if (!same_ttl) diffs->push_back({key, absl::StrCat("ttl ", s.pttl, " vs ", t.pttl), db});
}

// SCANs `db` (MATCH `match`) and hands the keys to `batch_fn` in batches of about `count`.
// `batch_fn` may use the same connection on other dbs.
template <typename BatchFn>
absl::Status ScanBatches(redis::Connection& conn, int db, const std::string& match, int count,
                         BatchFn batch_fn) {
  const std::string count_text = absl::StrCat(count);
  std::string cursor = "0";
  std::vector<std::string> batch;
  do {
    FERRY_RETURN_IF_ERROR(conn.Select(db));
    FERRY_ASSIGN_OR_RETURN(redis::Reply reply,
                           conn.Command({"SCAN", cursor, "MATCH", match, "COUNT", count_text}));
    if (reply.size() != 2) return absl::InternalError("SCAN: unexpected reply shape");
    cursor = std::string(reply.element(0).str());
    redis::ReplyView keys = reply.element(1);
    for (size_t i = 0; i < keys.size(); ++i) batch.emplace_back(keys.element(i).str());
    if (batch.size() >= static_cast<size_t>(count) || (cursor == "0" && !batch.empty())) {
      FERRY_RETURN_IF_ERROR(batch_fn(batch));
      batch.clear();
    }
  } while (cursor != "0");
  return absl::OkStatus();
}

absl::StatusOr<std::set<int>> DbsWithKeys(redis::Connection& conn) {
  FERRY_ASSIGN_OR_RETURN(redis::Reply reply, conn.Command({"INFO", "keyspace"}));
  std::set<int> dbs;
  for (absl::string_view line : absl::StrSplit(reply.str(), absl::ByAnyChar("\r\n"))) {
    if (!absl::ConsumePrefix(&line, "db")) continue;
    int db;
    if (absl::SimpleAtoi(line.substr(0, line.find(':')), &db)) dbs.insert(db);
  }
  return dbs;
}

::testing::AssertionResult DiffsToAssertion(const absl::StatusOr<std::vector<KeyDiff>>& diffs) {
  if (!diffs.ok()) return ::testing::AssertionFailure() << "comparison failed: " << diffs.status();
  if (diffs->empty()) return ::testing::AssertionSuccess();
  ::testing::AssertionResult result = ::testing::AssertionFailure();
  result << diffs->size() << " key(s) differ:";
  for (size_t i = 0; i < diffs->size() && i < 20; ++i)
    result << "\n  " << DescribeDiff((*diffs)[i]);
  if (diffs->size() > 20) result << "\n  ...";
  return result;
}

}  // namespace

std::string DescribeDiff(const KeyDiff& diff) {
  constexpr size_t kMaxKey = 200;
  absl::string_view key(diff.key);
  return absl::StrCat("db", diff.db, " '", absl::CHexEscape(key.substr(0, kMaxKey)),
                      key.size() > kMaxKey ? "...'" : "'", ": ", diff.problem);
}

void PrintTo(const KeyDiff& diff, std::ostream* os) { *os << DescribeDiff(diff); }

absl::StatusOr<std::vector<KeyDiff>> CompareDatabases(redis::Connection& source, int source_db,
                                                      redis::Connection& target, int target_db,
                                                      const CompareOptions& options) {
  std::vector<KeyDiff> diffs;
  const int count = std::max(options.batch_size, 1);
  FERRY_RETURN_IF_ERROR(ScanBatches(
      source, source_db, options.match, count,
      [&](const std::vector<std::string>& keys) -> absl::Status {
        FERRY_ASSIGN_OR_RETURN(std::vector<Value> s,
                               FetchValues(source, source_db, keys, options.stream_counters));
        FERRY_ASSIGN_OR_RETURN(std::vector<Value> t,
                               FetchValues(target, target_db, keys, options.stream_counters));
        for (size_t i = 0; i < keys.size(); ++i) {
          CompareKey(keys[i], source_db, s[i], t[i], options.ttl_slack, &diffs);
        }
        return absl::OkStatus();
      }));
  if (options.check_extra_in_target) {
    FERRY_RETURN_IF_ERROR(
        ScanBatches(target, target_db, options.match, count,
                    [&](const std::vector<std::string>& keys) -> absl::Status {
                      FERRY_RETURN_IF_ERROR(source.Select(source_db));
                      Commands cmds;
                      for (const std::string& key : keys) cmds.push_back({"EXISTS", key});
                      FERRY_ASSIGN_OR_RETURN(std::vector<redis::Reply> replies,
                                             redis::RunPipeline(source, cmds));
                      for (size_t i = 0; i < keys.size(); ++i) {
                        FERRY_RETURN_IF_ERROR(ReplyStatus(replies[i], "EXISTS"));
                        if (replies[i].integer() == 0)
                          diffs.push_back({keys[i], "extra in target", target_db});
                      }
                      return absl::OkStatus();
                    }));
  }
  // SCAN may return a key twice (during a rehash): report it once.
  auto tie = [](const KeyDiff& d) { return std::tie(d.db, d.key, d.problem); };
  std::sort(diffs.begin(), diffs.end(), [&](auto& a, auto& b) { return tie(a) < tie(b); });
  auto last =
      std::unique(diffs.begin(), diffs.end(), [&](auto& a, auto& b) { return tie(a) == tie(b); });
  diffs.erase(last, diffs.end());
  return diffs;
}

absl::StatusOr<std::vector<KeyDiff>> CompareServers(redis::Connection& source,
                                                    redis::Connection& target,
                                                    const CompareOptions& options) {
  FERRY_ASSIGN_OR_RETURN(std::set<int> dbs, DbsWithKeys(source));
  FERRY_ASSIGN_OR_RETURN(std::set<int> target_dbs, DbsWithKeys(target));
  dbs.insert(target_dbs.begin(), target_dbs.end());
  std::vector<KeyDiff> diffs;
  for (int db : dbs) {
    FERRY_ASSIGN_OR_RETURN(std::vector<KeyDiff> db_diffs,
                           CompareDatabases(source, db, target, db, options));
    diffs.insert(diffs.end(), db_diffs.begin(), db_diffs.end());
  }
  return diffs;
}

::testing::AssertionResult SameData(redis::Connection& source, int source_db,
                                    redis::Connection& target, int target_db,
                                    const CompareOptions& options) {
  return DiffsToAssertion(CompareDatabases(source, source_db, target, target_db, options));
}

::testing::AssertionResult SameData(redis::Connection& source, redis::Connection& target,
                                    const CompareOptions& options) {
  return DiffsToAssertion(CompareServers(source, target, options));
}

}  // namespace ferry::testing
