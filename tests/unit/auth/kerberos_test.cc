// auth::Kerberos* against a real Samba AD DC (one for the whole binary):
// user tickets, keytab acceptors, channel binding, replay, wrong keys,
// unknown principals, expiry, clock skew, and both flavours of constrained
// delegation, each allowed and refused.
#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/stat.h>

#include <map>

#include <chrono>
#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include "auth/kerberos.h"
#include "support/files.h"
#include "support/samba_dc.h"
#include "support/wait_for.h"

namespace auth {
namespace {

using ferry_test::SambaDc;

const std::vector<uint8_t> kChannelA(32, 0xa1);
const std::vector<uint8_t> kChannelB(32, 0xb2);
constexpr char kAlicePassword[] = "Alice-Pass-1234!";

// Checks that `error` has `code` and contains `text`; prints it, so the log
// shows what an admin would read.
void ExpectRefused(const base::Error& error, base::Code code, const std::string& text) {
  std::cout << "  refused: " << error.ToString() << "\n";
  EXPECT_EQ(error.code(), code) << error.ToString();
  EXPECT_NE(error.message().find(text), std::string::npos)
      << "wanted \"" << text << "\" in: " << error.ToString();
}

class KerberosTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    skip_reason_ = SambaDc::UnavailableReason();
    if (!skip_reason_.empty()) return;
    dc_ = SambaDc::Start();
    if (!dc_) return;
    // libkrb5 reads these on every context it creates, so they only need to
    // be in place before the first credential.
    dc_->UseInThisProcess();
    ASSERT_TRUE(dc_->CreateUser("alice", kAlicePassword));
    for (const char* host : {"host1", "host2", "host3"}) {
      ASSERT_TRUE(dc_->CreateComputer(host));
      keytabs_[host] = dc_->ExportKeytab(std::string(host) + "$");
    }
    // host1 may delegate to host2's migration service; host3 may not.
    ASSERT_TRUE(dc_->AllowDelegation("host1$", dc_->MigrationService("host2")));
    alice_ccache_ = dc_->Kinit("alice", kAlicePassword);
  }
  static void TearDownTestSuite() { dc_.reset(); }

  void SetUp() override {
    if (!skip_reason_.empty()) GTEST_SKIP() << skip_reason_;
    ASSERT_NE(dc_, nullptr) << "the Samba DC did not start (see the suite's failure)";
    ASSERT_FALSE(alice_ccache_.empty());
  }

  static KerberosCredential Host(const std::string& host) {
    auto cred = KerberosCredential::FromKeytab(keytabs_[host], dc_->Principal(host + "$"));
    EXPECT_TRUE(cred.has_value()) << cred.error().ToString();
    if (!cred) std::abort();
    return std::move(cred).value();
  }
  static KerberosCredential Alice(const std::string& ccache = alice_ccache_) {
    auto cred = KerberosCredential::FromCcache(ccache);
    EXPECT_TRUE(cred.has_value()) << cred.error().ToString();
    if (!cred) std::abort();
    return std::move(cred).value();
  }
  static std::vector<uint8_t> Token(const KerberosCredential& cred, const std::string& host) {
    auto token = InitiateContext(cred, dc_->MigrationPrincipal(host), kChannelA);
    EXPECT_TRUE(token.has_value()) << token.error().ToString();
    return token ? *token : std::vector<uint8_t>{};
  }

  static inline std::string skip_reason_;
  static inline std::unique_ptr<SambaDc> dc_;
  static inline std::map<std::string, std::string> keytabs_;
  static inline std::string alice_ccache_;
};

TEST_F(KerberosTest, UserTicketIsAcceptedByTheServiceKeytab) {
  KerberosCredential alice = Alice();
  EXPECT_EQ(alice.principal(), dc_->Principal("alice"));
  std::vector<uint8_t> token = Token(alice, "host2");
  auto accepted = AcceptContext(Host("host2"), token, kChannelA);
  ASSERT_TRUE(accepted.has_value()) << accepted.error().ToString();
  EXPECT_EQ(accepted->client_principal, dc_->Principal("alice"));
}

TEST_F(KerberosTest, TokenBoundToAnotherChannelIsRefused) {
  std::vector<uint8_t> token = Token(Alice(), "host2");
  auto accepted = AcceptContext(Host("host2"), token, kChannelB);
  ASSERT_FALSE(accepted.has_value());
  ExpectRefused(accepted.error(), base::Code::kPermissionDenied,
                "token bound to another TLS channel (relayed?)");
}

