// The API end to end inside one process: ApiHandler's status codes and JSON,
// then the same through ApiServer (libmicrohttpd on a Unix socket) and
// HttpClient (libcurl), including a console follow.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <condition_variable>
#include <fstream>
#include <thread>

#include "cli/http_client.h"
#include "common/process.h"
#include "daemon/api_handler.h"
#include "daemon/api_server.h"
#include "support/temp_dir.h"

namespace appliance {
namespace {

using nlohmann::json;

class ApiTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ::mkdir((dir_ / "guests").c_str(), 0755);
    std::ofstream(dir_ / "guests/memory-guest.bin") << "fake program";
    ServiceOptions options;
    options.host.storage_root = dir_ / "root";
    options.host.api_socket = dir_ / "run/api.sock";
    options.worker_binary = FAKE_WORKER_PATH;
    options.guest_dir = dir_ / "guests";
    service_ = std::move(*VmService::Open(options));
    handler_ = std::make_unique<ApiHandler>(*service_);
  }
  void TearDown() override {
    // Stop what the test started; the fake worker exits on stop.
    json list = VmListToJson(service_->List());
    for (const json& vm : list["vms"])
      if (vm["worker"].is_object())
        (void)service_->Act(vm["name"], VmAction::kStop,
                            "");  // best effort: the test's checks are done
    server_.reset();
    handler_.reset();
    service_.reset();
  }
  HttpResponse Call(const std::string& method, const std::string& path,
                    const std::string& body = "", std::map<std::string, std::string> query = {}) {
    HttpRequest r;
    r.method = method;
    r.path = path;
    r.body = body;
    r.query = std::move(query);
    return handler_->Handle(r);
  }
  static json Body(const HttpResponse& r) { return json::parse(r.body); }
  static std::string ErrorCode(const HttpResponse& r) { return Body(r)["error"]["code"]; }

  ferry_test::TempDir dir_;
  std::unique_ptr<VmService> service_;
  std::unique_ptr<ApiHandler> handler_;
  std::unique_ptr<ApiServer> server_;
};

TEST_F(ApiTest, CreateShowListDelete) {
  HttpResponse r =
      Call("POST", "/v1/vms", R"({"name":"web1","guest":"memory","memory_bytes":67108864})");
  ASSERT_EQ(r.status, 201) << r.body;
  EXPECT_EQ(Body(r)["state"], "stopped");
  EXPECT_EQ(Call("GET", "/v1/vms/web1").status, 200);
  EXPECT_EQ(Body(Call("GET", "/v1/vms"))["vms"].size(), 1u);
  r = Call("POST", "/v1/vms", R"({"name":"web1","guest":"memory"})");
  EXPECT_EQ(r.status, 409);
  EXPECT_EQ(ErrorCode(r), "already-exists");
  r = Call("DELETE", "/v1/vms/web1");
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(Body(r)["deleted"], "web1");
  r = Call("GET", "/v1/vms/web1");
  EXPECT_EQ(r.status, 404);
  EXPECT_EQ(ErrorCode(r), "not-found");
  EXPECT_EQ(Body(r)["error"]["message"], "no vm named web1");
}

TEST_F(ApiTest, BadRequestsGetFittingStatuses) {
  EXPECT_EQ(Call("POST", "/v1/vms", "{not json").status, 400);
  EXPECT_EQ(Call("POST", "/v1/vms", "[1]").status, 400);
  EXPECT_EQ(Call("POST", "/v1/vms", R"({"name":"a b","guest":"memory"})").status, 400);
  HttpResponse r = Call("POST", "/v1/vms", R"({"name":"a","guest":"windows"})");
  EXPECT_EQ(r.status, 404);
  EXPECT_NE(Body(r)["error"]["message"].get<std::string>().find("available: memory"),
            std::string::npos);
  EXPECT_EQ(Call("GET", "/v1/vms/..").status, 400);
  r = Call("GET", "/v2/nothing");
  EXPECT_EQ(r.status, 404);
  EXPECT_EQ(ErrorCode(r), "not-found");
  r = Call("PUT", "/v1/vms");
  EXPECT_EQ(r.status, 405);
  EXPECT_EQ(r.allow, "GET, POST");
  EXPECT_EQ(ErrorCode(r), "method-not-allowed");
}

TEST_F(ApiTest, ActionsCheckStateAndBody) {
  ASSERT_EQ(Call("POST", "/v1/vms", R"({"name":"a","guest":"memory"})").status, 201);
  HttpResponse r = Call("POST", "/v1/vms/a/pause");
  EXPECT_EQ(r.status, 409);
  EXPECT_EQ(ErrorCode(r), "failed-precondition");
  EXPECT_EQ(Call("POST", "/v1/vms/a/start", R"({"to":"/x"})").status, 400);
  EXPECT_EQ(Call("POST", "/v1/vms/a/save", R"({"to":5})").status, 400);
  r = Call("POST", "/v1/vms/a/restore");
  EXPECT_EQ(r.status, 404);
  r = Call("POST", "/v1/vms/a/start");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(Body(r)["state"], "running");
  r = Call("POST", "/v1/vms/a/save", R"({"to":")" + (dir_ / "s.fvs") + R"("})");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(Body(r)["saved_state"], dir_ / "s.fvs");
  std::ofstream(dir_ / "s.fvs") << "garbage";
  r = Call("POST", "/v1/vms/a/restore");
  EXPECT_EQ(r.status, 422);
  EXPECT_EQ(ErrorCode(r), "data-loss");
}

