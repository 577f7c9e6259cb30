#include "common/redis/scan_math.h"

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <functional>
#include <map>
#include <random>
#include <string>
#include <unordered_set>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/redis/slot.h"
#include "gtest/gtest.h"

namespace ferry::redis {
namespace {

// Bit reversal written independently of the code under test.
uint64_t Rev64(uint64_t v) {
  uint64_t r = 0;
  for (int i = 0; i < 64; ++i, v >>= 1) r = (r << 1) | (v & 1);
  return r;
}

uint64_t RevLow(uint64_t v, int bits) { return bits == 0 ? 0 : Rev64(v) >> (64 - bits); }

uint64_t SplitMix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

// A model of Redis 7.0's src/dict.c, the part that decides what SCAN returns: two tables,
// incremental rehashing, growth, shrinking and dictScan. Keys are integers hashed with a seed,
// as the server hashes with a random seed chosen at start.
class Dict {
 public:
  explicit Dict(uint64_t seed) : seed_(seed) {}
  uint64_t Hash(uint64_t key) const { return SplitMix64(key ^ seed_); }
  size_t size() const { return ht_[0].used + ht_[1].used; }
  bool rehashing() const { return rehash_idx_ >= 0; }

  // dictAdd: one rehash step, grow if needed, insert into ht[1] while rehashing.
  void Add(uint64_t key) {
    if (rehashing()) Rehash(1);
    ExpandIfNeeded();
    Table& t = ht_[rehashing() ? 1 : 0];
    t.buckets[Hash(key) & t.mask()].push_back(key);
    ++t.used;
  }

  // dictDelete of a key that exists: one rehash step, then look in ht[0], then ht[1].
  void Delete(uint64_t key) {
    if (rehashing()) Rehash(1);
    for (Table& t : ht_) {
      std::vector<uint64_t>& bucket = t.buckets[Hash(key) & t.mask()];
      if (auto it = std::find(bucket.begin(), bucket.end(), key); it != bucket.end()) {
        bucket.erase(it);
        --t.used;
        return;
      }
    }
  }

  // dictRehash(d, n): moves n buckets of ht[0] to ht[1], visiting at most 10n empty ones.
  void Rehash(int n) {
    int empty_visits = n * 10;
    if (!rehashing()) return;
    while (n-- > 0 && ht_[0].used != 0) {
      while (ht_[0].buckets[rehash_idx_].empty()) {
        ++rehash_idx_;
        if (--empty_visits == 0) return;
      }
      for (uint64_t key : ht_[0].buckets[rehash_idx_]) {
        ht_[1].buckets[Hash(key) & ht_[1].mask()].push_back(key);
        --ht_[0].used;
        ++ht_[1].used;
      }
      ht_[0].buckets[rehash_idx_++].clear();
    }
    if (ht_[0].used == 0) {
      ht_[0] = std::move(ht_[1]);
      ht_[1] = Table{};
      rehash_idx_ = -1;
    }
  }

  // _dictExpand: a rehash into a table of the next power of two >= size (at least 4), for
  // growing and shrinking alike; the first table is installed directly.
  void Expand(size_t size) {
    if (rehashing() || ht_[0].used > size) return;
    size_t new_size = 4;
    while (new_size < size) new_size *= 2;
    if (new_size == ht_[0].buckets.size()) return;
    const bool first = ht_[0].buckets.empty();
    ht_[first ? 0 : 1].buckets.resize(new_size);
    if (!first) rehash_idx_ = 0;
  }

  // What happens to a dict between two SCAN calls apart from writes: serverCron's rehashing
  // and shrinking (htNeedsResize + dictResize), a fork forbidding resizes, forced resizes.
  void Background(std::mt19937_64& rng) {
    const uint64_t what = rng() % 6;
    const size_t slots = ht_[0].buckets.size() + ht_[1].buckets.size();
    if (what <= 1) {
      Rehash(1 + static_cast<int>(rng() % 100));
    } else if (what == 2) {
      if (can_resize_ && slots > 4 && size() * 100 / slots < 10) Expand(ht_[0].used);
    } else if (what == 3) {
      Expand(size() + rng() % (4 * size() + 64));  // Any size that fits: grow or shrink.
    } else if (what == 4) {
      Expand(ht_[0].used);  // Shrink to fit, however full.
    } else {
      can_resize_ = rng() % 4 != 0;
    }
  }

