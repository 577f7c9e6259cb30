// The reads of ShardVerifier (shard_verifier.h): the reverse shards' EXISTS, and the rounds of a
// forward check on one side (LookUp, then ReadValues).

#include <algorithm>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "agent/shard_verifier.h"
#include "agent/value_copy.h"
#include "common/base/logging.h"
#include "common/base/status_macros.h"

namespace ferry::agent {
namespace {

using redis::Reply;

// Bytes of values (GET, DUMP) asked for in one round trip: a batch of keys near --big-key-bytes
// each is read in several.
constexpr uint64_t kMaxValueBytesPerRound = 16 << 20;

}  // namespace

const char* ShardVerifier::FieldCommand(Field field) {
  static const char* const kNames[] = {"PTTL",   "STRLEN", "TYPE", "MEMORY USAGE",
                                       "length", "read",   "INFO", "length"};
  return kNames[static_cast<int>(field)];
}

absl::StatusOr<std::vector<ShardVerifier::Verdict>> ShardVerifier::CheckReverse(
    const std::vector<absl::string_view>& keys, bool again) {
  // Walked: the job's target; other: its source. Only whether the source has the key counts
  // here (its value is the forward shards' business). The first look asks a standalone source
  // with one EXISTS for the whole batch, which answers how many exist: all of them, mostly.
  std::vector<Verdict> verdicts(keys.size());
  if (!again && !sides_.other->cluster()) {
    std::vector<absl::string_view> argv = {"EXISTS"};
    argv.insert(argv.end(), keys.begin(), keys.end());
    sides_.other->Add(argv);
    FERRY_ASSIGN_OR_RETURN(std::vector<Reply> count, sides_.other->Execute());
    if (count[0].is_error()) {
      FERRY_RETURN_IF_ERROR(FatalUnlessPerKey(ReplyStatus("source", "EXISTS", count[0])));
    } else if (static_cast<size_t>(count[0].integer()) == keys.size()) {
      for (Verdict& verdict : verdicts) verdict = {Kind::kPresent, "", "exists"};
      return verdicts;
    }
  }
  for (absl::string_view key : keys) sides_.other->Add({"EXISTS", key});
  FERRY_ASSIGN_OR_RETURN(std::vector<Reply> on_source, sides_.other->Execute());
  // The key was just listed by SCAN on the target; a look again asks the target too.
  std::vector<Reply> on_target;
  if (again) {
    for (absl::string_view key : keys) sides_.walked->Add({"EXISTS", key});
    FERRY_ASSIGN_OR_RETURN(on_target, sides_.walked->Execute());
  }
  for (size_t i = 0; i < keys.size(); ++i) {
    bool on_target_too = true;
    if (again) {
      if (on_target[i].is_error()) {
        const absl::Status status = ReplyStatus("target", "EXISTS", on_target[i]);
        FERRY_RETURN_IF_ERROR(FatalUnlessPerKey(status));
        verdicts[i] = {Kind::kError, std::string(status.message()), ""};
        continue;
      }
      on_target_too = on_target[i].integer() > 0;
    }
    if (on_source[i].is_error()) {
      const absl::Status status = ReplyStatus("source", "EXISTS", on_source[i]);
      FERRY_RETURN_IF_ERROR(FatalUnlessPerKey(status));
      verdicts[i] = {Kind::kError, std::string(status.message()), ""};
      continue;
    }
    verdicts[i].fingerprint = on_target_too ? "exists" : "none";
    verdicts[i].kind = !on_target_too               ? Kind::kVanished
                       : on_source[i].integer() > 0 ? Kind::kPresent
                                                    : Kind::kExtra;
  }
  return verdicts;
}

absl::Status ShardVerifier::ReadReplies(redis::Router& side, absl::string_view name,
                                        std::vector<std::pair<size_t, Field>>& asked,
                                        std::vector<Look>& looks, std::vector<Reply>* info) {
  if (asked.empty()) return absl::OkStatus();
  const absl::Time sent = absl::Now();
  FERRY_ASSIGN_OR_RETURN(std::vector<Reply> replies, side.Execute());
  const absl::Time received = absl::Now();
  for (size_t j = 0; j < asked.size(); ++j) {
    const auto [i, field] = asked[j];
    Reply& reply = replies[j];
    if (field == Field::kInfo) {  // An error reply too: ParseTtlProbe takes it as no proof.
      info->push_back(std::move(reply));
      continue;
    }
    Look& look = looks[i];
    if (reply.is_error()) {
      const absl::Status status = ReplyStatus(name, FieldCommand(field), reply);
      FERRY_RETURN_IF_ERROR(FatalUnlessPerKey(status));
      // WRONGTYPE: not a string, or not the other side's type; TYPE tells.
      if (field == Field::kStrlen || field == Field::kGuessedLength) continue;
      if (field == Field::kSize && status.code() == absl::StatusCode::kPermissionDenied) {
        // Refused: every key is compared in pages, which never reads a big value whole.
        if (memory_usage_ok_.exchange(false)) {
          FERRY_LOG(Warning) << "the " << name << " refuses MEMORY USAGE: values are compared "
                             << "in pages, not by DUMP";
        }
        continue;
      }
      // WRONGTYPE after TYPE: the key changed meanwhile; the look again sees it.
      look.error = std::string(status.message());
      continue;
    }
    switch (field) {
      case Field::kPttl:
        look.pttl = reply.integer();
        look.sent = sent;
        look.received = received;
        if (look.pttl == -2) look.type = "none";
        break;
      case Field::kStrlen:
        // 0: an empty string or no key; TYPE tells.
        if (reply.integer() > 0 && look.type.empty()) look.type = "string";
        look.length = look.size = reply.integer();
        break;
      case Field::kType:
        look.type = std::string(reply.str());
        break;
      case Field::kSize:
        look.size = reply.is_nil() ? 0 : reply.integer();
        break;
      case Field::kLength:
        look.length = reply.integer();
        break;
      case Field::kGuessedLength:
        // PTTL's -2 before it said "none": 0 is then no length of the other type.
        if (look.type.empty()) look.type = *look.guessed_type;
        look.length = reply.integer();
        break;
      case Field::kValue:
        if (reply.is_nil()) {
          look.type = "none";  // Gone since TYPE.
        } else {
          look.value = std::move(reply);
        }
        break;
      case Field::kInfo:
        break;  // Taken above.
    }
  }
  asked.clear();
  return absl::OkStatus();
}

absl::Status ShardVerifier::LookUp(redis::Router& side, absl::string_view name, int db,
                                   const std::vector<absl::string_view>& keys, bool read_ttls,
                                   std::vector<Look>& looks, bool* no_ttl,
                                   const std::vector<Look>* types_from) {
  std::vector<std::pair<size_t, Field>> asked;
  const auto ask = [&](size_t i, Field field, std::initializer_list<absl::string_view> argv) {
    side.Add(argv);
    asked.emplace_back(i, field);
  };
  // Without PTTL, INFO before and after the first round, in its pipeline, proves no key had a
  // TTL (or not).
  const auto probe = [&] {
    ask(0, Field::kInfo, {"INFO", "keyspace"});
    ask(0, Field::kInfo, {"INFO", "stats"});
  };
  if (!read_ttls) probe();
  // First the guess that the shard holds strings (one STRLEN says type, length and size), or
  // TYPE for each key.
  for (size_t i = 0; i < keys.size(); ++i) {
    if (read_ttls) ask(i, Field::kPttl, {"PTTL", keys[i]});
    const std::string* guess = types_from == nullptr ? nullptr : &(*types_from)[i].type;
    const absl::string_view guessed_length =
        guess == nullptr ? absl::string_view() : LengthCommand(*guess);
    if (strings_first_) {
      ask(i, Field::kStrlen, {"STRLEN", keys[i]});
    } else if (!guessed_length.empty()) {
      looks[i].guessed_type = guess;
      ask(i, Field::kGuessedLength, {guessed_length, keys[i]});
    } else {
      ask(i, Field::kType, {"TYPE", keys[i]});
      if (verify_.full && memory_usage_ok_) ask(i, Field::kSize, {"MEMORY", "USAGE", keys[i]});
    }
  }
  std::vector<Reply> info;
  if (!read_ttls) probe();
  FERRY_RETURN_IF_ERROR(ReadReplies(side, name, asked, looks, &info));
  if (!read_ttls) {
    *no_ttl = info.size() == 4 && NoTtlBetween(ParseTtlProbe(info[0], info[1], db),
                                               ParseTtlProbe(info[2], info[3], db));
  }
  if (!strings_first_ && types_from == nullptr) return absl::OkStatus();
  // The keys STRLEN or the other side's type could not tell (another type, an empty string, a
  // missing key).
  for (size_t i = 0; i < keys.size(); ++i) {
    Look& look = looks[i];
    if (!look.type.empty() || !look.error.empty()) continue;
    ask(i, Field::kType, {"TYPE", keys[i]});
    if (verify_.full && memory_usage_ok_) ask(i, Field::kSize, {"MEMORY", "USAGE", keys[i]});
  }
  return ReadReplies(side, name, asked, looks, nullptr);
}

absl::Status ShardVerifier::ReadValues(redis::Router& side, absl::string_view name,
                                       const std::vector<absl::string_view>& keys,
                                       const std::vector<bool>& want, std::vector<Look>& looks) {
  std::vector<std::pair<size_t, Field>> asked;
  uint64_t bytes = 0;  // Of the values asked in this round: bounded, so memory is.
  for (size_t i = 0; i < keys.size(); ++i) {
    if (!want[i]) continue;
    Look& look = looks[i];
    if (!verify_.full) {
      if (look.length < 0) {
        side.Add({LengthCommand(look.type), keys[i]});
        asked.emplace_back(i, Field::kLength);
      }
      continue;
    }
    side.Add({look.type == "string" ? "GET" : "DUMP", keys[i]});
    asked.emplace_back(i, Field::kValue);
    bytes += std::max<int64_t>(look.size, 0);
    if (bytes >= kMaxValueBytesPerRound) {
      FERRY_RETURN_IF_ERROR(ReadReplies(side, name, asked, looks, nullptr));
      bytes = 0;
    }
  }
  return ReadReplies(side, name, asked, looks, nullptr);
}

}  // namespace ferry::agent
