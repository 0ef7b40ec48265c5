#include "tls_test_util.h"

#include <sys/socket.h>

#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>
#include <thread>

#include "transport/tcp.h"

namespace transport::testing {

Identity MakeIdentity(const ferry_test::TempDir& dir, const std::string& name) {
  Identity id;
  id.name = name;
  id.certificate_file = dir / (name + ".pem");
  id.key_file = dir / (name + ".key");
  base::Status st = GenerateHostIdentity(id.certificate_file, id.key_file, name);
  EXPECT_TRUE(st.has_value()) << st.error().ToString();
  base::Result<std::string> fp = CertificateFingerprint(id.certificate_file);
  EXPECT_TRUE(fp.has_value()) << fp.error().ToString();
  if (fp.has_value()) id.fingerprint = *fp;
  return id;
}

std::shared_ptr<const TlsContext> MakeContext(const Identity& self,
                                              const std::vector<std::string>& pins,
                                              const std::string& ca_file) {
  TlsSettings s;
  s.certificate_file = self.certificate_file;
  s.key_file = self.key_file;
  s.trusted_ca_file = ca_file;
  s.trusted_fingerprints = pins;
  auto ctx = TlsContext::Create(s);
  EXPECT_TRUE(ctx.has_value()) << ctx.error().ToString();
  return ctx.has_value() ? *ctx : nullptr;
}

namespace {

bool Run(const std::string& command, const ferry_test::TempDir& dir, std::string* why) {
  std::string full = "cd '" + dir.path() + "' && " + command + " >>openssl.log 2>&1";
  if (std::system(full.c_str()) == 0) return true;
  *why = "`" + command + "` failed (see openssl.log)";
  return false;
}

}  // namespace

TestCa MakeTestCa(const ferry_test::TempDir& dir) {
  TestCa ca;
  ca.dir = &dir;
  if (std::system("command -v openssl >/dev/null 2>&1") != 0) {
    ca.why = "the openssl command line tool is not installed";
    return ca;
  }
  ca.ok =
      Run("openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes "
          "-keyout ca.key -out ca.pem -days 30 -subj /CN=ferry-test-ca",
          dir, &ca.why);
  ca.ca_file = dir / "ca.pem";
  std::ofstream(dir / "host.ext") << "basicConstraints=CA:FALSE\n"
                                     "extendedKeyUsage=serverAuth,clientAuth\n";
  return ca;
}

Identity TestCa::Issue(const std::string& name) {
  Identity id;
  id.name = name;
  id.certificate_file = *dir / (name + ".pem");
  id.key_file = *dir / (name + ".key");
  bool ok = Run("openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout " + name +
                    ".key -out " + name + ".csr -subj /CN=" + name,
                *dir, &why) &&
            Run("openssl x509 -req -in " + name +
                    ".csr -CA ca.pem -CAkey ca.key -CAcreateserial"
                    " -days 30 -extfile host.ext -out " +
                    name + ".pem",
                *dir, &why);
  EXPECT_TRUE(ok) << why;
  base::Result<std::string> fp = CertificateFingerprint(id.certificate_file);
  EXPECT_TRUE(fp.has_value()) << fp.error().ToString();
  if (fp.has_value()) id.fingerprint = *fp;
  return id;
}

TcpPair ConnectedPair() {
  TcpPair pair;
  auto listener = TcpListener::Bind("127.0.0.1", 0);
  EXPECT_TRUE(listener.has_value()) << listener.error().ToString();
  if (!listener.has_value()) return pair;
  auto client = TcpConnect("127.0.0.1", listener->port(), "", kTlsTimeoutMs);
  EXPECT_TRUE(client.has_value()) << client.error().ToString();
  auto accepted = listener->Accept(-1, kTlsTimeoutMs);
  EXPECT_TRUE(accepted.has_value()) << accepted.error().ToString();
  if (client.has_value()) pair.client = std::move(*client);
  if (accepted.has_value()) pair.server = std::move(accepted->first);
  return pair;
}

BothEnds HandshakeBoth(const TlsContext& client_ctx, const TlsContext& server_ctx, TcpPair& pair,
                       const std::string& client_expects, const std::string& server_expects) {
  BothEnds ends;
  std::thread server([&] {
    ends.server.emplace(TlsAccept(server_ctx, pair.server.get(), server_expects, kTlsTimeoutMs));
    // A refusing server closes, so a client waiting on it learns at once.
    if (!ends.server->has_value()) ::shutdown(pair.server.get(), SHUT_RDWR);
  });
  ends.client.emplace(TlsConnect(client_ctx, pair.client.get(), client_expects, kTlsTimeoutMs));
  if (!ends.client->has_value()) ::shutdown(pair.client.get(), SHUT_RDWR);
  server.join();
  return ends;
}

}  // namespace transport::testing
