// WaitFor: polls a condition until it holds or a deadline passes, so a test
// waits for the thing it needs instead of sleeping and hoping.
#pragma once

#include <gtest/gtest.h>

#include <chrono>
#include <functional>
#include <string_view>

namespace ferry_test {

// Polls pred() every `interval` (0: yields the CPU between polls, for
// conditions that change within microseconds, like guest memory) until it
// returns true or `timeout` passes; pred() is asked once more at the
// deadline. The failure says "timed out after N ms waiting for <what>", so
// `ASSERT_TRUE(WaitFor("the worker to exit", ...))` reads as its message.
::testing::AssertionResult WaitFor(
    std::string_view what, std::chrono::milliseconds timeout, const std::function<bool()>& pred,
    std::chrono::milliseconds interval = std::chrono::milliseconds(10));

}  // namespace ferry_test
