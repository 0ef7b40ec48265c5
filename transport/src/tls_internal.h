// What the TLS files share privately: the OpenSSL state of a TlsContext, the
// per-handshake verification record, the socket BIO and small helpers. The
// only header in transport that includes OpenSSL; never exported.
#pragma once

#include <openssl/ssl.h>
#include <openssl/x509.h>

#include <array>
#include <cstdint>
#include <set>
#include <string>

#include "base/result.h"
#include "transport/tls.h"

namespace transport {

using Sha256 = std::array<uint8_t, 32>;

struct TlsContext::Impl {
  ~Impl() { SSL_CTX_free(ctx); }
  SSL_CTX* ctx = nullptr;
  std::set<Sha256> pins;
  bool has_ca = false;
};

// What the certificate verification callback learned about the peer, kept
// in the SSL's ex_data during the handshake (it lives on the handshaking
// thread's stack).
struct HandshakeVerdict {
  const TlsContext::Impl* impl = nullptr;
  std::string expected_fingerprint;  // "" for any trusted peer
  bool checked = false;              // the callback ran (the peer sent a certificate)
  bool accepted = false;
  bool verified_by_ca = false;
  std::string fingerprint;  // of the peer's leaf
  std::string subject;
  std::string rejection;  // why it was refused, when !accepted
};

// The SSL ex_data slot holding a HandshakeVerdict*.
int VerdictIndex();

// The certificate verification callback installed on every SSL_CTX
// (SSL_CTX_set_cert_verify_callback): pinned leaf, or a chain to the CA.
int VerifyPeerCertificate(X509_STORE_CTX* store, void* arg);

// SHA-256 of the DER encoding of cert.
Sha256 X509Sha256(X509* cert);
std::string SubjectCommonName(X509* cert);

// The oldest error on OpenSSL's queue as text (then clears the queue), or
// fallback when the queue is empty.
std::string TakeOpenSslError(const std::string& fallback);

// A BIO over a socket it does not own, using recv/send with MSG_DONTWAIT
// (whatever the socket's own mode) and MSG_NOSIGNAL, so neither the
// handshake nor a session ever blocks or raises SIGPIPE.
struct SocketBioState {
  int fd = -1;
  int last_errno = 0;       // of the last failing recv/send (0: EOF)
  uint64_t bytes_read = 0;  // from the peer, all records
  // A client holds OpenSSL's reads until it has looked at the server's
  // first bytes itself (an old peer's plaintext refusal must reach us
  // whole, not be half-eaten as a bad TLS record).
  bool hold_reads = false;
};
// The BIO borrows state, which must outlive it.
BIO* NewSocketBio(SocketBioState* state);

}  // namespace transport
