// credssp mode's parts (docs/credentials.md): log-ons at the source
// (LogonSessions: expiry, log-off, refresh), the delegated credentials, the
// destination's check (MakeCredentialMoveAuthorizer) and the API
// authenticator. Real PAM with real local accounts (TestAccount): root only,
// skipped otherwise.
#include <unistd.h>

#include <gtest/gtest.h>

#include <atomic>

#include "authentication_modes.h"
#include "base/base64.h"
#include "daemon/router.h"
#include "logon_sessions.h"
#include "password_credentials.h"
#include "support/files.h"
#include "support/local_accounts.h"
#include "support/temp_dir.h"

namespace appliance {
namespace {

using ferry_test::TestAccount;

constexpr char kPassword[] = "Logon-Pw-9";
constexpr int64_t kTtlMs = 60'000;

class LogonSessionsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    FERRY_SKIP_WITHOUT_ROOT();
    // The service file as shipped, from a temporary PAM directory.
    ferry_test::WriteFile(pam_dir_ / "ferry", ferry_test::ReadFile(FERRY_PAM_SERVICE_FILE));
    account_ = std::make_unique<TestAccount>(kPassword);
    ASSERT_TRUE(account_->ok());
    LogonSessions::Options options;
    options.admins = {account_->user()};
    options.ttl_ms = kTtlMs;
    options.pam.config_dir = pam_dir_.path();
    options.now_unix_ms = [this] { return now_ms_.load(); };
    sessions_ = std::make_unique<LogonSessions>(std::move(options));
  }
  const std::string& user() const { return account_->user(); }

  ferry_test::TempDir pam_dir_{"ferry-pam"};
  std::unique_ptr<TestAccount> account_;
  std::atomic<int64_t> now_ms_{1'000'000};
  std::unique_ptr<LogonSessions> sessions_;
};

TEST_F(LogonSessionsTest, LogOnKeepsCredentialsUntilExpiry) {
  auto logon = sessions_->LogOn(user(), auth::Secret(kPassword));
  ASSERT_TRUE(logon.has_value()) << logon.error().message();
  EXPECT_EQ(logon->user, user());
  EXPECT_EQ(logon->expires_unix_ms, 1'000'000 + kTtlMs);
  auto list = sessions_->List();
  ASSERT_EQ(list.size(), 1u);
  EXPECT_EQ(list[0].user, user());

  auto credentials = sessions_->Credentials(user());
  ASSERT_TRUE(credentials.has_value()) << credentials.error().message();
  EXPECT_EQ((*credentials)->admin(), user());
  auto authorization = (*credentials)->Authorize(transport::TlsPeer{});
  ASSERT_TRUE(authorization.has_value());
  EXPECT_EQ(authorization->mechanism, AuthorizationMechanism::kCredentials);
  EXPECT_EQ(authorization->user, user());
  EXPECT_EQ(authorization->password, kPassword);

  now_ms_ += kTtlMs;  // the expiry instant: ended
  EXPECT_TRUE(sessions_->List().empty());
  auto expired = sessions_->Credentials(user());
  ASSERT_FALSE(expired.has_value());
  EXPECT_EQ(expired.error().code(), base::Code::kPermissionDenied);
  EXPECT_EQ(expired.error().message(),
            "no log-on of " + user() + " at this host: run ferry logon " + user() + " here first");
}

TEST_F(LogonSessionsTest, NewLogOnRefreshesExpiry) {
  ASSERT_TRUE(sessions_->LogOn(user(), auth::Secret(kPassword)).has_value());
  now_ms_ += kTtlMs - 1;
  auto again = sessions_->LogOn(user(), auth::Secret(kPassword));
  ASSERT_TRUE(again.has_value());
  EXPECT_EQ(again->expires_unix_ms, now_ms_ + kTtlMs);
  now_ms_ += kTtlMs - 1;  // past the first expiry, before the second
  EXPECT_TRUE(sessions_->Credentials(user()).has_value());
  ASSERT_EQ(sessions_->List().size(), 1u);
}

