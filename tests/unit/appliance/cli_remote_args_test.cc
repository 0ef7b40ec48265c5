// `ferry --host`'s options as ParseCommandLine takes them: the host and
// port forms, $FERRY_HOST against --socket, and every way of asking for a
// remote ferryd without saying how to check its certificate.
#include <gtest/gtest.h>

#include "cli/cli_args.h"

namespace appliance {
namespace {

constexpr const char* kPin =
    "SHA256:00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF:00:11:22:33:44:55:66:77:88:99:AA:BB:"
    "CC:DD:EE:FF";

base::Result<CliInvocation> Parse(std::vector<std::string> args, const char* env_host = nullptr) {
  return ParseCommandLine(args, nullptr, "/home/admin", env_host);
}

TEST(CliRemoteArgsTest, HostForms) {
  struct Case {
    const char* text;
    const char* host;
    uint16_t port;
  } cases[] = {{"host1.example.com", "host1.example.com", 7443},
               {"host1:8443", "host1", 8443},
               {"10.0.0.1", "10.0.0.1", 7443},
               {"[fd00::2]:9000", "fd00::2", 9000},
               {"[fd00::2]", "fd00::2", 7443},
               {"fd00::2", "fd00::2", 7443}};
  for (const Case& c : cases) {
    auto inv = Parse({"--host", c.text, "--fingerprint", kPin, "host", "show"});
    ASSERT_TRUE(inv.has_value()) << c.text << ": " << inv.error().message();
    ASSERT_TRUE(inv->remote.has_value()) << c.text;
    EXPECT_EQ(inv->remote->host, c.host) << c.text;
    EXPECT_EQ(inv->remote->port, c.port) << c.text;
    EXPECT_EQ(inv->remote->fingerprint, kPin);
    EXPECT_EQ(inv->path, "/v1/host");
  }
}

TEST(CliRemoteArgsTest, OptionsAnywhereAndUser) {
  auto inv = Parse({"vm", "list", "--user", "alice", "--host=h:1", "--password-stdin", "--ca",
                    "/etc/ferry/ca.pem"});
  ASSERT_TRUE(inv.has_value()) << inv.error().message();
  EXPECT_EQ(inv->remote->ca_file, "/etc/ferry/ca.pem");
  EXPECT_EQ(inv->remote->user, "alice");
  EXPECT_TRUE(inv->remote->password_stdin);
  EXPECT_EQ(inv->remote->port, 1);
}

TEST(CliRemoteArgsTest, EnvironmentHostUnlessSocketIsGiven) {
  auto from_env = Parse({"--fingerprint", kPin, "vm", "list"}, "host2");
  ASSERT_TRUE(from_env.has_value()) << from_env.error().message();
  ASSERT_TRUE(from_env->remote.has_value());
  EXPECT_EQ(from_env->remote->host, "host2");
  auto socket = Parse({"--socket", "/run/x.sock", "vm", "list"}, "host2");
  ASSERT_TRUE(socket.has_value()) << socket.error().message();
  EXPECT_FALSE(socket->remote.has_value());
  EXPECT_FALSE(Parse({"vm", "list"})->remote.has_value());
}

TEST(CliRemoteArgsTest, UsageErrors) {
  struct Case {
    std::vector<std::string> args;
    const char* expect;
  } cases[] = {
      {{"--host", "h", "vm", "list"}, "exactly one of --ca FILE"},
      {{"--host", "h", "--ca", "a", "--fingerprint", kPin, "vm", "list"}, "exactly one of"},
      {{"--host", "h", "--fingerprint", "SHA256:12:34", "vm", "list"}, "not a SHA-256"},
      {{"--host", "h:0", "--fingerprint", kPin, "vm", "list"}, "port must be a number"},
      {{"--host", "h:x", "--fingerprint", kPin, "vm", "list"}, "port must be a number"},
      {{"--host", "h:70000", "--fingerprint", kPin, "vm", "list"}, "port must be a number"},
      {{"--host", "[fd00::1", "--fingerprint", kPin, "vm", "list"}, "missing ]"},
      {{"--host", ":7443", "--fingerprint", kPin, "vm", "list"}, "no host name"},
      {{"--host", "h", "--socket", "/s", "--ca", "a", "vm", "list"}, "exclude each other"},
      {{"--ca", "a", "vm", "list"}, "--ca applies only with --host"},
      {{"--fingerprint", kPin, "vm", "list"}, "--fingerprint applies only with --host"},
      {{"--user", "alice", "vm", "list"}, "--user applies only with --host"},
      // Without --user it is no log-on's: only `ferry logon` takes it.
      {{"--host", "h", "--ca", "a", "--password-stdin", "vm", "list"},
       "--password-stdin does not apply"},
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
