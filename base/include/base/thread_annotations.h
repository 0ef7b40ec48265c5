#pragma once

// Clang's thread-safety annotations (https://clang.llvm.org/docs/ThreadSafetyAnalysis.html),
// the same macro names as Abseil and leveldb. The `clang` preset builds with
// -Wthread-safety -Werror, so a GUARDED_BY field touched without its mutex, or
// a REQUIRES helper called without it, fails that build. Under GCC every macro
// expands to nothing.
//
// libstdc++'s std::mutex carries no annotations: a capability must be a
// base::Mutex (base/mutex.h) for the analysis to see it.

#if defined(__clang__)
#define FERRY_THREAD_ANNOTATION(x) __attribute__((x))
#else
#define FERRY_THREAD_ANNOTATION(x)
#endif

// On a class: instances are a capability (a mutex) named `x` in diagnostics.
#define CAPABILITY(x) FERRY_THREAD_ANNOTATION(capability(x))
// On a class: an RAII object that holds a capability for its lifetime.
#define SCOPED_CAPABILITY FERRY_THREAD_ANNOTATION(scoped_lockable)

// On a field: read and written only while holding `x`.
#define GUARDED_BY(x) FERRY_THREAD_ANNOTATION(guarded_by(x))
// On a pointer field: the pointee is read and written only while holding `x`.
#define PT_GUARDED_BY(x) FERRY_THREAD_ANNOTATION(pt_guarded_by(x))

// On a mutex field: the order in which mutexes must be taken.
#define ACQUIRED_BEFORE(...) FERRY_THREAD_ANNOTATION(acquired_before(__VA_ARGS__))
#define ACQUIRED_AFTER(...) FERRY_THREAD_ANNOTATION(acquired_after(__VA_ARGS__))

// On a function: the caller must hold (REQUIRES) or must not hold (EXCLUDES)
// the capabilities; *_SHARED for reader locks.
#define REQUIRES(...) FERRY_THREAD_ANNOTATION(requires_capability(__VA_ARGS__))
#define REQUIRES_SHARED(...) FERRY_THREAD_ANNOTATION(requires_shared_capability(__VA_ARGS__))
#define EXCLUDES(...) FERRY_THREAD_ANNOTATION(locks_excluded(__VA_ARGS__))

// On a function: it takes (ACQUIRE), gives back (RELEASE) or may take
// (TRY_ACQUIRE, the first argument is the return value meaning success) the
// capabilities; without arguments, the object's own.
#define ACQUIRE(...) FERRY_THREAD_ANNOTATION(acquire_capability(__VA_ARGS__))
#define ACQUIRE_SHARED(...) FERRY_THREAD_ANNOTATION(acquire_shared_capability(__VA_ARGS__))
#define RELEASE(...) FERRY_THREAD_ANNOTATION(release_capability(__VA_ARGS__))
#define RELEASE_SHARED(...) FERRY_THREAD_ANNOTATION(release_shared_capability(__VA_ARGS__))
#define TRY_ACQUIRE(...) FERRY_THREAD_ANNOTATION(try_acquire_capability(__VA_ARGS__))
#define TRY_ACQUIRE_SHARED(...) FERRY_THREAD_ANNOTATION(try_acquire_shared_capability(__VA_ARGS__))

// On a function: checks at run time (or promises) that the capability is
// held; the analysis assumes it is from there on.
#define ASSERT_CAPABILITY(x) FERRY_THREAD_ANNOTATION(assert_capability(x))
// On a function: returns a reference to the capability `x`.
#define RETURN_CAPABILITY(x) FERRY_THREAD_ANNOTATION(lock_returned(x))

// On a function: the analysis skips its body. Say in a comment why the
// function is safe anyway.
#define NO_THREAD_SAFETY_ANALYSIS FERRY_THREAD_ANNOTATION(no_thread_safety_analysis)
