// Metrics and logs of real processes (issue 12): a real ferry-controller and ferry-agent with
// --metrics-listen and --log-format json copy from a password-protected source while a real
// Prometheus server scrapes both; its query API must return the job's copied-keys series with
// the job's count, `promtool check metrics` must accept both expositions, every JSON log line
// must parse and no password may show anywhere. The Grafana dashboard may query only metrics
// that exist. A non-loopback metrics address needs TLS or --insecure; with a certificate the
// endpoint is HTTPS.

#include <httplib.h>

#include <cstdlib>
#include <cstring>
#include <memory>
#include <optional>
#include <regex>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/testing/compare.h"
#include "common/testing/process.h"
#include "common/testing/redis_server.h"
#include "gmock/gmock.h"
#include "google/protobuf/struct.pb.h"
#include "google/protobuf/util/json_util.h"
#include "gtest/gtest.h"
#include "tests/fleet.h"

namespace ferry::testing {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

constexpr int kKeys = 3000;
const char kSourcePassword[] = "src-Pw-metrics-5be21c";

// Fails without `program` on PATH (never skips: a missing package must fail, as a missing
// redis-server does); returns its path.
#define REQUIRE_PROGRAM(var, program, package)                           \
  const std::string var = FindProgram(program);                          \
  if (var.empty()) {                                                     \
    FAIL() << program << " is not installed (Debian package " << package \
           << ", in the Makefile's DEBIAN_PACKAGES: run make deps)";     \
  }

absl::StatusOr<google::protobuf::Struct> ParseJsonObject(const std::string& text) {
  google::protobuf::Struct object;
  google::protobuf::util::JsonParseOptions options;
  const auto status = google::protobuf::util::JsonStringToMessage(text, &object, options);
  if (!status.ok()) return absl::InvalidArgumentError(std::string(status.message()));
  return object;
}

std::string StringField(const google::protobuf::Struct& object, const std::string& name) {
  auto it = object.fields().find(name);
  return it == object.fields().end() ? "" : it->second.string_value();
}

// GET http://127.0.0.1:PORT/metrics; empty on failure.
std::string Scrape(int port) {
  httplib::Client client("127.0.0.1", port);
  httplib::Result result = client.Get("/metrics");
  return result && result->status == 200 ? result->body : "";
}

// `promtool check metrics` on `exposition`: its exit code and output.
std::pair<int, std::string> PromtoolCheck(const std::string& promtool, const std::string& dir,
                                          const std::string& exposition, const std::string& name) {
  const std::string input = absl::StrCat(dir, "/", name, ".prom");
  const std::string log = absl::StrCat(dir, "/", name, ".promtool.log");
  if (!WriteTextFile(input, exposition).ok()) return {-1, "cannot write " + input};
  SubprocessOptions options;
  options.log_file = log;
  auto process = Subprocess::Start(
      {"/bin/sh", "-c", absl::StrCat("'", promtool, "' check metrics < '", input, "'")}, options);
  if (!process.ok()) return {-1, std::string(process.status().message())};
  absl::StatusOr<int> code = process->Wait(absl::Seconds(60));
  return {code.ok() ? *code : -1, ReadFile(log)};
}

// The names of the families in an exposition (`# TYPE name type`).
std::set<std::string> FamilyNames(const std::string& exposition) {
  std::set<std::string> names;
  for (absl::string_view line : absl::StrSplit(exposition, '\n')) {
    if (!absl::ConsumePrefix(&line, "# TYPE ")) continue;
    names.insert(std::string(line.substr(0, line.find(' '))));
  }
  return names;
}

class MetricsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(RequireRedisServerBinary().ok()) << RequireRedisServerBinary();
    ASSERT_GT(controller_metrics_port_, 0);
    ASSERT_GT(agent_metrics_port_, 0);
    FleetOptions options;
    options.controller_flags = {"--metrics-listen",
                                absl::StrCat("127.0.0.1:", controller_metrics_port_),
                                "--log-format", "json"};
    fleet_ = std::make_unique<Fleet>(options);
  }

  // Starts the controller and one agent with metrics and JSON logs.
  void StartFleet() {
    ASSERT_TRUE(fleet_->StartController().ok()) << ReadFile(fleet_->controller_log());
    auto agent =
        fleet_->StartAgent(2, {"--metrics-listen", absl::StrCat("127.0.0.1:", agent_metrics_port_),
                               "--log-format", "json"});
    ASSERT_TRUE(agent.ok()) << agent.status();
    ASSERT_TRUE(fleet_->WaitForAgents(1).ok()) << fleet_->AllLogs();
  }

  const int controller_metrics_port_ = FreeTcpPort();
  const int agent_metrics_port_ = FreeTcpPort();
  std::unique_ptr<Fleet> fleet_;
};

