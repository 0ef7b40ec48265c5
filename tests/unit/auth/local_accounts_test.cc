// VerifyPassword, UserInGroup and IsAuthorized against real local accounts
// (created per test, removed after) and the real PAM modules, with ferry's
// shipped service file in a private PAM configuration directory; and the
// wiping rules of Secret.
//
// The shipped file's "@include common-auth" / "common-account" resolve in
// /etc/pam.d even with a private directory (Linux-PAM 1.5), so these tests
// check the file against this host's own stack — Debian's pam_unix here.
// Each refused password costs pam_unix's fail delay (about 2 s): that delay
// is what ferryd gets too, so the tests keep it.
#include <gtest/gtest.h>

#include <concepts>
#include <ostream>
#include <string>
#include <thread>
#include <type_traits>
#include <vector>

#include "auth/local_accounts.h"
#include "auth/secret.h"
#include "support/files.h"
#include "support/local_accounts.h"
#include "support/temp_dir.h"

namespace auth {
namespace {

using ferry_test::TestAccount;

constexpr char kPassword[] = "correct horse 7!";

class LocalAccountsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    FERRY_SKIP_WITHOUT_ROOT();
    ASSERT_FALSE(pam_dir_.path().empty());
    // The file ferry installs as /etc/pam.d/ferry, as shipped.
    std::string shipped = ferry_test::ReadFile(FERRY_PAM_SERVICE_FILE);
    ASSERT_NE(shipped.find("@include common-auth"), std::string::npos) << shipped;
    ferry_test::WriteFile(pam_dir_ / "ferry", shipped);
    options_.config_dir = pam_dir_.path();
  }

  ferry_test::TempDir pam_dir_{"ferry-pam"};
  PamOptions options_;
};

TEST_F(LocalAccountsTest, RightPasswordIsAccepted) {
  TestAccount account(kPassword);
  ASSERT_TRUE(account.ok());
  base::Status status = VerifyPassword(account.user(), Secret(kPassword), options_);
  EXPECT_TRUE(status.has_value()) << status.error().ToString();
}

TEST_F(LocalAccountsTest, WrongPasswordIsRefused) {
  TestAccount account(kPassword);
  ASSERT_TRUE(account.ok());
  base::Status status = VerifyPassword(account.user(), Secret("correct horse 8!"), options_);
  ASSERT_FALSE(status.has_value());
  EXPECT_EQ(status.error().code(), base::Code::kPermissionDenied);
  EXPECT_EQ(status.error().message(), "authentication failed for user " + account.user());
}

TEST_F(LocalAccountsTest, UnknownUserGetsTheSameMessageAsAWrongPassword) {
  const std::string user = "ferrytest-nosuchuser";
  base::Status status = VerifyPassword(user, Secret(kPassword), options_);
  ASSERT_FALSE(status.has_value());
  EXPECT_EQ(status.error().code(), base::Code::kPermissionDenied);
  EXPECT_EQ(status.error().message(), "authentication failed for user " + user);
}

TEST_F(LocalAccountsTest, EmptyPasswordIsRefusedEvenWithNullok) {
  TestAccount account(kPassword);
  ASSERT_TRUE(account.ok());
  ASSERT_EQ(ferry_test::RunTool({"/usr/bin/passwd", "-d", account.user()}), "");
  base::Status status = VerifyPassword(account.user(), Secret(), options_);
  ASSERT_FALSE(status.has_value());
  EXPECT_EQ(status.error().message(), "authentication failed for user " + account.user());
}

TEST_F(LocalAccountsTest, LockedAccountIsRefused) {
  TestAccount account(kPassword);
  ASSERT_TRUE(account.ok());
  account.Lock();
  base::Status status = VerifyPassword(account.user(), Secret(kPassword), options_);
  ASSERT_FALSE(status.has_value());
  EXPECT_EQ(status.error().code(), base::Code::kPermissionDenied);
  // A locked hash never matches, so this is an authentication failure.
  EXPECT_EQ(status.error().message(), "authentication failed for user " + account.user());
}

TEST_F(LocalAccountsTest, ExpiredAccountIsRefusedWithItsMessage) {
  TestAccount account(kPassword);
  ASSERT_TRUE(account.ok());
  account.Expire();
  base::Status status = VerifyPassword(account.user(), Secret(kPassword), options_);
  ASSERT_FALSE(status.has_value());
  EXPECT_EQ(status.error().code(), base::Code::kPermissionDenied);
  EXPECT_EQ(status.error().message(), "account " + account.user() + " is locked or expired");
}