TEST_F(ApiTest, ConsoleReturnsTheLogAsText) {
  ASSERT_EQ(Call("POST", "/v1/vms", R"({"name":"a","guest":"memory"})").status, 201);
  std::ofstream(dir_ / "root/vms/a/console.log") << "HB 1 t=0\nHB 2 t=100\n";
  HttpResponse r = Call("GET", "/v1/vms/a/console");
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.content_type, "text/plain; charset=utf-8");
  EXPECT_EQ(r.body, "HB 1 t=0\nHB 2 t=100\n");
  EXPECT_TRUE(r.follow_path.empty());
  r = Call("GET", "/v1/vms/a/console", "", {{"follow", "1"}});
  EXPECT_EQ(r.follow_path, dir_ / "root/vms/a/console.log");
  EXPECT_EQ(r.follow_offset, r.body.size());
  EXPECT_EQ(Call("GET", "/v1/vms/zz/console").status, 404);
}

TEST_F(ApiTest, ServerAndClientOverTheUnixSocket) {
  auto server = ApiServer::Start(dir_ / "run/api.sock", *handler_);
  ASSERT_TRUE(server.has_value()) << server.error().ToString();
  server_ = std::move(*server);
  struct stat st {};
  ASSERT_EQ(::stat((dir_ / "run").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0700u);
  ASSERT_EQ(::stat((dir_ / "run/api.sock").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);

  HttpClient client(dir_ / "run/api.sock");
  auto host = client.Request("GET", "/v1/host", nullptr, 10);
  ASSERT_TRUE(host.has_value()) << host.error().ToString();
  EXPECT_EQ(host->status, 200);
  EXPECT_EQ(json::parse(host->body)["storage_root"], dir_ / "root");
  std::string body = R"({"name":"a","guest":"memory"})";
  auto created = client.Request("POST", "/v1/vms", &body, 10);
  ASSERT_TRUE(created.has_value());
  EXPECT_EQ(created->status, 201) << created->body;
  auto missing = client.Request("GET", "/v1/vms/b", nullptr, 10);
  ASSERT_TRUE(missing.has_value());
  EXPECT_EQ(missing->status, 404);
  auto wrong = client.Request("PATCH", "/v1/host", nullptr, 10);
  ASSERT_TRUE(wrong.has_value());
  EXPECT_EQ(wrong->status, 405);
}

TEST_F(ApiTest, ConsoleFollowStreamsAppendedOutput) {
  ASSERT_EQ(Call("POST", "/v1/vms", R"({"name":"a","guest":"memory"})").status, 201);
  std::string console = dir_ / "root/vms/a/console.log";
  std::ofstream(console) << "first\n";
  server_ = std::move(*ApiServer::Start(dir_ / "run/api.sock", *handler_));

  std::mutex mu;
  std::condition_variable cv;
  std::string received;
  std::thread follower([&] {
    HttpClient client(dir_ / "run/api.sock");
    auto r = client.Stream("/v1/vms/a/console?follow=1", [&](std::string_view data) {
      std::lock_guard lock(mu);
      received.append(data);
      cv.notify_all();
      // Hang up once the appended line arrived: the server must notice.
      return received.find("second\n") == std::string::npos;
    });
    EXPECT_TRUE(r.has_value()) << r.error().ToString();
  });
  {
    std::unique_lock lock(mu);
    ASSERT_TRUE(cv.wait_for(lock, std::chrono::seconds(10), [&] { return received == "first\n"; }))
        << "timed out waiting for the initial console text; got: " << received;
  }
  std::ofstream(console, std::ios::app) << "second\n";
  {
    std::unique_lock lock(mu);
    EXPECT_TRUE(
        cv.wait_for(lock, std::chrono::seconds(10), [&] { return received == "first\nsecond\n"; }))
        << "timed out waiting for the appended line; got: " << received;
  }
  follower.join();
  // The server shuts down promptly although a follow was open: the stream
  // noticed the client hanging up (or ends on the stop signal).
  server_.reset();
}

TEST_F(ApiTest, ServerStopEndsOpenFollows) {
  ASSERT_EQ(Call("POST", "/v1/vms", R"({"name":"a","guest":"memory"})").status, 201);
  server_ = std::move(*ApiServer::Start(dir_ / "run/api.sock", *handler_));
  std::mutex mu;
  std::condition_variable cv;
  bool connected = false;
  std::ofstream(dir_ / "root/vms/a/console.log") << "x\n";
  std::thread follower([&] {
    HttpClient client(dir_ / "run/api.sock");
    (void)client.Stream("/v1/vms/a/console?follow=1", [&](std::string_view) {
      std::lock_guard lock(mu);
      connected = true;
      cv.notify_all();
      return true;
    });
  });
  {
    std::unique_lock lock(mu);
    ASSERT_TRUE(cv.wait_for(lock, std::chrono::seconds(10), [&] { return connected; }));
  }
  server_.reset();  // must return: the stream ends on the stop signal
  follower.join();
}

TEST(HttpClientTest, UnreachableServerSaysSo) {
  HttpClient client("/nonexistent/ferryd.sock");
  auto r = client.Request("GET", "/v1/host", nullptr, 5);
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code(), base::Code::kUnavailable);
  EXPECT_EQ(r.error().message(),
            "cannot reach ferryd at /nonexistent/ferryd.sock: No such file or directory — is "
            "ferryd running?");
}

}  // namespace
}  // namespace appliance