// Starts Prometheus scraping both endpoints every second; returns once it is ready.
absl::StatusOr<Subprocess> StartPrometheus(const std::string& binary, const std::string& dir,
                                           int port, int controller_port, int agent_port) {
  const std::string config = absl::StrCat(dir, "/prometheus.yml");
  absl::Status written = WriteTextFile(
      config, absl::StrCat("global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
                           "scrape_configs:\n"
                           "  - job_name: ferry-controller\n    static_configs:\n"
                           "      - targets: ['127.0.0.1:",
                           controller_port,
                           "']\n"
                           "  - job_name: ferry-agent\n    static_configs:\n"
                           "      - targets: ['127.0.0.1:",
                           agent_port, "']\n"));
  if (!written.ok()) return written;
  SubprocessOptions options;
  options.log_file = absl::StrCat(dir, "/prometheus.log");
  absl::StatusOr<Subprocess> process =
      Subprocess::Start({binary, absl::StrCat("--config.file=", config),
                         absl::StrCat("--storage.tsdb.path=", dir, "/tsdb"),
                         absl::StrCat("--web.listen-address=127.0.0.1:", port), "--log.level=warn"},
                        options);
  if (!process.ok()) return process.status();
  httplib::Client client("127.0.0.1", port);
  absl::Status ready = WaitFor(
      [&] {
        httplib::Result result = client.Get("/-/ready");
        return result && result->status == 200;
      },
      absl::Seconds(60), absl::Milliseconds(100));
  if (!ready.ok()) {
    return absl::UnavailableError(
        absl::StrCat("prometheus is not ready: ", FileTail(options.log_file)));
  }
  return process;
}

// The value of the first series an instant query returns; nullopt without one.
std::optional<double> QueryValue(int prometheus_port, const std::string& query,
                                 std::string* body = nullptr) {
  httplib::Client client("127.0.0.1", prometheus_port);
  const httplib::Params params = {{"query", query}};
  httplib::Result result = client.Get("/api/v1/query", params, httplib::Headers{});
  if (!result || result->status != 200) return std::nullopt;
  if (body != nullptr) *body = result->body;
  absl::StatusOr<google::protobuf::Struct> answer = ParseJsonObject(result->body);
  if (!answer.ok() || StringField(*answer, "status") != "success") return std::nullopt;
  const auto& data = answer->fields().at("data").struct_value();
  const auto& series = data.fields().at("result").list_value();
  if (series.values_size() == 0) return std::nullopt;
  const auto& value = series.values(0).struct_value().fields().at("value").list_value();
  double number = 0;
  if (value.values_size() != 2 || !absl::SimpleAtod(value.values(1).string_value(), &number)) {
    return std::nullopt;
  }
  return number;
}

// Every line of a --log-format json log: a JSON object with time, level, component and
// message; returns the parsed lines.
std::vector<google::protobuf::Struct> CheckJsonLog(const std::string& log,
                                                   const std::string& component) {
  std::vector<google::protobuf::Struct> lines;
  for (absl::string_view line : absl::StrSplit(log, '\n', absl::SkipEmpty())) {
    absl::StatusOr<google::protobuf::Struct> object = ParseJsonObject(std::string(line));
    EXPECT_TRUE(object.ok()) << "not a JSON object: " << line;
    if (!object.ok()) continue;
    EXPECT_THAT(StringField(*object, "time"), ::testing::MatchesRegex("[0-9T:.-]+Z")) << line;
    EXPECT_THAT(StringField(*object, "level"),
                ::testing::AnyOf("debug", "info", "warning", "error"))
        << line;
    EXPECT_EQ(StringField(*object, "component"), component) << line;
    EXPECT_FALSE(StringField(*object, "message").empty()) << line;
    lines.push_back(*std::move(object));
  }
  return lines;
}

