#pragma once

// Child processes and scratch resources for integration tests: a move-only RAII Subprocess,
// free loopback ports, temporary directories and a polling wait. Test support only.

#include <sys/types.h>

#include <functional>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace ferry::testing {

struct SubprocessOptions {
  // Added to (or replacing entries of) the parent's environment.
  std::vector<std::pair<std::string, std::string>> env;
  // The child's working directory; empty keeps the parent's.
  std::string working_dir;
  // stdout and stderr are appended to this file (created when absent); empty inherits both.
  std::string log_file;
  // The child gets SIGKILL when the thread that started it exits (PR_SET_PDEATHSIG), so a
  // crashed test leaves no servers behind. Turn off when starting from a short-lived thread.
  bool kill_on_parent_exit = true;
};

// One child process. Move-only; the destructor kills (SIGKILL) and reaps it when it is still
// running. Not thread-safe.
class Subprocess {
 public:
  // Starts argv[0] (searched on PATH when it has no '/') with argv. NOT_FOUND when the program
  // does not exist; the exec error otherwise.
  static absl::StatusOr<Subprocess> Start(std::vector<std::string> argv,
                                          SubprocessOptions options = {});

  Subprocess(Subprocess&& other) noexcept;
  Subprocess& operator=(Subprocess&& other) noexcept;
  Subprocess(const Subprocess&) = delete;
  Subprocess& operator=(const Subprocess&) = delete;
  ~Subprocess();

  pid_t pid() const { return pid_; }
  // True until the child has been reaped (by Wait, TryWait or Kill).
  bool running() const { return pid_ > 0 && !exit_code_.has_value(); }

  // Sends `signal` to the child; FAILED_PRECONDITION when it has already been reaped.
  absl::Status Signal(int signal);
  // Waits until the child exits: its exit code, or -N when signal N ended it.
  // DEADLINE_EXCEEDED when it is still running after `timeout`.
  absl::StatusOr<int> Wait(absl::Duration timeout);
  // Reaps the child if it has exited, without blocking.
  std::optional<int> TryWait();
  // SIGKILL and reap. No-op when already reaped.
  void Kill();

 private:
  explicit Subprocess(pid_t pid) : pid_(pid) {}

  pid_t pid_ = -1;
  std::optional<int> exit_code_;
};

// Full path of `program` found on PATH (or `program` itself when it contains '/' and is
// executable); empty when there is none.
std::string FindProgram(absl::string_view program);

// A TCP port on 127.0.0.1 that was free a moment ago (bind port 0, read back, close); -1 on
// failure. Another process may take it before the caller binds it: callers retry.
int FreeTcpPort();

// True when nothing listens on (or holds) `port` on 127.0.0.1 right now.
bool TcpPortIsFree(int port);

// A new directory `$TMPDIR/<prefix>XXXXXX` (mode 0700); empty on failure.
std::string MakeTempDir(absl::string_view prefix);
// Removes `path` and everything under it; OK when it does not exist.
absl::Status RemoveTree(absl::string_view path);

// True when the environment has FERRY_KEEP_TEST_DIRS=1: test dirs are kept for a post-mortem.
bool KeepTestDirs();

// A new temp dir, removed with everything in it when the object dies (kept when
// KeepTestDirs()). path() is empty when it could not be made.
class ScopedTempDir {
 public:
  explicit ScopedTempDir(absl::string_view prefix);
  ~ScopedTempDir();
  ScopedTempDir(const ScopedTempDir&) = delete;
  ScopedTempDir& operator=(const ScopedTempDir&) = delete;
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// One temp dir per test process (`$TMPDIR/ferry-test-XXXXXX`), made on first use and removed
// with everything in it when the process exits normally: for files (SQLite state and its
// -wal, -shm and .lock companions) whose test has no object to own a ScopedTempDir.
const std::string& ProcessTempDir();

// Reads the last `max_bytes` of a file (for error messages); empty when unreadable.
std::string FileTail(absl::string_view path, size_t max_bytes = 2000);

// Polls `cond` every `poll` until it returns true: OK then, DEADLINE_EXCEEDED after `timeout`.
absl::Status WaitFor(const std::function<bool()>& cond, absl::Duration timeout,
                     absl::Duration poll = absl::Milliseconds(10));

}  // namespace ferry::testing
