// Live moves with migration.authentication = "kerberos", end to end: a real
// Samba AD DC (tests/support/samba_dc.h), two ferryds whose certificates
// carry their Kerberos host names (host1.ferry.test on 127.0.0.1,
// host2.ferry.test on 127.0.0.2), each with its own keytab, and `ferry
// move-vm` run with an admin's ticket (KRB5CCNAME). One DC and one pair of
// ferryds serve every check, in order:
//   1. alice, with Kerberos-only constrained delegation host1$ ->
//      ferry-migration/host2.ferry.test: the VM moves;
//   2. the delegation removed: the move is refused, naming host1$ and the
//      service, and the VM runs on at host1;
//   3. bob (an admin at host1 but not at host2): refused at the destination;
//   4. no ticket at all: ferryd says to run kinit.
#include <stdlib.h>
#include <sys/stat.h>

#include <fstream>
#include <iostream>
#include <memory>

#include "support/ferryd_harness.h"
#include "support/kvm.h"
#include "support/samba_dc.h"
#include "transport/tls.h"

namespace ferry_it {
namespace {

using ferry_test::SambaDc;

constexpr char kPassword[] = "Ferry-Pass-1234!";

class KerberosMoveTest : public FerryTest {
 protected:
  static void SetUpTestSuite() {
    skip_reason_ = SambaDc::UnavailableReason();
    if (!skip_reason_.empty()) return;
    dc_ = SambaDc::Start();
    if (!dc_) return;
    for (const char* user : {"alice", "bob"}) ASSERT_TRUE(dc_->CreateUser(user, kPassword));
    for (const char* host : {"host1", "host2"}) ASSERT_TRUE(dc_->CreateComputer(host));
  }
  static void TearDownTestSuite() { dc_.reset(); }

  void SetUp() override {
    FERRY_SKIP_WITHOUT_KVM();
    if (!skip_reason_.empty()) GTEST_SKIP() << skip_reason_;
    ASSERT_NE(dc_, nullptr) << "the Samba DC did not start (see the suite's failure)";
    FerryTest::SetUp();
    // The ferryds' replay caches go into the test directory (they inherit
    // this environment), not /var/tmp.
    std::string rcache = dir() + "/rcache";
    ::mkdir(rcache.c_str(), 0700);
    ::setenv("KRB5RCACHEDIR", rcache.c_str(), 1);
    api_port_ = FreePort(Address(1));
    for (int i : {1, 2}) {
      const std::string host = "host" + std::to_string(i);
      ports_[i] = FreePort(Address(i));
      // The directory name is the certificate's CN (test_tls.h): the host's
      // Kerberos name.
      hosts_[i] = std::make_unique<ExtraFerryd>(dir(), host + "." + dc_->dns_domain());
      std::string keytab = dc_->ExportKeytab(host + "$");
      ASSERT_FALSE(keytab.empty());
      // host1 also serves its API over HTTPS, for a management host.
      const std::string api =
          i == 1 ? "api_listen = \"" + Address(1) + ":" + std::to_string(api_port_) + "\"\n" : "";
      hosts_[i]->WriteConfig(
          api + LiveMoveHostToml(Address(i) + ":" + std::to_string(ports_[i])) +
          "authentication = \"kerberos\"\n" + "admins = [\"" + dc_->Principal("alice") +
          (i == 1 ? "\", \"" + dc_->Principal("bob") : std::string()) + "\"]\n" +
          "[kerberos]\nkeytab = \"" + keytab + "\"\nservice_principal = \"" +
          dc_->MigrationPrincipal(host) + "\"\nkrb5_config = \"" + dc_->krb5_config() + "\"\n");
    }
  }
  void TearDown() override {
    for (auto& host : hosts_) host.reset();  // workers and ferryds, before the directory goes
    if (!dir().empty()) FerryTest::TearDown();
    ::unsetenv("KRB5RCACHEDIR");
  }

  static std::string Address(int i) { return "127.0.0." + std::to_string(i); }

  // `ferry move-vm vm host2` at host1 with the admin tickets of ccache ("":
  // none).
  ProcessResult MoveToHost2(const std::string& vm, const std::string& ccache) {
    std::vector<std::string> env = {"KRB5_CONFIG=" + dc_->krb5_config()};
    env.push_back("KRB5CCNAME=" + (ccache.empty() ? "FILE:" + dir() + "/no-ccache" : ccache));
    ProcessResult r =
        RunProcess({FERRY_BIN_DIR "/ferry", "--socket", hosts_[1]->socket(), "move-vm", vm,
                    Address(2) + ":" + std::to_string(ports_[2]), "--include-storage",
                    "--destination-storage-path", dir() + "/host2-disks"},
                   env, 120000);
    std::cout << "ferry move-vm " << vm << " -> exit " << r.exit_code << "\n" << r.out << r.err;
    return r;
  }

