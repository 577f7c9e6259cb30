#pragma once

#include <deque>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"

namespace ferry::server {

// Runs posted tasks on its own threads, in posting order (strictly in order with one thread).
// Where the controller's gRPC reactions hand blocking work (SQLite commits, planning) so that
// they never block themselves. Thread-safe.
class WorkQueue {
 public:
  WorkQueue(int threads, std::string name);
  // Stop().
  ~WorkQueue();
  WorkQueue(const WorkQueue&) = delete;
  WorkQueue& operator=(const WorkQueue&) = delete;

  // Queues `task`. After Stop() the task is dropped.
  void Post(std::function<void()> task) ABSL_LOCKS_EXCLUDED(mu_);
  // Runs what is queued, then joins the threads. Idempotent; not from a task.
  void Stop() ABSL_LOCKS_EXCLUDED(mu_);

 private:
  void Loop() ABSL_LOCKS_EXCLUDED(mu_);

  const std::string name_;
  absl::Mutex mu_;
  std::deque<std::function<void()>> tasks_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::vector<std::thread> threads_;
};

}  // namespace ferry::server
