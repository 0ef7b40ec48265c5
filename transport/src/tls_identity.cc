// Fingerprints and host identities: the text form of a certificate's SHA-256,
// a new self-signed key pair for a host, and the fingerprint of a PEM file.
#include <fcntl.h>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cctype>
#include <memory>
#include <string>

#include "base/fd.h"
#include "tls_internal.h"
#include "transport/tls.h"

namespace transport {
namespace {

constexpr long kValiditySeconds = 10L * 365 * 24 * 3600;

struct BioFree {
  void operator()(BIO* b) const { BIO_free(b); }
};
struct X509Free {
  void operator()(X509* x) const { X509_free(x); }
};
struct PkeyFree {
  void operator()(EVP_PKEY* k) const { EVP_PKEY_free(k); }
};
using BioPtr = std::unique_ptr<BIO, BioFree>;
using X509Ptr = std::unique_ptr<X509, X509Free>;
using PkeyPtr = std::unique_ptr<EVP_PKEY, PkeyFree>;

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  c = char(std::tolower(static_cast<unsigned char>(c)));
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return -1;
}

base::Error OpenSslError(const std::string& what) {
  return base::Error(base::Code::kInternal, what + ": " + TakeOpenSslError("unknown error"));
}

// Adds one X509v3 extension given in openssl's config syntax.
base::Status AddExtension(X509* cert, int nid, const std::string& value) {
  X509V3_CTX v3;
  X509V3_set_ctx_nodb(&v3);
  X509V3_set_ctx(&v3, cert, cert, nullptr, nullptr, 0);
  X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &v3, nid, value.c_str());
  if (ext == nullptr) return OpenSslError("certificate extension " + value);
  int ok = X509_add_ext(cert, ext, -1);
  X509_EXTENSION_free(ext);
  if (ok != 1) return OpenSslError("adding certificate extension " + value);
  return base::Ok();
}

base::Result<X509Ptr> SelfSign(EVP_PKEY* key, const std::string& common_name) {
  X509Ptr cert(X509_new());
  if (!cert) return OpenSslError("X509_new");
  uint8_t serial[16];
  if (RAND_bytes(serial, sizeof serial) != 1) return OpenSslError("random serial");
  serial[0] &= 0x7f;  // a positive INTEGER
  BIGNUM* bn = BN_bin2bn(serial, sizeof serial, nullptr);
  bool serial_ok = bn != nullptr && BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(cert.get()));
  BN_free(bn);
  if (!serial_ok) return OpenSslError("certificate serial");
  X509_NAME* name = X509_get_subject_name(cert.get());
  if (X509_set_version(cert.get(), 2) != 1 ||
      X509_gmtime_adj(X509_getm_notBefore(cert.get()), -3600) == nullptr ||
      X509_gmtime_adj(X509_getm_notAfter(cert.get()), kValiditySeconds) == nullptr ||
      X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8,
                                 reinterpret_cast<const unsigned char*>(common_name.c_str()), -1,
                                 -1, 0) != 1 ||
      X509_set_issuer_name(cert.get(), name) != 1 || X509_set_pubkey(cert.get(), key) != 1)
    return OpenSslError("building the certificate for " + common_name);
  RETURN_IF_ERROR(AddExtension(cert.get(), NID_subject_alt_name, "DNS:" + common_name));
  RETURN_IF_ERROR(AddExtension(cert.get(), NID_basic_constraints, "critical,CA:FALSE"));
  RETURN_IF_ERROR(AddExtension(cert.get(), NID_key_usage, "critical,digitalSignature"));
  // Both: every host is a TLS server to some peers and a client to others.
  RETURN_IF_ERROR(AddExtension(cert.get(), NID_ext_key_usage, "serverAuth,clientAuth"));
  if (X509_sign(cert.get(), key, EVP_sha256()) == 0) return OpenSslError("signing the certificate");
  return cert;
}

std::string BioContents(BIO* bio) {
  char* data = nullptr;
  long n = BIO_get_mem_data(bio, &data);
  return std::string(data, size_t(n));
}

// Writes contents to path.tmp with mode, fsyncs, and renames it to path
// without replacing an existing file.
base::Status WriteNewFile(const std::string& path, const std::string& contents, mode_t mode) {
  std::string temp = path + ".tmp";
  ::unlink(temp.c_str());  // a leftover of a crash before the rename
  ASSIGN_OR_RETURN(base::Fd fd, base::Fd::Open(temp, O_WRONLY | O_CREAT | O_EXCL, int(mode)));
  base::Status st = base::WriteAll(fd.get(), contents.data(), contents.size());
  if (st.has_value() && ::fchmod(fd.get(), mode) != 0) st = base::ErrnoError("chmod " + temp);
  if (st.has_value() && ::fsync(fd.get()) != 0) st = base::ErrnoError("fsync " + temp);
  if (st.has_value() &&
      ::renameat2(AT_FDCWD, temp.c_str(), AT_FDCWD, path.c_str(), RENAME_NOREPLACE) != 0) {
    int err = errno;
    st = err == EEXIST ? base::Error(base::Code::kAlreadyExists, path + " already exists")
                       : base::ErrnoError("rename " + temp + " to " + path, err);
  }
  if (!st.has_value()) {
    ::unlink(temp.c_str());
    return st.error();
  }
  return base::SyncParentDirectory(path);
}

}  // namespace

