#include "cli/cli_args.h"

#include <gtest/gtest.h>

namespace appliance {
namespace {

using nlohmann::json;

base::Result<CliInvocation> Parse(std::vector<std::string> args, const char* env = nullptr) {
  return ParseCommandLine(args, env, "/home/admin");
}

TEST(CliArgsTest, SocketPrecedence) {
  EXPECT_EQ(Parse({"vm", "list"})->socket, kDefaultApiSocket);
  EXPECT_EQ(Parse({"vm", "list"}, "/env.sock")->socket, "/env.sock");
  EXPECT_EQ(Parse({"--socket", "/flag.sock", "vm", "list"}, "/env.sock")->socket, "/flag.sock");
  EXPECT_EQ(Parse({"vm", "list", "--socket=rel.sock"})->socket, "/home/admin/rel.sock");
}

TEST(CliArgsTest, CreateBuildsTheRequestBody) {
  auto inv = Parse({"vm", "create", "web1", "--guest", "memory", "--memory", "64M", "--vcpus", "2", "--cmdline",
                    "ws_mib=16 hb_ms=100", "--disk", "data.img,ro", "--disk", "/abs/b.qcow2,format=qcow2", "--json"});
  ASSERT_TRUE(inv.has_value()) << inv.error().ToString();
  EXPECT_EQ(inv->command, CliCommand::kVmCreate);
  EXPECT_TRUE(inv->json_output);
  EXPECT_EQ(inv->method, "POST");
  EXPECT_EQ(inv->path, "/v1/vms");
  json expected = json::parse(R"({"name":"web1","guest":"memory","memory_bytes":67108864,"vcpus":2,
      "cmdline":"ws_mib=16 hb_ms=100","disks":[
        {"path":"/home/admin/data.img","format":"raw","read_only":true},
        {"path":"/abs/b.qcow2","format":"qcow2","read_only":false}]})");
  EXPECT_EQ(inv->body, expected) << inv->body.dump();
}

TEST(CliArgsTest, ProgramPathBecomesAbsolute) {
  auto inv = Parse({"vm", "create", "p", "--program", "guests/x.bin"});
  ASSERT_TRUE(inv.has_value());
  EXPECT_EQ(inv->body["program"], "/home/admin/guests/x.bin");
  EXPECT_FALSE(inv->body.contains("guest"));
}

TEST(CliArgsTest, ActionsAndQueries) {
  struct Case {
    std::vector<std::string> args;
    const char* method;
    const char* path;
  } cases[] = {
      {{"vm", "list"}, "GET", "/v1/vms"},
      {{"vm", "show", "a"}, "GET", "/v1/vms/a"},
      {{"vm", "delete", "a"}, "DELETE", "/v1/vms/a"},
      {{"vm", "start", "a"}, "POST", "/v1/vms/a/start"},
      {{"vm", "stop", "a"}, "POST", "/v1/vms/a/stop"},
      {{"vm", "pause", "a"}, "POST", "/v1/vms/a/pause"},
      {{"vm", "resume", "a"}, "POST", "/v1/vms/a/resume"},
      {{"vm", "save", "a"}, "POST", "/v1/vms/a/save"},
      {{"vm", "restore", "a"}, "POST", "/v1/vms/a/restore"},
      {{"console", "a"}, "GET", "/v1/vms/a/console"},
      {{"console", "a", "--follow"}, "GET", "/v1/vms/a/console?follow=1"},
      {{"host", "show"}, "GET", "/v1/host"},
  };
  for (const Case& c : cases) {
    auto inv = Parse(c.args);
    ASSERT_TRUE(inv.has_value()) << c.path << ": " << inv.error().ToString();
    EXPECT_EQ(inv->method, c.method) << c.path;
    EXPECT_EQ(inv->path, c.path);
  }
}

TEST(CliArgsTest, SaveToAndRestoreFrom) {
  auto save = Parse({"vm", "save", "a", "--to", "snap.fvs"});
  ASSERT_TRUE(save.has_value());
  EXPECT_EQ(save->body, json({{"to", "/home/admin/snap.fvs"}}));
  auto restore = Parse({"vm", "restore", "a", "--from", "/s/x.fvs"});
  ASSERT_TRUE(restore.has_value());
  EXPECT_EQ(restore->body, json({{"from", "/s/x.fvs"}}));
  EXPECT_EQ(Parse({"vm", "start", "a"})->body, json::object());
}

TEST(CliArgsTest, HelpNeedsNoServer) {
  EXPECT_EQ(Parse({})->command, CliCommand::kHelp);
  EXPECT_EQ(Parse({"help"})->command, CliCommand::kHelp);
  EXPECT_EQ(Parse({"vm", "list", "--help"})->command, CliCommand::kHelp);
}

TEST(CliArgsTest, UsageErrorsSayWhatIsWrong) {
  struct Case {
    std::vector<std::string> args;
    const char* expect;
  } cases[] = {
      {{"vm"}, "missing vm command"},
      {{"vm", "frobnicate", "a"}, "unknown command \"vm frobnicate\""},
      {{"frob"}, "unknown command \"frob\""},
      {{"vm", "start"}, "missing argument"},
      {{"vm", "start", "a", "b"}, "unexpected argument \"b\""},
      {{"vm", "start", "a", "--to", "/x"}, "--to does not apply"},
      {{"vm", "restore", "a", "--to", "/x"}, "--to does not apply"},
      {{"vm", "list", "--follow"}, "--follow does not apply"},
      {{"vm", "create", "a"}, "exactly one of --guest"},
      {{"vm", "create", "a", "--guest", "memory", "--program", "/p"}, "exactly one of --guest"},
      {{"vm", "create", "a", "--guest", "memory", "--memory", "lots"}, "invalid size \"lots\""},
      {{"vm", "create", "a", "--guest", "memory", "--vcpus", "two"}, "--vcpus needs a number"},
      {{"vm", "create", "a", "--guest", "memory", "--disk", "x.img,cache=none"}, "unknown option \"cache=none\""},
      {{"vm", "create", "a", "--guest", "memory", "--guest", "disk"}, "--guest given more than once"},
      {{"vm", "create", "bad/name", "--guest", "memory"}, "invalid vm name"},
      {{"vm", "show", ".."}, "invalid vm name"},
      {{"vm", "list", "--bogus"}, "unknown option --bogus"},
      {{"vm", "create", "a", "--guest"}, "--guest needs a value"},
      {{"host"}, "missing argument"},
  };
  for (const Case& c : cases) {
    auto inv = Parse(c.args);
    ASSERT_FALSE(inv.has_value()) << c.expect;
    EXPECT_EQ(inv.error().code(), base::Code::kInvalidArgument);
    EXPECT_NE(inv.error().message().find(c.expect), std::string::npos)
        << "expected \"" << c.expect << "\" in: " << inv.error().message();
  }
}

}  // namespace
}  // namespace appliance
