// migration.authentication = "kerberos" in ferryd, against a real Samba AD
// DC (one for the whole binary): the API authenticator taking ferry's
// Negotiate token, the admin credentials it keeps (both delegation
// flavours), and the destination's check of the token a source sends.
// Built through the public factories, as ferryd_main.cc builds them.
#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/stat.h>

#include <iostream>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "cli/cli_kerberos.h"
#include "daemon/api_caller.h"
#include "daemon/move_authorizer.h"
#include "support/samba_dc.h"

namespace appliance {
namespace {

using ferry_test::SambaDc;

constexpr char kPassword[] = "Ferry-Pass-1234!";
const std::vector<uint8_t> kElsewhere(32, 0xb2);

void ExpectRefused(const base::Error& error, base::Code code, const std::string& text) {
  std::cout << "  refused: " << error.ToString() << "\n";
  EXPECT_EQ(error.code(), code) << error.ToString();
  EXPECT_NE(error.message().find(text), std::string::npos)
      << "wanted \"" << text << "\" in: " << error.ToString();
}

std::vector<uint8_t> LocalBinding() {
  auto span = LocalApiChannelBinding();
  return {span.begin(), span.end()};
}

// A destination as the source sees it on the control connection.
transport::TlsPeer Peer(const std::string& subject, uint8_t fill) {
  transport::TlsPeer peer;
  peer.subject = subject;
  peer.fingerprint = "sha256:" + subject;
  peer.channel_binding.fill(fill);
  return peer;
}

class KerberosAuthenticationTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    skip_reason_ = SambaDc::UnavailableReason();
    if (!skip_reason_.empty()) return;
    dc_ = SambaDc::Start();
    if (!dc_) return;
    dc_->UseInThisProcess();
    for (const char* user : {"alice", "bob", "carol"})
      ASSERT_TRUE(dc_->CreateUser(user, kPassword));
    for (const char* host : {"host1", "host2", "host3"}) {
      ASSERT_TRUE(dc_->CreateComputer(host));
      keytabs_[host] = dc_->ExportKeytab(std::string(host) + "$");
    }
    // host1 may act for admins toward host2's migration service; host3 may not.
    ASSERT_TRUE(dc_->AllowDelegation("host1$", dc_->MigrationService("host2")));
    alice_ = dc_->Kinit("alice", kPassword);
    bob_ = dc_->Kinit("bob", kPassword);
    carol_ = dc_->Kinit("carol", kPassword);
  }
  static void TearDownTestSuite() { dc_.reset(); }

  void SetUp() override {
    if (!skip_reason_.empty()) GTEST_SKIP() << skip_reason_;
    ASSERT_NE(dc_, nullptr) << "the Samba DC did not start (see the suite's failure)";
  }

  // host1 and host3 take alice and bob by principal; host2 takes "alice" as
  // a name of its own realm, and not bob.
  static config::HostSettings Settings(const std::string& host) {
    config::HostSettings s;
    s.source_path = host + ".toml";
    s.authentication = config::AuthenticationType::kKerberos;
    s.kerberos.keytab = keytabs_[host];
    s.kerberos.service_principal = dc_->MigrationPrincipal(host);
    if (host == "host2")
      s.admins = {"alice"};
    else
      s.admins = {dc_->Principal("alice"), dc_->Principal("bob")};
    return s;
  }
  static std::unique_ptr<ApiAuthenticator> Authenticator(const std::string& host) {
    auto a = MakeApiAuthenticator(Settings(host));
    EXPECT_TRUE(a.has_value()) << a.error().ToString();
    return a ? *std::move(a) : nullptr;
  }
  static std::unique_ptr<MoveAuthorizer> Authorizer(const std::string& host) {
    auto a = MakeMoveAuthorizer(Settings(host));
    EXPECT_TRUE(a.has_value()) << a.error().ToString();
    return a ? *std::move(a) : nullptr;
  }
  // What ferry sends to host's local socket for the admin of ccache.
  static std::map<std::string, std::string> Headers(const std::string& ccache,
                                                    const std::string& host,
                                                    const std::vector<uint8_t>& binding) {
    auto value = NegotiateAuthorization(dc_->MigrationPrincipal(host), binding, ccache);
    EXPECT_TRUE(value.has_value()) << value.error().ToString();
    return {{kAuthorizationHeader, value ? *value : ""}};
  }
  // The caller host's API makes of admin's token sent to its local socket.
  static base::Result<ApiCaller> Call(const std::string& ccache, const std::string& host) {
    return Authenticator(host)->Authenticate(Headers(ccache, host, LocalBinding()),
                                             {.remote = false, .channel_binding = LocalBinding()});
  }

  static inline std::string skip_reason_;
  static inline std::unique_ptr<SambaDc> dc_;
  static inline std::map<std::string, std::string> keytabs_;
  static inline std::string alice_, bob_, carol_;
};

TEST_F(KerberosAuthenticationTest, LocalTokenYieldsTheAdminAndCredentials) {
  auto caller = Call(alice_, "host1");
  ASSERT_TRUE(caller.has_value()) << caller.error().ToString();
  EXPECT_FALSE(caller->remote);
  EXPECT_EQ(caller->admin, dc_->Principal("alice"));
  ASSERT_NE(caller->credentials, nullptr);
  EXPECT_EQ(caller->credentials->admin(), dc_->Principal("alice"));
}