// Each call has its own PAM handle: concurrent checks of the same account
// all see the right answer.
TEST_F(LocalAccountsTest, ConcurrentChecksAreIndependent) {
  TestAccount account(kPassword);
  ASSERT_TRUE(account.ok());
  std::vector<base::Status> results(4);
  std::vector<std::thread> threads;
  for (size_t i = 0; i < results.size(); ++i) {
    threads.emplace_back(
        [&, i] { results[i] = VerifyPassword(account.user(), Secret(kPassword), options_); });
  }
  for (std::thread& thread : threads) thread.join();
  for (const base::Status& status : results) {
    EXPECT_TRUE(status.has_value()) << status.error().ToString();
  }
}

TEST_F(LocalAccountsTest, MissingServiceFileIsAFailedPrecondition) {
  options_.service = "ferry-missing";
  base::Status status = VerifyPassword("root", Secret(kPassword), options_);
  ASSERT_FALSE(status.has_value());
  EXPECT_EQ(status.error().code(), base::Code::kFailedPrecondition);
  EXPECT_NE(status.error().message().find(pam_dir_ / "ferry-missing"), std::string::npos)
      << status.error().message();
  EXPECT_NE(status.error().message().find("missing"), std::string::npos);
}

TEST_F(LocalAccountsTest, ServiceWithAModuleThatDoesNotLoadIsAFailedPrecondition) {
  ferry_test::WriteFile(pam_dir_ / "ferry-broken",
                        "auth required pam_ferry_no_such_module.so\n"
                        "account required pam_permit.so\n");
  options_.service = "ferry-broken";
  TestAccount account(kPassword);
  ASSERT_TRUE(account.ok());
  base::Status status = VerifyPassword(account.user(), Secret(kPassword), options_);
  ASSERT_FALSE(status.has_value());
  EXPECT_EQ(status.error().code(), base::Code::kFailedPrecondition);
  EXPECT_NE(status.error().message().find(pam_dir_ / "ferry-broken"), std::string::npos)
      << status.error().message();
}

TEST_F(LocalAccountsTest, BadArgumentsAreRefusedBeforePam) {
  EXPECT_EQ(VerifyPassword("", Secret(kPassword), options_).error().code(),
            base::Code::kInvalidArgument);
  EXPECT_EQ(VerifyPassword(std::string("root\0x", 6), Secret(kPassword), options_).error().code(),
            base::Code::kInvalidArgument);
  EXPECT_EQ(VerifyPassword("root", Secret(std::string_view("a\0b", 3)), options_).error().code(),
            base::Code::kInvalidArgument);
  options_.service = "../ferry";
  EXPECT_EQ(VerifyPassword("root", Secret(kPassword), options_).error().code(),
            base::Code::kInvalidArgument);
}

TEST_F(LocalAccountsTest, UserInPrimaryGroup) {
  TestAccount account(kPassword, TestAccount::Group::kPrimary);
  ASSERT_TRUE(account.ok());
  base::Result<bool> member = UserInGroup(account.user(), account.group());
  ASSERT_TRUE(member.has_value()) << member.error().ToString();
  EXPECT_TRUE(*member);
}

TEST_F(LocalAccountsTest, UserInSupplementaryGroup) {
  TestAccount account(kPassword, TestAccount::Group::kSupplementary);
  ASSERT_TRUE(account.ok());
  base::Result<bool> member = UserInGroup(account.user(), account.group());
  ASSERT_TRUE(member.has_value()) << member.error().ToString();
  EXPECT_TRUE(*member);
}

TEST_F(LocalAccountsTest, UserNotInGroup) {
  TestAccount member(kPassword, TestAccount::Group::kSupplementary);
  TestAccount outsider(kPassword);
  ASSERT_TRUE(member.ok() && outsider.ok());
  base::Result<bool> result = UserInGroup(outsider.user(), member.group());
  ASSERT_TRUE(result.has_value()) << result.error().ToString();
  EXPECT_FALSE(*result);
}

