// TLS identities for the tests' ferryds: one CA per test process, made with
// the openssl command line (the reference tool, not ferry's own code), and a
// certificate per ferryd signed by it, so every ferryd a test starts trusts
// the others (host.toml [tls] trusted_ca) while each has its own key and
// fingerprint. Tests of pinned fingerprints write their own [tls].
#pragma once

#include <memory>
#include <string>

#include "transport/tls.h"

namespace ferry_test {

struct TestTlsFiles {
  std::string certificate;  // <dir>/tls/host.crt
  std::string key;          // <dir>/tls/host.key
  std::string ca;           // the process's CA certificate
};

// The CA (created on first use under the temp base directory, removed when
// the process exits).
const std::string& TestCaCertificate();

// A key and a CA-signed certificate for common_name under dir/tls/ (made
// once; later calls return the same files). Failures are gtest failures.
TestTlsFiles IssueTestCertificate(const std::string& dir, const std::string& common_name);

// The [tls] table for a ferryd whose files live under dir: certificate, key
// and trusted_ca. It must come last in host.toml (a table runs to the end).
std::string TestTlsToml(const std::string& dir);

// A context for in-process peers (unit tests of PeerService, the engine):
// IssueTestCertificate's files, trusting the tests' CA. Null after a gtest
// failure.
std::shared_ptr<const transport::TlsContext> TestTlsContext(const std::string& dir,
                                                            const std::string& common_name);

}  // namespace ferry_test
