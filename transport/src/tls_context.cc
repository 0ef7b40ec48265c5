// TlsContext: one SSL_CTX per host identity, configured for TLS 1.3 only,
// mutual authentication, no tickets or session cache, and the trust rule of
// tls.h (a pinned leaf, or a chain to the configured CA).
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509_vfy.h>
#include <stdio.h>

#include <memory>
#include <string>

#include "tls_internal.h"
#include "transport/tls.h"

namespace transport {
namespace {

constexpr char kCipherSuites[] =
    "TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256";

// Whether path can be opened for reading; the error names it and says why.
base::Status CheckReadable(const std::string& what, const std::string& path) {
  if (path.empty()) return base::Error(base::Code::kInvalidArgument, what + ": no file configured");
  FILE* f = ::fopen(path.c_str(), "re");
  if (f == nullptr) {
    base::Error e = base::ErrnoError(what + " " + path);
    return base::Error(base::Code::kInvalidArgument, e.message(), e.sys_errno());
  }
  ::fclose(f);
  return base::Ok();
}

base::Error Invalid(const std::string& what, const std::string& path, const std::string& why) {
  return base::Error(base::Code::kInvalidArgument,
                     what + " " + path + ": " + why + " (" + TakeOpenSslError("no details") + ")");
}

base::Status ConfigureProtocol(SSL_CTX* ctx) {
  // Only TLS 1.3: its handshake encrypts the certificates and always has
  // forward secrecy; both ends are ferry, so nothing older must be spoken.
  if (SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION) != 1 ||
      SSL_CTX_set_max_proto_version(ctx, TLS1_3_VERSION) != 1 ||
      SSL_CTX_set_ciphersuites(ctx, kCipherSuites) != 1)
    return base::Error(base::Code::kInternal,
                       "TLS 1.3 setup: " + TakeOpenSslError("unsupported by this OpenSSL"));
  // No tickets, no session cache, no early data: every connection is a full
  // handshake whose channel binding is fresh and that cannot be replayed.
  SSL_CTX_set_num_tickets(ctx, 0);
  SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);
  SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
  SSL_CTX_set_max_early_data(ctx, 0);
  SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
  // No read-ahead: measured (tls_stream_bench) it saved nothing, since the
  // copies and AES-GCM dominate, not the recv() per record header.
  return base::Ok();
}

base::Status LoadIdentity(SSL_CTX* ctx, const TlsSettings& s) {
  RETURN_IF_ERROR(CheckReadable("certificate file", s.certificate_file));
  RETURN_IF_ERROR(CheckReadable("key file", s.key_file));
  if (SSL_CTX_use_certificate_chain_file(ctx, s.certificate_file.c_str()) != 1)
    return Invalid("certificate file", s.certificate_file, "not a PEM certificate");
  // Read by hand, so a key that is not one and a key of another host get
  // different messages.
  BIO* bio = BIO_new_file(s.key_file.c_str(), "r");
  EVP_PKEY* key = bio ? PEM_read_bio_PrivateKey(bio, nullptr, nullptr, nullptr) : nullptr;
  BIO_free(bio);
  if (key == nullptr) return Invalid("key file", s.key_file, "not a PEM private key");
  bool matches = X509_check_private_key(SSL_CTX_get0_certificate(ctx), key) == 1;
  bool used = matches && SSL_CTX_use_PrivateKey(ctx, key) == 1;
  EVP_PKEY_free(key);
  if (!matches)
    return Invalid("key file", s.key_file,
                   "does not match the certificate in " + s.certificate_file);
  if (!used) return Invalid("key file", s.key_file, "unusable private key");
  return base::Ok();
}

base::Status LoadTrust(SSL_CTX* ctx, const TlsSettings& s, TlsContext::Impl& impl) {
  if (!s.trusted_ca_file.empty()) {
    RETURN_IF_ERROR(CheckReadable("CA file", s.trusted_ca_file));
    if (SSL_CTX_load_verify_locations(ctx, s.trusted_ca_file.c_str(), nullptr) != 1)
      return Invalid("CA file", s.trusted_ca_file, "holds no PEM certificate");
    impl.has_ca = true;
  }
  for (const std::string& pin : s.trusted_fingerprints) {
    base::Result<Sha256> parsed = ParseFingerprint(pin);
    if (!parsed.has_value()) return parsed.error().Wrap("trusted fingerprints");
    impl.pins.insert(*parsed);
  }
  if (!impl.has_ca && impl.pins.empty())
    return base::Error(base::Code::kInvalidArgument,
                       "TLS: neither a trusted CA file nor a trusted fingerprint is configured, so "
                       "no peer could be trusted");
  // Mutual: a peer without a certificate fails the handshake.
  SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, nullptr);
  SSL_CTX_set_cert_verify_callback(ctx, VerifyPeerCertificate, &impl);
  return base::Ok();
}

