// TSan builds only (cmake/Sanitizers.cmake links it into every executable, exported with
// -rdynamic). Debian's abseil is not built with TSan, so its Mutex, CondVar and Notification
// synchronize through atomics and futexes TSan never sees: every access guarded by an
// absl::Mutex would be reported as a race. These definitions interpose the library's (for
// ferry's calls and for gRPC's, which locks absl::Mutex too), call the real function found with
// dlsym(RTLD_NEXT) and tell TSan what it did: a release before a mutex is given up, an acquire
// once it is held. Conditions are evaluated inside the library while the mutex changes hands, so
// accesses during a wait are not checked (Await, LockWhen, CondVar::Wait). A missing symbol (an
// abseil of another ABI than debian3) stops the process: the build would check nothing.

#include <dlfcn.h>

#include <cstdio>
#include <cstdlib>

#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

extern "C" {
void __tsan_acquire(void* addr);
void __tsan_release(void* addr);
void AnnotateIgnoreReadsBegin(const char* file, int line);
void AnnotateIgnoreReadsEnd(const char* file, int line);
void AnnotateIgnoreWritesBegin(const char* file, int line);
void AnnotateIgnoreWritesEnd(const char* file, int line);
}

namespace ferry::tsan {
namespace {

template <typename F>
F Real(const char* name) {
  void* function = dlsym(RTLD_NEXT, name);
  if (function == nullptr) {
    std::fprintf(stderr, "tsan_absl_sync: %s not found in abseil\n", name);
    std::abort();
  }
  return reinterpret_cast<F>(function);
}

// Accesses made while the library waits (conditions it evaluates) are not checked.
class IgnoreAccesses {
 public:
  IgnoreAccesses() {
    AnnotateIgnoreReadsBegin(__FILE__, __LINE__);
    AnnotateIgnoreWritesBegin(__FILE__, __LINE__);
  }
  ~IgnoreAccesses() {
    AnnotateIgnoreWritesEnd(__FILE__, __LINE__);
    AnnotateIgnoreReadsEnd(__FILE__, __LINE__);
  }
};

using Condition = const void*;

// abseil's deadlock detector keeps a graph of every lock under a spin lock TSan cannot see
// either, and costs time on every lock; TSan builds go without it.
const bool kDeadlockDetectionOff = [] {
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  return true;
}();

}  // namespace

#define FERRY_MANGLED(name) __asm__(name)

// --- Mutex: lock and unlock ---

#define FERRY_LOCK(fn, sym)                              \
  void fn(void* mu) FERRY_MANGLED(sym);                  \
  void fn(void* mu) {                                    \
    static const auto real = Real<void (*)(void*)>(sym); \
    real(mu);                                            \
    __tsan_acquire(mu);                                  \
  }
FERRY_LOCK(MutexLock, "_ZN4absl7debian35Mutex4LockEv")
FERRY_LOCK(MutexReaderLock, "_ZN4absl7debian35Mutex10ReaderLockEv")

#define FERRY_TRY_LOCK(fn, sym)                          \
  bool fn(void* mu) FERRY_MANGLED(sym);                  \
  bool fn(void* mu) {                                    \
    static const auto real = Real<bool (*)(void*)>(sym); \
    const bool locked = real(mu);                        \
    if (locked) __tsan_acquire(mu);                      \
    return locked;                                       \
  }
FERRY_TRY_LOCK(MutexTryLock, "_ZN4absl7debian35Mutex7TryLockEv")
FERRY_TRY_LOCK(MutexReaderTryLock, "_ZN4absl7debian35Mutex13ReaderTryLockEv")

#define FERRY_UNLOCK(fn, sym)                            \
  void fn(void* mu) FERRY_MANGLED(sym);                  \
  void fn(void* mu) {                                    \
    static const auto real = Real<void (*)(void*)>(sym); \
    __tsan_release(mu);                                  \
    IgnoreAccesses ignore;                               \
    real(mu);                                            \
  }
FERRY_UNLOCK(MutexUnlock, "_ZN4absl7debian35Mutex6UnlockEv")
FERRY_UNLOCK(MutexReaderUnlock, "_ZN4absl7debian35Mutex12ReaderUnlockEv")

// --- Mutex: lock when a condition holds (the mutex is held on return, whatever the result) ---

#define FERRY_LOCK_WHEN(fn, sym)                                    \
  void fn(void* mu, Condition cond) FERRY_MANGLED(sym);             \
  void fn(void* mu, Condition cond) {                               \
    static const auto real = Real<void (*)(void*, Condition)>(sym); \
    {                                                               \
      IgnoreAccesses ignore;                                        \
      real(mu, cond);                                               \
    }                                                               \
    __tsan_acquire(mu);                                             \
  }
FERRY_LOCK_WHEN(MutexLockWhen, "_ZN4absl7debian35Mutex8LockWhenERKNS0_9ConditionE")
FERRY_LOCK_WHEN(MutexReaderLockWhen, "_ZN4absl7debian35Mutex14ReaderLockWhenERKNS0_9ConditionE")

#define FERRY_LOCK_WHEN_FOR(fn, sym, Arg)                                \
  bool fn(void* mu, Condition cond, Arg arg) FERRY_MANGLED(sym);         \
  bool fn(void* mu, Condition cond, Arg arg) {                           \
    static const auto real = Real<bool (*)(void*, Condition, Arg)>(sym); \
    bool result;                                                         \
    {                                                                    \
      IgnoreAccesses ignore;                                             \
      result = real(mu, cond, arg);                                      \
    }                                                                    \
    __tsan_acquire(mu);                                                  \
    return result;                                                       \
  }
FERRY_LOCK_WHEN_FOR(MutexLockWhenWithTimeout,
                    "_ZN4absl7debian35Mutex19LockWhenWithTimeoutERKNS0_9ConditionENS0_8DurationE",
                    absl::Duration)
FERRY_LOCK_WHEN_FOR(MutexLockWhenWithDeadline,
                    "_ZN4absl7debian35Mutex20LockWhenWithDeadlineERKNS0_9ConditionENS0_4TimeE",
                    absl::Time)
FERRY_LOCK_WHEN_FOR(
    MutexReaderLockWhenWithTimeout,
    "_ZN4absl7debian35Mutex25ReaderLockWhenWithTimeoutERKNS0_9ConditionENS0_8DurationE",
    absl::Duration)
FERRY_LOCK_WHEN_FOR(
    MutexReaderLockWhenWithDeadline,
    "_ZN4absl7debian35Mutex26ReaderLockWhenWithDeadlineERKNS0_9ConditionENS0_4TimeE", absl::Time)

// --- Mutex::Await and CondVar::Wait: the mutex is given up while waiting, held on return ---

void MutexAwait(void* mu, Condition cond)
    FERRY_MANGLED("_ZN4absl7debian35Mutex5AwaitERKNS0_9ConditionE");
void MutexAwait(void* mu, Condition cond) {
  static const auto real =
      Real<void (*)(void*, Condition)>("_ZN4absl7debian35Mutex5AwaitERKNS0_9ConditionE");
  __tsan_release(mu);
  {
    IgnoreAccesses ignore;
    real(mu, cond);
  }
  __tsan_acquire(mu);
}

#define FERRY_AWAIT_FOR(fn, sym, Arg)                                    \
  bool fn(void* mu, Condition cond, Arg arg) FERRY_MANGLED(sym);         \
  bool fn(void* mu, Condition cond, Arg arg) {                           \
    static const auto real = Real<bool (*)(void*, Condition, Arg)>(sym); \
    __tsan_release(mu);                                                  \
    bool result;                                                         \
    {                                                                    \
      IgnoreAccesses ignore;                                             \
      result = real(mu, cond, arg);                                      \
    }                                                                    \
    __tsan_acquire(mu);                                                  \
    return result;                                                       \
  }
FERRY_AWAIT_FOR(MutexAwaitWithTimeout,
                "_ZN4absl7debian35Mutex16AwaitWithTimeoutERKNS0_9ConditionENS0_8DurationE",
                absl::Duration)
FERRY_AWAIT_FOR(MutexAwaitWithDeadline,
                "_ZN4absl7debian35Mutex17AwaitWithDeadlineERKNS0_9ConditionENS0_4TimeE", absl::Time)

void CondVarWait(void* cv, void* mu) FERRY_MANGLED("_ZN4absl7debian37CondVar4WaitEPNS0_5MutexE");
void CondVarWait(void* cv, void* mu) {
  static const auto real =
      Real<void (*)(void*, void*)>("_ZN4absl7debian37CondVar4WaitEPNS0_5MutexE");
  __tsan_release(mu);
  {
    IgnoreAccesses ignore;
    real(cv, mu);
  }
  __tsan_acquire(mu);
}

#define FERRY_WAIT_FOR(fn, sym, Arg)                                 \
  bool fn(void* cv, void* mu, Arg arg) FERRY_MANGLED(sym);           \
  bool fn(void* cv, void* mu, Arg arg) {                             \
    static const auto real = Real<bool (*)(void*, void*, Arg)>(sym); \
    __tsan_release(mu);                                              \
    bool result;                                                     \
    {                                                                \
      IgnoreAccesses ignore;                                         \
      result = real(cv, mu, arg);                                    \
    }                                                                \
    __tsan_acquire(mu);                                              \
    return result;                                                   \
  }
FERRY_WAIT_FOR(CondVarWaitWithTimeout,
               "_ZN4absl7debian37CondVar15WaitWithTimeoutEPNS0_5MutexENS0_8DurationE",
               absl::Duration)
FERRY_WAIT_FOR(CondVarWaitWithDeadline,
               "_ZN4absl7debian37CondVar16WaitWithDeadlineEPNS0_5MutexENS0_4TimeE", absl::Time)

// --- Notification: Notify happens before every wait that returns notified ---

void NotificationNotify(void* n) FERRY_MANGLED("_ZN4absl7debian312Notification6NotifyEv");
void NotificationNotify(void* n) {
  static const auto real = Real<void (*)(void*)>("_ZN4absl7debian312Notification6NotifyEv");
  __tsan_release(n);
  real(n);
}

void NotificationWait(const void* n)
    FERRY_MANGLED("_ZNK4absl7debian312Notification19WaitForNotificationEv");
void NotificationWait(const void* n) {
  static const auto real =
      Real<void (*)(const void*)>("_ZNK4absl7debian312Notification19WaitForNotificationEv");
  {
    IgnoreAccesses ignore;
    real(n);
  }
  __tsan_acquire(const_cast<void*>(n));
}

#define FERRY_NOTIFICATION_WAIT_FOR(fn, sym, Arg)                   \
  bool fn(const void* n, Arg arg) FERRY_MANGLED(sym);               \
  bool fn(const void* n, Arg arg) {                                 \
    static const auto real = Real<bool (*)(const void*, Arg)>(sym); \
    bool notified;                                                  \
    {                                                               \
      IgnoreAccesses ignore;                                        \
      notified = real(n, arg);                                      \
    }                                                               \
    if (notified) __tsan_acquire(const_cast<void*>(n));             \
    return notified;                                                \
  }
FERRY_NOTIFICATION_WAIT_FOR(
    NotificationWaitWithTimeout,
    "_ZNK4absl7debian312Notification30WaitForNotificationWithTimeoutENS0_8DurationE",
    absl::Duration)
FERRY_NOTIFICATION_WAIT_FOR(
    NotificationWaitWithDeadline,
    "_ZNK4absl7debian312Notification31WaitForNotificationWithDeadlineENS0_4TimeE", absl::Time)

}  // namespace ferry::tsan
