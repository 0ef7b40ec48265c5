// Fingerprints, generated host identities and TlsContext creation: the text
// forms accepted, file modes, refusals to overwrite, and every configuration
// error naming what was wrong.
#include <sys/stat.h>

#include <gtest/gtest.h>

#include <fstream>

#include "support/temp_dir.h"
#include "tls_test_util.h"
#include "transport/tls.h"

namespace transport {
namespace {

using testing::Identity;
using testing::MakeIdentity;

void ExpectError(const base::Status& st, base::Code code, const std::string& text) {
  ASSERT_FALSE(st.has_value()) << "expected " << text;
  EXPECT_EQ(st.error().code(), code) << st.error().ToString();
  EXPECT_NE(st.error().message().find(text), std::string::npos) << st.error().message();
}

template <typename T>
base::Status StatusOf(const base::Result<T>& r) {
  if (r.has_value()) return base::Ok();
  return r.error();
}

TEST(TlsFingerprintTest, FormatsAndParsesEveryForm) {
  std::array<uint8_t, 32> bytes{};
  for (size_t i = 0; i < bytes.size(); ++i) bytes[i] = uint8_t(i * 8 + 0x0a);
  std::string text = FormatFingerprint(bytes);
  EXPECT_EQ(text.substr(0, 19), "SHA256:0A:12:1A:22:");
  EXPECT_EQ(text.size(), 7 + 32 * 3 - 1);
  std::string lower = text;
  for (char& c : lower) c = char(std::tolower(c));
  std::string bare = text.substr(7), no_colons;
  for (char c : bare)
    if (c != ':') no_colons += c;
  for (const std::string& form : {text, bare, lower, no_colons, "sha256:" + no_colons}) {
    auto parsed = ParseFingerprint(form);
    ASSERT_TRUE(parsed.has_value()) << form << ": " << parsed.error().ToString();
    EXPECT_EQ(*parsed, bytes) << form;
  }
}

TEST(TlsFingerprintTest, RefusesMalformedText) {
  ExpectError(StatusOf(ParseFingerprint("SHA256:0A:12")), base::Code::kInvalidArgument,
              "fingerprint \"SHA256:0A:12\": expected 32 hex bytes");
  ExpectError(StatusOf(ParseFingerprint(std::string(63, 'a') + "g")), base::Code::kInvalidArgument,
              "'ag' is not hex");
  ExpectError(StatusOf(ParseFingerprint(std::string(66, 'a'))), base::Code::kInvalidArgument,
              "longer than 32 bytes");
  ExpectError(StatusOf(ParseFingerprint("")), base::Code::kInvalidArgument, "expected 32 hex");
}

TEST(TlsIdentityTest, GeneratesKeyAndCertificateWithModes) {
  ferry_test::TempDir dir;
  Identity id = MakeIdentity(dir, "host-a.example");
  struct stat st;
  ASSERT_EQ(::stat(id.key_file.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  ASSERT_EQ(::stat(id.certificate_file.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0644u);
  EXPECT_EQ(id.fingerprint.rfind("SHA256:", 0), 0u);
  EXPECT_FALSE(::stat((id.key_file + ".tmp").c_str(), &st) == 0);
  // A second identity differs.
  Identity other = MakeIdentity(dir, "host-b.example");
  EXPECT_NE(id.fingerprint, other.fingerprint);
  // The context reports the same fingerprint as the file.
  auto ctx = testing::MakeContext(id, {other.fingerprint});
  ASSERT_NE(ctx, nullptr);
  EXPECT_EQ(ctx->fingerprint(), id.fingerprint);
}

TEST(TlsIdentityTest, RefusesToOverwrite) {
  ferry_test::TempDir dir;
  Identity id = MakeIdentity(dir, "host-a");
  std::string before = id.fingerprint;
  ExpectError(GenerateHostIdentity(id.certificate_file, dir / "new.key", "host-a"),
              base::Code::kAlreadyExists, id.certificate_file + " already exists");
  ExpectError(GenerateHostIdentity(dir / "new.pem", id.key_file, "host-a"),
              base::Code::kAlreadyExists, id.key_file + " already exists");
  struct stat st;
  EXPECT_NE(::stat((dir / "new.key").c_str(), &st), 0) << "nothing written on refusal";
  EXPECT_EQ(*CertificateFingerprint(id.certificate_file), before);
}

TEST(TlsIdentityTest, FingerprintOfMissingOrEmptyFile) {
  ferry_test::TempDir dir;
  ExpectError(StatusOf(CertificateFingerprint(dir / "none.pem")), base::Code::kNotFound,
              dir / "none.pem");
  std::ofstream(dir / "junk.pem") << "not a certificate\n";
  ExpectError(StatusOf(CertificateFingerprint(dir / "junk.pem")), base::Code::kInvalidArgument,
              "certificate file " + (dir / "junk.pem") + " holds no PEM certificate");
}

TEST(TlsContextTest, CreationErrorsNameTheProblem) {
  ferry_test::TempDir dir;
  Identity a = MakeIdentity(dir, "a"), b = MakeIdentity(dir, "b");
  TlsSettings s;
  s.certificate_file = dir / "missing.pem";
  s.key_file = a.key_file;
  s.trusted_fingerprints = {b.fingerprint};
  ExpectError(StatusOf(TlsContext::Create(s)), base::Code::kInvalidArgument,
              "certificate file " + (dir / "missing.pem") + ": No such file");

  s.certificate_file = a.certificate_file;
  s.key_file = dir / "missing.key";
  ExpectError(StatusOf(TlsContext::Create(s)), base::Code::kInvalidArgument,
              "key file " + (dir / "missing.key") + ": No such file");

  s.key_file = b.key_file;  // another host's key
  ExpectError(
      StatusOf(TlsContext::Create(s)), base::Code::kInvalidArgument,
      "key file " + b.key_file + ": does not match the certificate in " + a.certificate_file);

  std::ofstream(dir / "junk.pem") << "junk\n";
  s.key_file = a.key_file;
  s.certificate_file = dir / "junk.pem";
  ExpectError(StatusOf(TlsContext::Create(s)), base::Code::kInvalidArgument,
              "certificate file " + (dir / "junk.pem") + ": not a PEM certificate");

  s.certificate_file = a.certificate_file;
  s.trusted_fingerprints = {};
  ExpectError(StatusOf(TlsContext::Create(s)), base::Code::kInvalidArgument,
              "neither a trusted CA file nor a trusted fingerprint is configured");

  s.trusted_ca_file = dir / "missing-ca.pem";
  ExpectError(StatusOf(TlsContext::Create(s)), base::Code::kInvalidArgument,
              "CA file " + (dir / "missing-ca.pem") + ": No such file");

  s.trusted_ca_file = "";
  s.trusted_fingerprints = {"SHA256:00"};
  ExpectError(StatusOf(TlsContext::Create(s)), base::Code::kInvalidArgument,
              "trusted fingerprints: fingerprint \"SHA256:00\"");

  s.trusted_fingerprints = {b.fingerprint};
  EXPECT_TRUE(TlsContext::Create(s).has_value());
}

}  // namespace
}  // namespace transport
