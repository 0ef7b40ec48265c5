// TLS 1.3 for every peer connection (OpenSSL 3): a host's identity (key +
// certificate), whom it trusts (a CA bundle and/or pinned certificate
// fingerprints, never "anything"), and the mutually authenticated handshake
// that turns a connected TCP socket into an encrypted one before the first
// ferry frame. FrameStream then sends and receives its frames through the
// session (frame_stream.h), so nothing above the stream changes.
//
// Trust: a peer is accepted when its certificate chains to trusted_ca_file,
// or when the SHA-256 fingerprint of its certificate is pinned. Both sides
// present and verify a certificate (mutual). Only TLS 1.3, no session
// tickets and no resumption or 0-RTT: every connection is a full handshake,
// so a recorded handshake cannot be replayed.
//
// Channel binding: TlsPeer::channel_binding is the RFC 9266
// "tls-exporter" value of the session, the same at both ends and unique to
// this connection; application authentication (Kerberos, delegated
// credentials) signs it, so a token cannot be relayed to another connection.
//
// Thread-safety: TlsContext is immutable after Create and may be shared by
// any threads. A TlsSession is used by its FrameStream: one sender and one
// receiver thread at a time (the session serializes its OpenSSL calls).
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.h"

namespace transport {

struct TlsSettings {
  std::string certificate_file;  // PEM: this host's certificate (chain)
  std::string key_file;          // PEM: its private key (root-only file)
  std::string trusted_ca_file;   // PEM bundle; "" for none
  // Peer certificate fingerprints as FormatFingerprint prints them;
  // ParseFingerprint's forms are accepted.
  std::vector<std::string> trusted_fingerprints;
};

// "SHA256:" followed by 32 upper-case hex bytes separated by ':'.
std::string FormatFingerprint(const std::array<uint8_t, 32>& sha256);
// Accepts "SHA256:AB:CD:…", "AB:CD:…", and the same without colons, any
// case. kInvalidArgument naming the text otherwise.
base::Result<std::array<uint8_t, 32>> ParseFingerprint(std::string_view text);

// Creates a new P-256 key and a self-signed certificate for common_name
// (also its DNS subjectAltName) valid for 10 years, written to key_file
// (mode 0600) and certificate_file (0644), each via a temporary file and
// rename so a crash leaves either nothing or a whole file. Refuses to
// overwrite an existing file (kAlreadyExists naming it).
base::Status GenerateHostIdentity(const std::string& certificate_file, const std::string& key_file,
                                  const std::string& common_name);

// The fingerprint of the first certificate in a PEM file (kNotFound for a
// missing file, kInvalidArgument naming it for one that holds no
// certificate).
base::Result<std::string> CertificateFingerprint(const std::string& certificate_file);

struct TlsPeer {
  std::string fingerprint;                    // of the peer's leaf certificate
  std::string subject;                        // its subject common name ("" if none)
  bool verified_by_ca = false;                // chained to trusted_ca_file (else pinned)
  std::string cipher;                         // negotiated suite ("TLS_AES_256_GCM_SHA384")
  std::array<uint8_t, 32> channel_binding{};  // RFC 9266 tls-exporter, 32 bytes
};

class TlsContext {
 public:
  // Loads the certificate and key (kInvalidArgument naming the file for one
  // that is missing, unreadable, malformed, or a key that does not match the
  // certificate), the CA bundle and the pins. kInvalidArgument when neither
  // a CA nor a pin is configured: there would be nobody to trust.
  static base::Result<std::shared_ptr<const TlsContext>> Create(const TlsSettings& settings);
  ~TlsContext();
  TlsContext(const TlsContext&) = delete;
  TlsContext& operator=(const TlsContext&) = delete;

  const std::string& fingerprint() const { return fingerprint_; }  // our own certificate

  struct Impl;  // OpenSSL state (tls_context.cc)
  const Impl& impl() const { return *impl_; }

 private:
  TlsContext(std::unique_ptr<Impl> impl, std::string fingerprint);
  std::unique_ptr<Impl> impl_;
  std::string fingerprint_;
};

// An established TLS session over a socket it does not own (the FrameStream
// owns the socket). Non-blocking I/O: Read/Write return how many bytes moved,
// or kWouldBlock with what to wait for.
class TlsSession {
 public:
  virtual ~TlsSession() = default;
  const TlsPeer& peer() const { return peer_; }

  enum class Wait { kNone, kReadable, kWritable };
  struct IoResult {
    size_t bytes = 0;         // > 0 unless wait != kNone or eof
    Wait wait = Wait::kNone;  // nothing moved: poll the socket for this
    bool eof = false;         // the peer closed (close_notify or TCP EOF)
  };
  // One non-blocking SSL_read / SSL_write (several records for a large
  // write, at most 256 KiB per call so the other direction is not held off
  // long). A Write that returned kWritable must be retried with the same
  // bytes (OpenSSL may already have sealed a record of them). Errors:
  // kUnavailable for a reset, kDataLoss for a record that fails to decrypt
  // or authenticate (a corrupted or forged stream), kPermissionDenied when
  // the peer's alert says it refused our certificate.
  virtual base::Result<IoResult> Read(uint8_t* p, size_t n) = 0;
  virtual base::Result<IoResult> Write(const uint8_t* p, size_t n) = 0;

 protected:
  explicit TlsSession(TlsPeer peer) : peer_(std::move(peer)) {}

 private:
  TlsPeer peer_;
};

// Handshakes on a connected socket (which stays blocking or non-blocking as
// the caller left it; the handshake polls), bounded by timeout_ms and
// cancel_fd (-1: none). expected_fingerprint, if not "", must equal the
// peer's fingerprint in addition to the peer being trusted (a control or
// data stream to a host we already know).
// Errors say what was wrong, name the peer's address and are logged by the
// caller:
//  - kPermissionDenied "peer certificate SHA256:… (CN …) is not trusted: …"
//    (not signed by the CA, not pinned, expired, not the expected host),
//    or "peer sent no certificate";
//  - kPermissionDenied "peer does not speak TLS (plaintext ferry stream?)"
//    when the first bytes are not a TLS record; a server that sees ferry's
//    frame magic first answers with a plaintext ferry Error frame saying
//    that this host requires TLS, so an old or unconfigured peer learns why;
//  - kDataLoss for a malformed or truncated handshake;
//  - kDeadlineExceeded / kCancelled / kUnavailable as for sockets.
// Messages start "TLS handshake with <address>: ".
// In TLS 1.3 the client finishes its handshake before the server has checked
// the client's certificate: a client the server refuses gets its session,
// and its first Read fails with kPermissionDenied "peer refused our
// certificate (TLS alert: …)" (the ferry hello that follows reports it).
// A server that refuses a plaintext ferry peer lingers up to 0.5 s after its
// Error frame (reading what the peer still sends) so the frame is not lost
// to a reset when the caller closes the socket.
base::Result<std::unique_ptr<TlsSession>> TlsConnect(const TlsContext& context, int fd,
                                                     const std::string& expected_fingerprint,
                                                     int timeout_ms, int cancel_fd = -1);
base::Result<std::unique_ptr<TlsSession>> TlsAccept(const TlsContext& context, int fd,
                                                    const std::string& expected_fingerprint,
                                                    int timeout_ms, int cancel_fd = -1);

}  // namespace transport
