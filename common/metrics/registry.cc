#include "common/metrics/registry.h"

#include <algorithm>
#include <set>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "common/base/logging.h"

namespace ferry::metrics {
namespace {

bool IsNameChar(char c, bool first, bool colon) {
  return absl::ascii_isalpha(static_cast<unsigned char>(c)) || c == '_' || (colon && c == ':') ||
         (!first && absl::ascii_isdigit(static_cast<unsigned char>(c)));
}

bool IsValidName(const std::string& name, bool colon) {
  if (name.empty()) return false;
  for (size_t i = 0; i < name.size(); ++i) {
    if (!IsNameChar(name[i], i == 0, colon)) return false;
  }
  return true;
}

void AtomicAdd(std::atomic<double>& target, double amount) {
  double current = target.load(std::memory_order_relaxed);
  while (!target.compare_exchange_weak(current, current + amount, std::memory_order_relaxed)) {
  }
}

}  // namespace

void FamilySnapshot::Add(std::vector<std::string> label_values, double value) {
  Point& point = points.emplace_back();
  point.label_values = std::move(label_values);
  point.value = value;
}

void Counter::Increment(double amount) {
  if (amount > 0) AtomicAdd(value_, amount);
}

void Gauge::Add(double amount) { AtomicAdd(value_, amount); }

Histogram::Histogram(std::vector<double> bounds)
    : bounds_(std::move(bounds)), counts_(bounds_.size() + 1, 0) {}

void Histogram::Observe(double value) {
  const size_t bucket = std::lower_bound(bounds_.begin(), bounds_.end(), value) - bounds_.begin();
  absl::MutexLock lock(&mu_);
  counts_[bucket] += 1;
  count_ += 1;
  sum_ += value;
}

void Histogram::Fill(Point& point) const {
  absl::MutexLock lock(&mu_);
  point.bucket_counts.assign(bounds_.size(), 0);
  uint64_t cumulative = 0;
  for (size_t i = 0; i < bounds_.size(); ++i) {
    cumulative += counts_[i];
    point.bucket_counts[i] = cumulative;
  }
  point.count = count_;
  point.sum = sum_;
}

std::vector<double> LatencyBounds() {
  return {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10};
}

bool IsValidMetricName(const std::string& name) { return IsValidName(name, /*colon=*/true); }

bool IsValidLabelName(const std::string& name) {
  return IsValidName(name, /*colon=*/false) && !absl::StartsWith(name, "__");
}

FamilyBase::FamilyBase(std::string name, std::string help, MetricType type,
                       std::vector<std::string> label_names, std::vector<double> bounds,
                       size_t max_series)
    : name_(std::move(name)),
      help_(std::move(help)),
      type_(type),
      label_names_(std::move(label_names)),
      bounds_(std::move(bounds)),
      max_series_(max_series) {}

FamilySnapshot FamilyBase::EmptySnapshot() const {
  FamilySnapshot out;
  out.name = name_;
  out.help = help_;
  out.type = type_;
  out.label_names = label_names_;
  out.bounds = bounds_;
  return out;
}

template <typename Metric>
Family<Metric>* Registry::Add(const std::string& name, const std::string& help, MetricType type,
                              std::vector<std::string> label_names, std::vector<double> bounds,
                              size_t max_series) {
  bool valid =
      IsValidMetricName(name) && std::is_sorted(bounds.begin(), bounds.end()) &&
      std::set<std::string>(label_names.begin(), label_names.end()).size() == label_names.size();
  for (const std::string& label : label_names) {
    valid = valid && IsValidLabelName(label) && !(type == MetricType::kHistogram && label == "le");
  }
  auto family = std::make_unique<Family<Metric>>(name, help, type, std::move(label_names),
                                                 std::move(bounds), max_series);
  // A family without labels has its one series from the start, so it is exported as 0.
  if (family->label_names().empty()) family->Get();
  absl::MutexLock lock(&mu_);
  auto it = families_.find(name);
  if (valid && it == families_.end()) {
    return static_cast<Family<Metric>*>(
        families_.emplace(name, std::move(family)).first->second.get());
  }
  if (valid && it->second->type() == type && it->second->label_names() == family->label_names()) {
    return static_cast<Family<Metric>*>(it->second.get());
  }
  FERRY_LOG(Error) << "metric " << name << " is invalid or registered twice differently; "
                   << "it is not exported";
  detached_.push_back(std::move(family));
  return static_cast<Family<Metric>*>(detached_.back().get());
}

Family<Counter>* Registry::AddCounter(const std::string& name, const std::string& help,
                                      std::vector<std::string> label_names, size_t max_series) {
  return Add<Counter>(name, help, MetricType::kCounter, std::move(label_names), {}, max_series);
}

Family<Gauge>* Registry::AddGauge(const std::string& name, const std::string& help,
                                  std::vector<std::string> label_names, size_t max_series) {
  return Add<Gauge>(name, help, MetricType::kGauge, std::move(label_names), {}, max_series);
}

Family<Histogram>* Registry::AddHistogram(const std::string& name, const std::string& help,
                                          std::vector<std::string> label_names,
                                          std::vector<double> bounds, size_t max_series) {
  return Add<Histogram>(name, help, MetricType::kHistogram, std::move(label_names),
                        std::move(bounds), max_series);
}

void Registry::AddCollector(Collector collector) {
  absl::MutexLock lock(&mu_);
  collectors_.push_back(std::move(collector));
}

std::vector<FamilySnapshot> Registry::Collect() const {
  std::vector<FamilySnapshot> out;
  std::vector<Collector> collectors;
  {
    absl::MutexLock lock(&mu_);
    for (const auto& [name, family] : families_) out.push_back(family->Snapshot());
    collectors = collectors_;
  }
  std::set<std::string> names;
  for (const FamilySnapshot& family : out) names.insert(family.name);
  std::vector<FamilySnapshot> collected;
  for (const Collector& collector : collectors) collector(collected);
  for (FamilySnapshot& family : collected) {
    if (!IsValidMetricName(family.name) || !names.insert(family.name).second) {
      FERRY_LOG(Error) << "collected metric " << family.name << " is invalid or taken; dropped";
      continue;
    }
    out.push_back(std::move(family));
  }
  std::sort(out.begin(), out.end(),
            [](const FamilySnapshot& a, const FamilySnapshot& b) { return a.name < b.name; });
  return out;
}

}  // namespace ferry::metrics
