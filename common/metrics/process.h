#pragma once

#include "common/metrics/registry.h"

namespace ferry::metrics {

// Adds a collector of the process's own figures: `process_resident_memory_bytes` (from
// /proc/self/statm, read at each scrape).
void AddProcessCollector(Registry& registry);

// Resident memory of this process in bytes; 0 when /proc cannot be read.
double ResidentMemoryBytes();

}  // namespace ferry::metrics
