#pragma once

// Test support for the live watcher's tests (live_watcher_test.cc, live_filter_test.cc): a watch
// lease on its own thread as LeaseRunner runs one, and servers that notify.

#include <atomic>
#include <functional>
#include <initializer_list>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "agent/copier.h"
#include "common/redis/connection.h"
#include "common/testing/compare.h"
#include "common/testing/redis_helpers.h"
#include "common/testing/redis_server.h"
#include "gtest/gtest.h"

namespace ferry::agent::live_test {

namespace ft = ::ferry::testing;

inline constexpr absl::Duration kWait = absl::Seconds(15);

inline ft::RedisServerOptions Notifying(const std::string& flags = "KA") {
  ft::RedisServerOptions options;
  options.extra_config.push_back("notify-keyspace-events " + flags);
  return options;
}

inline void Send(redis::Connection& c, const std::vector<std::vector<std::string>>& commands) {
  absl::StatusOr<std::vector<redis::Reply>> replies = redis::RunPipeline(c, commands);
  ASSERT_TRUE(replies.ok()) << replies.status();
  for (size_t i = 0; i < replies->size(); ++i) {
    ASSERT_FALSE((*replies)[i].is_error()) << commands[i][0] << ": " << (*replies)[i].str();
  }
}

inline int64_t Integer(redis::Connection& c, std::initializer_list<absl::string_view> argv) {
  absl::StatusOr<redis::Reply> reply = c.Command(argv);
  EXPECT_TRUE(reply.ok()) << reply.status();
  return reply.ok() ? reply->integer() : -1;
}

// A watch lease on its own thread, as LeaseRunner runs one, with its checkpoints kept.
class Watch {
 public:
  Watch(const ft::RedisServer& source, const ft::RedisServer& target, uint64_t dirty_bytes,
        std::function<void(const Checkpoint&)> on_checkpoint = nullptr)
      : on_checkpoint_(std::move(on_checkpoint)) {
    spec_.source = source.endpoint();
    spec_.target = target.endpoint();
    spec_.watch = true;
    options_.batch_keys = 100;
    options_.live.emplace().dirty_bytes = dirty_bytes;
    options_.live->signals = &signals_;
    options_.initial_backoff = absl::Milliseconds(10);
  }
  ~Watch() { Stop(); }

  void Start() {
    CopyCallbacks callbacks;
    callbacks.on_checkpoint = [this](const Checkpoint& c) {
      if (on_checkpoint_) on_checkpoint_(c);
      absl::MutexLock lock(&mu_);
      latest_ = c;
      ++reports_;
    };
    callbacks.on_failed_key = [](const std::string& key, const std::string& reason) {
      ADD_FAILURE() << "failed key " << key << ": " << reason;
    };
    thread_ = std::thread([this, callbacks] {
      const absl::Status status =
          CopyShard(spec_, options_, Checkpoint(), nullptr, &cancel_, callbacks);
      absl::MutexLock lock(&mu_);
      status_ = status;
      ended_ = true;
    });
  }
  void Stop() {
    cancel_ = true;
    if (thread_.joinable()) thread_.join();
  }
  void Apply(bool on) { signals_.apply = on; }
  void Cutover(uint64_t seq) { signals_.cutover_seq = seq; }

  // Waits until the latest checkpoint's LiveStatus satisfies `done`; false after kWait.
  bool WaitFor(const std::function<bool(const ferry::v1::LiveStatus&)>& done) {
    const absl::Time deadline = absl::Now() + kWait;
    while (absl::Now() < deadline) {
      {
        absl::MutexLock lock(&mu_);
        if (ended_ || done(latest_.live)) return !ended_;
      }
      absl::SleepFor(absl::Milliseconds(10));
    }
    return false;
  }
  bool WaitSubscribed(uint64_t subscriptions) {
    return WaitFor([subscriptions](const ferry::v1::LiveStatus& s) {
      return s.subscribed() && s.subscriptions() >= subscriptions;
    });
  }
  ferry::v1::LiveStatus live() {
    absl::MutexLock lock(&mu_);
    return latest_.live;
  }
  absl::Status EndStatus() {
    const absl::Time deadline = absl::Now() + kWait;
    absl::MutexLock lock(&mu_);
    mu_.AwaitWithDeadline(absl::Condition(&ended_), deadline);
    return ended_ ? status_ : absl::DeadlineExceededError("still running");
  }
  ShardSpec& spec() { return spec_; }

 private:
  ShardSpec spec_;
  CopyOptions options_;
  LiveSignals signals_;
  std::atomic<bool> cancel_{false};
  std::function<void(const Checkpoint&)> on_checkpoint_;
  std::thread thread_;
  absl::Mutex mu_;
  Checkpoint latest_ ABSL_GUARDED_BY(mu_);
  int reports_ ABSL_GUARDED_BY(mu_) = 0;
  bool ended_ ABSL_GUARDED_BY(mu_) = false;
  absl::Status status_ ABSL_GUARDED_BY(mu_);
};

inline std::vector<ft::KeyDiff> Diff(const ft::RedisServer& source, const ft::RedisServer& target) {
  redis::Connection s = ft::Connect(source);
  redis::Connection t = ft::Connect(target);
  absl::StatusOr<std::vector<ft::KeyDiff>> diffs = ft::CompareDatabases(s, 0, t, 0);
  EXPECT_TRUE(diffs.ok()) << diffs.status();
  return diffs.ok() ? *diffs : std::vector<ft::KeyDiff>{{"?", "compare failed"}};
}

}  // namespace ferry::agent::live_test