TEST_F(KerberosAuthenticationTest, TokenBoundElsewhereIsRefused) {
  auto caller = Authenticator("host1")->Authenticate(
      Headers(alice_, "host1", kElsewhere), {.remote = false, .channel_binding = LocalBinding()});
  ASSERT_FALSE(caller.has_value());
  ExpectRefused(caller.error(), base::Code::kPermissionDenied, "another TLS channel");
}

TEST_F(KerberosAuthenticationTest, PrincipalNotInAdminsIsRefused) {
  auto caller = Call(carol_, "host1");
  ASSERT_FALSE(caller.has_value());
  ExpectRefused(caller.error(), base::Code::kPermissionDenied,
                dc_->Principal("carol") + " may not manage this host (migration.admins: " +
                    dc_->Principal("alice") + ", " + dc_->Principal("bob") + ")");
}

TEST_F(KerberosAuthenticationTest, NoHeaderIsRootLocallyAndRefusedRemotely) {
  auto authenticator = Authenticator("host1");
  auto local = authenticator->Authenticate({}, {.remote = false, .channel_binding = {}});
  ASSERT_TRUE(local.has_value()) << local.error().ToString();
  EXPECT_EQ(local->admin, "root");
  EXPECT_EQ(local->credentials, nullptr);
  auto remote = authenticator->Authenticate({}, {.remote = true, .channel_binding = kElsewhere});
  ASSERT_FALSE(remote.has_value());
  ExpectRefused(remote.error(), base::Code::kPermissionDenied, "needs Kerberos (Negotiate)");
  EXPECT_EQ(authenticator->Challenge(), "Negotiate");
}

TEST_F(KerberosAuthenticationTest, MalformedHeaderIsRefused) {
  auto authenticator = Authenticator("host1");
  auto basic = authenticator->Authenticate({{kAuthorizationHeader, "Basic YWxpY2U6eA=="}},
                                           {.remote = false, .channel_binding = LocalBinding()});
  ASSERT_FALSE(basic.has_value());
  ExpectRefused(basic.error(), base::Code::kPermissionDenied, "not \"Basic\"");
  auto garbage = authenticator->Authenticate({{kAuthorizationHeader, "Negotiate !!!!"}},
                                             {.remote = false, .channel_binding = LocalBinding()});
  ASSERT_FALSE(garbage.has_value());
  ExpectRefused(garbage.error(), base::Code::kPermissionDenied, "not base64");
}

// The source's credentials make a token for host2 bound to the control
// connection; host2 takes it once, on that connection.
TEST_F(KerberosAuthenticationTest, DestinationAcceptsTheDelegatedTokenOnce) {
  auto caller = Call(alice_, "host1");
  ASSERT_TRUE(caller.has_value()) << caller.error().ToString();
  transport::TlsPeer host2 = Peer("host2." + dc_->dns_domain(), 0x42);
  auto authorization = caller->credentials->Authorize(host2);
  ASSERT_TRUE(authorization.has_value()) << authorization.error().ToString();
  EXPECT_EQ(authorization->mechanism, AuthorizationMechanism::kKerberos);

  auto authorizer = Authorizer("host2");
  // As host2 sees host1 on that connection: the same binding.
  transport::TlsPeer host1 = Peer("host1." + dc_->dns_domain(), 0x42);
  auto admin = authorizer->Authorize(&*authorization, host1);
  ASSERT_TRUE(admin.has_value()) << admin.error().ToString();
  EXPECT_EQ(*admin, dc_->Principal("alice"));

  auto replay = authorizer->Authorize(&*authorization, host1);
  ASSERT_FALSE(replay.has_value());
  ExpectRefused(replay.error(), base::Code::kPermissionDenied, "replayed token");
}

TEST_F(KerberosAuthenticationTest, DestinationRefusesATokenOfAnotherConnection) {
  auto caller = Call(alice_, "host1");
  ASSERT_TRUE(caller.has_value()) << caller.error().ToString();
  auto authorization = caller->credentials->Authorize(Peer("host2." + dc_->dns_domain(), 0x42));
  ASSERT_TRUE(authorization.has_value()) << authorization.error().ToString();
  auto admin =
      Authorizer("host2")->Authorize(&*authorization, Peer("host1." + dc_->dns_domain(), 0x43));
  ASSERT_FALSE(admin.has_value());
  ExpectRefused(admin.error(), base::Code::kPermissionDenied, "another TLS channel");
}

