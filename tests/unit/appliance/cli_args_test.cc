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
  auto inv = Parse({"vm", "create", "web1", "--guest", "memory", "--memory", "64M", "--vcpus", "2",
                    "--cmdline", "ws_mib=16 hb_ms=100", "--disk", "data.img,ro", "--disk",
                    "/abs/b.qcow2,format=qcow2", "--json"});
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
      {{"vm", "create", "a", "--guest", "memory", "--disk", "x.img,cache=none"},
       "unknown option \"cache=none\""},
      {{"vm", "create", "a", "--guest", "memory", "--guest", "disk"},
       "--guest given more than once"},
      {{"vm", "create", "bad/name", "--guest", "memory"}, "invalid vm name"},
      {{"vm", "show", ".."}, "invalid vm name"},
      {{"vm", "list", "--bogus"}, "unknown option --bogus"},
      {{"vm", "create", "a", "--guest"}, "--guest needs a value"},
      {{"host"}, "missing host command"},
  };
  for (const Case& c : cases) {
    auto inv = Parse(c.args);
    ASSERT_FALSE(inv.has_value()) << c.expect;
    EXPECT_EQ(inv.error().code(), base::Code::kInvalidArgument);
    EXPECT_NE(inv.error().message().find(c.expect), std::string::npos)
        << "expected \"" << c.expect << "\" in: " << inv.error().message();
  }
}

// The help is generated from the verb table; it reads as it did when it was
// written by hand.
TEST(CliArgsTest, HelpListsEveryCommand) {
  EXPECT_EQ(
      UsageText(),
      "usage: ferry [--socket PATH] [--json] [--as USER] COMMAND\n"
      "       ferry --host HOST[:PORT] (--ca FILE | --fingerprint SHA256:...) [--user USER\n"
      "             [--password-stdin]] [--json] COMMAND\n"
      "\n"
      "commands:\n"
      "  vm create NAME (--guest NAME | --program PATH) [--memory SIZE] [--vcpus N]\n"
      "            [--cmdline TEXT] [--disk PATH[,format=raw|qcow2][,ro]]... "
      "[--processor-compatibility]\n"
      "  vm list\n"
      "  vm show NAME\n"
      "  vm start|stop|pause|resume NAME\n"
      "  vm save NAME [--to FILE]\n"
      "  vm restore NAME [--from FILE]\n"
      "  vm delete NAME\n"
      "  console NAME [--follow]\n"
      "  host show\n"
      "  host certificate show\n"
      "  vm checkpoint create|apply|delete VM NAME   (apply: [--force] stops a running vm)\n"
      "  vm checkpoint list VM\n"
      "  move-storage NAME --destination-storage-path PATH [--max-rate SIZE] [--no-wait]\n"
      "  vm resolve NAME [--force]      settle a live move in doubt (asks the destination;\n"
      "                                 --force keeps the vm here if it cannot be asked)\n"
      "  move-vm VM HOST --include-storage --destination-storage-path PATH [--streams N]\n"
      "          [--bandwidth-limit RATE] [--downtime-ms MS] [--time-limit S] [--no-wait]   (live, "
      "to another "
      "host)\n"
      "  jobs [ID]\n"
      "  logon USER [--password-stdin]  keep USER's password at this host for moves started with\n"
      "                                 --as USER (credssp); prompts unless --password-stdin\n"
      "  logoff USER\n"
      "  logons\n"
      "\n"
      "options:\n"
      "  --socket PATH             ferryd's API socket (default $FERRY_SOCKET, else "
      "/run/ferry/ferryd.sock)\n"
      "  --json                    print the API's JSON instead of tables\n"
      "  --as USER                 start moves with USER's log-on at this host (ferry logon USER; "
      "credssp)\n"
      "  --host HOST[:PORT]        ferryd's HTTPS API on that host (its api_listen; port 7443 by "
      "default; $FERRY_HOST)\n"
      "  --ca FILE                 with --host: the CA that issued that ferryd's certificate\n"
      "  --fingerprint SHA256:...  with --host: that ferryd's certificate (`ferry host "
      "certificate show` there)\n"
      "  --user USER               with --host: log on as USER (credssp mode); password "
      "prompted\n"
      "  --password-stdin          with --user: read the password from stdin\n");
}

