#include "common/testing/process.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <system_error>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

extern char** environ;

namespace ferry::testing {
namespace {

int DecodeWaitStatus(int status) {
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return -WTERMSIG(status);
  return -1;
}

// The parent's environment with `additions` applied, as "KEY=VALUE" strings.
std::vector<std::string> MergedEnvironment(
    const std::vector<std::pair<std::string, std::string>>& additions) {
  std::map<std::string, std::string> env;
  for (char** entry = environ; entry != nullptr && *entry != nullptr; ++entry) {
    absl::string_view text(*entry);
    size_t eq = text.find('=');
    if (eq == absl::string_view::npos) continue;
    env[std::string(text.substr(0, eq))] = std::string(text.substr(eq + 1));
  }
  for (const auto& [key, value] : additions) env[key] = value;
  std::vector<std::string> merged;
  merged.reserve(env.size());
  for (const auto& [key, value] : env) merged.push_back(absl::StrCat(key, "=", value));
  return merged;
}

std::vector<char*> NullTerminated(std::vector<std::string>& strings) {
  std::vector<char*> pointers;
  pointers.reserve(strings.size() + 1);
  for (std::string& s : strings) pointers.push_back(s.data());
  pointers.push_back(nullptr);
  return pointers;
}

// Runs in the child between fork and exec: async-signal-safe calls only. Never returns.
[[noreturn]] void ExecChild(const char* path, char* const* argv, char* const* envp,
                            const char* working_dir, int log_fd, int error_fd, bool pdeathsig,
                            pid_t parent) {
  if (pdeathsig) {
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent) _exit(127);
  }
  // Dispositions set to SIG_IGN and the blocked mask survive exec; the child wants neither.
  struct sigaction default_action;
  std::memset(&default_action, 0, sizeof(default_action));
  default_action.sa_handler = SIG_DFL;
  for (int sig = 1; sig < NSIG; ++sig) sigaction(sig, &default_action, nullptr);
  sigset_t empty;
  sigemptyset(&empty);
  sigprocmask(SIG_SETMASK, &empty, nullptr);

  if (log_fd >= 0 && (dup2(log_fd, STDOUT_FILENO) < 0 || dup2(log_fd, STDERR_FILENO) < 0)) {
    int err = errno;
    (void)!write(error_fd, &err, sizeof(err));
    _exit(127);
  }
  if (working_dir[0] != '\0' && chdir(working_dir) != 0) {
    int err = errno;
    (void)!write(error_fd, &err, sizeof(err));
    _exit(127);
  }
  execve(path, argv, envp);
  int err = errno;
  (void)!write(error_fd, &err, sizeof(err));
  _exit(127);
}

}  // namespace

std::string FindProgram(absl::string_view program) {
  if (program.empty()) return "";
  if (program.find('/') != absl::string_view::npos) {
    std::string path(program);
    return access(path.c_str(), X_OK) == 0 ? path : "";
  }
  const char* path_env = getenv("PATH");
  for (absl::string_view dir :
       absl::StrSplit(path_env != nullptr ? path_env : "/usr/bin:/bin", ':')) {
    if (dir.empty()) dir = ".";
    std::string candidate = absl::StrCat(dir, "/", program);
    struct stat st;
    if (stat(candidate.c_str(), &st) == 0 && S_ISREG(st.st_mode) &&
        access(candidate.c_str(), X_OK) == 0) {
      return candidate;
    }
  }
  return "";
}

