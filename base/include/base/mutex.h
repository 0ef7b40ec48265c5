#pragma once

// base::Mutex, base::MutexLock and base::CondVar: std::mutex,
// std::lock_guard/std::unique_lock and std::condition_variable with the
// thread-safety annotations libstdc++ lacks, so that clang's -Wthread-safety
// (the `clang` preset) checks every GUARDED_BY field. Same costs as the
// standard types they wrap.
//
// Waiting on a condition: write the predicate as a loop in the function that
// holds the lock, not as a lambda (the analysis checks a lambda's body as a
// function of its own, which holds nothing):
//
//   base::MutexLock lock(mu_);
//   while (!ready_) cv_.Wait(mu_);
//
// Escape hatch: native() hands out the std::mutex for an API that needs one
// (std::condition_variable with a predicate, std::scoped_lock of several). The
// analysis cannot follow it, so the function using it must be
// NO_THREAD_SAFETY_ANALYSIS with a comment saying which lock it holds.

#include <chrono>
#include <condition_variable>
#include <mutex>

#include "base/thread_annotations.h"

namespace base {

class CAPABILITY("mutex") Mutex {
 public:
  Mutex() = default;
  Mutex(const Mutex&) = delete;
  Mutex& operator=(const Mutex&) = delete;

  // Lockable names, so std::condition_variable_any and std::unique_lock work
  // too (without the analysis seeing them).
  void lock() ACQUIRE() { mu_.lock(); }
  void unlock() RELEASE() { mu_.unlock(); }
  bool try_lock() TRY_ACQUIRE(true) { return mu_.try_lock(); }

  // Tells the analysis the caller holds the mutex where it cannot see it (a
  // callback invoked under the lock). Checks nothing at run time.
  void AssertHeld() const ASSERT_CAPABILITY(this) {}

  std::mutex& native() RETURN_CAPABILITY(this) { return mu_; }

 private:
  std::mutex mu_;
};

// Holds a Mutex for its scope, like std::lock_guard; Unlock() and Lock() let a
// function drop it around slow work (as std::unique_lock), and the analysis
// tracks which state each path is in. The destructor releases only if held.
class SCOPED_CAPABILITY MutexLock {
 public:
  explicit MutexLock(Mutex& mu) ACQUIRE(mu) : mu_(mu) { mu_.lock(); }
  ~MutexLock() RELEASE() {
    if (held_) mu_.unlock();
  }
  MutexLock(const MutexLock&) = delete;
  MutexLock& operator=(const MutexLock&) = delete;

  void Unlock() RELEASE() {
    mu_.unlock();
    held_ = false;
  }
  void Lock() ACQUIRE() {
    mu_.lock();
    held_ = true;
  }

 private:
  Mutex& mu_;
  bool held_ = true;
};

// A std::condition_variable whose waits take the base::Mutex the caller holds
// (REQUIRES: the analysis checks it is held). Each wait gives up the mutex
// while blocked and holds it again on return; spurious wake-ups happen, so
// callers wait in a loop on their condition.
class CondVar {
 public:
  void Wait(Mutex& mu) REQUIRES(mu) {
    std::unique_lock<std::mutex> lock(mu.native(), std::adopt_lock);
    cv_.wait(lock);
    lock.release();  // still held: ownership stays with the caller
  }

  // Returns false if `deadline` passed (the caller re-checks its condition
  // either way).
  template <typename Clock, typename Duration>
  bool WaitUntil(Mutex& mu, const std::chrono::time_point<Clock, Duration>& deadline) REQUIRES(mu) {
    std::unique_lock<std::mutex> lock(mu.native(), std::adopt_lock);
    const bool woken = cv_.wait_until(lock, deadline) == std::cv_status::no_timeout;
    lock.release();
    return woken;
  }

  template <typename Rep, typename Period>
  bool WaitFor(Mutex& mu, const std::chrono::duration<Rep, Period>& timeout) REQUIRES(mu) {
    return WaitUntil(mu, std::chrono::steady_clock::now() + timeout);
  }

  void NotifyOne() { cv_.notify_one(); }
  void NotifyAll() { cv_.notify_all(); }

 private:
  std::condition_variable cv_;
};

}  // namespace base