TEST_F(LocalAccountsTest, MissingGroupOrUserIsNotFound) {
  TestAccount account(kPassword);
  ASSERT_TRUE(account.ok());
  base::Result<bool> group = UserInGroup(account.user(), "ferrytest-nosuchgroup");
  ASSERT_FALSE(group.has_value());
  EXPECT_EQ(group.error().code(), base::Code::kNotFound);
  EXPECT_EQ(group.error().message(), "group ferrytest-nosuchgroup does not exist");
  base::Result<bool> user = UserInGroup("ferrytest-nosuchuser", "root");
  ASSERT_FALSE(user.has_value());
  EXPECT_EQ(user.error().code(), base::Code::kNotFound);
  EXPECT_EQ(user.error().message(), "user ferrytest-nosuchuser does not exist");
}

TEST_F(LocalAccountsTest, IsAuthorizedByUserName) {
  TestAccount account(kPassword);
  ASSERT_TRUE(account.ok());
  EXPECT_TRUE(IsAuthorized(account.user(), {"someone", account.user()}));
  EXPECT_FALSE(IsAuthorized(account.user(), {"someone", account.user() + "x"}));
  EXPECT_FALSE(IsAuthorized(account.user(), {}));
  EXPECT_FALSE(IsAuthorized("", {"", "@"}));
}

TEST_F(LocalAccountsTest, IsAuthorizedByGroup) {
  TestAccount admin(kPassword, TestAccount::Group::kSupplementary);
  TestAccount other(kPassword);
  ASSERT_TRUE(admin.ok() && other.ok());
  const std::string entry = "@" + admin.group();
  EXPECT_TRUE(IsAuthorized(admin.user(), {entry}));
  EXPECT_FALSE(IsAuthorized(other.user(), {entry}));
  // A group that does not exist grants nothing and does not stop the check.
  EXPECT_FALSE(IsAuthorized(admin.user(), {"@ferrytest-nosuchgroup"}));
  EXPECT_TRUE(IsAuthorized(admin.user(), {"@ferrytest-nosuchgroup", entry}));
  // A group entry is not a user entry, and a user entry is not a group.
  EXPECT_FALSE(IsAuthorized(admin.user(), {admin.group(), "@" + admin.user()}));
}

// Secret: what is observable without undefined behaviour. The destructor
// runs Clear() before freeing, and reading freed memory to prove it would be
// UB; Clear() wipes in place and keeps the buffer, so that part is checked.
template <typename T>
concept Streamable = requires(std::ostream& out, const T& value) {
  out << value;
};
static_assert(!Streamable<Secret>, "a Secret must not be printable");
static_assert(!std::is_copy_constructible_v<Secret> && !std::is_copy_assignable_v<Secret>);
static_assert(std::is_nothrow_move_constructible_v<Secret>);
static_assert(!std::is_convertible_v<Secret, std::string_view>);

TEST(SecretTest, HoldsTheBytes) {
  Secret secret(std::string_view("p\0w", 3));
  EXPECT_EQ(secret.size(), 3u);
  EXPECT_EQ(secret.view(), std::string_view("p\0w", 3));
  EXPECT_TRUE(Secret().empty());
}

TEST(SecretTest, ConstructingFromAStringWipesIt) {
  std::string source = "a password long enough to live on the heap";
  Secret secret(std::move(source));
  EXPECT_EQ(secret.view(), "a password long enough to live on the heap");
  EXPECT_TRUE(source.empty());  // NOLINT(bugprone-use-after-move): wiped and cleared
}

TEST(SecretTest, MovedFromIsEmptyAndTheBytesWereNotCopied) {
  Secret first("hunter2");
  const char* bytes = first.view().data();
  Secret second(std::move(first));
  EXPECT_EQ(first.size(), 0u);  // NOLINT(bugprone-use-after-move)
  EXPECT_TRUE(first.view().empty());
  EXPECT_EQ(second.view(), "hunter2");
  EXPECT_EQ(second.view().data(), bytes);

  Secret third("other");
  third = std::move(second);
  EXPECT_TRUE(second.empty());  // NOLINT(bugprone-use-after-move)
  EXPECT_EQ(third.view(), "hunter2");
}

TEST(SecretTest, ClearWipesTheBytesInPlace) {
  Secret secret("hunter2");
  const char* bytes = secret.view().data();
  secret.Clear();
  EXPECT_TRUE(secret.empty());
  for (size_t i = 0; i < 7; ++i) EXPECT_EQ(bytes[i], '\0') << "byte " << i;
}

}  // namespace
}  // namespace auth
