// `ferry --host` against a real ferryd's api_listen (HTTPS), the way an
// admin on a management host uses it: credssp mode, a local account made
// for the test, HTTP Basic inside TLS, the server pinned by the fingerprint
// `ferry host certificate show` prints on that host. No VM is started (no
// KVM needed). Kerberos over --host is tested once the Kerberos mode is
// merged (tests/support/samba_dc.h).
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "support/ferryd_harness.h"
#include "support/local_accounts.h"
#include "support/temp_dir.h"

namespace ferry_it {
namespace {

constexpr const char* kApiAddress = "127.0.0.9";
constexpr const char* kPassword = "Remote-Api-Test-1";

class RemoteApiTest : public ::testing::Test {
 protected:
  void SetUp() override {
    FERRY_SKIP_WITHOUT_ROOT();
    account_ = std::make_unique<ferry_test::TestAccount>(kPassword);
    ASSERT_TRUE(account_->ok());
    host_ = std::make_unique<ExtraFerryd>(dir_.path(), "host1.ferry.test");
    address_ = std::string(kApiAddress) + ":" + std::to_string(FreePort(kApiAddress));
    host_->WriteConfig("api_listen = \"" + address_ +
                       "\"\n[migration]\nauthentication = \"credssp\"\nadmins = [\"" +
                       account_->user() + "\"]\n");
    // Until the credential mode is merged its factory refuses to start:
    // ferryd says so at once, where it otherwise keeps running.
    ProcessResult probe =
        RunProcess({std::string(FERRY_BIN_DIR) + "/ferryd", "--config", host_->config()}, {}, 3000);
    if (!probe.timed_out && probe.err.find("being built") != std::string::npos)
      GTEST_SKIP() << "credssp mode is not built in this tree: " << probe.err;
    ASSERT_TRUE(probe.timed_out) << "ferryd exited: " << probe.err;
    ASSERT_NO_FATAL_FAILURE(host_->Start());
    nlohmann::json host = host_->FerryJson({"host", "certificate", "show"});
    fingerprint_ = host["tls"].value("fingerprint", "");
    ASSERT_FALSE(fingerprint_.empty()) << host.dump();
  }
  void TearDown() override {
    host_.reset();
    account_.reset();
  }

  // `ferry --host <address> args...`, the password on stdin; no --socket.
  ProcessResult Remote(const std::vector<std::string>& args, const std::string& password) {
    std::vector<std::string> argv = {"/bin/sh",
                                     "-c",
                                     "printf '%s\\n' \"$FERRY_TEST_PASSWORD\" | exec \"$0\" \"$@\"",
                                     std::string(FERRY_BIN_DIR) + "/ferry",
                                     "--host",
                                     address_};
    argv.insert(argv.end(), args.begin(), args.end());
    return RunProcess(argv, {"FERRY_TEST_PASSWORD=" + password}, 30000);
  }
  std::vector<std::string> LogOn(std::vector<std::string> args) const {
    args.insert(args.end(), {"--user", account_->user(), "--password-stdin"});
    return args;
  }

  ferry_test::TempDir dir_{"ferry-remote"};
  std::unique_ptr<ferry_test::TestAccount> account_;
  std::unique_ptr<ExtraFerryd> host_;
  std::string address_;
  std::string fingerprint_;
};

TEST_F(RemoteApiTest, HostShowWorksWithTheRightPassword) {
  ProcessResult r =
      Remote(LogOn({"--fingerprint", fingerprint_, "--json", "host", "show"}), kPassword);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto host = nlohmann::json::parse(r.out, nullptr, false);
  ASSERT_FALSE(host.is_discarded()) << r.out;
  EXPECT_EQ(host["tls"].value("fingerprint", ""), fingerprint_);
}

TEST_F(RemoteApiTest, WrongPasswordIsRefused) {
  ProcessResult r = Remote(LogOn({"--fingerprint", fingerprint_, "host", "show"}), "not-it");
  EXPECT_EQ(r.exit_code, 1) << r.out << r.err;
  EXPECT_FALSE(r.err.empty());
  EXPECT_EQ(r.out.find("fingerprint"), std::string::npos) << r.out;
}

TEST_F(RemoteApiTest, NeitherCaNorFingerprintIsAUsageError) {
  ProcessResult r = Remote(LogOn({"host", "show"}), kPassword);
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_NE(r.err.find("--fingerprint"), std::string::npos) << r.err;
}

TEST_F(RemoteApiTest, WrongFingerprintIsRefusedNamingTheOneSeen) {
  const std::string wrong =
      "SHA256:00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF:00:11:22:33:44:55:66:77:88:99:AA:"
      "BB:CC:DD:EE:FF";
  ProcessResult r = Remote(LogOn({"--fingerprint", wrong, "host", "show"}), kPassword);
  EXPECT_EQ(r.exit_code, 1) << r.err;
  EXPECT_NE(r.err.find(fingerprint_), std::string::npos) << r.err;
}

}  // namespace
}  // namespace ferry_it
