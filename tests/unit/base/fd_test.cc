#include "base/fd.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>

#include "support/temp_dir.h"

namespace base {
namespace {

class FdTest : public ::testing::Test {
 protected:
  ferry_test::TempDir temp_;
  const std::string dir_ = temp_.path();
};

TEST_F(FdTest, AtomicWriteReplacesWholeFile) {
  std::string path = dir_ + "/f";
  ASSERT_TRUE(WriteFileAtomically(path, "first").has_value());
  ASSERT_TRUE(WriteFileAtomically(path, "second").has_value());
  EXPECT_EQ(*ReadFileToString(path), "second");
  // No temp files are left behind.
  int count = 0;
  for (auto& e : std::filesystem::directory_iterator(dir_)) (void)e, ++count;
  EXPECT_EQ(count, 1);
}

TEST_F(FdTest, OpenErrorNamesPathAndCode) {
  auto r = Fd::Open(dir_ + "/missing", O_RDONLY);
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code(), Code::kNotFound);
  EXPECT_NE(r.error().message().find("/missing"), std::string::npos);
}

TEST_F(FdTest, OpenSetsCloexecAndMoveTransfersOwnership) {
  auto r = Fd::Open(dir_ + "/g", O_RDWR | O_CREAT);
  ASSERT_TRUE(r.has_value());
  Fd a = std::move(r).value();
  EXPECT_TRUE(fcntl(a.get(), F_GETFD) & FD_CLOEXEC);
  int raw = a.get();
  Fd b = std::move(a);
  EXPECT_FALSE(a.valid());
  EXPECT_EQ(b.get(), raw);
}

}  // namespace
}  // namespace base
