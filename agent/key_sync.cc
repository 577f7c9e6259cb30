#include "agent/key_sync.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "agent/expiry.h"
#include "common/base/status_macros.h"
#include "common/redis/errors.h"
#include "common/redis/info.h"
#include "common/redis/slot.h"

namespace ferry::agent {
namespace {

CopyOptions SyncOptions(CopyOptions options) {
  options.verify.reset();
  options.on_conflict = OnConflict::kReplace;
  return options;
}

CopyCallbacks FailedKeysOnly(const CopyCallbacks& callbacks) {
  CopyCallbacks only;
  only.on_failed_key = callbacks.on_failed_key;
  return only;
}

}  // namespace

KeySync::KeySync(const ShardSpec& spec, const CopyOptions& options, const Target& target,
                 const CopyCallbacks& callbacks)
    : spec_(spec),
      options_(SyncOptions(options)),
      target_(target),
      writer_callbacks_(FailedKeysOnly(callbacks)),
      writer_(options_, target.router.get(), target.expiry,
              target.facts.has_value() ? &*target.facts : nullptr, scratch_, writer_callbacks_) {
  writer_.set_delete_vanished(true);
  writer_.set_count_distinct(false);
}

absl::Status KeySync::OpenSource(const redis::Endpoint& node, bool replica) {
  Source& s = source_;
  if (s.connection.has_value() && !s.connection->broken() &&
      s.connection->endpoint().Address() == node.Address() &&
      s.connection->endpoint().db == node.db) {
    return absl::OkStatus();
  }
  s = Source();
  absl::StatusOr<redis::Connection> connection =
      redis::Connection::Open(node, options_.SourceConnect());
  if (!connection.ok()) return Annotate(connection.status(), "source");
  if (replica)
    FERRY_RETURN_IF_ERROR(Annotate(connection->Command({"READONLY"}).status(), "source"));
  FERRY_ASSIGN_OR_RETURN(s.caps, redis::ReadCapabilities(*connection));
  FERRY_ASSIGN_OR_RETURN(std::optional<SourceClock> clock,
                         AbsoluteExpiryClock(*connection, s.caps));
  s.connection = *std::move(connection);
  ReadPath path;
  path.source = s.caps;
  path.target = target_.facts.has_value() ? &*target_.facts : nullptr;
  path.typed = options_.typed_only || (path.target != nullptr && !path.target->restore_allowed);
  path.big_key_bytes = options_.big_key_bytes;
  s.queue = std::make_unique<BatchQueue>(1);
  s.reader = std::make_unique<ShardReader>(spec_, options_, *s.connection, replica, clock, path,
                                           /*limiter=*/nullptr, /*cancel=*/nullptr, *s.queue);
  return absl::OkStatus();
}

absl::StatusOr<KeySync::Result> KeySync::Sync(const redis::Endpoint& node, bool replica,
                                              const std::vector<std::string>& keys) {
  Result result;
  if (keys.empty()) return result;
  FERRY_RETURN_IF_ERROR(OpenSource(node, replica));
  std::vector<std::string> retyped;
  std::vector<std::string> filtered;
  const std::vector<std::string>* read = &keys;
  if (!spec_.type.empty()) {
    FERRY_ASSIGN_OR_RETURN(filtered, FilterByType(keys, retyped));
    read = &filtered;
  }
  if (!read->empty()) {
    FERRY_ASSIGN_OR_RETURN(Batch batch, source_.reader->ReadKeys(*read));
    scratch_.counters.Clear();
    FERRY_RETURN_IF_ERROR(writer_.Write(batch));
    result.delta = scratch_.counters;
    result.moved_slots = std::move(batch.moved_slots);
  }
  FERRY_RETURN_IF_ERROR(DeleteRetyped(retyped, result));
  return result;
}

absl::StatusOr<std::vector<std::string>> KeySync::FilterByType(const std::vector<std::string>& keys,
                                                               std::vector<std::string>& retyped) {
  redis::Connection& source = *source_.connection;
  for (const std::string& key : keys) source.Append({"TYPE", key});
  FERRY_RETURN_IF_ERROR(source.Flush());
  std::vector<std::string> kept;
  for (const std::string& key : keys) {
    FERRY_ASSIGN_OR_RETURN(redis::Reply type, source.ReadReply());
    // Errors (a redirect, say) are the reader's to meet and report.
    if (type.is_error() || type.str() == spec_.type || type.str() == "none") {
      kept.push_back(key);
    } else {
      retyped.push_back(key);
    }
  }
  return kept;
}

absl::Status KeySync::DeleteRetyped(const std::vector<std::string>& retyped, Result& result) {
  if (retyped.empty() || target_.router == nullptr) return absl::OkStatus();
  redis::Router& target = *target_.router;
  for (const std::string& key : retyped) target.Add({"TYPE", key});
  FERRY_ASSIGN_OR_RETURN(std::vector<redis::Reply> types, target.Execute());
  std::vector<const std::string*> doomed;
  for (size_t i = 0; i < retyped.size(); ++i) {
    if (!types[i].is_error() && types[i].str() == spec_.type) doomed.push_back(&retyped[i]);
  }
  for (const std::string* key : doomed) target.Add({"DEL", *key});
  if (doomed.empty()) return absl::OkStatus();
  FERRY_ASSIGN_OR_RETURN(std::vector<redis::Reply> deleted, target.Execute());
  for (const redis::Reply& reply : deleted) {
    if (!reply.is_error()) continue;
    absl::Status status = ReplyStatus("target", "DEL", reply);
    if (redis::Classify(status) != redis::ErrorClass::kPerKey) return status;
  }
  result.delta.set_vanished(result.delta.vanished() + doomed.size());
  return absl::OkStatus();
}

}  // namespace ferry::agent
