// The text format, byte for byte, and the registry's rules (labels, bounds, cardinality).

#include "common/metrics/exposition.h"

#include <cmath>
#include <limits>
#include <thread>
#include <vector>

#include "common/metrics/process.h"
#include "common/metrics/registry.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace ferry::metrics {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

TEST(FormatValueTest, IntegersSpecialsAndShortestDecimals) {
  EXPECT_EQ(FormatValue(0), "0");
  EXPECT_EQ(FormatValue(1234567), "1234567");
  EXPECT_EQ(FormatValue(-3), "-3");
  EXPECT_EQ(FormatValue(0.1), "0.1");
  EXPECT_EQ(FormatValue(0.0005), "0.0005");
  EXPECT_EQ(FormatValue(2.5), "2.5");
  EXPECT_EQ(FormatValue(std::numeric_limits<double>::infinity()), "+Inf");
  EXPECT_EQ(FormatValue(-std::numeric_limits<double>::infinity()), "-Inf");
  EXPECT_EQ(FormatValue(std::nan("")), "NaN");
  EXPECT_EQ(FormatValue(1e300), "1e+300");
  EXPECT_EQ(FormatValue(0.1 + 0.2), "0.30000000000000004");
}

TEST(EscapeTest, LabelValuesAndHelp) {
  EXPECT_EQ(EscapeLabelValue("a\\b\"c\nd"), "a\\\\b\\\"c\\nd");
  EXPECT_EQ(EscapeHelp("a\\b\"c\nd"), "a\\\\b\"c\\nd");
}

TEST(ExpositionTest, CounterAndGaugeWithLabels) {
  Registry registry;
  Family<Counter>* copied = registry.AddCounter("ferry_keys_total", "Keys copied.", {"job_id"});
  copied->WithLabels({"j1"})->Increment(3);
  copied->WithLabels({"j\"2"})->Increment();
  copied->WithLabels({"j1"})->Increment(-5);  // Ignored: counters only go up.
  registry.AddGauge("ferry_up", "Whether it runs.")->Get()->Set(1);
  EXPECT_EQ(TextExposition(registry),
            "# HELP ferry_keys_total Keys copied.\n"
            "# TYPE ferry_keys_total counter\n"
            "ferry_keys_total{job_id=\"j\\\"2\"} 1\n"
            "ferry_keys_total{job_id=\"j1\"} 3\n"
            "# HELP ferry_up Whether it runs.\n"
            "# TYPE ferry_up gauge\n"
            "ferry_up 1\n");
}

TEST(ExpositionTest, HistogramBucketsAreCumulativeWithInfSumAndCount) {
  Registry registry;
  Histogram* latency =
      registry.AddHistogram("ferry_write_seconds", "Write latency.", {"op"}, {0.1, 1})
          ->WithLabels({"grant"});
  latency->Observe(0.05);
  latency->Observe(0.1);  // On the bound: counted in it (le is "less or equal").
  latency->Observe(0.5);
  latency->Observe(7);
  EXPECT_EQ(TextExposition(registry),
            "# HELP ferry_write_seconds Write latency.\n"
            "# TYPE ferry_write_seconds histogram\n"
            "ferry_write_seconds_bucket{op=\"grant\",le=\"0.1\"} 2\n"
            "ferry_write_seconds_bucket{op=\"grant\",le=\"1\"} 3\n"
            "ferry_write_seconds_bucket{op=\"grant\",le=\"+Inf\"} 4\n"
            "ferry_write_seconds_sum{op=\"grant\"} 7.65\n"
            "ferry_write_seconds_count{op=\"grant\"} 4\n");
}

TEST(ExpositionTest, FamilyWithoutSeriesHasItsHelpAndType) {
  Registry registry;
  registry.AddGauge("ferry_lag_seconds", "Lag.", {"job_id"});
  EXPECT_EQ(TextExposition(registry),
            "# HELP ferry_lag_seconds Lag.\n# TYPE ferry_lag_seconds gauge\n");
}