TEST_F(KerberosTest, ReplayedTokenIsRefused) {
  std::vector<uint8_t> token = Token(Alice(), "host2");
  KerberosCredential host2 = Host("host2");
  ASSERT_TRUE(AcceptContext(host2, token, kChannelA).has_value());
  auto again = AcceptContext(host2, token, kChannelA);
  ASSERT_FALSE(again.has_value());
  ExpectRefused(again.error(), base::Code::kPermissionDenied, "replayed token");
}

TEST_F(KerberosTest, AnotherAccountsKeytabIsRefused) {
  std::vector<uint8_t> token = Token(Alice(), "host2");
  auto accepted = AcceptContext(Host("host3"), token, kChannelA);
  ASSERT_FALSE(accepted.has_value());
  ExpectRefused(accepted.error(), base::Code::kUnauthenticated,
                "does not decrypt with the keys in keytab " + keytabs_["host3"]);
}

TEST_F(KerberosTest, MissingKeytabIsRefused) {
  auto cred =
      KerberosCredential::FromKeytab(dc_->dir() + "/no-such.keytab", dc_->Principal("host2$"));
  ASSERT_FALSE(cred.has_value());
  ExpectRefused(cred.error(), base::Code::kNotFound, "no-such.keytab");
}

TEST_F(KerberosTest, UnknownServicePrincipalIsRefusedAtInitiate) {
  auto token = InitiateContext(Alice(), dc_->MigrationPrincipal("nosuchhost"), kChannelA);
  ASSERT_FALSE(token.has_value());
  ExpectRefused(token.error(), base::Code::kNotFound,
                "ferry-migration/nosuchhost." + dc_->dns_domain() + "@" + dc_->realm() +
                    " is unknown to the KDC");
}

TEST_F(KerberosTest, EmptyCcacheSaysRunKinit) {
  auto cred = KerberosCredential::FromCcache("FILE:" + dc_->dir() + "/no-such-ccache");
  ASSERT_FALSE(cred.has_value());
  ExpectRefused(cred.error(), base::Code::kUnauthenticated, "no Kerberos credentials");
  EXPECT_NE(cred.error().message().find("run kinit"), std::string::npos);
}

}  // namespace
}  // namespace auth

