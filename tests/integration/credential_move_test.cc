// credssp mode end to end (docs/credentials.md): two ferryds on this machine
// (A on 127.0.0.1, B on 127.0.0.2) with migration.authentication =
// "credssp", real local accounts (PAM service "ferry") and one small VM
// moved by an admin's delegated password, Hyper-V's CredSSP behaviour:
//   - no log-on at the source: the move is refused there, the VM stays;
//   - a log-on at A (a wrong password refused first) lets A move it to B;
//   - moving it back from B needs a log-on at B (refused until then);
//   - a user who is an admin at A but not at B is refused by B.
// One pair and one VM for all checks: each ferryd and guest costs seconds.
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "support/ferryd_harness.h"
#include "support/local_accounts.h"

namespace ferry_it {
namespace {

constexpr const char* kPamServiceFile = "/etc/pam.d/ferry";

class CredentialMoveTest : public FerryTest {
 protected:
  // Runs `ferry --socket SOCKET args...` with `input` on its stdin.
  ProcessResult FerryWithInput(const std::string& socket, const std::vector<std::string>& args,
                               const std::string& input) {
    std::string command = "printf '%s\\n' \"$FERRY_TEST_INPUT\" | " + std::string(FERRY_BIN_DIR) +
                          "/ferry --socket '" + socket + "'";
    for (const std::string& a : args) command += " '" + a + "'";
    return RunProcess({"/bin/sh", "-c", command}, {"FERRY_TEST_INPUT=" + input}, 60000);
  }
  ProcessResult LogOn(const std::string& socket, const std::string& user,
                      const std::string& password) {
    return FerryWithInput(socket, {"logon", user, "--password-stdin"}, password);
  }

