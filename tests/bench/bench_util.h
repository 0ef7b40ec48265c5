// Shared helpers of the benchmark programs: a benchmark that hits an error
// prints what failed and exits non-zero, never a number from a broken run.
#pragma once

#include <errno.h>  // program_invocation_short_name

#include <cstdio>
#include <cstdlib>
#include <string>
#include <utility>

#include "base/result.h"

namespace bench {

[[noreturn]] inline void Die(const std::string& what) {
  std::fprintf(stderr, "%s: %s\n", program_invocation_short_name, what.c_str());
  std::exit(1);
}

template <typename T>
T Must(base::Result<T> r, const char* what) {
  if (!r) Die(std::string(what) + ": " + r.error().ToString());
  return std::move(r).value();
}

inline void Must(base::Status st, const char* what) {
  if (!st) Die(std::string(what) + ": " + st.error().ToString());
}

}  // namespace bench