namespace auth {
namespace {

// Kerberos-only constrained delegation: alice's token reaches host1, whose
// acceptor hands back a credential for alice; host1 uses it toward host2.
TEST_F(KerberosTest, KerberosOnlyDelegationActsForTheUser) {
  KerberosCredential host1 = Host("host1");
  auto at_host1 = AcceptContext(host1, Token(Alice(), "host1"), kChannelA);
  ASSERT_TRUE(at_host1.has_value()) << at_host1.error().ToString();
  ASSERT_TRUE(at_host1->delegated.has_value()) << "host1 got no delegated credential";
  EXPECT_EQ(at_host1->delegated->principal(), dc_->Principal("alice"));
  EXPECT_EQ(at_host1->delegated->impersonator(), dc_->Principal("host1$"));

  auto token = InitiateContext(*at_host1->delegated, dc_->MigrationPrincipal("host2"), kChannelB);
  ASSERT_TRUE(token.has_value()) << token.error().ToString();
  auto at_host2 = AcceptContext(Host("host2"), *token, kChannelB);
  ASSERT_TRUE(at_host2.has_value()) << at_host2.error().ToString();
  EXPECT_EQ(at_host2->client_principal, dc_->Principal("alice"));
}

TEST_F(KerberosTest, KerberosOnlyDelegationIsRefusedWithoutAddService) {
  // host3 has no msDS-AllowedToDelegateTo entry.
  auto at_host3 = AcceptContext(Host("host3"), Token(Alice(), "host3"), kChannelA);
  ASSERT_TRUE(at_host3.has_value()) << at_host3.error().ToString();
  ASSERT_TRUE(at_host3->delegated.has_value());
  auto token = InitiateContext(*at_host3->delegated, dc_->MigrationPrincipal("host2"), kChannelB);
  ASSERT_FALSE(token.has_value());
  ExpectRefused(token.error(), base::Code::kPermissionDenied,
                "the KDC refused to let host3$@" + dc_->realm() + " act for alice@" + dc_->realm() +
                    " toward " + dc_->MigrationPrincipal("host2"));
  EXPECT_NE(token.error().message().find("samba-tool delegation add-service 'host3$' " +
                                         dc_->MigrationService("host2")),
            std::string::npos);
}

// Protocol transition: host1 authenticated alice some other way (a password,
// say) and asks the KDC for a ticket in her name (S4U2Self), then S4U2Proxy.
TEST_F(KerberosTest, ProtocolTransitionWorksWithForAnyProtocol) {
  ASSERT_TRUE(dc_->AllowProtocolTransition("host1$", true));
  KerberosCredential host1 = Host("host1");
  auto alice = host1.Impersonate(dc_->Principal("alice"));
  // Off again, whatever happens below: the refusal test needs it off.
  EXPECT_TRUE(dc_->AllowProtocolTransition("host1$", false));
  ASSERT_TRUE(alice.has_value()) << alice.error().ToString();
  EXPECT_EQ(alice->principal(), dc_->Principal("alice"));
  EXPECT_EQ(alice->impersonator(), dc_->Principal("host1$"));
  auto token = InitiateContext(*alice, dc_->MigrationPrincipal("host2"), kChannelA);
  ASSERT_TRUE(token.has_value()) << token.error().ToString();
  auto at_host2 = AcceptContext(Host("host2"), *token, kChannelA);
  ASSERT_TRUE(at_host2.has_value()) << at_host2.error().ToString();
  EXPECT_EQ(at_host2->client_principal, dc_->Principal("alice"));
}

TEST_F(KerberosTest, ProtocolTransitionIsRefusedWithoutForAnyProtocol) {
  KerberosCredential host1 = Host("host1");
  auto alice = host1.Impersonate(dc_->Principal("alice"));
  ASSERT_TRUE(alice.has_value()) << alice.error().ToString();
  auto token = InitiateContext(*alice, dc_->MigrationPrincipal("host2"), kChannelA);
  ASSERT_FALSE(token.has_value());
  ExpectRefused(token.error(), base::Code::kPermissionDenied,
                "samba-tool delegation for-any-protocol 'host1$' on");
  EXPECT_NE(token.error().message().find("act for alice@" + dc_->realm()), std::string::npos);
}

TEST_F(KerberosTest, ExpiredTicketIsRefused) {
  std::string ccache = dc_->Kinit("alice", kAlicePassword, {"-l", "3s"});
  ASSERT_FALSE(ccache.empty());
  // A ticket expires in real time: there is no KDC-side clock to advance.
  ASSERT_TRUE(ferry_test::WaitFor(
      "alice's 3 s ticket to expire", std::chrono::seconds(20),
      [&] { return !KerberosCredential::FromCcache(ccache).has_value(); },
      std::chrono::milliseconds(250)));
  auto cred = KerberosCredential::FromCcache(ccache);
  ASSERT_FALSE(cred.has_value());
  ExpectRefused(
      cred.error(), base::Code::kUnauthenticated,
      "the tickets of alice@" + dc_->realm() + " in " + ccache + " have expired: run kinit again");
}

// Sets the KDC time offset a FILE cache (format 0x0504) carries in its
// header: libkrb5 adds it to the clock of every request made with the
// cache, as if this host's clock were `seconds` off.
void SetCcacheClockOffset(const std::string& ccache, int32_t seconds) {
  std::string path = ccache.substr(ccache.find(':') + 1);
  std::vector<uint8_t> bytes = ferry_test::ReadBytes(path);
  ASSERT_GE(bytes.size(), 4u);
  ASSERT_EQ(bytes[0], 0x05);
  ASSERT_EQ(bytes[1], 0x04) << "not a version 4 FILE cache";
  size_t header_end = 4 + (bytes[2] << 8 | bytes[3]);
  std::vector<uint8_t> out = {0x05, 0x04, 0, 12, 0, 1, 0, 8};  // tag 1 (DeltaTime), 8 bytes
  uint32_t s = static_cast<uint32_t>(seconds);
  for (int shift : {24, 16, 8, 0}) out.push_back(static_cast<uint8_t>(s >> shift));
  for (int i = 0; i < 4; ++i) out.push_back(0);  // microseconds
  out.insert(out.end(), bytes.begin() + header_end, bytes.end());
  ferry_test::WriteFile(path, out);
}

TEST_F(KerberosTest, ClockSkewIsRefused) {
  std::string ccache = dc_->Kinit("alice", kAlicePassword);
  ASSERT_FALSE(ccache.empty());
  // The service ticket is fetched while the clocks agree and stays cached.
  ASSERT_FALSE(Token(Alice(ccache), "host2").empty());
  SetCcacheClockOffset(ccache, 3600);
  auto token = InitiateContext(Alice(ccache), dc_->MigrationPrincipal("host2"), kChannelA);
  ASSERT_TRUE(token.has_value()) << token.error().ToString();
  auto accepted = AcceptContext(Host("host2"), *token, kChannelA);
  ASSERT_FALSE(accepted.has_value()) << "a token an hour ahead was accepted";
  ExpectRefused(accepted.error(), base::Code::kUnauthenticated, "clock skew too large");
}

}  // namespace
}  // namespace auth
