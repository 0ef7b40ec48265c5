#include "config/host_settings.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "support/temp_dir.h"

namespace config {
namespace {

using base::Code;

// Parses text as "host.toml" and expects kInvalidArgument with exactly `message`.
void ExpectError(std::string_view text, std::string_view message) {
  auto r = ParseHostSettings(text, "host.toml");
  ASSERT_FALSE(r.has_value()) << "accepted: " << text;
  EXPECT_EQ(r.error().code(), Code::kInvalidArgument);
  EXPECT_EQ(r.error().message(), message) << "for: " << text;
}

TEST(HostSettingsTest, EmptyFileGivesDefaults) {
  auto r = ParseHostSettings("", "host.toml");
  ASSERT_TRUE(r.has_value()) << r.error().ToString();
  EXPECT_EQ(r->source_path, "host.toml");
  EXPECT_EQ(r->storage_root, "/var/lib/ferry");
  EXPECT_EQ(r->api_socket, "/run/ferry/ferryd.sock");
  EXPECT_EQ(r->guest_dir, "");
  EXPECT_TRUE(r->listen_addresses.empty());
  EXPECT_FALSE(r->incoming_enabled);
  EXPECT_FALSE(r->outgoing_enabled);
  EXPECT_EQ(r->max_live_moves, 2u);
  EXPECT_EQ(r->max_storage_moves, 2u);
  EXPECT_TRUE(r->any_network);
  EXPECT_TRUE(r->networks.empty());
  EXPECT_EQ(r->authentication, AuthenticationType::kCertificate);
  EXPECT_EQ(r->performance, PerformanceOption::kCompression);
}

TEST(HostSettingsTest, EmptyMigrationTableGivesDefaults) {
  auto r = ParseHostSettings("[migration]\n", "host.toml");
  ASSERT_TRUE(r.has_value()) << r.error().ToString();
  EXPECT_EQ(r->max_live_moves, 2u);
  EXPECT_TRUE(r->any_network);
}

TEST(HostSettingsTest, FullFile) {
  auto r = ParseHostSettings(R"(
storage_root = "/srv/ferry"
api_socket = "/run/ferry/api.sock"
guest_dir = "/usr/lib/ferry/guests"
listen_addresses = ["10.0.0.5:7070", "[fd00::5]:7070", "127.0.0.6:7071"]

[migration]
incoming_enabled = true
outgoing_enabled = true
max_live_moves = 4
max_storage_moves = 64
networks = ["10.0.0.0/24", "fd00::/64"]
authentication = "credssp"
admins = ["@ferry-admins"]
performance = "tcp"
)",
                             "host.toml");
  ASSERT_TRUE(r.has_value()) << r.error().ToString();
  EXPECT_EQ(r->storage_root, "/srv/ferry");
  EXPECT_EQ(r->api_socket, "/run/ferry/api.sock");
  EXPECT_EQ(r->guest_dir, "/usr/lib/ferry/guests");
  ASSERT_EQ(r->listen_addresses.size(), 3u);
  EXPECT_EQ(r->listen_addresses[0].host, "10.0.0.5");
  EXPECT_EQ(r->listen_addresses[0].port, 7070);
  EXPECT_EQ(r->listen_addresses[1].host, "fd00::5");
  EXPECT_EQ(r->listen_addresses[2].host, "127.0.0.6");
  EXPECT_EQ(r->listen_addresses[2].port, 7071);
  EXPECT_TRUE(r->incoming_enabled);
  EXPECT_TRUE(r->outgoing_enabled);
  EXPECT_EQ(r->max_live_moves, 4u);
  EXPECT_EQ(r->max_storage_moves, 64u);
  EXPECT_FALSE(r->any_network);
  ASSERT_EQ(r->networks.size(), 2u);
  EXPECT_EQ(r->networks[0].text, "10.0.0.0/24");
  EXPECT_EQ(r->networks[1].prefix_length, 64);
  EXPECT_EQ(r->authentication, AuthenticationType::kCredSsp);
  EXPECT_EQ(r->performance, PerformanceOption::kTcp);
}

TEST(HostSettingsTest, EnumWords) {
  for (auto [word, value] : {std::pair{"tcp", PerformanceOption::kTcp},
                             std::pair{"compression", PerformanceOption::kCompression}}) {
    auto r = ParseHostSettings(std::string("[migration]\nperformance = \"") + word + "\"\n", "h");
    ASSERT_TRUE(r.has_value()) << r.error().ToString();
    EXPECT_EQ(r->performance, value);
    EXPECT_EQ(ToString(value), word);
  }
  EXPECT_EQ(ToString(AuthenticationType::kKerberos), "kerberos");
  EXPECT_EQ(ToString(AuthenticationType::kCredSsp), "credssp");
  EXPECT_EQ(ToString(AuthenticationType::kCertificate), "certificate");
}

// SMB3 is not built: "smb" must not read as a working transport.
TEST(HostSettingsTest, SmbIsRefusedUntilBuilt) {
  ExpectError(
      "[migration]\nperformance = \"smb\"\n",
      "host.toml: migration.performance: \"smb\" (SMB3 transfer) is not built yet; use \"tcp\" or "
      "\"compression\"");
}

TEST(HostSettingsTest, AuthenticationModesAndWhatEachNeeds) {
  auto r = ParseHostSettings("", "host.toml");
  ASSERT_TRUE(r.has_value()) << r.error().ToString();
  EXPECT_EQ(r->authentication, AuthenticationType::kCertificate);
  r = ParseHostSettings(
      "[migration]\nauthentication = \"credssp\"\nadmins = [\"alice\", \"@ferry-admins\"]\n",
      "host.toml");
  ASSERT_TRUE(r.has_value()) << r.error().ToString();
  EXPECT_EQ(r->authentication, AuthenticationType::kCredSsp);
  EXPECT_EQ(r->admins, (std::vector<std::string>{"alice", "@ferry-admins"}));
  r = ParseHostSettings(
      "api_listen = \"127.0.0.1:7443\"\n[migration]\nauthentication = \"kerberos\"\n"
      "admins = [\"alice@FERRY.TEST\"]\n[kerberos]\nkeytab = \"/etc/ferry/ferry.keytab\"\n"
      "service_principal = \"ferry-migration/h1.ferry.test@FERRY.TEST\"\n"
      "krb5_config = \"/etc/ferry/krb5.conf\"\n",
      "host.toml");
  ASSERT_TRUE(r.has_value()) << r.error().ToString();
  EXPECT_EQ(r->kerberos.keytab, "/etc/ferry/ferry.keytab");
  EXPECT_EQ(r->kerberos.service_principal, "ferry-migration/h1.ferry.test@FERRY.TEST");
  ASSERT_TRUE(r->api_listen.has_value());
  EXPECT_EQ(r->api_listen->port, 7443);
  struct Bad {
    const char* toml;
    const char* message;
  } bad[] = {
      {"[migration]\nauthentication = \"kerberos\"\nadmins = [\"a\"]\n",
       "host.toml: kerberos.keytab: required with migration.authentication = \"kerberos\""},
      {"[migration]\nauthentication = \"kerberos\"\nadmins = [\"a\"]\n[kerberos]\n"
       "keytab = \"/k\"\n",
       "host.toml: kerberos.service_principal: required"},
      {"[migration]\nauthentication = \"credssp\"\n",
       "host.toml: migration.admins: required with migration.authentication = \"credssp\""},
      {"[migration]\nadmins = [\"\"]\n", "migration.admins[0]: must be a user"},
      {"api_listen = \"127.0.0.1:7443\"\n",
       "host.toml: api_listen: remote management needs migration.authentication"},
      {"[migration]\nauthentication = \"ntlm\"\n", "migration.authentication"},
      {"[kerberos]\nkeytab = \"relative\"\n", "kerberos.keytab: must be an absolute path"},
      {"[migration]\nincoming_directories = [\"srv\"]\n",
       "migration.incoming_directories[0]: must be an absolute path"},
      {"[migration]\nincoming_directories = []\n", "must list at least one directory"},
      {"[tls]\nkey = \"k\"\n", "tls.key: must be an absolute path"},
      {"[tls]\nfrob = 1\n", "tls.frob"},
  };
  for (const Bad& b : bad) {
    auto e = ParseHostSettings(b.toml, "host.toml");
    ASSERT_FALSE(e.has_value()) << b.toml;
    EXPECT_NE(e.error().message().find(b.message), std::string::npos)
        << b.toml << " -> " << e.error().message();
  }
}

TEST(HostSettingsTest, TlsAndIncomingDirectoriesDefaultUnderTheStorageRoot) {
  auto r = ParseHostSettings("storage_root = \"/srv/ferry\"\n", "host.toml");
  ASSERT_TRUE(r.has_value()) << r.error().ToString();
  EXPECT_EQ(r->tls.certificate, "/srv/ferry/tls/host.crt");
  EXPECT_EQ(r->tls.key, "/srv/ferry/tls/host.key");
  EXPECT_FALSE(r->tls.trusts_someone());
  EXPECT_EQ(r->incoming_directories, (std::vector<std::string>{"/srv/ferry/incoming-disks"}));
  r = ParseHostSettings("[tls]\ntrusted_fingerprints = [\"SHA256:AB\"]\ntrusted_ca = \"/ca.pem\"\n",
                        "host.toml");
  ASSERT_TRUE(r.has_value()) << r.error().ToString();
  EXPECT_TRUE(r->tls.trusts_someone());
  EXPECT_EQ(r->tls.trusted_ca, "/ca.pem");
}

TEST(HostSettingsTest, SyntaxErrorNamesFileLineAndColumn) {
  auto r =
      ParseHostSettings("storage_root = \"/a\"\n[migration]\nmax_live_moves = = 3\n", "host.toml");
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code(), Code::kInvalidArgument);
  EXPECT_EQ(r.error().message().rfind("host.toml: line 3, column 18: ", 0), 0u)
      << r.error().message();
}

