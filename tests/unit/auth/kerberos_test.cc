// auth::Kerberos* against a real Samba AD DC (one for the whole binary):
// user tickets, keytab acceptors, channel binding, replay, wrong keys,
// unknown principals, expiry, clock skew, and both flavours of constrained
// delegation, each allowed and refused.
#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/stat.h>

#include <map>

#include <chrono>
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

class KerberosTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    skip_reason_ = SambaDc::UnavailableReason();
    if (!skip_reason_.empty()) return;
    dc_ = SambaDc::Start();
    if (!dc_) return;
    // libkrb5 reads these on every context it creates, so they only need to
    // be in place before the first credential.
    setenv("KRB5_CONFIG", dc_->krb5_config().c_str(), 1);
    std::string rcache = dc_->dir() + "/rcache";
    ferry_test::WriteFile(rcache + "-dir-made", "");
    mkdir(rcache.c_str(), 0700);
    setenv("KRB5RCACHEDIR", rcache.c_str(), 1);
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
  static KerberosCredential Alice() {
    auto cred = KerberosCredential::FromCcache(alice_ccache_);
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
  EXPECT_EQ(accepted.error().code(), base::Code::kPermissionDenied);
  EXPECT_NE(accepted.error().message().find("token bound to another TLS channel (relayed?)"),
            std::string::npos)
      << accepted.error().ToString();
}

TEST_F(KerberosTest, ReplayedTokenIsRefused) {
  std::vector<uint8_t> token = Token(Alice(), "host2");
  KerberosCredential host2 = Host("host2");
  ASSERT_TRUE(AcceptContext(host2, token, kChannelA).has_value());
  auto again = AcceptContext(host2, token, kChannelA);
  ASSERT_FALSE(again.has_value());
  EXPECT_EQ(again.error().code(), base::Code::kPermissionDenied);
  EXPECT_NE(again.error().message().find("replayed token"), std::string::npos)
      << again.error().ToString();
}

TEST_F(KerberosTest, AnotherAccountsKeytabIsRefused) {
  std::vector<uint8_t> token = Token(Alice(), "host2");
  auto accepted = AcceptContext(Host("host3"), token, kChannelA);
  ASSERT_FALSE(accepted.has_value());
  EXPECT_NE(accepted.error().message().find("keytab"), std::string::npos)
      << accepted.error().ToString();
}

TEST_F(KerberosTest, MissingKeytabIsRefused) {
  auto cred = KerberosCredential::FromKeytab(dc_->dir() + "/no-such.keytab",
                                             dc_->Principal("host2$"));
  ASSERT_FALSE(cred.has_value());
  EXPECT_EQ(cred.error().code(), base::Code::kNotFound);
  EXPECT_NE(cred.error().message().find("no-such.keytab"), std::string::npos)
      << cred.error().ToString();
}

TEST_F(KerberosTest, UnknownServicePrincipalIsRefusedAtInitiate) {
  auto token = InitiateContext(Alice(), dc_->MigrationPrincipal("nosuchhost"), kChannelA);
  ASSERT_FALSE(token.has_value());
  EXPECT_EQ(token.error().code(), base::Code::kNotFound);
  EXPECT_NE(token.error().message().find("ferry-migration/nosuchhost." + dc_->dns_domain() +
                                         "@" + dc_->realm() + " is unknown to the KDC"),
            std::string::npos)
      << token.error().ToString();
}

TEST_F(KerberosTest, EmptyCcacheSaysRunKinit) {
  auto cred = KerberosCredential::FromCcache("FILE:" + dc_->dir() + "/no-such-ccache");
  ASSERT_FALSE(cred.has_value());
  EXPECT_EQ(cred.error().code(), base::Code::kUnauthenticated);
  EXPECT_NE(cred.error().message().find("no Kerberos credentials"), std::string::npos)
      << cred.error().ToString();
  EXPECT_NE(cred.error().message().find("run kinit"), std::string::npos);
}

}  // namespace
}  // namespace auth