// Refuses the peer: the reason goes to the handshake's verdict, and the
// X509 error picks the alert OpenSSL sends the peer (bad certificate).
int Refuse(X509_STORE_CTX* store, HandshakeVerdict* verdict, std::string why, int x509_error) {
  if (verdict != nullptr) verdict->rejection = std::move(why);
  if (X509_STORE_CTX_get_error(store) == X509_V_OK) X509_STORE_CTX_set_error(store, x509_error);
  return 0;
}

}  // namespace

int VerdictIndex() {
  static const int index = SSL_get_ex_new_index(0, nullptr, nullptr, nullptr, nullptr);
  return index;
}

int VerifyPeerCertificate(X509_STORE_CTX* store, void* arg) {
  const auto* impl = static_cast<const TlsContext::Impl*>(arg);
  auto* ssl =
      static_cast<SSL*>(X509_STORE_CTX_get_ex_data(store, SSL_get_ex_data_X509_STORE_CTX_idx()));
  auto* verdict =
      ssl ? static_cast<HandshakeVerdict*>(SSL_get_ex_data(ssl, VerdictIndex())) : nullptr;
  X509* leaf = X509_STORE_CTX_get0_cert(store);
  if (leaf == nullptr) return Refuse(store, verdict, "no certificate", X509_V_ERR_UNSPECIFIED);
  std::string fingerprint = FormatFingerprint(X509Sha256(leaf));
  if (verdict != nullptr) {
    verdict->checked = true;
    verdict->fingerprint = fingerprint;
    verdict->subject = SubjectCommonName(leaf);
  }
  bool pinned = impl->pins.count(X509Sha256(leaf)) > 0;
  bool by_ca = false;
  if (!pinned) {
    if (!impl->has_ca)
      return Refuse(store, verdict, "not pinned, and no CA is configured",
                    X509_V_ERR_CERT_UNTRUSTED);
    // The whole chain: signatures, validity dates and the TLS purpose.
    if (X509_verify_cert(store) != 1)
      return Refuse(store, verdict,
                    std::string("not pinned, and not signed by the trusted CA: ") +
                        X509_verify_cert_error_string(X509_STORE_CTX_get_error(store)),
                    X509_V_ERR_CERT_UNTRUSTED);
    by_ca = true;
  }
  if (verdict != nullptr && !verdict->expected_fingerprint.empty() &&
      verdict->expected_fingerprint != fingerprint)
    return Refuse(store, verdict, "not the expected host " + verdict->expected_fingerprint,
                  X509_V_ERR_CERT_REJECTED);
  if (verdict != nullptr) {
    verdict->accepted = true;
    verdict->verified_by_ca = by_ca;
  }
  X509_STORE_CTX_set_error(store, X509_V_OK);
  return 1;
}

TlsContext::TlsContext(std::unique_ptr<Impl> impl, std::string fingerprint)
    : impl_(std::move(impl)), fingerprint_(std::move(fingerprint)) {}

TlsContext::~TlsContext() = default;

base::Result<std::shared_ptr<const TlsContext>> TlsContext::Create(const TlsSettings& settings) {
  ERR_clear_error();
  auto impl = std::make_unique<Impl>();
  impl->ctx = SSL_CTX_new(TLS_method());
  if (impl->ctx == nullptr)
    return base::Error(base::Code::kInternal, "SSL_CTX_new: " + TakeOpenSslError("failed"));
  RETURN_IF_ERROR(ConfigureProtocol(impl->ctx));
  RETURN_IF_ERROR(LoadIdentity(impl->ctx, settings));
  RETURN_IF_ERROR(LoadTrust(impl->ctx, settings, *impl));
  X509* own = SSL_CTX_get0_certificate(impl->ctx);
  std::string fingerprint = FormatFingerprint(X509Sha256(own));
  return std::shared_ptr<const TlsContext>(new TlsContext(std::move(impl), std::move(fingerprint)));
}

}  // namespace transport