bool AnyLine(const std::vector<google::protobuf::Struct>& lines, const std::string& field,
             const std::string& prefix) {
  for (const auto& line : lines) {
    if (absl::StartsWith(StringField(line, field), prefix)) return true;
  }
  return false;
}

TEST_F(MetricsTest, PrometheusScrapesTheJobsCopiedKeysAndLogsAreJson) {
  REQUIRE_PROGRAM(prometheus, "prometheus", "prometheus");
  REQUIRE_PROGRAM(promtool, "promtool", "prometheus");
  RedisServerOptions source_options;
  source_options.requirepass = kSourcePassword;
  auto source = RedisServer::Start(source_options);
  ASSERT_TRUE(source.ok()) << source.status();
  auto target = RedisServer::Start();
  ASSERT_TRUE(target.ok()) << target.status();
  {
    auto conn = (*source)->Connect(0);
    ASSERT_TRUE(conn.ok()) << conn.status();
    ASSERT_TRUE(LoadMixedData(*conn, 0, kKeys, 12, 0.2).ok());
  }
  ASSERT_NO_FATAL_FAILURE(StartFleet());
  const int prometheus_port = FreeTcpPort();
  auto server = StartPrometheus(prometheus, fleet_->dir(), prometheus_port,
                                controller_metrics_port_, agent_metrics_port_);
  ASSERT_TRUE(server.ok()) << server.status();

  const EnvList env = {{"FERRY_FROM_PASSWORD", kSourcePassword}};
  SubmitResult job = fleet_->Submit({"--from", (*source)->uri(), "--to", (*target)->uri()}, env);
  ASSERT_EQ(job.exit_code, 0) << job.out << job.err;
  CliResult watched = fleet_->Watch(job.job_id);
  ASSERT_EQ(watched.exit_code, 0) << watched.output << fleet_->AllLogs();
  const int64_t copied = fleet_->Counter(job.job_id, "copied");
  ASSERT_GE(copied, kKeys);

  // Prometheus has the job's series once a scrape after the end came in.
  const std::string selector = absl::StrCat("{job_id=\"", job.job_id, "\"}");
  std::string body;
  EXPECT_TRUE(WaitFor(
                  [&] {
                    return QueryValue(prometheus_port,
                                      "ferry_controller_job_keys_copied_total" + selector,
                                      &body) == static_cast<double>(copied);
                  },
                  absl::Seconds(30), absl::Milliseconds(250))
                  .ok())
      << body;
  EXPECT_TRUE(WaitFor(
                  [&] {
                    return QueryValue(prometheus_port,
                                      "sum(ferry_agent_keys_copied_total" + selector + ")",
                                      &body) == static_cast<double>(copied);
                  },
                  absl::Seconds(30), absl::Milliseconds(250))
                  .ok())
      << body;
  EXPECT_EQ(
      QueryValue(prometheus_port, "ferry_controller_job_state" +
                                      absl::StrCat("{job_id=\"", job.job_id, "\",state=\"done\"}")),
      1.0);
  EXPECT_EQ(QueryValue(prometheus_port, "sum(up)"), 2.0);
  EXPECT_GE(QueryValue(prometheus_port, "ferry_controller_lease_grants_total").value_or(0), 1);
  EXPECT_GE(QueryValue(prometheus_port, "ferry_controller_store_write_seconds_count").value_or(0),
            1);
  EXPECT_GT(QueryValue(prometheus_port, "ferry_agent_batch_seconds_count").value_or(0), 0);
  // Every batch read the source and wrote the target: both sides' round trips were timed.
  for (const char* side : {"source", "target"}) {
    EXPECT_GT(
        QueryValue(prometheus_port,
                   absl::StrCat("ferry_agent_redis_round_trip_seconds_count{side=\"", side, "\"}"))
            .value_or(0),
        0)
        << side;
  }
  EXPECT_GT(
      QueryValue(prometheus_port, "process_resident_memory_bytes{job=\"ferry-agent\"}").value_or(0),
      1 << 20);

  // Both expositions pass promtool's checks and carry no password.
  for (const auto& [name, port] :
       {std::pair<std::string, int>{"controller", controller_metrics_port_},
        {"agent", agent_metrics_port_}}) {
    const std::string exposition = Scrape(port);
    ASSERT_FALSE(exposition.empty()) << name;
    EXPECT_THAT(exposition, HasSubstr(job.job_id)) << name;
    EXPECT_THAT(exposition, Not(HasSubstr(kSourcePassword))) << name;
    auto [code, output] = PromtoolCheck(promtool, fleet_->dir(), exposition, name);
    EXPECT_EQ(code, 0) << name << ": " << output << "\n" << exposition;
  }

  // Every log line is a JSON object; job and lease fields are there where the line knows them.
  const auto controller_lines = CheckJsonLog(ReadFile(fleet_->controller_log()), "controller");
  const auto agent_lines = CheckJsonLog(ReadFile(fleet_->agent_log(0)), "agent");
  EXPECT_TRUE(AnyLine(controller_lines, "job", job.job_id));
  EXPECT_TRUE(AnyLine(agent_lines, "lease", job.job_id + "-"));
  EXPECT_TRUE(AnyLine(agent_lines, "job", job.job_id));
  EXPECT_THAT(fleet_->AllLogs(), Not(HasSubstr(kSourcePassword)));
}

