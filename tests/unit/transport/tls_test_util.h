// Helpers shared by the TLS tests: host identities in a temp dir, contexts
// that pin each other, a CA made with the openssl tool, loopback TCP pairs
// and a handshake run at both ends at once.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "base/fd.h"
#include "base/result.h"
#include "support/temp_dir.h"
#include "transport/tls.h"

namespace transport::testing {

inline constexpr int kTlsTimeoutMs = 10000;

struct Identity {
  std::string certificate_file, key_file, fingerprint, name;
};

// GenerateHostIdentity into dir as <name>.pem / <name>.key (fails the test
// on error).
Identity MakeIdentity(const ferry_test::TempDir& dir, const std::string& name);

// A context for self that trusts exactly the given fingerprints (and the CA
// file, if not "").
std::shared_ptr<const TlsContext> MakeContext(const Identity& self,
                                              const std::vector<std::string>& pins,
                                              const std::string& ca_file = "");

// A CA and host certificates signed by it, made with the openssl command
// line tool. ok is false (with why) when the tool is missing or fails.
struct TestCa {
  bool ok = false;
  std::string why;
  std::string ca_file;
  // A host certificate signed by the CA.
  Identity Issue(const std::string& name);
  const ferry_test::TempDir* dir = nullptr;
};
TestCa MakeTestCa(const ferry_test::TempDir& dir);

// A connected loopback TCP pair (127.0.0.1, ephemeral port).
struct TcpPair {
  base::Fd client, server;
};
TcpPair ConnectedPair();

// TlsConnect on pair.client and TlsAccept on pair.server, concurrently.
struct BothEnds {
  std::optional<base::Result<std::unique_ptr<TlsSession>>> client, server;
};
BothEnds HandshakeBoth(const TlsContext& client_ctx, const TlsContext& server_ctx, TcpPair& pair,
                       const std::string& client_expects = "",
                       const std::string& server_expects = "");

}  // namespace transport::testing
