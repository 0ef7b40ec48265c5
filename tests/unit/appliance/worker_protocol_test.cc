#include "ipc/worker_protocol.h"

#include <gtest/gtest.h>
#include <sys/socket.h>

#include <thread>

#include "base/event_fd.h"
#include "common/unix_socket.h"
#include "ipc/worker_args.h"
#include "support/temp_dir.h"

namespace appliance {
namespace {

TEST(WorkerProtocolTest, RequestsRoundTrip) {
  for (WorkerOp op : {WorkerOp::kStatus, WorkerOp::kPause, WorkerOp::kResume, WorkerOp::kStop}) {
    auto decoded = DecodeRequest(EncodeRequest(WorkerRequest{op, ""}));
    ASSERT_TRUE(decoded.has_value()) << ToString(op);
    EXPECT_EQ(decoded->op, op);
  }
  auto save = DecodeRequest(EncodeRequest(WorkerRequest{WorkerOp::kSave, "/x/saved.fvs"}));
  ASSERT_TRUE(save.has_value());
  EXPECT_EQ(save->op, WorkerOp::kSave);
  EXPECT_EQ(save->path, "/x/saved.fvs");
  EXPECT_EQ(EncodeRequest(WorkerRequest{WorkerOp::kStatus, ""}).find('\n'), std::string::npos);
}

TEST(WorkerProtocolTest, MalformedRequestsAreRejected) {
  for (const char* line : {"", "nonsense", "[]", "{}", R"({"op":"reboot"})", R"({"op":1})",
                           R"({"op":"save"})", R"({"op":"save","path":7})"}) {
    auto r = DecodeRequest(line);
    ASSERT_FALSE(r.has_value()) << line;
    EXPECT_EQ(r.error().code(), base::Code::kInvalidArgument) << line;
  }
}

TEST(WorkerProtocolTest, ReplyRoundTripKeepsStats) {
  WorkerReply reply;
  reply.state = "paused";
  reply.pid = 4242;
  reply.stats.memory_bytes = 1ull << 30;
  reply.stats.disk_writes = 17;
  auto decoded = DecodeReply(EncodeReply(reply));
  ASSERT_TRUE(decoded.has_value());
  EXPECT_EQ(decoded->state, "paused");
  EXPECT_EQ(decoded->pid, 4242);
  EXPECT_EQ(decoded->stats.memory_bytes, 1ull << 30);
  EXPECT_EQ(decoded->stats.disk_writes, 17u);
}

TEST(WorkerProtocolTest, ErrorReplyKeepsCodeAndMessage) {
  base::Result<WorkerReply> err =
      base::Error(base::Code::kDataLoss, "state file checksum mismatch at 0x40");
  auto decoded = DecodeReply(EncodeReply(err));
  ASSERT_FALSE(decoded.has_value());
  EXPECT_EQ(decoded.error().code(), base::Code::kDataLoss);
  EXPECT_EQ(decoded.error().message(), "state file checksum mismatch at 0x40");
}

TEST(WorkerProtocolTest, MalformedRepliesAreInternalErrors) {
  for (const char* line :
       {"", "{", R"({"state":"running"})", R"({"ok":true})", R"({"ok":true,"state":"running"})",
        R"({"ok":false})", R"({"ok":"yes","state":"running","pid":1})"}) {
    auto r = DecodeReply(line);
    ASSERT_FALSE(r.has_value()) << line;
    EXPECT_EQ(r.error().code(), base::Code::kInternal) << line;
  }
}

TEST(WorkerProtocolTest, ExitRecordRoundTrip) {
  WorkerExitRecord r;
  r.pid = 99;
  r.state = "failed";
  r.code = "internal";
  r.message = "triple fault";
  auto decoded = DecodeExitRecord(EncodeExitRecord(r), "worker.exit");
  ASSERT_TRUE(decoded.has_value());
  EXPECT_EQ(decoded->pid, 99);
  EXPECT_EQ(decoded->state, "failed");
  EXPECT_EQ(decoded->code, "internal");
  EXPECT_EQ(decoded->message, "triple fault");
  auto bad = DecodeExitRecord(R"({"state":"stopped"})", "worker.exit");
  ASSERT_FALSE(bad.has_value());
  EXPECT_NE(bad.error().message().find("worker.exit"), std::string::npos);
}

// A one-shot server on a real socket: CallWorker against it.
class CallWorkerTest : public ::testing::Test {
 protected:
  void Serve(std::function<void(int)> handler) {
    auto fd = ListenUnix(socket_);
    ASSERT_TRUE(fd.has_value()) << fd.error().ToString();
    listen_ = std::move(*fd);
    server_ = std::thread([this, handler] {
      int c = ::accept(listen_.get(), nullptr, nullptr);
      if (c >= 0) {
        handler(c);
        ::close(c);
      }
    });
  }
  void TearDown() override {
    if (server_.joinable()) server_.join();
  }
  ferry_test::TempDir dir_;
  std::string socket_ = dir_ / "control.sock";
  base::Fd listen_;
  std::thread server_;
};

TEST_F(CallWorkerTest, SendsRequestAndReadsReply) {
  std::string received;
  Serve([&](int c) {
    auto line = ReadLine(c, kMaxWorkerLine, 5000, "request");
    if (line) received = *line;
    WorkerReply reply;
    reply.state = "running";
    reply.pid = 7;
    (void)WriteLine(c, EncodeReply(reply));
  });
  auto reply = CallWorker(socket_, WorkerRequest{WorkerOp::kPause, ""}, 5000);
  ASSERT_TRUE(reply.has_value()) << reply.error().ToString();
  EXPECT_EQ(reply->pid, 7);
  server_.join();
  EXPECT_EQ(received, R"({"op":"pause"})");
}

TEST_F(CallWorkerTest, SilentWorkerTimesOutNamingTheWait) {
  base::EventFd done = *base::EventFd::Create();
  Serve([&](int c) { (void)base::WaitReadable(done.fd(), -1, 10000); });
  auto reply = CallWorker(socket_, WorkerRequest{WorkerOp::kStatus, ""}, 100);
  (void)done.Signal();
  ASSERT_FALSE(reply.has_value());
  EXPECT_EQ(reply.error().code(), base::Code::kDeadlineExceeded);
  EXPECT_NE(reply.error().message().find("reply to status"), std::string::npos)
      << reply.error().message();
}

TEST_F(CallWorkerTest, WorkerHangingUpIsUnavailable) {
  Serve([](int) {});
  auto reply = CallWorker(socket_, WorkerRequest{WorkerOp::kStatus, ""}, 5000);
  ASSERT_FALSE(reply.has_value());
  EXPECT_EQ(reply.error().code(), base::Code::kUnavailable);
}

TEST_F(CallWorkerTest, NoWorkerNamesTheSocket) {
  auto reply = CallWorker(socket_, WorkerRequest{WorkerOp::kStatus, ""}, 1000);
  ASSERT_FALSE(reply.has_value());
  EXPECT_EQ(reply.error().code(), base::Code::kNotFound);
  EXPECT_NE(reply.error().message().find(socket_), std::string::npos);
}

}  // namespace
}  // namespace appliance

