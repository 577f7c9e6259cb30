#pragma once

// One thread kept for the life of its owner that runs one call at a time while the owner's
// thread does other work: a verify shard reads the other side there while it reads the walked
// side itself. Starting a thread per call cost a stack's mapping and unmapping each time.

#include <functional>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"

namespace ferry::agent {

class SideThread {
 public:
  SideThread() : thread_([this] { Loop(); }) {}
  SideThread(const SideThread&) = delete;
  SideThread& operator=(const SideThread&) = delete;
  ~SideThread() {
    {
      absl::MutexLock lock(&mu_);
      stop_ = true;
    }
    thread_.join();
  }

  // Runs `here` on the calling thread and `there` on this one, at once; the first error of the
  // two (`here`'s when both fail). Not reentrant: one caller at a time.
  absl::Status RunBoth(const std::function<absl::Status()>& here,
                       const std::function<absl::Status()>& there) {
    {
      absl::MutexLock lock(&mu_);
      task_ = &there;
      done_ = false;
    }
    absl::Status status = here();
    absl::MutexLock lock(&mu_);
    mu_.Await(absl::Condition(&done_));
    return status.ok() ? result_ : status;
  }

 private:
  void Loop() {
    while (true) {
      const std::function<absl::Status()>* task;
      {
        absl::MutexLock lock(&mu_);
        mu_.Await(absl::Condition(this, &SideThread::HasWork));
        if (stop_) return;
        task = task_;
        task_ = nullptr;
      }
      absl::Status result = (*task)();
      absl::MutexLock lock(&mu_);
      result_ = std::move(result);
      done_ = true;
    }
  }
  bool HasWork() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return stop_ || task_ != nullptr; }

  absl::Mutex mu_;
  const std::function<absl::Status()>* task_ ABSL_GUARDED_BY(mu_) = nullptr;
  absl::Status result_ ABSL_GUARDED_BY(mu_);
  bool done_ ABSL_GUARDED_BY(mu_) = true;
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  std::thread thread_;  // Last: starts once the members it reads are built.
};

}  // namespace ferry::agent
