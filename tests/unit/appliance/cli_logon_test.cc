// ferry logon / logoff / logons and the global --as (cli_logon.h): the
// requests they build and their usage errors; the output formats.
#include <gtest/gtest.h>

#include "cli/cli_args.h"
#include "cli/cli_logon.h"

namespace appliance {
namespace {

base::Result<CliInvocation> Parse(std::vector<std::string> args) {
  return ParseCommandLine(args, nullptr, "/home/admin");
}

TEST(CliLogonTest, LogonBuildsItsRequest) {
  auto inv = Parse({"logon", "alice"});
  ASSERT_TRUE(inv.has_value()) << inv.error().message();
  EXPECT_EQ(inv->command, CliCommand::kLogon);
  EXPECT_EQ(inv->method, "POST");
  EXPECT_EQ(inv->path, "/v1/logon");
  EXPECT_EQ(inv->user, "alice");
  EXPECT_FALSE(inv->password_stdin);
  EXPECT_TRUE(inv->body.is_null()) << "the password is read after parsing, not on the line";
  EXPECT_TRUE(Parse({"logon", "alice", "--password-stdin"})->password_stdin);
}

TEST(CliLogonTest, LogoffAndLogonsBuildTheirRequests) {
  auto off = Parse({"logoff", "alice"});
  ASSERT_TRUE(off.has_value()) << off.error().message();
  EXPECT_EQ(off->command, CliCommand::kLogoff);
  EXPECT_EQ(off->method, "DELETE");
  EXPECT_EQ(off->path, "/v1/logon/alice");
  auto list = Parse({"logons"});
  ASSERT_TRUE(list.has_value());
  EXPECT_EQ(list->command, CliCommand::kLogons);
  EXPECT_EQ(list->method, "GET");
  EXPECT_EQ(list->path, "/v1/logons");
}

TEST(CliLogonTest, AsIsGlobal) {
  auto inv = Parse({"--as", "alice", "move-vm", "web", "10.0.0.2", "--include-storage",
                    "--destination-storage-path", "/d"});
  ASSERT_TRUE(inv.has_value()) << inv.error().message();
  EXPECT_EQ(inv->as_user, "alice");
  EXPECT_EQ(inv->command, CliCommand::kMoveVm);
  EXPECT_EQ(Parse({"vm", "list", "--as=bob"})->as_user, "bob");
  EXPECT_EQ(Parse({"vm", "list"})->as_user, "");
}

TEST(CliLogonTest, UsageErrors) {
  struct Case {
    std::vector<std::string> args;
    std::string expect;
  } cases[] = {
      {{"logon"}, "missing argument: ferry logon USER [--password-stdin]"},
      {{"logon", "a/b"}, "logon: \"a/b\" is not a user name"},
      {{"logon", "alice", "bob"}, "unexpected argument \"bob\""},
      {{"logoff", "alice", "--password-stdin"}, "--password-stdin does not apply"},
      {{"--as", "", "vm", "list"}, "--as needs a user name"},
      {{"--as", "a b", "vm", "list"}, "--as: \"a b\" is not a user name"},
  };
  for (const Case& c : cases) {
    auto inv = Parse(c.args);
    ASSERT_FALSE(inv.has_value()) << c.expect;
    EXPECT_EQ(inv.error().code(), base::Code::kInvalidArgument);
    EXPECT_NE(inv.error().message().find(c.expect), std::string::npos)
        << "expected \"" << c.expect << "\" in: " << inv.error().message();
  }
}

TEST(CliLogonTest, Formats) {
  EXPECT_EQ(FormatLogonList({{"logons", nlohmann::json::array()}}), "no log-ons at this host\n");
  const std::string list =
      FormatLogonList({{"logons", {{{"user", "alice"}, {"expires_unix_ms", 0}}}}});
  EXPECT_EQ(list.rfind("USER", 0), 0u) << list;
  EXPECT_NE(list.find("\nalice "), std::string::npos) << list;
  EXPECT_EQ(FormatLogon({{"user", "alice"}, {"expires_unix_ms", 0}})
                .rfind("alice logged on at this host until ", 0),
            0u);
}

TEST(CliLogonTest, HelpNamesThem) {
  const std::string help = UsageText();
  EXPECT_NE(help.find("usage: ferry [--socket PATH] [--json] [--as USER] COMMAND"),
            std::string::npos);
  EXPECT_NE(help.find("  logon USER [--password-stdin]"), std::string::npos) << help;
  EXPECT_NE(help.find("  logoff USER\n"), std::string::npos) << help;
  EXPECT_NE(help.find("  logons\n"), std::string::npos) << help;
  EXPECT_NE(help.find("  --as USER"), std::string::npos) << help;
}

}  // namespace
}  // namespace appliance
