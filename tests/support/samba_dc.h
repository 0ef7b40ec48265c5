// SambaDc: a real Active Directory domain controller (Samba) for Kerberos
// tests, provisioned into a temporary directory and run in a network
// namespace this class creates, so its KDC answers on a private address
// (10.251.x.y, reached through a veth pair) and no traffic leaves the host.
//
// Provisioning takes seconds and only one DC may run per machine (Samba keeps
// its pid file and sockets under /run/samba): a test binary starts one for
// all its tests (SetUpTestSuite or a ::testing::Environment), and its ctest
// entries carry RESOURCE_LOCK samba_dc. Leftovers of a crashed run (its
// namespace, samba, directory; all named with the dead pid) are removed by
// the next Start. samba runs with -i and a pipe on stdin, so it also exits
// by itself when this process dies.
//
// Commands that change the directory return an AssertionResult carrying
// samba-tool's output when they fail: ASSERT_TRUE(dc.CreateUser(...)).
#pragma once

#include <gtest/gtest.h>
#include <sys/types.h>

#include <memory>
#include <string>
#include <vector>

namespace ferry_test {

class SambaDc {
 public:
  // Why this machine cannot run a DC ("" when it can): samba-tool, samba,
  // ip or kinit missing, or not root.
  static std::string UnavailableReason();
  // Provisions realm (e.g. "FERRY.TEST", domain "ferry.test", NetBIOS name
  // its first label) and starts the DC; nullptr and a gtest failure when that
  // fails (the failure carries the command's output).
  static std::unique_ptr<SambaDc> Start(const std::string& realm = "FERRY.TEST");
  ~SambaDc();
  SambaDc(const SambaDc&) = delete;
  SambaDc& operator=(const SambaDc&) = delete;

  // Kills samba, deletes the namespace and the directory. Idempotent.
  void Stop();

  const std::string& realm() const { return realm_; }            // "FERRY.TEST"
  const std::string& dns_domain() const { return dns_domain_; }  // "ferry.test"
  const std::string& dir() const { return dir_; }
  // The krb5.conf naming this KDC; export it as KRB5_CONFIG.
  const std::string& krb5_config() const { return krb5_conf_; }
  // Points this process's Kerberos library at the DC: KRB5_CONFIG, and a
  // replay cache in the DC's directory (replays are caught, nothing is left
  // behind). Child processes inherit both.
  void UseInThisProcess() const;
  const std::string& kdc_address() const { return ns_address_; }

  // "alice" -> "alice@FERRY.TEST"; "host1$" -> "host1$@FERRY.TEST".
  std::string Principal(const std::string& name) const { return name + "@" + realm_; }
  // "host2" -> "ferry-migration/host2.ferry.test" (samba-tool's form).
  std::string MigrationService(const std::string& host) const {
    return "ferry-migration/" + host + "." + dns_domain_;
  }
  // The same with the realm: "ferry-migration/host2.ferry.test@FERRY.TEST".
  std::string MigrationPrincipal(const std::string& host) const {
    return Principal(MigrationService(host));
  }

  ::testing::AssertionResult CreateUser(const std::string& name, const std::string& password);
  // Computer account host$ with SPNs ferry-migration/<host>.<domain> and
  // host/<host>.<domain>, given keys by SetRandomPassword.
  ::testing::AssertionResult CreateComputer(const std::string& host);
  // `samba-tool user setpassword account --random-password` (computer
  // accounts are created without keys; keytabs need them).
  ::testing::AssertionResult SetRandomPassword(const std::string& account);
  // Exports the keys of account ("host1$") into a new keytab file under
  // dir(); returns its path ("" and a gtest failure on error).
  std::string ExportKeytab(const std::string& account);
  // samba-tool delegation add-service / del-service / for-any-protocol.
  ::testing::AssertionResult AllowDelegation(const std::string& from_account,
                                             const std::string& to_service);
  ::testing::AssertionResult RemoveDelegation(const std::string& from_account,
                                              const std::string& to_service);
  ::testing::AssertionResult AllowProtocolTransition(const std::string& account, bool on);
  // kinit as user (password on stdin) into a new FILE cache; returns
  // "FILE:<path>" ("" and a gtest failure on error). extra_args go to kinit
  // (e.g. {"-l", "10s"}).
  std::string Kinit(const std::string& user, const std::string& password,
                    const std::vector<std::string>& extra_args = {});

  // Runs argv with KRB5_CONFIG pointing at krb5_config(); the exit status
  // (0: success) and what it printed on stdout and stderr.
  struct Output {
    int status = -1;
    std::string text;
  };
  Output Run(const std::vector<std::string>& argv, const std::string& input = "") const;

 private:
  SambaDc() = default;
  ::testing::AssertionResult SetUpNetwork();
  ::testing::AssertionResult Provision();
  ::testing::AssertionResult StartSamba();
  ::testing::AssertionResult Tool(std::vector<std::string> args);

  std::string realm_;
  std::string dns_domain_;
  std::string dir_;
  std::string smb_conf_;
  std::string krb5_conf_;
  std::string netns_;
  std::string host_veth_;
  std::string host_address_;
  std::string ns_address_;
  pid_t samba_pid_ = -1;
  int samba_stdin_ = -1;  // write end of samba's stdin: closing it stops samba
  int next_file_ = 0;
};

}  // namespace ferry_test
