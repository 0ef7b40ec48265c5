#include "base/result.h"

#include <gtest/gtest.h>

namespace base {
namespace {

Result<int> Half(int x) {
  if (x % 2) return Error(Code::kInvalidArgument, "odd: " + std::to_string(x));
  return x / 2;
}

Result<int> Quarter(int x) {
  ASSIGN_OR_RETURN(int h, Half(x));
  return Half(h);
}

Status CheckEven(int x) {
  RETURN_IF_ERROR(Half(x));
  return Ok();
}

TEST(ResultTest, ValueAndErrorPropagate) {
  EXPECT_EQ(*Quarter(8), 2);
  auto r = Quarter(6);
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code(), Code::kInvalidArgument);
  EXPECT_EQ(r.error().message(), "odd: 3");
  EXPECT_TRUE(CheckEven(4).has_value());
  EXPECT_FALSE(CheckEven(5).has_value());
}

TEST(ResultTest, ErrnoErrorMapsCodeAndKeepsContext) {
  Error e = ErrnoError("open /x", ENOSPC);
  EXPECT_EQ(e.code(), Code::kResourceExhausted);
  EXPECT_EQ(e.sys_errno(), ENOSPC);
  EXPECT_NE(e.message().find("open /x: "), std::string::npos);
  Error w = e.Wrap("save vm");
  EXPECT_EQ(w.code(), Code::kResourceExhausted);
  EXPECT_EQ(w.message().rfind("save vm: open /x", 0), 0u);
  EXPECT_NE(w.ToString().find("resource-exhausted"), std::string::npos);
}

TEST(ResultTest, MoveOnlyValue) {
  Result<std::unique_ptr<int>> r = std::make_unique<int>(7);
  std::unique_ptr<int> p = std::move(r).value();
  EXPECT_EQ(*p, 7);
}

}  // namespace
}  // namespace base
