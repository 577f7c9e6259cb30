// jemalloc's options for ferry's binaries (read by jemalloc at start; MALLOC_CONF in the
// environment still overrides them). Two arenas are plenty for a handful of copy threads, and
// memory freed after a batch goes back to the system within 200 ms, so the resident size
// follows the bytes in flight instead of their peak.
extern "C" {
// NOLINTNEXTLINE: the name and type are jemalloc's.
const char* malloc_conf = "narenas:2,dirty_decay_ms:200,muzzy_decay_ms:0";
}