TEST(CliArgsTest, EveryCommandBuildsItsRequest) {
  struct Case {
    std::vector<std::string> args;
    CliCommand command;
    const char* method;
    const char* path;
    json body;
  } cases[] = {
      {{"vm", "list"}, CliCommand::kVmList, "GET", "/v1/vms", nullptr},
      {{"vm", "show", "a"}, CliCommand::kVmShow, "GET", "/v1/vms/a", nullptr},
      {{"vm", "delete", "a"}, CliCommand::kVmDelete, "DELETE", "/v1/vms/a", nullptr},
      {{"vm", "pause", "a"}, CliCommand::kVmAction, "POST", "/v1/vms/a/pause", json::object()},
      {{"console", "a"}, CliCommand::kConsole, "GET", "/v1/vms/a/console", nullptr},
      {{"host", "show"}, CliCommand::kHostShow, "GET", "/v1/host", nullptr},
      {{"jobs"}, CliCommand::kJobs, "GET", "/v1/jobs", nullptr},
      {{"jobs", "live-1"}, CliCommand::kJobShow, "GET", "/v1/jobs/live-1", nullptr},
      {{"vm", "checkpoint", "list", "a"},
       CliCommand::kCheckpointList,
       "GET",
       "/v1/vms/a/checkpoints",
       nullptr},
      {{"vm", "checkpoint", "delete", "a", "c1"},
       CliCommand::kCheckpointDelete,
       "DELETE",
       "/v1/vms/a/checkpoints/c1",
       nullptr},
      {{"vm", "resolve", "a"},
       CliCommand::kVmResolve,
       "POST",
       "/v1/vms/a/resolve",
       json{{"force", false}}},
      {{"move-storage", "a", "--destination-storage-path", "/d"},
       CliCommand::kMoveStorage,
       "POST",
       "/v1/vms/a/move-storage",
       json{{"destination_storage_path", "/d"}}},
  };
  for (const Case& c : cases) {
    auto inv = Parse(c.args);
    ASSERT_TRUE(inv.has_value()) << c.path << ": " << inv.error().ToString();
    EXPECT_EQ(inv->command, c.command) << c.path;
    EXPECT_EQ(inv->method, c.method) << c.path;
    EXPECT_EQ(inv->path, c.path);
    EXPECT_EQ(inv->body, c.body) << c.path << ": " << inv->body.dump();
  }
  EXPECT_EQ(Parse({"jobs", "live-1"})->job_id, "live-1");
  EXPECT_EQ(Parse({"vm", "stop", "a"})->action, "stop");
  EXPECT_EQ(Parse({"vm", "checkpoint", "delete", "a", "c1"})->checkpoint, "c1");
}

TEST(CliArgsTest, OptionsMayComeAnywhere) {
  auto inv = Parse({"--json", "vm", "--socket", "/s.sock", "save", "--to=x.fvs", "a"});
  ASSERT_TRUE(inv.has_value()) << inv.error().ToString();
  EXPECT_TRUE(inv->json_output);
  EXPECT_EQ(inv->socket, "/s.sock");
  EXPECT_EQ(inv->path, "/v1/vms/a/save");
  EXPECT_EQ(inv->body, json({{"to", "/home/admin/x.fvs"}}));
  auto create = Parse({"vm", "create", "a", "--processor-compatibility", "--guest=memory"});
  ASSERT_TRUE(create.has_value()) << create.error().ToString();
  EXPECT_EQ(create->body,
            json({{"name", "a"}, {"guest", "memory"}, {"processor_compatibility", true}}));
}

TEST(CliArgsTest, GroupAndOptionErrorsNameWhatFits) {
  struct Case {
    std::vector<std::string> args;
    const char* expect;
  } cases[] = {
      {{"vm"},
       "missing vm command (create, list, show, start, stop, pause, resume, save, restore, delete, "
       "checkpoint, resolve)"},
      {{"vm", "checkpoint"}, "missing vm checkpoint command (create, apply, delete, list)"},
      {{"vm", "checkpoint", "frob", "a"},
       "unknown command \"vm checkpoint frob\" (vm checkpoint commands: "},
      {{"host"}, "missing host command (show, certificate)"},
      {{"host", "list"}, "unknown command \"host list\" (host commands: show, certificate)"},
      {{"frob"},
       "unknown command \"frob\" (commands: vm, console, host, move-storage, move-vm, jobs, logon, "
       "logoff, logons)"},
      {{"console"}, "missing argument: ferry console NAME [--follow]"},
      {{"jobs", "a", "b"}, "unexpected argument \"b\": ferry jobs [ID]"},
      {{"jobs", "a", "--follow"}, "--follow does not apply to \"ferry jobs\""},
      {{"console", "a", "--force"}, "--force does not apply to \"ferry console\""},
      {{"vm", "checkpoint", "create", "a", "c", "--force"},
       "--force does not apply to \"ferry vm checkpoint create\""},
      {{"vm", "list", "--json=1"}, "unknown option --json=1"},
      {{"vm", "list", "--socket="}, "--socket needs a path"},
      {{"vm", "save", "a", "--to", "x", "--to", "y"}, "--to given more than once"},
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