absl::StatusOr<Subprocess> Subprocess::Start(std::vector<std::string> argv,
                                             SubprocessOptions options) {
  if (argv.empty()) return absl::InvalidArgumentError("Subprocess::Start: empty argv");
  std::string path = FindProgram(argv[0]);
  if (path.empty()) return absl::NotFoundError(absl::StrCat(argv[0], " not found on PATH"));

  // Everything the child needs is prepared here: after fork it may not allocate.
  std::vector<std::string> env = MergedEnvironment(options.env);
  std::vector<char*> argv_ptrs = NullTerminated(argv);
  std::vector<char*> env_ptrs = NullTerminated(env);

  int log_fd = -1;
  if (!options.log_file.empty()) {
    log_fd = open(options.log_file.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (log_fd < 0) {
      return absl::InternalError(
          absl::StrCat("cannot open log file ", options.log_file, ": ", std::strerror(errno)));
    }
  }
  int error_pipe[2];
  if (pipe2(error_pipe, O_CLOEXEC) != 0) {
    int err = errno;
    if (log_fd >= 0) close(log_fd);
    return absl::InternalError(absl::StrCat("pipe2: ", std::strerror(err)));
  }

  pid_t parent = getpid();
  pid_t pid = fork();
  if (pid == 0) {
    ExecChild(path.c_str(), argv_ptrs.data(), env_ptrs.data(), options.working_dir.c_str(), log_fd,
              error_pipe[1], options.kill_on_parent_exit, parent);
  }
  int fork_errno = errno;
  close(error_pipe[1]);
  if (log_fd >= 0) close(log_fd);
  if (pid < 0) {
    close(error_pipe[0]);
    return absl::InternalError(absl::StrCat("fork: ", std::strerror(fork_errno)));
  }

  // The pipe closes on a successful exec; otherwise it carries the child's errno.
  int child_errno = 0;
  ssize_t n;
  do {
    n = read(error_pipe[0], &child_errno, sizeof(child_errno));
  } while (n < 0 && errno == EINTR);
  close(error_pipe[0]);
  if (n > 0) {
    int status;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    return absl::InternalError(
        absl::StrCat("cannot start ", path, ": ", std::strerror(child_errno)));
  }
  return Subprocess(pid);
}

Subprocess::Subprocess(Subprocess&& other) noexcept
    : pid_(std::exchange(other.pid_, -1)), exit_code_(std::exchange(other.exit_code_, {})) {}

Subprocess& Subprocess::operator=(Subprocess&& other) noexcept {
  if (this != &other) {
    Kill();
    pid_ = std::exchange(other.pid_, -1);
    exit_code_ = std::exchange(other.exit_code_, {});
  }
  return *this;
}

Subprocess::~Subprocess() { Kill(); }

absl::Status Subprocess::Signal(int signal) {
  if (!running()) return absl::FailedPreconditionError("process is not running");
  if (kill(pid_, signal) != 0) {
    return absl::InternalError(absl::StrCat("kill ", pid_, ": ", std::strerror(errno)));
  }
  return absl::OkStatus();
}

std::optional<int> Subprocess::TryWait() {
  if (pid_ <= 0 || exit_code_.has_value()) return exit_code_;
  int status;
  pid_t r;
  do {
    r = waitpid(pid_, &status, WNOHANG);
  } while (r < 0 && errno == EINTR);
  if (r == pid_) exit_code_ = DecodeWaitStatus(status);
  // ECHILD: someone else reaped it; treat it as gone.
  if (r < 0) exit_code_ = -1;
  return exit_code_;
}

absl::StatusOr<int> Subprocess::Wait(absl::Duration timeout) {
  if (pid_ <= 0) return absl::FailedPreconditionError("no process");
  absl::Time deadline = absl::Now() + timeout;
  absl::Duration backoff = absl::Milliseconds(1);
  while (true) {
    if (std::optional<int> code = TryWait()) return *code;
    if (absl::Now() >= deadline) {
      return absl::DeadlineExceededError(
          absl::StrCat("process ", pid_, " still running after ", absl::FormatDuration(timeout)));
    }
    absl::SleepFor(std::min(backoff, deadline - absl::Now()));
    backoff = std::min(backoff * 2, absl::Milliseconds(20));
  }
}

void Subprocess::Kill() {
  if (!running()) return;
  kill(pid_, SIGKILL);
  int status;
  pid_t r;
  do {
    r = waitpid(pid_, &status, 0);
  } while (r < 0 && errno == EINTR);
  exit_code_ = r == pid_ ? DecodeWaitStatus(status) : -SIGKILL;
}

namespace {

// Binds a TCP socket to 127.0.0.1:`port` (0: any) and returns the bound port, or -1.
int BindLoopback(int port) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  sockaddr_in addr;
  std::memset(&addr, 0, sizeof(addr));
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(static_cast<uint16_t>(port));
  socklen_t len = sizeof(addr);
  int bound = -1;
  if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0 &&
      getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0) {
    bound = ntohs(addr.sin_port);
  }
  close(fd);
  return bound;
}

}  // namespace

int FreeTcpPort() { return BindLoopback(0); }

bool TcpPortIsFree(int port) { return port > 0 && port < 65536 && BindLoopback(port) == port; }

std::string MakeTempDir(absl::string_view prefix) {
  const char* tmp = getenv("TMPDIR");
  std::string pattern =
      absl::StrCat(tmp != nullptr && tmp[0] != '\0' ? tmp : "/tmp", "/", prefix, "XXXXXX");
  if (mkdtemp(pattern.data()) == nullptr) return "";
  return pattern;
}

absl::Status RemoveTree(absl::string_view path) {
  std::error_code error;
  std::filesystem::remove_all(std::filesystem::path(std::string(path)), error);
  if (error) {
    return absl::InternalError(absl::StrCat("cannot remove ", path, ": ", error.message()));
  }
  return absl::OkStatus();
}

bool KeepTestDirs() {
  const char* keep = getenv("FERRY_KEEP_TEST_DIRS");
  return keep != nullptr && std::string(keep) == "1";
}

ScopedTempDir::ScopedTempDir(absl::string_view prefix) : path_(MakeTempDir(prefix)) {}

ScopedTempDir::~ScopedTempDir() {
  if (!KeepTestDirs() && !path_.empty()) (void)RemoveTree(path_);
}

const std::string& ProcessTempDir() {
  // Destroyed after main() returns, when no test uses its files any more.
  static const ScopedTempDir dir("ferry-test-");
  return dir.path();
}

std::string FileTail(absl::string_view path, size_t max_bytes) {
  std::ifstream in(std::string(path), std::ios::binary | std::ios::ate);
  if (!in) return "";
  std::streamoff size = in.tellg();
  std::streamoff start = std::max<std::streamoff>(0, size - static_cast<std::streamoff>(max_bytes));
  in.seekg(start);
  std::string tail(static_cast<size_t>(size - start), '\0');
  in.read(tail.data(), static_cast<std::streamsize>(tail.size()));
  tail.resize(static_cast<size_t>(in.gcount()));
  return tail;
}

absl::Status WaitFor(const std::function<bool()>& cond, absl::Duration timeout,
                     absl::Duration poll) {
  absl::Time deadline = absl::Now() + timeout;
  while (true) {
    if (cond()) return absl::OkStatus();
    absl::Time now = absl::Now();
    if (now >= deadline) {
      return absl::DeadlineExceededError(
          absl::StrCat("condition not met within ", absl::FormatDuration(timeout)));
    }
    absl::SleepFor(std::min(poll, deadline - now));
  }
}

}  // namespace ferry::testing
