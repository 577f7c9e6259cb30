#pragma once

// What a server is and can do: the one table that says whether a command or an option exists
// on a side (DESIGN.md, "Versions"). Callers ask it instead of comparing versions; a command the
// table promises may still be renamed or refused by an ACL, so callers that depend on one also
// handle its refusal.
//
// Engines: Redis 4.0 ... 8.x, and Valkey, which reports a Redis-compatible `redis_version`
// (7.2.4 on every Valkey so far) and carries `server_name:valkey` and `valkey_version`.
// Commands and options follow the Redis-compatible version; what Valkey added on its own (hash
// field TTLs in 9.0) follows valkey_version.

#include <string>
#include <utility>

#include "absl/strings/string_view.h"

namespace ferry::redis {

enum class Engine { kRedis, kValkey };

class Capabilities {
 public:
  // From `INFO server` text (plain `INFO` works too). An unreadable version is taken for the
  // oldest supported one (Redis 4.0), so nothing newer is sent.
  static Capabilities FromInfo(absl::string_view info_server);
  static Capabilities ForVersion(std::pair<int, int> redis_version);
  static Capabilities ForValkey(std::pair<int, int> valkey_version);

  Engine engine() const { return engine_; }
  // The Redis-compatible version (Valkey: what it reports as redis_version).
  std::pair<int, int> version() const { return version_; }
  // Valkey's own version; {0, 0} for Redis.
  std::pair<int, int> valkey_version() const { return valkey_version_; }
  // "Redis 7.0" / "Valkey 8.0", for messages.
  std::string Describe() const;

  // ---- Commands and options, by version.
  // SCAN ... TYPE (6.0).
  bool scan_type() const { return AtLeast(6, 0); }
  // RESTORE ... ABSTTL (5.0).
  bool restore_absttl() const { return AtLeast(5, 0); }
  // SET ... PXAT (6.2).
  bool set_pxat() const { return AtLeast(6, 2); }
  // GETDEL (6.2).
  bool getdel() const { return AtLeast(6, 2); }
  // PEXPIRETIME: a key's expiry as an absolute Unix time in ms (7.0).
  bool pexpiretime() const { return AtLeast(7, 0); }
  // ACL users (6.0).
  bool acl() const { return AtLeast(6, 0); }
  // ACL DRYRUN user command...: whether a user may run a command, without running it (7.0).
  bool acl_dryrun() const { return AtLeast(7, 0); }
  // CLUSTER SHARDS (7.0).
  bool cluster_shards() const { return AtLeast(7, 0); }
  // The stream type and its commands (5.0).
  bool streams() const { return AtLeast(5, 0); }
  // XSETID ... ENTRIESADDED n MAXDELETEDID id, XGROUP CREATE ... ENTRIESREAD n, and the
  // entries-added / max-deleted-entry-id / entries-read fields of XINFO (7.0).
  bool stream_counters() const { return AtLeast(7, 0); }
  // XINFO STREAM key FULL (6.0).
  bool xinfo_stream_full() const { return AtLeast(6, 0); }
  // XGROUP CREATECONSUMER (6.2).
  bool xgroup_createconsumer() const { return AtLeast(6, 2); }
  // XPENDING ... IDLE and exclusive ranges `(id` in XRANGE/XPENDING (6.2).
  bool exclusive_ranges() const { return AtLeast(6, 2); }
  // SMISMEMBER and ZMSCORE: many members looked up in one command (6.2).
  bool smismember() const { return AtLeast(6, 2); }
  bool zmscore() const { return AtLeast(6, 2); }
  // Hash field TTLs: HPEXPIRETIME / HPEXPIREAT (Redis 7.4; Valkey 9.0).
  bool hash_field_ttl() const;
  // UNLINK (4.0: every supported version).
  bool unlink() const { return AtLeast(4, 0); }
  // MEMORY USAGE (4.0: every supported version).
  bool memory_usage() const { return AtLeast(4, 0); }
  // `SCAN cursor COUNT 1` stops after the first non-empty position of the keyspace's dict, so
  // the cursor it returns says where every key it returned came from (scan_math.h,
  // ShardWalk::PastEnd): Redis's dict in every version; Valkey before 8.1, whose new hashtable
  // scans differently.
  bool scan_count_one_is_one_position() const;

  // ---- DUMP payloads: the 2-byte RDB version before the CRC64 footer (dump_payload.h).
  // What this version writes, by the table: Redis 4.0 = 8, 5.0 and 6.x = 9, 7.0 = 10, 7.2 = 11,
  // 7.4 and 8.x = 12; Valkey 7.2 and 8.x = 11, 9.x = 80. A DUMP of a real value tells better
  // (newer numbers will come): callers prefer that and use this when they cannot DUMP.
  int TablePayloadVersion() const;
  // Whether a server that writes payload version `own` (probed, or TablePayloadVersion) reads
  // `payload`: Redis reads every version up to its own; Valkey 9 and later (own >= 80) also
  // refuse the "foreign" range 12..79 that Redis 7.4+ writes.
  static bool ReadsPayload(Engine engine, int own, int payload);

 private:
  Capabilities(Engine engine, std::pair<int, int> version, std::pair<int, int> valkey_version)
      : engine_(engine), version_(version), valkey_version_(valkey_version) {}
  bool AtLeast(int major, int minor) const { return version_ >= std::make_pair(major, minor); }

  Engine engine_;
  std::pair<int, int> version_;
  std::pair<int, int> valkey_version_;
};

}  // namespace ferry::redis
