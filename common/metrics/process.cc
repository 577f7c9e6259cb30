#include "common/metrics/process.h"

#include <unistd.h>

#include <cstdio>

namespace ferry::metrics {

double ResidentMemoryBytes() {
  std::FILE* file = std::fopen("/proc/self/statm", "r");
  if (file == nullptr) return 0;
  unsigned long long size_pages = 0;
  unsigned long long resident_pages = 0;
  const int read = std::fscanf(file, "%llu %llu", &size_pages, &resident_pages);
  std::fclose(file);
  if (read != 2) return 0;
  return static_cast<double>(resident_pages) * static_cast<double>(sysconf(_SC_PAGESIZE));
}

void AddProcessCollector(Registry& registry) {
  registry.AddCollector([](std::vector<FamilySnapshot>& out) {
    FamilySnapshot& rss = out.emplace_back();
    rss.name = "process_resident_memory_bytes";
    rss.help = "Resident memory size in bytes.";
    rss.type = MetricType::kGauge;
    rss.Add({}, ResidentMemoryBytes());
  });
}

}  // namespace ferry::metrics
