#include "cli/cli_output.h"

#include <gtest/gtest.h>

namespace appliance {
namespace {

using nlohmann::json;

json Vm(const std::string& name, const std::string& state, const std::string& error = "") {
  return {{"name", name},
          {"state", state},
          {"last_error", error},
          {"saved_state", ""},
          {"dir", "/srv/vms/" + name},
          {"worker", nullptr},
          {"definition",
           {{"vcpus", 2},
            {"memory_bytes", 256ull << 20},
            {"program", "/g/memory-guest.bin"},
            {"cmdline", ""},
            {"disks", json::array()}}}};
}

TEST(CliOutputTest, ListIsAnAlignedTableWithErrorsBelow) {
  json list = {
      {"vms", {Vm("a", "running"), Vm("longer-name", "crashed", "worker exited on signal 9")}}};
  EXPECT_EQ(FormatVmList(list),
            "NAME         STATE    VCPUS  MEMORY   PROGRAM\n"
            "a            running  2      256 MiB  memory-guest.bin\n"
            "longer-name  crashed  2      256 MiB  memory-guest.bin\n"
            "\nlast errors:\n"
            "longer-name: worker exited on signal 9\n");
  EXPECT_EQ(FormatVmList(json{{"vms", json::array()}}), "no vms\n");
}

TEST(CliOutputTest, ShowListsWorkerAndError) {
  json vm = Vm("a", "running");
  vm["worker"] = {{"pid", 1234}, {"control_socket", "/x"}};
  std::string out = FormatVm(vm);
  EXPECT_NE(out.find("state:      running\n"), std::string::npos) << out;
  EXPECT_NE(out.find("worker pid: 1234\n"), std::string::npos) << out;
  EXPECT_EQ(out.find("last error"), std::string::npos);
  std::string crashed = FormatVm(Vm("a", "crashed", "worker exited on signal 9"));
  EXPECT_NE(crashed.find("last error: worker exited on signal 9\n"), std::string::npos) << crashed;
}

TEST(CliOutputTest, ActionLine) {
  json vm = Vm("a", "saved");
  vm["saved_state"] = "/srv/vms/a/saved.fvs";
  EXPECT_EQ(FormatActionResult("save", vm), "vm a: saved to /srv/vms/a/saved.fvs\n");
  EXPECT_EQ(FormatActionResult("start", Vm("a", "running")), "vm a: running\n");
}

TEST(CliOutputTest, ErrorMessageFromApiBodyOrRaw) {
  EXPECT_EQ(ErrorMessage(404, R"({"error":{"code":"not-found","message":"no vm named x"}})"),
            "no vm named x");
  EXPECT_EQ(ErrorMessage(502, "Bad Gateway\n"), "ferryd answered HTTP 502: Bad Gateway");
  EXPECT_EQ(ErrorMessage(500, ""), "ferryd answered HTTP 500");
}

// The authentication mode with its admins, the TLS identity peers pin.
TEST(CliOutputTest, HostShowsAuthenticationAndTls) {
  json host = {{"hostname", "hv1"},
               {"migration",
                {{"incoming_enabled", true},
                 {"outgoing_enabled", false},
                 {"authentication", "kerberos"},
                 {"admins", {"alice@FERRY.TEST", "@ferry-admins"}},
                 {"performance", "compression"},
                 {"incoming_directories", {"/srv/vms"}}}},
               {"tls", {{"fingerprint", "SHA256:AB:CD"}, {"certificate", "/c.crt"}}}};
  std::string out = FormatHost(host);
  EXPECT_NE(out.find("incoming moves:  enabled\n"), std::string::npos) << out;
  EXPECT_NE(out.find("authentication:  kerberos (admins: alice@FERRY.TEST, @ferry-admins)\n"),
            std::string::npos)
      << out;
  EXPECT_NE(out.find("incoming into:   /srv/vms\n"), std::string::npos) << out;
  EXPECT_NE(out.find("tls fingerprint: SHA256:AB:CD\n"), std::string::npos) << out;
  // A reply without them prints no such lines.
  EXPECT_EQ(FormatHost(json{{"hostname", "hv1"}}).find("authentication"), std::string::npos);
}

TEST(CliOutputTest, CertificateShowsFingerprintAndTrust) {
  json host = {{"tls",
                {{"certificate", "/var/lib/ferry/tls/host.crt"},
                 {"fingerprint", "SHA256:AB:CD"},
                 {"trusted_ca", ""},
                 {"trusted_fingerprints", {"SHA256:01:02", "SHA256:03:04"}},
                 {"ready", true}}}};
  std::string out = FormatHostCertificate(host);
  EXPECT_NE(out.find("fingerprint:          SHA256:AB:CD\n"), std::string::npos) << out;
  EXPECT_NE(out.find("trusted ca:           (none)\n"), std::string::npos) << out;
  EXPECT_NE(out.find("SHA256:01:02\n    SHA256:03:04"), std::string::npos) << out;
  EXPECT_EQ(out.find("none trusted"), std::string::npos) << out;
  host["tls"]["ready"] = false;
  EXPECT_NE(FormatHostCertificate(host).find("none trusted: no move is possible"),
            std::string::npos);
}

}  // namespace
}  // namespace appliance
