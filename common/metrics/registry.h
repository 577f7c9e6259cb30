#pragma once

// Prometheus metrics: counters, gauges and histograms in families with fixed label names and a
// bounded number of label sets, plus collectors that make gauges from a component's state when
// they are scraped. Exposition is in exposition.h, the HTTP endpoint in http_server.h.
// Label values are ids and names of things (a job id, a lease id, a node's host:port, a
// state): never a key name, a value or a secret.

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <type_traits>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"

namespace ferry::metrics {

enum class MetricType { kCounter, kGauge, kHistogram };

// One series of a family as collected.
struct Point {
  std::vector<std::string> label_values;  // One per FamilySnapshot::label_names.
  double value = 0;                       // Counters and gauges.
  // Histograms: observations <= each bound (cumulative, one per bound), all of them, their sum.
  std::vector<uint64_t> bucket_counts;
  uint64_t count = 0;
  double sum = 0;
};

// A family as collected: what the exposition writes.
struct FamilySnapshot {
  std::string name;
  std::string help;
  MetricType type = MetricType::kGauge;
  std::vector<std::string> label_names;
  std::vector<double> bounds;  // Histograms: the buckets' upper bounds, increasing.
  std::vector<Point> points;

  // For collectors: a counter or gauge point.
  void Add(std::vector<std::string> label_values, double value);
};

// Thread-safe; monotonic (a negative amount is ignored).
class Counter {
 public:
  void Increment(double amount = 1);
  double value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<double> value_{0};
};

// Thread-safe.
class Gauge {
 public:
  void Set(double value) { value_.store(value, std::memory_order_relaxed); }
  void Add(double amount);
  double value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<double> value_{0};
};

// Thread-safe. Observations are counted in the first bucket whose bound is >= the value.
class Histogram {
 public:
  explicit Histogram(std::vector<double> bounds);
  void Observe(double value) ABSL_LOCKS_EXCLUDED(mu_);
  // Fills the histogram fields of `point`.
  void Fill(Point& point) const ABSL_LOCKS_EXCLUDED(mu_);

 private:
  const std::vector<double> bounds_;
  mutable absl::Mutex mu_;
  std::vector<uint64_t> counts_ ABSL_GUARDED_BY(mu_);  // Per bucket, not cumulative.
  uint64_t count_ ABSL_GUARDED_BY(mu_) = 0;
  double sum_ ABSL_GUARDED_BY(mu_) = 0;
};

// Bounds for latencies in seconds: 0.5 ms to 10 s.
std::vector<double> LatencyBounds();

inline constexpr size_t kDefaultMaxSeries = 200;

class FamilyBase {
 public:
  FamilyBase(std::string name, std::string help, MetricType type,
             std::vector<std::string> label_names, std::vector<double> bounds, size_t max_series);
  virtual ~FamilyBase() = default;
  FamilyBase(const FamilyBase&) = delete;
  FamilyBase& operator=(const FamilyBase&) = delete;

  virtual FamilySnapshot Snapshot() const = 0;
  const std::string& name() const { return name_; }
  MetricType type() const { return type_; }
  const std::vector<std::string>& label_names() const { return label_names_; }

 protected:
  FamilySnapshot EmptySnapshot() const;

  const std::string name_;
  const std::string help_;
  const MetricType type_;
  const std::vector<std::string> label_names_;
  const std::vector<double> bounds_;
  const size_t max_series_;
};

// The series of one family, by label values. Thread-safe; the pointers returned stay valid
// until Remove() of their labels or the family's end.
template <typename Metric>
class Family : public FamilyBase {
 public:
  using FamilyBase::FamilyBase;

  // The series with these label values (one per label name), created on first use. Past
  // max_series label sets (or with the wrong number of values), a shared series that is never
  // exported: cardinality stays bounded whatever the callers do.
  Metric* WithLabels(const std::vector<std::string>& values) ABSL_LOCKS_EXCLUDED(mu_) {
    absl::MutexLock lock(&mu_);
    auto it = series_.find(values);
    if (it != series_.end()) return it->second.get();
    if (values.size() != label_names_.size() || series_.size() >= max_series_) {
      if (overflow_ == nullptr) overflow_ = New();
      return overflow_.get();
    }
    return series_.emplace(values, New()).first->second.get();
  }
  // The one series of a family without labels.
  Metric* Get() { return WithLabels({}); }
  // Forgets a series (a lease that ended): it is no longer exported.
  void Remove(const std::vector<std::string>& values) ABSL_LOCKS_EXCLUDED(mu_) {
    absl::MutexLock lock(&mu_);
    series_.erase(values);
  }

