#include "support/wait_for.h"

#include <thread>

namespace ferry_test {

::testing::AssertionResult WaitFor(std::string_view what, std::chrono::milliseconds timeout,
                                   const std::function<bool()>& pred,
                                   std::chrono::milliseconds interval) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (pred()) return ::testing::AssertionSuccess();
    if (interval.count() == 0) {
      std::this_thread::yield();
    } else {
      std::this_thread::sleep_for(interval);
    }
  }
  if (pred()) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure()
         << "timed out after " << timeout.count() << " ms waiting for " << what;
}

}  // namespace ferry_test