  // dictScan, line for line: the bucket at the cursor in the small table, then every bucket
  // of the large table that it expands to, then the reversed-bit increment.
  uint64_t Scan(uint64_t v, std::vector<uint64_t>* out) const {
    if (size() == 0) return 0;
    if (!rehashing()) {
      const uint64_t m0 = ht_[0].mask();
      Emit(ht_[0], v & m0, out);
      v |= ~m0;
      return Rev64(Rev64(v) + 1);
    }
    const Table* t0 = &ht_[0];
    const Table* t1 = &ht_[1];
    if (t0->buckets.size() > t1->buckets.size()) std::swap(t0, t1);
    const uint64_t m0 = t0->mask();
    const uint64_t m1 = t1->mask();
    Emit(*t0, v & m0, out);
    do {
      Emit(*t1, v & m1, out);
      v |= ~m1;
      v = Rev64(Rev64(v) + 1);
    } while (v & (m0 ^ m1));
    return v;
  }

 private:
  struct Table {
    std::vector<std::vector<uint64_t>> buckets;
    size_t used = 0;
    uint64_t mask() const { return buckets.size() - 1; }
  };

  // _dictExpandIfNeeded: the first table has 4 buckets; then grow to 2 * used at a load of 1,
  // or of 5 (dict_force_resize_ratio) while a fork forbids resizing.
  void ExpandIfNeeded() {
    const size_t slots = ht_[0].buckets.size();
    if (!rehashing() &&
        (slots == 0 || (ht_[0].used >= slots && (can_resize_ || ht_[0].used / slots > 5)))) {
      Expand(ht_[0].used * 2);
    }
  }

  static void Emit(const Table& t, uint64_t index, std::vector<uint64_t>* out) {
    out->insert(out->end(), t.buckets[index].begin(), t.buckets[index].end());
  }

  uint64_t seed_;
  Table ht_[2];
  int64_t rehash_idx_ = -1;
  bool can_resize_ = true;
};

// Redis 7.4's kvstore in cluster mode: one dict per slot, created on first write and freed
// when empty; cursor = (dict_cursor << 14) | slot.
class SlotKeyspace {
 public:
  SlotKeyspace(uint64_t seed, std::function<int(uint64_t)> slot_of)
      : seed_(seed), slot_of_(std::move(slot_of)) {}
  void Add(uint64_t key) { dicts_.try_emplace(slot_of_(key), seed_).first->second.Add(key); }

  void Delete(uint64_t key) {  // Of a key that exists.
    auto it = dicts_.find(slot_of_(key));
    it->second.Delete(key);
    if (it->second.size() == 0) dicts_.erase(it);
  }
  void Background(std::mt19937_64& rng) {
    if (dicts_.empty()) return;
    std::next(dicts_.begin(), rng() % dicts_.size())->second.Background(rng);
  }

  // kvstoreScan: scan the slot's dict; when it is done or absent, move to the next non-empty
  // slot with dict cursor 0, or return 0 after the last one.
  uint64_t Scan(uint64_t cursor, std::vector<uint64_t>* out) const {
    int slot = static_cast<int>(cursor & 16383);
    auto it = dicts_.find(slot);
    const uint64_t dict_cursor = it == dicts_.end() ? 0 : it->second.Scan(cursor >> 14, out);
    if (dict_cursor == 0) {
      auto next = dicts_.upper_bound(slot);
      if (next == dicts_.end()) return 0;
      slot = next->first;
    }
    return (dict_cursor << 14) | static_cast<uint64_t>(slot);
  }

