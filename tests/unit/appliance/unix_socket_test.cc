#include "common/unix_socket.h"

#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include <fstream>

#include "support/temp_dir.h"

namespace appliance {
namespace {

TEST(UnixSocketTest, ListenCreatesAPrivateSocket) {
  ferry_test::TempDir dir;
  std::string path = dir / "api.sock";
  auto fd = ListenUnix(path);
  ASSERT_TRUE(fd.has_value()) << fd.error().ToString();
  struct stat st {};
  ASSERT_EQ(::stat(path.c_str(), &st), 0);
  EXPECT_TRUE(S_ISSOCK(st.st_mode));
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  EXPECT_TRUE(ConnectUnix(path).has_value());
}

TEST(UnixSocketTest, LiveListenerIsNotReplaced) {
  ferry_test::TempDir dir;
  std::string path = dir / "api.sock";
  auto first = ListenUnix(path);
  ASSERT_TRUE(first.has_value());
  auto second = ListenUnix(path);
  ASSERT_FALSE(second.has_value());
  EXPECT_EQ(second.error().code(), base::Code::kAlreadyExists);
  EXPECT_NE(second.error().message().find("already listening"), std::string::npos);
}

TEST(UnixSocketTest, StaleSocketIsReplaced) {
  ferry_test::TempDir dir;
  std::string path = dir / "api.sock";
  {
    auto first = ListenUnix(path);
    ASSERT_TRUE(first.has_value());
  }  // closed: the file stays, nobody listens
  auto second = ListenUnix(path);
  EXPECT_TRUE(second.has_value()) << second.error().ToString();
}

TEST(UnixSocketTest, RegularFileIsNeverRemoved) {
  ferry_test::TempDir dir;
  std::string path = dir / "important";
  std::ofstream(path) << "keep me";
  auto r = ListenUnix(path);
  ASSERT_FALSE(r.has_value());
  EXPECT_NE(r.error().message().find("not a socket"), std::string::npos);
}

TEST(UnixSocketTest, OverlongPathIsRefused) {
  std::string path = "/tmp/" + std::string(120, 'x');
  auto r = ListenUnix(path);
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code(), base::Code::kInvalidArgument);
  EXPECT_NE(r.error().message().find("longer than"), std::string::npos);
}

TEST(UnixSocketTest, ReadLineLimitsAndTimeouts) {
  int sv[2];
  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
  base::Fd a(sv[0]), b(sv[1]);
  ASSERT_TRUE(WriteLine(a.get(), "hello").has_value());
  auto line = ReadLine(b.get(), 100, 1000, "greeting");
  ASSERT_TRUE(line.has_value());
  EXPECT_EQ(*line, "hello");
  auto timeout = ReadLine(b.get(), 100, 50, "greeting");
  ASSERT_FALSE(timeout.has_value());
  EXPECT_EQ(timeout.error().code(), base::Code::kDeadlineExceeded);
  EXPECT_NE(timeout.error().message().find("waiting for greeting"), std::string::npos);
  ASSERT_TRUE(WriteLine(a.get(), std::string(200, 'x')).has_value());
  auto too_long = ReadLine(b.get(), 100, 1000, "greeting");
  ASSERT_FALSE(too_long.has_value());
  EXPECT_EQ(too_long.error().code(), base::Code::kInvalidArgument);
}

TEST(UnixSocketTest, MakeDirectoriesCreatesParents) {
  ferry_test::TempDir dir;
  ASSERT_TRUE(MakeDirectories(dir / "a/b/c", 0700).has_value());
  struct stat st {};
  ASSERT_EQ(::stat((dir / "a/b/c").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0700u);
  std::ofstream(dir / "file") << "x";
  EXPECT_FALSE(MakeDirectories(dir / "file", 0700).has_value());
}

}  // namespace
}  // namespace appliance
