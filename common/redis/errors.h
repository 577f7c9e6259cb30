#pragma once

#include <optional>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace ferry::redis {

// What a caller should do about a Redis error. DESIGN.md, "Copying a shard". Each class has
// status codes of its own (StatusFromReplyError and Classify agree on them):
enum class ErrorClass {
  kTransient,  // UNAVAILABLE, DEADLINE_EXCEEDED: connection lost, timeout, LOADING, BUSY,
               // TRYAGAIN, CLUSTERDOWN...: back off, retry.
  kRedirect,   // ABORTED: MOVED, ASK: refresh the slot map or send ASKING.
  kVersion,    // UNIMPLEMENTED: the target cannot read the DUMP payload (an older RDB
               // version): per key.
  kPerKey,     // INVALID_ARGUMENT, ALREADY_EXISTS (and any code not listed here): wrong type,
               // too large, BUSYKEY...: record the key and go on.
  kFatal,      // UNAUTHENTICATED, PERMISSION_DENIED, RESOURCE_EXHAUSTED, DATA_LOSS (the target
               // lost written data), FAILED_PRECONDITION (fix the system first): stop the job.
};

// What a Redis error reply says, read from its text: its first word (Redis puts the error
// class there) or, for servers that answer "ERR ...", the known texts. The only parser of error
// text in ferry; everything else asks Kind, StatusFromReplyError or ParseRedirect.
enum class ReplyErrorKind {
  kOther,           // None of the below (WRONGTYPE, syntax, value too large...): per key.
  kAuth,            // NOAUTH, WRONGPASS, "ERR invalid password"...
  kNoPerm,          // NOPERM: an ACL refusal (ClassifyRefusal says of what).
  kUnknownCommand,  // A command renamed or disabled by the operator (ElastiCache).
  kOom,             // OOM: the server is over maxmemory.
  kLoading,         // LOADING: the server is loading its data set.
  kBusy,            // BUSY: a script or function is running.
  kTryAgain,        // TRYAGAIN: a multi-key command during a slot migration.
  kClusterDown,     // CLUSTERDOWN: the cluster is (re)forming.
  kMasterDown,      // MASTERDOWN: a replica lost its primary.
  kReadOnly,        // READONLY: a write sent to a replica (a failover happened).
  kNoReplicas,      // NOREPLICAS: min-replicas-to-write is not met.
  kMoved,           // MOVED slot host:port: the slot lives elsewhere.
  kAsk,             // ASK slot host:port: this key is being migrated there.
  kBusyKey,         // BUSYKEY: RESTORE without REPLACE found the key.
  kPayloadVersion,  // RESTORE of a DUMP from a newer Redis.
  kNoCluster,       // A CLUSTER command sent to a server not in cluster mode.
};

// Also reads a status message that prefixes the reply with context ("CLUSTER: ERR ..."), for
// the kinds recognised by their text rather than their first word.
ReplyErrorKind Kind(absl::string_view error);

// The one table that maps Redis error replies to absl codes (ErrorClass lists them by class):
//   auth -> UNAUTHENTICATED, NOPERM and unknown command -> PERMISSION_DENIED,
//   OOM -> RESOURCE_EXHAUSTED, LOADING/BUSY/TRYAGAIN/CLUSTERDOWN/MASTERDOWN/READONLY/NOREPLICAS
//   -> UNAVAILABLE, MOVED/ASK -> ABORTED, BUSYKEY -> ALREADY_EXISTS, payload version ->
//   UNIMPLEMENTED, anything else -> INVALID_ARGUMENT. The message is the server's text.
absl::Status StatusFromReplyError(absl::string_view error);

// Classifies a status produced by this library (a reply error or an I/O failure) or by the
// agent (DATA_LOSS), by its code.
ErrorClass Classify(const absl::Status& status);

// Whether work that failed with `code` may succeed when run again later (a transient error or a
// redirect that outlived the retries): the scheduler requeues such a shard.
bool MayRetryLater(absl::StatusCode code);

// Whether a router resends a command that got this reply by itself, after a short backoff: the
// condition ends within seconds without anyone's help (a slot migrating, a cluster forming, a
// node loading, a replica relinking). BUSY (a script may run for ever), READONLY and NOREPLICAS
// (a failover or the replicas must change first) go back to the caller, whose retries reconnect
// and re-read the topology.
bool RouterResends(ReplyErrorKind kind);

// A MOVED or ASK reply: `MOVED 3999 10.0.0.1:6381`, IPv6 hosts in brackets.
struct Redirect {
  bool ask = false;  // ASK (this key, once, after ASKING) rather than MOVED (the whole slot).
  int slot = -1;
  std::string host;
  int port = 0;
};

// nullopt for any other reply and for a malformed redirect. An empty or "?" host means "the
// host the command was sent to" (cluster-preferred-endpoint-type unknown-endpoint): `same_host`.
std::optional<Redirect> ParseRedirect(absl::string_view error, absl::string_view same_host);

// True for the error RESTORE gives when the payload comes from a newer Redis.
bool IsPayloadVersionError(absl::string_view error);

// What an ACL refusal (a PERMISSION_DENIED status or NOPERM reply) is about: the command itself
// (also a renamed or disabled command), a key pattern (`~app:*`) or a channel pattern. The
// remedies differ (grant the command vs widen the key patterns), so messages must say which.
enum class Refusal { kCommand, kKey, kChannel };

// Reads the refusal's text: Redis 6.x/7.0 ("this user has no permissions to access one of the
// keys used as arguments") and 7.2+ ("No permissions to access a key") alike; anything that
// names no key or channel counts as the command's.
Refusal ClassifyRefusal(absl::string_view error);

}  // namespace ferry::redis