TEST_F(MetricsTest, TheDashboardQueriesOnlyMetricsThatExist) {
  ASSERT_NO_FATAL_FAILURE(StartFleet());
  const char* source_dir = std::getenv("FERRY_SOURCE_DIR");
  ASSERT_NE(source_dir, nullptr);
  const std::string dashboard =
      ReadFile(absl::StrCat(source_dir, "/deploy/grafana/ferry-dashboard.json"));
  ASSERT_FALSE(dashboard.empty());
  ASSERT_TRUE(ParseJsonObject(dashboard).ok()) << "the dashboard is not a JSON object";
  std::set<std::string> exported = FamilyNames(Scrape(controller_metrics_port_));
  const std::set<std::string> agent = FamilyNames(Scrape(agent_metrics_port_));
  exported.insert(agent.begin(), agent.end());
  ASSERT_GT(exported.size(), 20u);

  // Every metric name in every "expr" (histograms by their _bucket, _sum and _count series).
  const std::regex expr("\"expr\"\\s*:\\s*\"((?:[^\"\\\\]|\\\\.)*)\"");
  const std::regex name("\\b((?:ferry|process)_[a-zA-Z0-9_:]*)");
  int queries = 0;
  for (auto it = std::sregex_iterator(dashboard.begin(), dashboard.end(), expr);
       it != std::sregex_iterator(); ++it) {
    ++queries;
    const std::string query = (*it)[1];
    for (auto n = std::sregex_iterator(query.begin(), query.end(), name);
         n != std::sregex_iterator(); ++n) {
      const std::string metric = (*n)[1];
      std::string family = metric;
      for (const char* suffix : {"_bucket", "_sum", "_count"}) {
        if (absl::EndsWith(family, suffix) && exported.count(family) == 0) {
          family.resize(family.size() - std::strlen(suffix));
        }
      }
      EXPECT_EQ(exported.count(family), 1u) << metric << " is not exported; in: " << query;
    }
  }
  EXPECT_GE(queries, 10);
}

