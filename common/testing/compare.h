#pragma once

// Key-by-key comparison of two Redis databases (the oracle of every copy test) and a
// deterministic loader of every data type. Test support only.

#include <cstdint>
#include <ostream>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/redis/connection.h"
#include "gtest/gtest.h"

namespace ferry::testing {

// One key that differs. `problem` never holds a value (values may be huge or binary), only
// types, TTLs and sizes: "missing in target", "extra in target", "type string vs hash",
// "value differs (source 3 elements/20 bytes, target 4 elements/27 bytes)", "ttl 5000 vs -1".
struct KeyDiff {
  std::string key;
  std::string problem;
  int db = 0;  // The source db the key was found in (the target db for "extra in target").
};

// "db0 'key': problem", with the key C-escaped and cut at 200 bytes.
std::string DescribeDiff(const KeyDiff& diff);
void PrintTo(const KeyDiff& diff, std::ostream* os);

struct CompareOptions {
  // SCAN MATCH pattern applied to both sides.
  std::string match = "*";
  // How far the target's PTTL may be from the source's (reads are not simultaneous); a key the
  // source says expires within it may already be gone from the target.
  absl::Duration ttl_slack = absl::Seconds(2);
  // Also SCAN the target for keys the source does not have.
  bool check_extra_in_target = true;
  // Streams' entries-added, max-deleted-entry-id and groups' entries-read (Redis 7.0 and
  // later). False for a target that only pretends to be older (a RespProxy): its real 7.0
  // keeps counters that the copy, rightly, did not set.
  bool stream_counters = true;
  // Keys fetched per pipelined round trip.
  int batch_size = 1000;
};

// Compares every key of `source_db` matching options.match with the same key in `target_db`:
// type, canonical value (sorted where Redis order is not defined; streams with their
// last-generated-id, groups, consumers and pending entries (id, owner, delivery count), and on
// Redis 7.0 and later their entries-added, max-deleted-entry-id and each group's entries-read)
// and PTTL. Keys that vanish from the source during
// the scan are skipped. Diffs come back sorted by key. The connections may be the same object.
// Standalone servers (or one cluster node's keys) only.
absl::StatusOr<std::vector<KeyDiff>> CompareDatabases(redis::Connection& source, int source_db,
                                                      redis::Connection& target, int target_db,
                                                      const CompareOptions& options = {});

// CompareDatabases over every db that has keys on either side (from INFO keyspace), db N
// against db N.
absl::StatusOr<std::vector<KeyDiff>> CompareServers(redis::Connection& source,
                                                    redis::Connection& target,
                                                    const CompareOptions& options = {});

// For EXPECT_TRUE/ASSERT_TRUE: success when there are no diffs, otherwise the first 20.
::testing::AssertionResult SameData(redis::Connection& source, int source_db,
                                    redis::Connection& target, int target_db,
                                    const CompareOptions& options = {});
::testing::AssertionResult SameData(redis::Connection& source, redis::Connection& target,
                                    const CompareOptions& options = {});

// Writes `keys` keys into `db`, a deterministic function of `seed`: strings (ASCII, binary,
// UTF-8, empty, integer, 64 KiB), hashes, lists, sets (int and text members) and sorted sets of
// varied sizes (both compact and big encodings), streams with a consumer group and a pending
// entry, HyperLogLogs (PFADD), geo sets (GEOADD) and bitmaps (SETBIT). About `ttl_fraction` of
// the keys get a TTL of 2 to 5 minutes. Key names are "mixed:<seed>:<i>:<kind>". Pipelined.
absl::Status LoadMixedData(redis::Connection& conn, int db, int keys, uint64_t seed,
                           double ttl_fraction);

}  // namespace ferry::testing