  FamilySnapshot Snapshot() const override ABSL_LOCKS_EXCLUDED(mu_) {
    FamilySnapshot out = EmptySnapshot();
    absl::MutexLock lock(&mu_);
    for (const auto& [values, metric] : series_) {
      Point& point = out.points.emplace_back();
      point.label_values = values;
      FillPoint(*metric, point);
    }
    return out;
  }

 private:
  std::unique_ptr<Metric> New() const {
    if constexpr (std::is_same_v<Metric, Histogram>) {
      return std::make_unique<Histogram>(bounds_);
    } else {
      return std::make_unique<Metric>();
    }
  }
  static void FillPoint(const Counter& metric, Point& point) { point.value = metric.value(); }
  static void FillPoint(const Gauge& metric, Point& point) { point.value = metric.value(); }
  static void FillPoint(const Histogram& metric, Point& point) { metric.Fill(point); }

  mutable absl::Mutex mu_;
  std::map<std::vector<std::string>, std::unique_ptr<Metric>> series_ ABSL_GUARDED_BY(mu_);
  std::unique_ptr<Metric> overflow_ ABSL_GUARDED_BY(mu_);
};

// Names must match [a-zA-Z_:][a-zA-Z0-9_:]*, label names [a-zA-Z_][a-zA-Z0-9_]* (not `__...`,
// and not `le` for a histogram).
bool IsValidMetricName(const std::string& name);
bool IsValidLabelName(const std::string& name);

// Families by name, and collectors. Thread-safe. Adding a name again with the same type and
// labels returns the family already there; an invalid or conflicting one is logged and gets a
// family that is never exported (a programming error must not stop a migration).
class Registry {
 public:
  Registry() = default;
  Registry(const Registry&) = delete;
  Registry& operator=(const Registry&) = delete;

  Family<Counter>* AddCounter(const std::string& name, const std::string& help,
                              std::vector<std::string> label_names = {},
                              size_t max_series = kDefaultMaxSeries) ABSL_LOCKS_EXCLUDED(mu_);
  Family<Gauge>* AddGauge(const std::string& name, const std::string& help,
                          std::vector<std::string> label_names = {},
                          size_t max_series = kDefaultMaxSeries) ABSL_LOCKS_EXCLUDED(mu_);
  Family<Histogram>* AddHistogram(const std::string& name, const std::string& help,
                                  std::vector<std::string> label_names, std::vector<double> bounds,
                                  size_t max_series = kDefaultMaxSeries) ABSL_LOCKS_EXCLUDED(mu_);

  // Called by every Collect(), on the scraping thread and without the registry's lock: it
  // appends families made from the component's state at that moment. It must outlive the
  // registry's scrapes (stop the HTTP server before what it reads goes away).
  using Collector = std::function<void(std::vector<FamilySnapshot>& out)>;
  void AddCollector(Collector collector) ABSL_LOCKS_EXCLUDED(mu_);

  // Every family, sorted by name (a collected family whose name is taken is dropped).
  std::vector<FamilySnapshot> Collect() const ABSL_LOCKS_EXCLUDED(mu_);

 private:
  template <typename Metric>
  Family<Metric>* Add(const std::string& name, const std::string& help, MetricType type,
                      std::vector<std::string> label_names, std::vector<double> bounds,
                      size_t max_series) ABSL_LOCKS_EXCLUDED(mu_);

  mutable absl::Mutex mu_;
  std::map<std::string, std::unique_ptr<FamilyBase>> families_ ABSL_GUARDED_BY(mu_);
  std::vector<std::unique_ptr<FamilyBase>> detached_ ABSL_GUARDED_BY(mu_);
  std::vector<Collector> collectors_ ABSL_GUARDED_BY(mu_);
};

}  // namespace ferry::metrics
