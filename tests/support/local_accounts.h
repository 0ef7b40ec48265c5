// TestAccount: a local user (and optionally a group) that exists for one
// test, for code that checks passwords through PAM and group membership
// through NSS. Created with the shadow tools (useradd, chpasswd, groupadd,
// gpasswd) and removed with userdel/groupdel when the object goes away.
//
// Names are "ferrytest-<pid>-<random>" (groups end in "g"): the pid lets the
// next run find accounts a crashed run left behind and remove those whose
// process is gone, while a run still in progress keeps its own. Creating
// accounts needs root: skip with FERRY_SKIP_WITHOUT_ROOT() first.
#pragma once

#include <gtest/gtest.h>

#include <string>
#include <string_view>
#include <vector>

namespace ferry_test {

// Why this process cannot create local accounts ("" when it can: root).
std::string LocalAccountsUnusableReason();

class TestAccount {
 public:
  enum class Group {
    kNone,           // the user's primary group is the system default (-N)
    kSupplementary,  // a new group, the user added to it (gpasswd -a)
    kPrimary,        // a new group, made the user's primary group (-g)
  };

  // Creates the user with this password; a failure is a gtest failure and
  // ok() is then false. The first TestAccount of a process first removes
  // stale ferrytest-* accounts of processes that no longer exist.
  explicit TestAccount(std::string_view password, Group group = Group::kNone);
  ~TestAccount();
  TestAccount(const TestAccount&) = delete;
  TestAccount& operator=(const TestAccount&) = delete;

  bool ok() const { return ok_; }
  const std::string& user() const { return user_; }
  // The test group's name; "" for Group::kNone.
  const std::string& group() const { return group_; }

  // Changes to the account, each a gtest failure if the tool fails.
  void Lock();    // usermod -L: the password hash is disabled
  void Expire();  // chage -E 0: the account expired on 1970-01-01

 private:
  std::string user_;
  std::string group_;
  bool user_created_ = false;
  bool group_created_ = false;
  bool ok_ = false;
};

// Runs a program (argv[0] is a full path) with `input` on its stdin; "" when
// it exits 0, else a message with its exit status and output.
std::string RunTool(const std::vector<std::string>& argv, std::string_view input = {});

}  // namespace ferry_test

// In a test body or SetUp(): skips the test unless local accounts can be made.
#define FERRY_SKIP_WITHOUT_ROOT()                                                 \
  do {                                                                            \
    if (std::string ferry_root_why = ::ferry_test::LocalAccountsUnusableReason(); \
        !ferry_root_why.empty())                                                  \
      GTEST_SKIP() << ferry_root_why;                                             \
  } while (0)