namespace appliance {
namespace {

TEST(WorkerArgsTest, ParsesEveryOption) {
  auto a = ParseWorkerArgs({"--vm-dir", "/v/a", "--control-socket", "/v/a/control.sock",
                            "--restore", "/v/a/s.fvs", "--ready-fd", "3"});
  ASSERT_TRUE(a.has_value()) << a.error().ToString();
  EXPECT_EQ(a->vm_dir, "/v/a");
  EXPECT_EQ(a->control_socket, "/v/a/control.sock");
  EXPECT_EQ(a->restore_path, "/v/a/s.fvs");
  EXPECT_EQ(a->ready_fd, 3);
  auto minimal = ParseWorkerArgs({"--vm-dir", "/v/a", "--control-socket", "/s"});
  ASSERT_TRUE(minimal.has_value());
  EXPECT_EQ(minimal->ready_fd, -1);
  EXPECT_TRUE(minimal->restore_path.empty());
}

TEST(WorkerArgsTest, RejectsIncompleteOrUnknownArguments) {
  struct Case {
    std::vector<std::string> args;
    const char* expect;
  } cases[] = {
      {{"--control-socket", "/s"}, "--vm-dir is required"},
      {{"--vm-dir", "/v"}, "--control-socket is required"},
      {{"--vm-dir"}, "--vm-dir needs a value"},
      {{"--vm-dir", "/v", "--control-socket", "/s", "--ready-fd", "x"},
       "--ready-fd needs a file descriptor"},
      {{"--vm-dir", "/v", "--control-socket", "/s", "--verbose"}, "unknown argument \"--verbose\""},
  };
  for (const Case& c : cases) {
    auto r = ParseWorkerArgs(c.args);
    ASSERT_FALSE(r.has_value()) << c.expect;
    EXPECT_NE(r.error().message().find(c.expect), std::string::npos) << r.error().message();
  }
}

}  // namespace
}  // namespace appliance