TEST(HostSettingsTest, DuplicateKeyIsSyntaxError) {
  auto r = ParseHostSettings("storage_root = \"/a\"\nstorage_root = \"/b\"\n", "host.toml");
  ASSERT_FALSE(r.has_value());
  EXPECT_NE(r.error().message().find("host.toml: line 2"), std::string::npos)
      << r.error().message();
}

TEST(HostSettingsTest, UnknownKeys) {
  ExpectError("storage_rot = \"/x\"\n",
              "host.toml: storage_rot: unknown key (did you mean \"storage_root\"?)");
  ExpectError("[migration]\nmax_live_move = 3\n",
              "host.toml: migration.max_live_move: unknown key (did you mean \"max_live_moves\"?)");
  ExpectError("colour = \"blue\"\n", "host.toml: colour: unknown key");
  ExpectError("[migrations]\n", "host.toml: migrations: unknown key (did you mean \"migration\"?)");
  // The first unknown key in the file is the one reported.
  ExpectError("zzz = 1\naaa = 2\n", "host.toml: zzz: unknown key");
}

TEST(HostSettingsTest, Paths) {
  ExpectError("storage_root = \"var/lib\"\n",
              "host.toml: storage_root: must be an absolute path, got \"var/lib\"");
  ExpectError("storage_root = \"\"\n",
              "host.toml: storage_root: must be an absolute path, got \"\"");
  ExpectError("storage_root = 5\n", "host.toml: storage_root: must be a string, got 5");
  ExpectError("api_socket = \"ferryd.sock\"\n",
              "host.toml: api_socket: must be an absolute path, got \"ferryd.sock\"");
  ExpectError("guest_dir = \"guests\"\n",
              "host.toml: guest_dir: must be an absolute path, got \"guests\"");
  ExpectError("guest_dir = true\n", "host.toml: guest_dir: must be a string, got true");
  ExpectError("api_socket = \"/" + std::string(107, 'a') + "\"\n",
              "host.toml: api_socket: must be at most 107 bytes long (the limit of a Unix socket "
              "path), got 108 bytes");
  auto ok = ParseHostSettings("api_socket = \"/" + std::string(106, 'a') + "\"\n", "host.toml");
  EXPECT_TRUE(ok.has_value());
}

