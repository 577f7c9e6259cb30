#pragma once

// Where ferry's AWS credentials come from, in the order the AWS SDKs look: the environment
// (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN), else the EC2 instance's role
// through IMDSv2 (a session token PUT to /latest/api/token, then
// /latest/meta-data/iam/security-credentials/<role>). Role credentials are cached and fetched
// again before they expire. Nothing here logs or returns a secret in a status message.

#include <functional>
#include <optional>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/aws/sigv4.h"

namespace ferry::aws {

inline constexpr absl::string_view kDefaultImdsEndpoint = "http://169.254.169.254";

struct CredentialsOptions {
  // Look at AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY / AWS_SESSION_TOKEN first.
  bool from_environment = true;
  // IMDS's base URL (`http://host[:port]`); empty means no instance role is asked.
  std::string imds_endpoint = std::string(kDefaultImdsEndpoint);
  // Each connect, write and read to IMDS.
  absl::Duration imds_timeout = absl::Seconds(2);
  // Role credentials are fetched again this long before their Expiration (IMDS offers the next
  // ones at least 5 minutes before), at most once per `refetch_interval`; cached ones that are
  // still valid for `min_validity` are used while a fetch fails.
  absl::Duration refresh_before = absl::Minutes(10);
  absl::Duration refetch_interval = absl::Seconds(30);
  absl::Duration min_validity = absl::Minutes(1);
  // The clock; tests replace it.
  std::function<absl::Time()> now = [] { return absl::Now(); };
};

// Parses IMDS's answer for a role: {"Code":"Success","AccessKeyId":...,"SecretAccessKey":...,
// "Token":...,"Expiration":"2026-12-01T20:00:00Z"}. FAILED_PRECONDITION when Code is not
// Success or a field is missing; the message never holds a secret.
absl::StatusOr<Credentials> ParseImdsCredentials(absl::string_view json);

// Thread-safe: one provider serves every connection of the process.
class CredentialsProvider {
 public:
  explicit CredentialsProvider(CredentialsOptions options);

  // The process's provider: the environment, then IMDS at $AWS_EC2_METADATA_SERVICE_ENDPOINT
  // (default http://169.254.169.254) unless AWS_EC2_METADATA_DISABLED=true.
  static CredentialsProvider& Default();

  // Credentials valid now. Environment credentials are read on every call (cheap, and a test or
  // an operator may change them); role credentials come from the cache while they are fresh.
  // FAILED_PRECONDITION when there are none to be had (no variables, no instance role);
  // UNAVAILABLE when IMDS failed after having answered before.
  absl::StatusOr<Credentials> Get() ABSL_LOCKS_EXCLUDED(mu_);

 private:
  absl::StatusOr<Credentials> FetchFromImds() const;

  const CredentialsOptions options_;
  absl::Mutex mu_;
  std::optional<Credentials> cached_ ABSL_GUARDED_BY(mu_);
  absl::Time last_fetch_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
};

}  // namespace ferry::aws