  // "A" or "B": the one host that lists the VM, running; else both states.
  std::string Where(const std::string& vm, ExtraFerryd& b) {
    auto state = [&](const ProcessResult& r) -> std::string {
      auto j = nlohmann::json::parse(r.out, nullptr, false);
      if (j.is_discarded() || !j.contains("vms")) return "(no answer: " + r.err + ")";
      for (const auto& v : j["vms"])
        if (v.value("name", "") == vm) return v.value("state", "?");
      return "absent";
    };
    const std::string a = state(Ferry({"--json", "vm", "list"}));
    const std::string at_b = state(b.Ferry({"--json", "vm", "list"}));
    if (a == "running" && at_b == "absent") return "A";
    if (at_b == "running" && a == "absent") return "B";
    return "A: " + a + ", B: " + at_b;
  }
};

std::string CredSspToml(const std::vector<std::string>& admins) {
  std::string list;
  for (const std::string& a : admins) list += (list.empty() ? "\"" : ", \"") + a + "\"";
  return "authentication = \"credssp\"\nadmins = [" + list + "]\n";
}

TEST_F(CredentialMoveTest, DelegatedPasswordMovesLikeHyperVCredSsp) {
  FERRY_SKIP_WITHOUT_ROOT();
  if (::access(kPamServiceFile, R_OK) != 0)
    GTEST_SKIP() << kPamServiceFile
                 << " is missing: scripts/setup.sh installs it from scripts/pam.d/ferry";
  ferry_test::TestAccount alice("alice-Pw-1");  // admin at A and at B
  ferry_test::TestAccount bob("bob-Pw-2");      // admin at A only
  ASSERT_TRUE(alice.ok() && bob.ok());

  const uint16_t port_a = FreePort("127.0.0.1"), port_b = FreePort("127.0.0.2");
  const std::string host_a = "127.0.0.1:" + std::to_string(port_a);
  const std::string host_b = "127.0.0.2:" + std::to_string(port_b);
  std::ofstream(config(), std::ios::trunc)
      << "storage_root = \"" << storage() << "\"\n"
      << "api_socket = \"" << socket() << "\"\n"
      << "guest_dir = \"" << FERRY_GUEST_DIR << "\"\n"
      << LiveMoveHostToml(host_a) << CredSspToml({alice.user(), bob.user()});
  ExtraFerryd b(dir(), "b");
  b.WriteConfig(LiveMoveHostToml(host_b) + CredSspToml({alice.user()}));
  StartFerryd();
  b.Start();

  const std::string vm = "cred";
  ASSERT_TRUE(CreateAndStart(
      vm, {"--guest", "memory", "--memory", "32M", "--cmdline", "ws_mib=4 rate=100 hb_ms=50"}));
  WaitForHeartbeats(vm, "HB", 3);
  auto move = [&](auto& ferry, const std::string& as, const std::string& to,
                  const std::string& dest) {
    std::vector<std::string> args;
    if (!as.empty()) args = {"--as", as};
    for (const char* a : {"move-vm", "cred"}) args.push_back(a);
    for (const std::string& a :
         {to, std::string("--include-storage"), std::string("--destination-storage-path"), dest})
      args.push_back(a);
    return ferry(args);
  };
  auto at_a = [&](const std::vector<std::string>& args) { return Ferry(args); };
  auto at_b = [&](const std::vector<std::string>& args) { return b.Ferry(args); };

  // 1. No log-on at A: refused by A itself, before any connection to B.
  ProcessResult r = move(at_a, "", host_b, dir() + "/b-disks");
  EXPECT_EQ(r.exit_code, 1) << r.out << r.err;
  EXPECT_NE(r.err.find("no credentials are available for delegation"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("ferry logon USER"), std::string::npos) << r.err;
  // --as names a user who has not logged on here.
  r = move(at_a, alice.user(), host_b, dir() + "/b-disks");
  EXPECT_EQ(r.exit_code, 1) << r.out << r.err;
  EXPECT_NE(r.err.find("no log-on of " + alice.user() + " at this host"), std::string::npos)
      << r.err;
  EXPECT_EQ(Where(vm, b), "A");

  // 2. Log-on at A: a wrong password is refused, the right one kept.
  r = LogOn(socket(), alice.user(), "wrong-password");
  EXPECT_EQ(r.exit_code, 1) << r.out << r.err;
  EXPECT_NE(r.err.find("authentication failed for user " + alice.user()), std::string::npos)
      << r.err;
  r = LogOn(socket(), alice.user(), "alice-Pw-1");
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_NE(r.out.find(alice.user() + " logged on at this host until"), std::string::npos) << r.out;
  r = Ferry({"logons"});
  EXPECT_NE(r.out.find(alice.user()), std::string::npos) << r.out;
  EXPECT_EQ(r.out.find("alice-Pw-1"), std::string::npos) << "a password in the list: " << r.out;

  // 3. Moved to B with alice's delegated password.
  r = move(at_a, alice.user(), host_b, dir() + "/b-disks");
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_NE(r.out.find("moved vm cred to " + host_b), std::string::npos) << r.out;
  WaitFor("cred running at B only", 30000, [&] { return Where(vm, b) == "B"; });
  EXPECT_EQ(Where(vm, b), "B");

  // 4. Back to A from B: alice logged on at A, not at B, so B has nothing
  //    to delegate (Hyper-V's well-known case) until she logs on at B.
  r = move(at_b, alice.user(), host_a, dir() + "/a-back");
  EXPECT_EQ(r.exit_code, 1) << r.out << r.err;
  EXPECT_NE(r.err.find("no log-on of " + alice.user() + " at this host: run ferry logon"),
            std::string::npos)
      << r.err;
  EXPECT_EQ(Where(vm, b), "B");
  r = LogOn(b.socket(), alice.user(), "alice-Pw-1");
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  r = move(at_b, alice.user(), host_a, dir() + "/a-back");
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  WaitFor("cred running at A only again", 30000, [&] { return Where(vm, b) == "A"; });
  EXPECT_EQ(Where(vm, b), "A");

  // 5. bob is an admin at A, not at B: A delegates, B refuses naming its
  //    admin list; the VM keeps running at A.
  r = LogOn(socket(), bob.user(), "bob-Pw-2");
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  r = move(at_a, bob.user(), host_b, dir() + "/b-disks-2");
  EXPECT_EQ(r.exit_code, 1) << r.out << r.err;
  EXPECT_NE(r.err.find(bob.user() +
                       " may not move VMs to this host (migration.admins: " + alice.user() + ")"),
            std::string::npos)
      << r.err;
  EXPECT_EQ(Where(vm, b), "A");

  // 6. Log-off wipes the log-on: --as alice is refused again at A.
  r = Ferry({"logoff", alice.user()});
  EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
  r = move(at_a, alice.user(), host_b, dir() + "/b-disks-3");
  EXPECT_EQ(r.exit_code, 1) << r.out << r.err;
  EXPECT_NE(r.err.find("no log-on of " + alice.user()), std::string::npos) << r.err;
  EXPECT_EQ(Where(vm, b), "A");
}

}  // namespace
}  // namespace ferry_it
