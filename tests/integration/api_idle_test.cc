// ferryd's API with hundreds of idle clients on its Unix socket (docs/api.md,
// "Connections"): raw AF_UNIX connections that send nothing or stop in the
// middle of a request. `ferry vm list` must still answer promptly, beside
// them, as it did not when they exhausted the server's connection limit
// ("Connection reset by peer" until they closed).
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <string>
#include <vector>

#include "support/ferryd_harness.h"

namespace ferry_it {
namespace {

constexpr int kIdleClients = 320;

// A connected AF_UNIX socket, or -1.
int ConnectUnix(const std::string& path) {
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::strncpy(addr.sun_path, path.c_str(), sizeof addr.sun_path - 1);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

class ApiIdleTest : public FerryTest {
 protected:
  void TearDown() override {
    for (int fd : idle_) ::close(fd);
    FerryTest::TearDown();
  }
  std::vector<int> idle_;
};

TEST_F(ApiIdleTest, ManyIdleConnectionsDoNotLockTheApiOut) {
  StartFerryd();
  const std::string half = "GET /v1/vms HTTP/1.1\r\nHost: local";
  for (int i = 0; i < kIdleClients; ++i) {
    int fd = ConnectUnix(socket());
    ASSERT_GE(fd, 0) << "connect " << i << ": " << std::strerror(errno);
    idle_.push_back(fd);
    if (i % 3 == 0) {
      ASSERT_EQ(::write(fd, half.data(), half.size()), ssize_t(half.size()));
    }
  }
  for (int round = 0; round < 3; ++round) {
    const auto start = std::chrono::steady_clock::now();
    ProcessResult r = Ferry({"vm", "list"}, 20000);
    const auto took = std::chrono::duration_cast<std::chrono::milliseconds>(
        std::chrono::steady_clock::now() - start);
    EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
    EXPECT_LT(took.count(), 5000) << "ferry vm list took " << took.count() << " ms";
  }
  // The idle ones are still open (not dropped to make room): within the
  // 30 s idle timeout the server has not closed any.
  int closed = 0;
  for (int fd : idle_) {
    pollfd p{fd, POLLIN, 0};
    char c;
    if (::poll(&p, 1, 0) > 0 && ::recv(fd, &c, 1, MSG_DONTWAIT) <= 0) ++closed;
  }
  EXPECT_EQ(closed, 0);
}

}  // namespace
}  // namespace ferry_it