TEST(HostSettingsTest, ListenAddresses) {
  ExpectError("listen_addresses = \"10.0.0.1:7070\"\n",
              "host.toml: listen_addresses: must be an array of strings, got \"10.0.0.1:7070\"");
  ExpectError("listen_addresses = [7070]\n",
              "host.toml: listen_addresses[0]: must be a string, got 7070");
  ExpectError("listen_addresses = [\"10.0.0.1\"]\n",
              "host.toml: listen_addresses[0]: listen address \"10.0.0.1\": must be host:port or "
              "[v6-address]:port");
  ExpectError("listen_addresses = [\"127.0.0.1:1\", \"127.0.0.1:1\"]\n",
              "host.toml: listen_addresses[1]: duplicate listen address \"127.0.0.1:1\"");
  // The listener binds an address: a host name would stop ferryd at start.
  ExpectError("listen_addresses = [\"host1.example.com:7071\"]\n",
              "host.toml: listen_addresses[0]: listen address \"host1.example.com:7071\": must be "
              "an IPv4 or "
              "IPv6 address (ferryd listens on addresses, not host names)");
  auto empty = ParseHostSettings("listen_addresses = []\n", "host.toml");
  ASSERT_TRUE(empty.has_value());
  EXPECT_TRUE(empty->listen_addresses.empty());
}

TEST(HostSettingsTest, MigrationMustBeTable) {
  ExpectError("migration = 5\n", "host.toml: migration: must be a table, got 5");
}

TEST(HostSettingsTest, Bools) {
  ExpectError("[migration]\nincoming_enabled = \"yes\"\n",
              "host.toml: migration.incoming_enabled: must be true or false, got \"yes\"");
  ExpectError("[migration]\noutgoing_enabled = 1\n",
              "host.toml: migration.outgoing_enabled: must be true or false, got 1");
}