TEST_F(MetricsTest, NonLoopbackMetricsNeedTlsOrInsecureAndCertificatesMakeHttps) {
  // The controller refuses to start; so does the agent.
  {
    SubprocessOptions options;
    options.log_file = fleet_->dir() + "/refused-controller.log";
    auto controller =
        Subprocess::Start({FerryBinary("ferry-controller"), "--listen", "127.0.0.1:0", "--state",
                           fleet_->dir() + "/refused.db", "--metrics-listen", "0.0.0.0:0"},
                          options);
    ASSERT_TRUE(controller.ok()) << controller.status();
    absl::StatusOr<int> code = controller->Wait(absl::Seconds(30));
    ASSERT_TRUE(code.ok());
    EXPECT_EQ(*code, 1);
    EXPECT_THAT(ReadFile(options.log_file),
                HasSubstr("--metrics-listen 0.0.0.0:0 is not a loopback"));
  }
  {
    SubprocessOptions options;
    options.log_file = fleet_->dir() + "/refused-agent.log";
    auto agent = Subprocess::Start({FerryBinary("ferry-agent"), "--controller", "127.0.0.1:1",
                                    "--metrics-listen", "0.0.0.0:0"},
                                   options);
    ASSERT_TRUE(agent.ok()) << agent.status();
    absl::StatusOr<int> code = agent->Wait(absl::Seconds(30));
    ASSERT_TRUE(code.ok());
    EXPECT_EQ(*code, 2);
    EXPECT_THAT(ReadFile(options.log_file), HasSubstr("is not a loopback address"));
    EXPECT_THAT(ReadFile(options.log_file), HasSubstr("--metrics-insecure"));
  }
  // With the controller's certificate the endpoint speaks HTTPS only.
  absl::StatusOr<std::string> cert = GenerateSelfSignedCert(fleet_->dir());
  ASSERT_TRUE(cert.ok()) << cert.status();
  const std::string key = fleet_->dir() + "/key.pem";
  const int port = FreeTcpPort();
  const int grpc_port = FreeTcpPort();
  SubprocessOptions options;
  options.log_file = fleet_->dir() + "/tls-controller.log";
  auto controller = Subprocess::Start(
      {FerryBinary("ferry-controller"), "--listen", absl::StrCat("127.0.0.1:", grpc_port),
       "--state", fleet_->dir() + "/tls.db", "--tls-cert", *cert, "--tls-key", key,
       "--metrics-listen", absl::StrCat("127.0.0.1:", port), "--log-format", "json"},
      options);
  ASSERT_TRUE(controller.ok()) << controller.status();
  httplib::SSLClient tls("127.0.0.1", port);
  tls.set_ca_cert_path(cert->c_str());
  tls.enable_server_certificate_verification(true);
  int status = 0;
  std::string body;
  ASSERT_TRUE(WaitFor(
                  [&] {
                    httplib::Result result = tls.Get("/metrics");
                    if (!result) return false;
                    status = result->status;
                    body = result->body;
                    return true;
                  },
                  absl::Seconds(30), absl::Milliseconds(100))
                  .ok())
      << ReadFile(options.log_file);
  EXPECT_EQ(status, 200);
  EXPECT_THAT(body, HasSubstr("# TYPE ferry_controller_jobs gauge"));
  httplib::Client plain("127.0.0.1", port);
  httplib::Result plain_result = plain.Get("/metrics");
  EXPECT_FALSE(plain_result && plain_result->status == 200);
  // gRPC's own error lines (a plain request to the TLS gRPC port) are JSON lines too.
  httplib::Client to_grpc("127.0.0.1", grpc_port);
  to_grpc.Get("/");
  EXPECT_TRUE(WaitFor([&] { return absl::StrContains(ReadFile(options.log_file), "grpc: "); },
                      absl::Seconds(10))
                  .ok())
      << ReadFile(options.log_file);
  const auto lines = CheckJsonLog(ReadFile(options.log_file), "controller");
  EXPECT_TRUE(AnyLine(lines, "message", "grpc: "));
}

// `ferry migrate` that cannot connect prints its error and nothing logged before it.
TEST(MigrateLogsTest, TheUserFacingErrorIsNotPrecededByLogLines) {
  const int dead_port = FreeTcpPort();
  CliResult result = RunFerry({"migrate", "--from", absl::StrCat("redis://127.0.0.1:", dead_port),
                               "--to", absl::StrCat("redis://127.0.0.1:", dead_port)});
  EXPECT_EQ(result.exit_code, 3) << result.output;
  EXPECT_THAT(result.output, HasSubstr("error: planning failed"));
  EXPECT_THAT(result.output, Not(::testing::ContainsRegex("(^|\n)[DIWE] [0-9]{4}-")))
      << result.output;
}

}  // namespace
}  // namespace ferry::testing