TEST_F(LogonSessionsTest, LogOffWipesTheLogOn) {
  ASSERT_TRUE(sessions_->LogOn(user(), auth::Secret(kPassword)).has_value());
  auto held = sessions_->Credentials(user());  // a move that started before
  ASSERT_TRUE(held.has_value());
  ASSERT_TRUE(sessions_->LogOff(user()).has_value());
  EXPECT_TRUE(sessions_->List().empty());
  EXPECT_FALSE(sessions_->Credentials(user()).has_value());
  // The running move keeps its own reference until it ends.
  EXPECT_EQ((*held)->Authorize(transport::TlsPeer{})->password, kPassword);
  auto twice = sessions_->LogOff(user());
  ASSERT_FALSE(twice.has_value());
  EXPECT_EQ(twice.error().code(), base::Code::kNotFound);
  EXPECT_EQ(twice.error().message(), user() + " is not logged on at this host");
}

TEST_F(LogonSessionsTest, WrongPasswordAndNonAdminAreRefused) {
  auto wrong = sessions_->LogOn(user(), auth::Secret("not-it"));
  ASSERT_FALSE(wrong.has_value());
  EXPECT_EQ(wrong.error().code(), base::Code::kPermissionDenied);
  EXPECT_EQ(wrong.error().message(), "authentication failed for user " + user());

  TestAccount other(kPassword);  // a real account, not in the admin list
  ASSERT_TRUE(other.ok());
  auto not_admin = sessions_->LogOn(other.user(), auth::Secret(kPassword));
  ASSERT_FALSE(not_admin.has_value());
  EXPECT_EQ(not_admin.error().message(), other.user() +
                                             " may not log on to move VMs from this host "
                                             "(migration.admins: " +
                                             user() + ")");
  EXPECT_TRUE(sessions_->List().empty());
}

// The destination's check and the API authenticator as ferryd makes them:
// the system's /etc/pam.d/ferry (skipped when it is not installed).
class CredentialModeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    FERRY_SKIP_WITHOUT_ROOT();
    if (::access("/etc/pam.d/ferry", R_OK) != 0)
      GTEST_SKIP() << "/etc/pam.d/ferry is missing: scripts/setup.sh installs it";
    account_ = std::make_unique<TestAccount>(kPassword);
    ASSERT_TRUE(account_->ok());
    host_.authentication = config::AuthenticationType::kCredSsp;
    host_.admins = {account_->user(), "@no-such-group-ferry"};
  }
  MoveAuthorization Delegated(const std::string& user, const std::string& password) {
    MoveAuthorization a;
    a.mechanism = AuthorizationMechanism::kCredentials;
    a.user = user;
    a.password = password;
    return a;
  }
  std::string Basic(const std::string& text) {
    return "Basic " + base::Base64Encode(
                          std::span(reinterpret_cast<const uint8_t*>(text.data()), text.size()));
  }

  config::HostSettings host_;
  std::unique_ptr<TestAccount> account_;
};

TEST_F(CredentialModeTest, DestinationChecksDelegatedPassword) {
  auto authorizer = MakeCredentialMoveAuthorizer(host_);
  ASSERT_TRUE(authorizer.has_value());
  const std::string& user = account_->user();
  MoveAuthorization good = Delegated(user, kPassword);
  auto right = (*authorizer)->Authorize(&good, transport::TlsPeer{});
  ASSERT_TRUE(right.has_value()) << right.error().message();
  EXPECT_EQ(*right, user);

  MoveAuthorization wrong = Delegated(user, "not-it");
  auto refused = (*authorizer)->Authorize(&wrong, transport::TlsPeer{});
  ASSERT_FALSE(refused.has_value());
  EXPECT_EQ(refused.error().code(), base::Code::kPermissionDenied);
  EXPECT_EQ(refused.error().message().rfind("authentication failed for user " + user + " at ", 0),
            0u)
      << refused.error().message();

  TestAccount other(kPassword);
  ASSERT_TRUE(other.ok());
  MoveAuthorization stranger = Delegated(other.user(), kPassword);
  auto not_admin = (*authorizer)->Authorize(&stranger, transport::TlsPeer{});
  ASSERT_FALSE(not_admin.has_value());
  EXPECT_EQ(not_admin.error().message(),
            other.user() + " may not move VMs to this host (migration.admins: " + user +
                ", @no-such-group-ferry)");
}