  // A refused move: exit 1 naming `reason`, and the VM runs on at host1.
  void ExpectRefused(const std::string& vm, const ProcessResult& r, const std::string& reason) {
    EXPECT_EQ(r.exit_code, 1) << r.out << r.err;
    EXPECT_NE((r.out + r.err).find(reason), std::string::npos)
        << "want \"" << reason << "\" in: " << r.out << r.err;
    EXPECT_EQ(hosts_[1]->State(vm), "running");
    EXPECT_EQ(hosts_[2]->State(vm), "");
  }

  static inline std::string skip_reason_;
  static inline std::unique_ptr<SambaDc> dc_;
  std::unique_ptr<ExtraFerryd> hosts_[3];
  uint16_t ports_[3] = {};
  uint16_t api_port_ = 0;
};

TEST_F(KerberosMoveTest, MovesForAnAdminAndRefusesWithoutDelegationOrRights) {
  hosts_[1]->Start();
  hosts_[2]->Start();
  for (const char* vm : {"k1", "k2"}) {
    ProcessResult r = hosts_[1]->Ferry({"vm", "create", vm, "--guest", "memory", "--memory", "32M",
                                        "--cmdline", "ws_mib=2 rate=100 hb_ms=50"});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    r = hosts_[1]->Ferry({"vm", "start", vm});
    ASSERT_EQ(r.exit_code, 0) << r.err;
  }
  const std::string alice = dc_->Kinit("alice", kPassword);
  const std::string bob = dc_->Kinit("bob", kPassword);
  ASSERT_FALSE(alice.empty());
  ASSERT_FALSE(bob.empty());

  // 1. Kerberos-only constrained delegation toward host2's service.
  ASSERT_TRUE(dc_->AllowDelegation("host1$", dc_->MigrationService("host2")));
  ProcessResult moved = MoveToHost2("k1", alice);
  ASSERT_EQ(moved.exit_code, 0) << moved.out << moved.err;
  EXPECT_EQ(hosts_[2]->State("k1"), "running");
  EXPECT_EQ(hosts_[1]->State("k1"), "");

  // 2. Without the delegation the KDC refuses S4U2Proxy at the source.
  ASSERT_TRUE(dc_->RemoveDelegation("host1$", dc_->MigrationService("host2")));
  ExpectRefused("k2", MoveToHost2("k2", alice),
                "the KDC refused to let host1$@" + dc_->realm() + " act for " +
                    dc_->Principal("alice") + " toward " + dc_->MigrationPrincipal("host2"));

  // 3. bob may start moves at host1, but host2's admins do not name him.
  ASSERT_TRUE(dc_->AllowDelegation("host1$", dc_->MigrationService("host2")));
  ExpectRefused("k2", MoveToHost2("k2", bob),
                dc_->Principal("bob") + " may not move VMs to this host (migration.admins: " +
                    dc_->Principal("alice") + ")");

  // 4. No ticket: nothing to delegate.
  ExpectRefused("k2", MoveToHost2("k2", ""), "run kinit");

  // 5. From a management host: `ferry --host host1` over HTTPS with alice's
  // ticket (bound to host1's certificate, pinned by its fingerprint); host1
  // acts for her toward host2 by constrained delegation.
  auto fingerprint = transport::CertificateFingerprint(hosts_[1]->dir() + "/tls/host.crt");
  ASSERT_TRUE(fingerprint.has_value()) << fingerprint.error().ToString();
  ProcessResult remote = RunProcess(
      {FERRY_BIN_DIR "/ferry", "--host", Address(1) + ":" + std::to_string(api_port_),
       "--fingerprint", *fingerprint, "move-vm", "k2", Address(2) + ":" + std::to_string(ports_[2]),
       "--include-storage", "--destination-storage-path", dir() + "/host2-disks"},
      {"KRB5_CONFIG=" + dc_->krb5_config(), "KRB5CCNAME=" + alice}, 120000);
  ASSERT_EQ(remote.exit_code, 0) << remote.out << remote.err;
  EXPECT_EQ(hosts_[2]->State("k2"), "running");
  EXPECT_EQ(hosts_[1]->State("k2"), "");
}

}  // namespace
}  // namespace ferry_it