 private:
  uint64_t seed_;
  std::function<int(uint64_t)> slot_of_;
  std::map<int, Dict> dicts_;
};

// `stable` keys exist from before the first SCAN to after the last; `churn` ones come and go.
struct Keys {
  std::vector<uint64_t> stable;
  std::vector<uint64_t> churn;
  uint64_t next = 1;
};

size_t Burst(std::mt19937_64& rng) { return rng() % 16 == 0 ? 1 + rng() % 400 : 1 + rng() % 4; }

// What may happen between two SCAN calls: writes, deletes of churn keys (bursts, sometimes all
// of them, so tables grow and shrink), rehash steps and resizes.
template <typename Store>
void Churn(std::mt19937_64& rng, Store& store, Keys& keys) {
  for (int op = static_cast<int>(rng() % 4); op > 0; --op) {
    const uint64_t what = rng() % 7;
    if (what <= 1) {
      for (size_t n = Burst(rng); n > 0; --n) {
        keys.churn.push_back(keys.next);
        store.Add(keys.next++);
      }
    } else if (what <= 3) {
      size_t n = rng() % 64 == 0 ? keys.churn.size() : Burst(rng);
      for (; n > 0 && !keys.churn.empty(); --n) {
        std::swap(keys.churn[rng() % keys.churn.size()], keys.churn.back());
        store.Delete(keys.churn.back());
        keys.churn.pop_back();
      }
    } else {
      store.Background(rng);
    }
  }
}

// Adds `stable` and `churn` keys in random order, with Background work in between if asked.
template <typename Store>
void Populate(std::mt19937_64& rng, size_t stable, size_t churn, bool background, Store& store,
              Keys& keys) {
  std::vector<bool> is_stable(stable + churn, false);
  std::fill_n(is_stable.begin(), stable, true);
  std::shuffle(is_stable.begin(), is_stable.end(), rng);
  for (bool s : is_stable) {
    (s ? keys.stable : keys.churn).push_back(keys.next);
    store.Add(keys.next++);
    if (background && rng() % 8 == 0) store.Background(rng);
  }
}

constexpr size_t kMaxCalls = 200000;  // Far more than any correct run needs.

using FinishedRule = std::function<bool(uint64_t cursor, uint64_t shard, int bits)>;

struct RunOptions {
  int bits;  // 2^bits shards.
  size_t max_stable = 300;
  bool churn = true;
  size_t scan_count = 0;  // 0: one dictScan per call; else SCAN's loop with COUNT.
};

struct RunResult {
  size_t misses = 0;        // Stable keys no shard returned.
  size_t owner_misses = 0;  // Stable keys the shard owning their hash did not return.
  size_t returned = 0;      // Keys returned, duplicates included.
  size_t stable = 0;
  bool runaway = false;  // A shard never finished.
};

// Runs the 2^bits shards of one dict interleaved in random order, as agents would, with
// Churn between every call.
RunResult RunShardedScan(uint64_t seed, const RunOptions& options, const FinishedRule& finished) {
  std::mt19937_64 rng(seed);
  Dict dict(SplitMix64(seed));
  Keys keys;
  const size_t stable = 1 + rng() % options.max_stable;
  Populate(rng, stable, options.churn ? rng() % (2 * stable + 1) : 0, options.churn, dict, keys);

  const uint64_t shards = uint64_t{1} << options.bits;
  std::vector<std::unordered_set<uint64_t>> seen(shards);
  std::vector<uint64_t> cursors;
  std::vector<uint64_t> active;  // Shards not finished yet.
  for (uint64_t s = 0; s < shards; ++s) {
    cursors.push_back(ShardStartCursor(s, options.bits));
    active.push_back(s);
  }
  RunResult result;
  for (size_t calls = 0; !active.empty() && calls < kMaxCalls; ++calls) {
    const size_t pick = rng() % active.size();
    const uint64_t s = active[pick];
    std::vector<uint64_t> out;
    uint64_t next = cursors[s];
    size_t budget = options.scan_count * 10;  // scanGenericCommand: COUNT keys, 10*COUNT tries.
    do {
      next = dict.Scan(next, &out);
    } while (next != 0 && budget-- > 0 && out.size() < options.scan_count);
    result.returned += out.size();
    seen[s].insert(out.begin(), out.end());
    cursors[s] = next;
    if (finished(next, s, options.bits)) active.erase(active.begin() + pick);
    if (options.churn) Churn(rng, dict, keys);
  }
  result.runaway = !active.empty();
  result.stable = keys.stable.size();
  for (uint64_t key : keys.stable) {
    const uint64_t owner = RevLow(dict.Hash(key) & (shards - 1), options.bits);
    result.owner_misses += seen[owner].count(key) == 0;
    result.misses += std::none_of(seen.begin(), seen.end(),
                                  [key](const auto& shard) { return shard.count(key) > 0; });
  }
  return result;
}

// Every shard of a still table of `keys` keys walked with SCAN's loop at the COUNT `count` gives:
// keys returned (duplicates included) over `keys`.
double ReturnedPerKey(size_t keys, int bits, const std::function<int(uint64_t, uint64_t)>& count) {
  Dict dict(SplitMix64(keys));
  for (uint64_t k = 0; k < keys; ++k) dict.Add(k);
  while (dict.rehashing()) dict.Rehash(100);
  size_t returned = 0;
  std::unordered_set<uint64_t> seen;
  for (uint64_t s = 0; s < (uint64_t{1} << bits); ++s) {
    uint64_t cursor = ShardStartCursor(s, bits);
    do {
      const size_t want = count(cursor, s);
      std::vector<uint64_t> out;
      size_t budget = want * 10;
      do {
        cursor = dict.Scan(cursor, &out);
      } while (cursor != 0 && budget-- > 0 && out.size() < want);
      returned += out.size();
      seen.insert(out.begin(), out.end());
    } while (!ShardFinished(cursor, s, bits));
  }
  EXPECT_EQ(seen.size(), keys);  // Nothing missed either way.
  return static_cast<double>(returned) / static_cast<double>(keys);
}

TEST(ScanMathTest, ShardRemainingFallsFromOneShardToNothing) {
  EXPECT_DOUBLE_EQ(ShardRemaining(ShardStartCursor(3, 3), 3, 3), 1.0 / 8);
  EXPECT_DOUBLE_EQ(ShardRemaining(0, 0, 0), 1.0);
  // Halfway through shard 0 of 2: position 1/4 (cursor bit 62 reversed is bit 1).
  EXPECT_DOUBLE_EQ(ShardRemaining(0b10, 0, 1), 0.25);
  EXPECT_DOUBLE_EQ(ShardRemaining(0b1, 0, 1), 0.0);  // Position 1/2: shard 1's start.
}

TEST(ScanMathTest, ShardScanCountShrinksNearTheEndOnly) {
  EXPECT_EQ(ShardScanCount(ShardStartCursor(0, 4), 0, 4, 1000000, 1000), 1000);
  EXPECT_EQ(ShardScanCount(ShardStartCursor(0, 4), 0, 4, 0, 1000), 1000);  // Unknown size.
  // 1/1024 of 400,000 keys: about 391 left at the start of a shard.
  EXPECT_EQ(ShardScanCount(ShardStartCursor(5, 10), 5, 10, 400000, 1000), 391);
  EXPECT_EQ(ShardScanCount(ShardStartCursor(5, 10), 5, 10, 100, 1000), 8);  // The floor.
  EXPECT_EQ(ShardScanCount(ShardStartCursor(5, 10), 5, 10, 100, 5), 5);
}

// 1,024 shards over 200,000 keys return the keys several times over with a fixed COUNT of 1000
// (a real job of 1,024 shards over 399,217 keys wrote 2.56x its keys); counts from the keys left
// bring that near 1x.
TEST(ScanMathTest, CountsFromTheKeysLeftStopTheLastScanNearTheShardsEnd) {
  constexpr size_t kKeys = 200000;
  constexpr int kBits = 10;
  const double fixed = ReturnedPerKey(kKeys, kBits, [](uint64_t, uint64_t) { return 1000; });
  const double sized = ReturnedPerKey(kKeys, kBits, [](uint64_t cursor, uint64_t shard) {
    return ShardScanCount(cursor, shard, kBits, kKeys, 1000);
  });
  EXPECT_GT(fixed, 2.0);
  EXPECT_LT(sized, 1.08);
  std::printf("returned per key: %.2f with COUNT 1000, %.3f with counts from the keys left\n",
              fixed, sized);
}

TEST(ScanMathTest, ReverseBits) {
  EXPECT_EQ(ReverseBits(0b0011, 4), 0b1100u);
  EXPECT_EQ(ReverseBits(0xFF, 4), 0xFu);  // Bits above `bits` are dropped.
  EXPECT_EQ(ReverseBits(12345, 0), 0u);
  EXPECT_EQ(ReverseBits(1, 64), uint64_t{1} << 63);
  EXPECT_EQ(ReverseBits(0x0123456789ABCDEFULL, 64), Rev64(0x0123456789ABCDEFULL));
  for (int bits = 1; bits <= 16; ++bits) {
    for (uint64_t v = 0; v < 64; ++v) ASSERT_EQ(ReverseBits(v, bits), RevLow(v, bits));
  }
}

TEST(ScanMathTest, StartCursorsForEightShards) {
  const uint64_t want[] = {0, 4, 2, 6, 1, 5, 3, 7};
  for (uint64_t s = 0; s < 8; ++s) EXPECT_EQ(ShardStartCursor(s, 3), want[s]) << s;
  EXPECT_EQ(ShardStartCursor(0, 0), 0u);
}

TEST(ScanMathTest, FinishedRule) {
  // Shard 1 of 8 starts at 4 (0b100): cursors ending in 0b100 are inside it.
  EXPECT_FALSE(ShardFinished(4, 1, 3));
  EXPECT_FALSE(ShardFinished((77 << 3) | 4, 1, 3));
  EXPECT_TRUE(ShardFinished((77 << 3) | 2, 1, 3));
  // Cursor 0 ends every shard, shard 0 included, whose low bits are 0 too.
  EXPECT_TRUE(ShardFinished(0, 0, 3));
  EXPECT_FALSE(ShardFinished(8, 0, 3));
  // One shard: only the wrap ends it.
  EXPECT_FALSE(ShardFinished(12345, 0, 0));
  EXPECT_TRUE(ShardFinished(0, 0, 0));
}

TEST(ScanMathTest, SlotShardCursors) {
  EXPECT_EQ(SlotShardStartCursor(100), 100u);
  EXPECT_FALSE(SlotShardFinished((uint64_t{5} << 14) | 100, 100));
  EXPECT_TRUE(SlotShardFinished(101, 100));
  EXPECT_TRUE(SlotShardFinished((uint64_t{5} << 14) | 101, 100));
  EXPECT_TRUE(SlotShardFinished(0, 16383));
}

TEST(ShardedScanModelTest, StableKeysAreNeverMissedUnderChurn) {
  for (int bits : {0, 1, 2, 3, 4, 6}) {
    for (uint64_t seed = 0; seed < 200; ++seed) {
      SCOPED_TRACE(absl::StrCat("bits=", bits, " seed=", seed));
      RunOptions options{bits};
      if (seed % 4 == 3) options.scan_count = 1 + seed % 20;  // Some runs use SCAN's COUNT.
      const RunResult r = RunShardedScan(seed * 1000 + bits, options, ShardFinished);
      ASSERT_FALSE(r.runaway);
      ASSERT_EQ(r.misses, 0u);
      ASSERT_EQ(r.owner_misses, 0u);
    }
  }
}

TEST(ShardedScanModelTest, TableSmallerThanShardCountGivesDuplicatesNotMisses) {
  for (uint64_t seed = 0; seed < 50; ++seed) {
    SCOPED_TRACE(absl::StrCat("seed=", seed));
    // At most 12 keys: a table of at most 16 buckets, scanned by 64 shards.
    const RunResult r = RunShardedScan(seed, RunOptions{6, 12, false}, ShardFinished);
    ASSERT_FALSE(r.runaway);
    EXPECT_EQ(r.misses, 0u);
    EXPECT_EQ(r.owner_misses, 0u);
    EXPECT_GT(r.returned, r.stable);  // Several shards return the same bucket.
  }
}

TEST(ShardedScanModelTest, ModelCatchesWrongRules) {  // Keeps the tests above honest.
  // Compares the cursor's low bits with s instead of rev_b(s).
  const auto unreversed = [](uint64_t v, uint64_t shard, int bits) {
    return v == 0 || (v & ((uint64_t{1} << bits) - 1)) != shard;
  };
  size_t misses = 0;
  for (uint64_t seed = 0; seed < 20; ++seed) {
    misses += RunShardedScan(seed, RunOptions{3}, unreversed).misses;
  }
  EXPECT_GT(misses, 0u);
  // Tests the low bits before `v == 0`: a single shard never ends.
  const auto zero_last = [](uint64_t v, uint64_t shard, int bits) {
    return (v & ((uint64_t{1} << bits) - 1)) != ShardStartCursor(shard, bits);
  };
  EXPECT_TRUE(RunShardedScan(1, RunOptions{0}, zero_last).runaway);
}

// TagsBySlot()[s] is a string whose CRC16 slot is s.
const std::vector<std::string>& TagsBySlot() {
  static const auto* tags = [] {
    auto* result = new std::vector<std::string>(kClusterSlots);
    for (int i = 0, missing = kClusterSlots; missing > 0; ++i) {
      std::string& tag = (*result)[KeySlot(absl::StrCat("t", i))];
      if (tag.empty()) {
        tag = absl::StrCat("t", i);
        --missing;
      }
    }
    return result;
  }();
  return *tags;
}

struct SlotRunResult {
  size_t misses = 0;        // Stable keys their range's shard did not return.
  size_t out_of_range = 0;  // Keys a shard returned from outside its range.
  size_t calls = 0;         // Over kMaxCalls: a shard never finished.
};

// Cluster keys crowd into runs of adjacent "hot" slots (so shard edges have keys on both
// sides); a quarter have no tag and land anywhere. Shards are slot ranges cut at hot slots.
SlotRunResult RunSlotShards(uint64_t seed, int shard_count,
                            const std::function<bool(uint64_t, int)>& finished) {
  std::mt19937_64 rng(seed);
  std::vector<int> hot = {0, kClusterSlots - 1};  // And 12 runs of 3 adjacent slots.
  for (int i = 0; i < 36; ++i) {
    hot.push_back(i % 3 == 0 ? static_cast<int>(rng() % (kClusterSlots - 3)) : hot.back() + 1);
  }
  const auto slot_of = [&hot](uint64_t key) {
    const uint64_t h = SplitMix64(key * 31 + 7);
    if (h % 4 == 0) return KeySlot(absl::StrCat("k:", key));
    return KeySlot(absl::StrCat("{", TagsBySlot()[hot[h % hot.size()]], "}:", key));
  };
  SlotKeyspace keyspace(SplitMix64(seed), slot_of);
  Keys keys;
  const size_t stable = 1 + rng() % 400;
  Populate(rng, stable, rng() % (2 * stable + 1), true, keyspace, keys);

  std::vector<int> cuts = {-1, kClusterSlots - 1};  // Shard i is [cuts[i] + 1, cuts[i + 1]].
  for (int i = 1; i < shard_count; ++i) cuts.push_back(hot[rng() % (hot.size() - 1)]);
  std::sort(cuts.begin(), cuts.end());
  cuts.erase(std::unique(cuts.begin(), cuts.end()), cuts.end());

  std::unordered_set<uint64_t> covered;
  SlotRunResult result;
  for (size_t i = 0; i + 1 < cuts.size(); ++i) {
    const int first = cuts[i] + 1;
    const int last = cuts[i + 1];
    uint64_t cursor = SlotShardStartCursor(first);
    for (bool done = false; !done;) {
      if (++result.calls > kMaxCalls) return result;
      std::vector<uint64_t> out;
      cursor = keyspace.Scan(cursor, &out);
      for (uint64_t key : out) {
        const int slot = slot_of(key);
        if (slot < first || slot > last) ++result.out_of_range;  // The copier drops these.
        if (slot >= first && slot <= last) covered.insert(key);
      }
      Churn(rng, keyspace, keys);
      done = finished(cursor, last);
    }
  }
  for (uint64_t key : keys.stable) result.misses += covered.count(key) == 0;
  return result;
}

TEST(SlotShardModelTest, EachStableKeyIsReturnedByItsRangeShard) {
  for (int shard_count : {1, 2, 3, 5, 8, 16}) {
    for (uint64_t seed = 0; seed < 40; ++seed) {
      SCOPED_TRACE(absl::StrCat("shards=", shard_count, " seed=", seed));
      const SlotRunResult r =
          RunSlotShards(seed * 101 + shard_count, shard_count, SlotShardFinished);
      ASSERT_LE(r.calls, kMaxCalls);
      EXPECT_EQ(r.misses, 0u);
      EXPECT_EQ(r.out_of_range, 0u);
    }
  }
}

TEST(SlotShardModelTest, ModelCatchesOffByOneRanges) {
  size_t misses = 0;
  size_t out_of_range = 0;
  for (uint64_t seed = 0; seed < 20; ++seed) {
    misses += RunSlotShards(seed, 8, [](uint64_t v, int last) {
                return v == 0 || static_cast<int>(v & kSlotMask) >= last;
              }).misses;
    out_of_range += RunSlotShards(seed, 8, [](uint64_t v, int last) {
                      return v == 0 || static_cast<int>(v & kSlotMask) > last + 1;
                    }).out_of_range;
  }
  EXPECT_GT(misses, 0u);
  EXPECT_GT(out_of_range, 0u);
}

}  // namespace
}  // namespace ferry::redis