TEST_F(CredentialModeTest, DestinationRefusesNothingAndKerberos) {
  auto authorizer = MakeCredentialMoveAuthorizer(host_);
  ASSERT_TRUE(authorizer.has_value());
  auto none = (*authorizer)->Authorize(nullptr, transport::TlsPeer{});
  ASSERT_FALSE(none.has_value());
  EXPECT_EQ(none.error().code(), base::Code::kPermissionDenied);
  EXPECT_NE(none.error().message().find("this host requires delegated credentials "
                                        "(migration.authentication = \"credssp\")"),
            std::string::npos)
      << none.error().message();
  MoveAuthorization kerberos;
  kerberos.mechanism = AuthorizationMechanism::kKerberos;
  kerberos.kerberos_token = {1, 2, 3};
  auto token = (*authorizer)->Authorize(&kerberos, transport::TlsPeer{});
  ASSERT_FALSE(token.has_value());
  EXPECT_NE(token.error().message().find("sent a Kerberos token"), std::string::npos)
      << token.error().message();
}

TEST_F(CredentialModeTest, ApiAuthenticatorLocalAndRemote) {
  auto logons = std::make_shared<LogonSessions>(LogonSessions::Options{
      .admins = host_.admins, .ttl_ms = kTtlMs, .pam = {}, .now_unix_ms = {}});
  auto authenticator = MakeApiAuthenticator(host_, logons);
  ASSERT_TRUE(authenticator.has_value());
  const ApiAuthenticator& api = **authenticator;
  const std::string& user = account_->user();
  EXPECT_EQ(api.Challenge(), "Basic realm=\"ferry\"");

  // Local: no header is root without credentials; --as needs a log-on.
  auto root = api.Authenticate({}, ApiTransport{});
  ASSERT_TRUE(root.has_value());
  EXPECT_EQ(root->admin, "root");
  EXPECT_EQ(root->credentials, nullptr);
  auto unknown = api.Authenticate({{kLogonUserHeader, user}}, ApiTransport{});
  ASSERT_FALSE(unknown.has_value());
  EXPECT_EQ(unknown.error().message(),
            "no log-on of " + user + " at this host: run ferry logon " + user + " here first");
  ASSERT_TRUE(logons->LogOn(user, auth::Secret(kPassword)).has_value());
  auto as = api.Authenticate({{kLogonUserHeader, user}}, ApiTransport{});
  ASSERT_TRUE(as.has_value()) << as.error().message();
  EXPECT_EQ(as->admin, user);
  ASSERT_NE(as->credentials, nullptr);
  EXPECT_EQ(as->credentials->Authorize(transport::TlsPeer{})->password, kPassword);

  // Remote: the request's own Basic credentials, nothing else.
  ApiTransport remote;
  remote.remote = true;
  auto bare = api.Authenticate({{kLogonUserHeader, user}}, remote);
  ASSERT_FALSE(bare.has_value());
  EXPECT_EQ(bare.error().code(), base::Code::kPermissionDenied);
  auto basic = api.Authenticate({{kAuthorizationHeader, Basic(user + ":" + kPassword)}}, remote);
  ASSERT_TRUE(basic.has_value()) << basic.error().message();
  EXPECT_TRUE(basic->remote);
  EXPECT_EQ(basic->admin, user);
  ASSERT_NE(basic->credentials, nullptr);
  auto bad = api.Authenticate({{kAuthorizationHeader, Basic(user + ":nope")}}, remote);
  ASSERT_FALSE(bad.has_value());
  EXPECT_EQ(bad.error().message(), "authentication failed for user " + user);
}

TEST(LogonRoutesTest, Match) {
  EXPECT_EQ(MatchRoute("POST", "/v1/logon").id, RouteId::kLogon);
  EXPECT_EQ(MatchRoute("GET", "/v1/logon").id, RouteId::kMethodNotAllowed);
  Route off = MatchRoute("DELETE", "/v1/logon/alice");
  EXPECT_EQ(off.id, RouteId::kLogoff);
  EXPECT_EQ(off.name, "alice");
  EXPECT_EQ(MatchRoute("POST", "/v1/logon/alice").allow, "DELETE");
  EXPECT_EQ(MatchRoute("GET", "/v1/logons").id, RouteId::kListLogons);
  EXPECT_EQ(MatchRoute("GET", "/v1/logons/x").id, RouteId::kNotFound);
}

}  // namespace
}  // namespace appliance