TEST(RegistryTest, CardinalityIsBoundedAndRemovedSeriesGo) {
  Registry registry;
  Family<Gauge>* per_lease = registry.AddGauge("ferry_lease_keys", "Keys.", {"lease"}, 2);
  per_lease->WithLabels({"a"})->Set(1);
  per_lease->WithLabels({"b"})->Set(2);
  Gauge* overflow = per_lease->WithLabels({"c"});
  overflow->Set(3);
  EXPECT_EQ(per_lease->WithLabels({"d"}), overflow);       // Shared, never exported.
  EXPECT_EQ(per_lease->WithLabels({"x", "y"}), overflow);  // Wrong number of values.
  std::string text = TextExposition(registry);
  EXPECT_THAT(text, HasSubstr("ferry_lease_keys{lease=\"b\"} 2\n"));
  EXPECT_THAT(text, Not(HasSubstr("lease=\"c\"")));
  per_lease->Remove({"a"});
  per_lease->WithLabels({"c"})->Set(4);  // Room again.
  text = TextExposition(registry);
  EXPECT_THAT(text, Not(HasSubstr("lease=\"a\"")));
  EXPECT_THAT(text, HasSubstr("ferry_lease_keys{lease=\"c\"} 4\n"));
}

TEST(RegistryTest, SameNameTwiceIsOneFamilyAndConflictsAreNotExported) {
  Registry registry;
  Family<Counter>* first = registry.AddCounter("ferry_grants_total", "Grants.");
  EXPECT_EQ(registry.AddCounter("ferry_grants_total", "Grants."), first);
  Family<Gauge>* conflict = registry.AddGauge("ferry_grants_total", "Not a counter.");
  conflict->Get()->Set(9);
  registry.AddGauge("bad name", "Invalid.")->Get()->Set(9);
  registry.AddHistogram("ferry_h", "Reserved label.", {"le"}, {1})->WithLabels({"x"});
  registry.AddGauge("ferry_dup", "Duplicate labels.", {"a", "a"});
  const std::string text = TextExposition(registry);
  EXPECT_THAT(text, Not(HasSubstr(" 9\n")));
  EXPECT_THAT(text, Not(HasSubstr("ferry_h")));
  EXPECT_THAT(text, Not(HasSubstr("ferry_dup")));
  EXPECT_THAT(text, HasSubstr("# TYPE ferry_grants_total counter\nferry_grants_total 0\n"));
}

TEST(RegistryTest, NamesFollowPrometheusRules) {
  EXPECT_TRUE(IsValidMetricName("ferry:agent_keys_total"));
  EXPECT_FALSE(IsValidMetricName("1abc"));
  EXPECT_FALSE(IsValidMetricName("a-b"));
  EXPECT_TRUE(IsValidLabelName("job_id"));
  EXPECT_FALSE(IsValidLabelName("__name"));
  EXPECT_FALSE(IsValidLabelName("a:b"));
}

TEST(RegistryTest, CollectorsAddFamiliesSortedAndCannotTakeANameTwice) {
  Registry registry;
  registry.AddCounter("ferry_b_total", "B.");
  registry.AddCollector([](std::vector<FamilySnapshot>& out) {
    FamilySnapshot& jobs = out.emplace_back();
    jobs.name = "ferry_a_jobs";
    jobs.help = "Jobs.";
    jobs.label_names = {"state"};
    jobs.Add({"running"}, 2);
    FamilySnapshot& taken = out.emplace_back();
    taken.name = "ferry_b_total";
    taken.Add({}, 5);
  });
  EXPECT_EQ(
      TextExposition(registry),
      "# HELP ferry_a_jobs Jobs.\n# TYPE ferry_a_jobs gauge\nferry_a_jobs{state=\"running\"} 2\n"
      "# HELP ferry_b_total B.\n# TYPE ferry_b_total counter\nferry_b_total 0\n");
}

TEST(RegistryTest, ConcurrentIncrementsAreAllCounted) {
  Registry registry;
  Family<Counter>* family = registry.AddCounter("ferry_n_total", "N.", {"t"});
  Histogram* histogram = registry.AddHistogram("ferry_h_seconds", "H.", {}, {1})->Get();
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 10000; ++i) {
        family->WithLabels({t % 2 == 0 ? "even" : "odd"})->Increment();
        histogram->Observe(0.5);
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  EXPECT_EQ(family->WithLabels({"even"})->value() + family->WithLabels({"odd"})->value(), 40000);
  EXPECT_THAT(TextExposition(registry), HasSubstr("ferry_h_seconds_count 40000\n"));
}

TEST(ProcessTest, ResidentMemoryIsReadFromProc) {
  EXPECT_GT(ResidentMemoryBytes(), 1 << 20);
  Registry registry;
  AddProcessCollector(registry);
  EXPECT_THAT(TextExposition(registry), HasSubstr("# TYPE process_resident_memory_bytes gauge\n"
                                                  "process_resident_memory_bytes "));
}

}  // namespace
}  // namespace ferry::metrics