std::string FormatFingerprint(const std::array<uint8_t, 32>& sha256) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out = "SHA256:";
  for (size_t i = 0; i < sha256.size(); ++i) {
    if (i > 0) out += ':';
    out += kHex[sha256[i] >> 4];
    out += kHex[sha256[i] & 15];
  }
  return out;
}

base::Result<std::array<uint8_t, 32>> ParseFingerprint(std::string_view text) {
  auto invalid = [&](const std::string& why) {
    return base::Error(base::Code::kInvalidArgument,
                       "fingerprint \"" + std::string(text) + "\": " + why);
  };
  std::string_view rest = text;
  if (rest.size() >= 7 && (rest.substr(0, 7) == "SHA256:" || rest.substr(0, 7) == "sha256:"))
    rest.remove_prefix(7);
  bool colons = rest.find(':') != std::string_view::npos;
  std::array<uint8_t, 32> out{};
  size_t pos = 0;
  for (size_t i = 0; i < out.size(); ++i) {
    size_t need = colons && i > 0 ? 3 : 2;
    if (pos + need > rest.size())
      return invalid("expected 32 hex bytes (SHA256:AB:CD:… as ferry prints them)");
    if (need == 3) {
      if (rest[pos] != ':') return invalid("expected ':' between bytes");
      ++pos;
    }
    int hi = HexValue(rest[pos]), lo = HexValue(rest[pos + 1]);
    if (hi < 0 || lo < 0) return invalid("'" + std::string(rest.substr(pos, 2)) + "' is not hex");
    out[i] = uint8_t(hi << 4 | lo);
    pos += 2;
  }
  if (pos != rest.size()) return invalid("longer than 32 bytes");
  return out;
}

base::Status GenerateHostIdentity(const std::string& certificate_file, const std::string& key_file,
                                  const std::string& common_name) {
  for (const std::string& path : {certificate_file, key_file}) {
    struct stat st;
    if (::lstat(path.c_str(), &st) == 0)
      return base::Error(base::Code::kAlreadyExists, path + " already exists (not overwritten)");
  }
  if (common_name.empty())
    return base::Error(base::Code::kInvalidArgument, "host identity: empty common name");
  PkeyPtr key(EVP_EC_gen("P-256"));
  if (!key) return OpenSslError("generating a P-256 key");
  ASSIGN_OR_RETURN(X509Ptr cert, SelfSign(key.get(), common_name));

  BioPtr key_pem(BIO_new(BIO_s_mem())), cert_pem(BIO_new(BIO_s_mem()));
  if (!key_pem || !cert_pem ||
      PEM_write_bio_PrivateKey(key_pem.get(), key.get(), nullptr, nullptr, 0, nullptr, nullptr) !=
          1 ||
      PEM_write_bio_X509(cert_pem.get(), cert.get()) != 1)
    return OpenSslError("encoding the host identity as PEM");
  // The key first: a certificate without its key would be useless, a key
  // without a certificate is regenerated by hand.
  RETURN_IF_ERROR(WriteNewFile(key_file, BioContents(key_pem.get()), 0600));
  return WriteNewFile(certificate_file, BioContents(cert_pem.get()), 0644);
}

base::Result<std::string> CertificateFingerprint(const std::string& certificate_file) {
  BioPtr bio(BIO_new_file(certificate_file.c_str(), "r"));
  if (!bio) {
    ERR_clear_error();
    return base::ErrnoError("certificate file " + certificate_file);
  }
  X509Ptr cert(PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr));
  if (!cert)
    return base::Error(base::Code::kInvalidArgument, "certificate file " + certificate_file +
                                                         " holds no PEM certificate (" +
                                                         TakeOpenSslError("no PEM data") + ")");
  return FormatFingerprint(X509Sha256(cert.get()));
}

Sha256 X509Sha256(X509* cert) {
  Sha256 out{};
  unsigned int len = 0;
  X509_digest(cert, EVP_sha256(), out.data(), &len);
  return out;
}

std::string SubjectCommonName(X509* cert) {
  X509_NAME* name = X509_get_subject_name(cert);
  int i = name ? X509_NAME_get_index_by_NID(name, NID_commonName, -1) : -1;
  if (i < 0) return "";
  ASN1_STRING* data = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(name, i));
  unsigned char* utf8 = nullptr;
  int n = ASN1_STRING_to_UTF8(&utf8, data);
  if (n < 0) return "";
  std::string out(reinterpret_cast<char*>(utf8), size_t(n));
  OPENSSL_free(utf8);
  return out;
}

std::string TakeOpenSslError(const std::string& fallback) {
  unsigned long e = ERR_get_error();
  ERR_clear_error();
  if (e == 0) return fallback;
  const char* reason = ERR_reason_error_string(e);
  if (reason != nullptr) return reason;
  char buf[256];
  ERR_error_string_n(e, buf, sizeof buf);
  return buf;
}

}  // namespace transport
