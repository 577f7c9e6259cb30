#pragma once

// A fake EC2 instance metadata service (IMDSv2) on loopback, for tests of credentials from an
// instance role: PUT /latest/api/token hands out a session token, and the role's credentials are
// served only to requests that carry it. Point AWS_EC2_METADATA_SERVICE_ENDPOINT (or
// CredentialsOptions::imds_endpoint) at endpoint(). Test support only.

#include <atomic>
#include <memory>
#include <string>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "common/aws/sigv4.h"

namespace ferry::testing {

class FakeImds {
 public:
  // Listens on 127.0.0.1 (a free port) and serves on its own thread until destroyed.
  static absl::StatusOr<std::unique_ptr<FakeImds>> Start();
  FakeImds(const FakeImds&) = delete;
  FakeImds& operator=(const FakeImds&) = delete;
  ~FakeImds();

  // `http://127.0.0.1:PORT`.
  std::string endpoint() const;
  // What GET .../security-credentials/ and .../<role> answer from now on; an empty role means
  // "no instance profile" (404). Thread-safe.
  void SetRole(std::string role, aws::Credentials credentials) ABSL_LOCKS_EXCLUDED(mu_);
  // Credential documents served, and requests refused for a missing or wrong session token.
  int credential_fetches() const { return credential_fetches_.load(); }
  int refused_requests() const { return refused_requests_.load(); }

 private:
  explicit FakeImds(int listen_fd, int port);
  void Serve();
  // The whole HTTP response to one request head.
  std::string Answer(const std::string& head) ABSL_LOCKS_EXCLUDED(mu_);

  const int listen_fd_;
  const int port_;
  std::atomic<bool> stop_{false};
  std::atomic<int> credential_fetches_{0};
  std::atomic<int> refused_requests_{0};
  mutable absl::Mutex mu_;
  std::string role_ ABSL_GUARDED_BY(mu_);
  aws::Credentials credentials_ ABSL_GUARDED_BY(mu_);
  std::thread thread_;
};

}  // namespace ferry::testing