TEST(HostSettingsTest, MoveLimits) {
  ExpectError("[migration]\nmax_live_moves = \"x\"\n",
              "host.toml: migration.max_live_moves: must be an integer from 1 to 64, got \"x\"");
  ExpectError("[migration]\nmax_live_moves = 0\n",
              "host.toml: migration.max_live_moves: must be an integer from 1 to 64, got 0");
  ExpectError("[migration]\nmax_live_moves = 65\n",
              "host.toml: migration.max_live_moves: must be an integer from 1 to 64, got 65");
  ExpectError("[migration]\nmax_live_moves = 2.0\n",
              "host.toml: migration.max_live_moves: must be an integer from 1 to 64, got 2.0");
  ExpectError("[migration]\nmax_storage_moves = -1\n",
              "host.toml: migration.max_storage_moves: must be an integer from 1 to 64, got -1");
  auto r = ParseHostSettings("[migration]\nmax_live_moves = 1\nmax_storage_moves = 64\n", "h");
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->max_live_moves, 1u);
  EXPECT_EQ(r->max_storage_moves, 64u);
}

TEST(HostSettingsTest, Networks) {
  ExpectError("[migration]\nnetworks = []\n",
              "host.toml: migration.networks: must list at least one network, or be [\"any\"]");
  ExpectError("[migration]\nnetworks = \"any\"\n",
              "host.toml: migration.networks: must be an array of strings, got \"any\"");
  ExpectError("[migration]\nnetworks = [\"any\", \"10.0.0.0/8\"]\n",
              "host.toml: migration.networks: \"any\" cannot be combined with other networks");
  ExpectError("[migration]\nnetworks = [\"10.0.0.0/8\", \"10.0.0.1/24\"]\n",
              "host.toml: migration.networks[1]: network \"10.0.0.1/24\": host bits are set after "
              "the prefix; the network is 10.0.0.0/24");
  ExpectError("[migration]\nnetworks = [\"lan\"]\n",
              "host.toml: migration.networks[0]: network \"lan\": not an IPv4 or IPv6 address in "
              "CIDR form (like 10.0.0.0/24)");
  ExpectError("[migration]\nnetworks = [10]\n",
              "host.toml: migration.networks[0]: must be a string, got 10");
  auto any = ParseHostSettings("[migration]\nnetworks = [\"any\"]\n", "h");
  ASSERT_TRUE(any.has_value());
  EXPECT_TRUE(any->any_network);
}

TEST(HostSettingsTest, Choices) {
  ExpectError("[migration]\nauthentication = \"ntlm\"\n",
              "host.toml: migration.authentication: must be one of \"certificate\", \"kerberos\", "
              "\"credssp\", got "
              "\"ntlm\"");
  ExpectError("[migration]\nauthentication = \"Kerberos\"\n",
              "host.toml: migration.authentication: must be one of \"certificate\", \"kerberos\", "
              "\"credssp\", got "
              "\"Kerberos\"");
  ExpectError("[migration]\nperformance = 3\n",
              "host.toml: migration.performance: must be one of \"tcp\", \"compression\", got 3");
  ExpectError(
      "[migration]\nperformance = \"SMB\"\n",
      "host.toml: migration.performance: must be one of \"tcp\", \"compression\", got \"SMB\"");
}

TEST(HostSettingsTest, LongValuesAreAbbreviatedInMessages) {
  auto r = ParseHostSettings("[migration]\nmax_live_moves = \"" + std::string(200, 'x') + "\"\n",
                             "host.toml");
  ASSERT_FALSE(r.has_value());
  EXPECT_LT(r.error().message().size(), 150u);
  EXPECT_NE(r.error().message().find("xxx..."), std::string::npos);
}

TEST(HostSettingsTest, LoadMissingFileIsNotFound) {
  auto r = LoadHostSettings("/nonexistent-ferry-dir/host.toml");
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code(), Code::kNotFound);
  EXPECT_NE(r.error().message().find("/nonexistent-ferry-dir/host.toml"), std::string::npos);
}

TEST(HostSettingsTest, LoadNamesThePathInErrors) {
  ferry_test::TempDir temp;
  std::filesystem::path dir(temp.path());
  std::string path = (dir / "host.toml").string();
  std::ofstream(path) << "[migration]\nincoming_enabled = true\n";
  auto good = LoadHostSettings(path);
  std::ofstream(path) << "[migration]\nmax_live_moves = 99\n";
  auto bad = LoadHostSettings(path);

  ASSERT_TRUE(good.has_value()) << good.error().ToString();
  EXPECT_TRUE(good->incoming_enabled);
  EXPECT_EQ(good->source_path, path);
  ASSERT_FALSE(bad.has_value());
  EXPECT_EQ(bad.error().message(),
            path + ": migration.max_live_moves: must be an integer from 1 to 64, got 99");
}

}  // namespace
}  // namespace config
