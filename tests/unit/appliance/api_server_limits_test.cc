// ApiServer with many idle clients on its Unix socket: raw AF_UNIX
// connections that send nothing or half a request must neither lock the API
// out (a request made meanwhile is served promptly) nor stay open forever
// (closed after the idle timeout).
#include <gtest/gtest.h>
#include <poll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <vector>

#include "base/fd.h"
#include "cli/http_client.h"
#include "daemon/api_handler.h"
#include "daemon/api_server.h"
#include "support/temp_dir.h"

namespace appliance {
namespace {

// Idle clients per test: more than the 256 connections the server used to
// allow, where every further call failed with "Connection reset by peer".
constexpr int kIdleClients = 320;

base::Fd ConnectUnix(const std::string& path) {
  base::Fd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd.valid()) return fd;
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::strncpy(addr.sun_path, path.c_str(), sizeof addr.sun_path - 1);
  if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) return base::Fd();
  return fd;
}

// Whether the server closed the connection (EOF or reset) within timeout_ms.
bool ClosedByServer(int fd, int timeout_ms) {
  pollfd p{fd, POLLIN, 0};
  if (::poll(&p, 1, timeout_ms) <= 0) return false;
  char buf[256];
  return ::recv(fd, buf, sizeof buf, MSG_DONTWAIT) <= 0;
}

class ApiServerLimitsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ServiceOptions options;
    options.host.storage_root = dir_ / "root";
    options.worker_binary = "/bin/false";  // no VM is started here
    options.guest_dir = dir_.path();
    auto service = VmService::Open(options);
    ASSERT_TRUE(service.has_value()) << service.error().ToString();
    service_ = std::move(*service);
    handler_ = std::make_unique<ApiHandler>(*service_);
  }
  void TearDown() override {
    idle_.clear();
    server_.reset();
    handler_.reset();
    service_.reset();
  }

  void StartServer(ApiServer::Options options) {
    auto server = ApiServer::Start(socket_, *handler_, options);
    ASSERT_TRUE(server.has_value()) << server.error().ToString();
    server_ = std::move(*server);
  }

  // kIdleClients connections; every third sends the start of a request and
  // stops mid-header.
  void OpenIdleClients() {
    const std::string half = "GET /v1/vms HTTP/1.1\r\nHost: local";
    for (int i = 0; i < kIdleClients; ++i) {
      base::Fd fd = ConnectUnix(socket_);
      ASSERT_TRUE(fd.valid()) << "connect " << i << ": " << std::strerror(errno);
      if (i % 3 == 0) {
        ASSERT_TRUE(base::WriteAll(fd.get(), half.data(), half.size()));
      }
      idle_.push_back(std::move(fd));
    }
  }

  // GET /v1/vms answers 200 within the given time.
  void ExpectServedWithin(std::chrono::milliseconds limit) {
    HttpClient client(socket_);
    const auto start = std::chrono::steady_clock::now();
    auto listed = client.Request("GET", "/v1/vms", nullptr, 10);
    const auto took = std::chrono::steady_clock::now() - start;
    ASSERT_TRUE(listed.has_value()) << listed.error().ToString();
    EXPECT_EQ(listed->status, 200) << listed->body;
    EXPECT_LT(took, limit) << "the API answered only after "
                           << std::chrono::duration_cast<std::chrono::milliseconds>(took).count()
                           << " ms";
  }

  ferry_test::TempDir dir_;
  std::string socket_ = dir_ / "run/api.sock";
  std::unique_ptr<VmService> service_;
  std::unique_ptr<ApiHandler> handler_;
  std::unique_ptr<ApiServer> server_;
  std::vector<base::Fd> idle_;
};

TEST_F(ApiServerLimitsTest, RequestsAreServedWhileManyIdleConnectionsAreOpen) {
  StartServer({});  // the defaults ferryd runs with
  ASSERT_NO_FATAL_FAILURE(OpenIdleClients());
  ExpectServedWithin(std::chrono::seconds(5));
  // Served beside them, not by dropping them: every idle one is still open.
  int closed = 0;
  for (const base::Fd& fd : idle_) closed += ClosedByServer(fd.get(), 0) ? 1 : 0;
  EXPECT_EQ(closed, 0);
  ExpectServedWithin(std::chrono::seconds(5));
}

TEST_F(ApiServerLimitsTest, IdleConnectionsAreClosedAfterTheTimeout) {
  ApiServer::Options options;
  options.idle_timeout_s = 1;
  StartServer(options);
  ASSERT_NO_FATAL_FAILURE(OpenIdleClients());
  const auto start = std::chrono::steady_clock::now();
  int still_open = 0;
  for (const base::Fd& fd : idle_) {
    const auto waited = std::chrono::steady_clock::now() - start;
    const int left_ms =
        10000 - int(std::chrono::duration_cast<std::chrono::milliseconds>(waited).count());
    still_open += ClosedByServer(fd.get(), std::max(left_ms, 0)) ? 0 : 1;
  }
  EXPECT_EQ(still_open, 0) << "idle connections still open 10 s after a 1 s idle timeout";
  ExpectServedWithin(std::chrono::seconds(5));
}

TEST_F(ApiServerLimitsTest, ConnectionLimitFollowsTheOpenFileLimit) {
  rlimit saved{};
  ASSERT_EQ(::getrlimit(RLIMIT_NOFILE, &saved), 0);
  rlimit low = saved;
  low.rlim_cur = 512;  // room for 256 connections beside kReservedFds
  ASSERT_EQ(::setrlimit(RLIMIT_NOFILE, &low), 0);
  ApiServer::Options options;
  options.max_connections = 100000;
  StartServer(options);
  ASSERT_EQ(::setrlimit(RLIMIT_NOFILE, &saved), 0);
  ASSERT_TRUE(server_);
  EXPECT_EQ(server_->max_connections(), 512u - ApiServer::kReservedFds);
  ExpectServedWithin(std::chrono::seconds(5));
}

}  // namespace
}  // namespace appliance