TEST_F(KerberosAuthenticationTest, DestinationRefusesOtherMechanismsAndNothing) {
  auto authorizer = Authorizer("host2");
  transport::TlsPeer host1 = Peer("host1." + dc_->dns_domain(), 0x42);
  auto none = authorizer->Authorize(nullptr, host1);
  ASSERT_FALSE(none.has_value());
  ExpectRefused(none.error(), base::Code::kPermissionDenied,
                "this host requires Kerberos (migration.authentication = \"kerberos\"); the "
                "source sent nothing: set migration.authentication = \"kerberos\" at the "
                "source too");
  MoveAuthorization credentials;
  credentials.mechanism = AuthorizationMechanism::kCredentials;
  credentials.user = "alice";
  credentials.password = kPassword;
  auto password = authorizer->Authorize(&credentials, host1);
  ASSERT_FALSE(password.has_value());
  ExpectRefused(password.error(), base::Code::kPermissionDenied,
                "the source sent a user name and password");
}

// bob may move VMs from host1, but host2's admins do not include him.
TEST_F(KerberosAuthenticationTest, DestinationRefusesAPrincipalNotInItsAdmins) {
  auto caller = Call(bob_, "host1");
  ASSERT_TRUE(caller.has_value()) << caller.error().ToString();
  auto authorization = caller->credentials->Authorize(Peer("host2." + dc_->dns_domain(), 0x42));
  ASSERT_TRUE(authorization.has_value()) << authorization.error().ToString();
  auto admin =
      Authorizer("host2")->Authorize(&*authorization, Peer("host1." + dc_->dns_domain(), 0x42));
  ASSERT_FALSE(admin.has_value());
  ExpectRefused(admin.error(), base::Code::kPermissionDenied,
                dc_->Principal("bob") + " may not move VMs to this host (migration.admins: alice)");
}

// host3 has no `delegation add-service`: the KDC refuses S4U2Proxy, and the
// message says who, toward what, and the command that allows it.
TEST_F(KerberosAuthenticationTest, DelegationNotAllowedNamesAccountAndService) {
  auto caller = Call(alice_, "host3");
  ASSERT_TRUE(caller.has_value()) << caller.error().ToString();
  auto authorization = caller->credentials->Authorize(Peer("host2." + dc_->dns_domain(), 0x42));
  ASSERT_FALSE(authorization.has_value());
  ExpectRefused(authorization.error(), base::Code::kPermissionDenied,
                "host3$@" + dc_->realm() + " act for alice@" + dc_->realm() + " toward " +
                    dc_->MigrationPrincipal("host2"));
  EXPECT_NE(authorization.error().message().find("samba-tool delegation add-service 'host3$' " +
                                                 dc_->MigrationService("host2")),
            std::string::npos);
}

TEST_F(KerberosAuthenticationTest, UnknownDestinationNameSaysTheCnMustBeTheHostName) {
  auto caller = Call(alice_, "host1");
  ASSERT_TRUE(caller.has_value()) << caller.error().ToString();
  auto authorization = caller->credentials->Authorize(Peer("b", 0x42));
  ASSERT_FALSE(authorization.has_value());
  ExpectRefused(authorization.error(), base::Code::kNotFound, "Kerberos host name");
}

// A ticket that is not forwardable (kinit -F): MIT still hands host1 a
// "delegated" credential, but the KDC refuses S4U2Proxy with it, so host1
// acts for the admin by protocol transition (S4U2Self), which works only
// with `delegation for-any-protocol on`; without it the refusal says both.
TEST_F(KerberosAuthenticationTest, ProtocolTransitionWhenNoCredentialIsDelegated) {
  const std::string alice_plain = dc_->Kinit("alice", kPassword, {"-F"});
  ASSERT_FALSE(alice_plain.empty());
  {
    auto caller = Call(alice_plain, "host1");
    ASSERT_TRUE(caller.has_value()) << caller.error().ToString();
    auto authorization = caller->credentials->Authorize(Peer("host2." + dc_->dns_domain(), 1));
    ASSERT_FALSE(authorization.has_value());
    ExpectRefused(authorization.error(), base::Code::kPermissionDenied, "for-any-protocol");
  }
  ASSERT_TRUE(dc_->AllowProtocolTransition("host1$", true));
  auto caller = Call(alice_plain, "host1");
  base::Result<MoveAuthorization> authorization =
      caller ? caller->credentials->Authorize(Peer("host2." + dc_->dns_domain(), 2))
             : base::Result<MoveAuthorization>(caller.error());
  EXPECT_TRUE(dc_->AllowProtocolTransition("host1$", false));
  ASSERT_TRUE(authorization.has_value()) << authorization.error().ToString();
  auto admin =
      Authorizer("host2")->Authorize(&*authorization, Peer("host1." + dc_->dns_domain(), 2));
  ASSERT_TRUE(admin.has_value()) << admin.error().ToString();
  EXPECT_EQ(*admin, dc_->Principal("alice"));
}

TEST_F(KerberosAuthenticationTest, MissingKeytabRefusesToStartNamingTheKeys) {
  config::HostSettings s = Settings("host1");
  s.kerberos.keytab = dc_->dir() + "/no-such.keytab";
  auto authorizer = MakeMoveAuthorizer(s);
  ASSERT_FALSE(authorizer.has_value());
  ExpectRefused(authorizer.error(), base::Code::kNotFound,
                "[kerberos] keytab = \"" + s.kerberos.keytab + "\", service_principal = \"" +
                    s.kerberos.service_principal + "\"");
}

}  // namespace
}  // namespace appliance
