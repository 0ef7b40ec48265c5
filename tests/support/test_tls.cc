#include "support/test_tls.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <filesystem>

#include "support/ferryd_harness.h"
#include "support/files.h"
#include "support/temp_dir.h"

namespace ferry_test {
namespace {

constexpr int kOpensslTimeoutMs = 30000;

void Openssl(const std::vector<std::string>& args) {
  std::vector<std::string> argv = {"/usr/bin/openssl"};
  argv.insert(argv.end(), args.begin(), args.end());
  ferry_it::ProcessResult r = ferry_it::RunProcess(argv, {}, kOpensslTimeoutMs);
  EXPECT_EQ(r.exit_code, 0) << "openssl " << args.front() << " failed: " << r.err;
}

// Owns the CA's directory for the process's lifetime.
struct TestCa {
  std::string dir;
  TestCa() {
    dir = TempBaseDir() + "/ferry-test-ca-" + std::to_string(::getpid());
    std::filesystem::remove_all(dir);
    std::filesystem::create_directories(dir);
    Openssl({"req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
             "-keyout", dir + "/ca.key", "-out", dir + "/ca.pem", "-days", "30", "-subj",
             "/CN=ferry test CA"});
  }
  ~TestCa() {
    std::error_code ec;
    std::filesystem::remove_all(dir, ec);
  }
};

const TestCa& Ca() {
  static TestCa ca;
  return ca;
}

}  // namespace

const std::string& TestCaCertificate() {
  static const std::string path = Ca().dir + "/ca.pem";
  return path;
}

TestTlsFiles IssueTestCertificate(const std::string& dir, const std::string& common_name) {
  TestTlsFiles files{dir + "/tls/host.crt", dir + "/tls/host.key", TestCaCertificate()};
  if (std::filesystem::exists(files.certificate)) return files;
  std::filesystem::create_directories(dir + "/tls");
  const std::string csr = dir + "/tls/host.csr";
  const std::string ext = dir + "/tls/host.ext";
  Openssl({"req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
           "-keyout", files.key, "-out", csr, "-subj", "/CN=" + common_name});
  WriteFile(ext, "basicConstraints = CA:FALSE\nsubjectAltName = DNS:" + common_name + "\n");
  const std::string& ca_dir = Ca().dir;
  Openssl({"x509", "-req", "-in", csr, "-CA", ca_dir + "/ca.pem", "-CAkey", ca_dir + "/ca.key",
           "-CAcreateserial", "-out", files.certificate, "-days", "30", "-extfile", ext});
  return files;
}

std::string TestTlsToml(const std::string& dir) {
  const std::string name = std::filesystem::path(dir).filename().string();
  TestTlsFiles files = IssueTestCertificate(dir, name.empty() ? "ferry-test" : name);
  return "[tls]\ncertificate = \"" + files.certificate + "\"\nkey = \"" + files.key +
         "\"\ntrusted_ca = \"" + files.ca + "\"\n";
}

std::shared_ptr<const transport::TlsContext> TestTlsContext(const std::string& dir,
                                                            const std::string& common_name) {
  TestTlsFiles files = IssueTestCertificate(dir, common_name);
  transport::TlsSettings settings;
  settings.certificate_file = files.certificate;
  settings.key_file = files.key;
  settings.trusted_ca_file = files.ca;
  auto context = transport::TlsContext::Create(settings);
  EXPECT_TRUE(context.has_value()) << context.error().ToString();
  return context ? *context : nullptr;
}

}  // namespace ferry_test
