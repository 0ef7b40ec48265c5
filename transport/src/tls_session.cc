// The TLS handshake on a connected socket (TlsConnect / TlsAccept) and the
// established session FrameStream reads and writes through.
#include <openssl/err.h>
#include <poll.h>

#include <cerrno>
#include <cstring>
#include <memory>
#include <string>

#include "base/mutex.h"
#include "socket_wait.h"
#include "tls_internal.h"
#include "tls_plaintext.h"
#include "transport/tcp.h"
#include "transport/tls.h"

namespace transport {
namespace {

// RFC 9266: the tls-exporter channel binding.
constexpr char kExporterLabel[] = "EXPORTER-Channel-Binding";
// One Write encrypts and sends at most this much, so a large write does not
// hold the session's lock (and keep the receiving thread out) for long.
constexpr size_t kMaxWriteChunk = 256 << 10;
// RFC 8446 5.5: AES-GCM keys must not seal more than about 2^24.5 full
// records (~380 GB); a long move can send that on one stream, so we switch
// our sending key well before (OpenSSL 3.0 does not do it by itself).
constexpr uint64_t kKeyUpdateBytes = uint64_t(64) << 30;

bool IsCertificateAlert(int alert) {
  switch (alert) {
    case SSL_AD_BAD_CERTIFICATE:
    case SSL_AD_UNSUPPORTED_CERTIFICATE:
    case SSL_AD_CERTIFICATE_REVOKED:
    case SSL_AD_CERTIFICATE_EXPIRED:
    case SSL_AD_CERTIFICATE_UNKNOWN:
    case SSL_AD_UNKNOWN_CA:
    case SSL_AD_ACCESS_DENIED:
    case SSL_AD_CERTIFICATE_REQUIRED: return true;
    default: return false;
  }
}

// An OpenSSL library error (SSL_ERROR_SSL) as a ferry error: an alert from
// the peer says what it refused, anything else is a corrupt stream.
base::Error SslFailure(unsigned long code) {
  int reason = ERR_GET_REASON(code);
  const char* text = ERR_reason_error_string(code);
  std::string why = text != nullptr ? text : "error " + std::to_string(reason);
  if (reason >= SSL_AD_REASON_OFFSET) {
    int alert = reason - SSL_AD_REASON_OFFSET;
    if (IsCertificateAlert(alert))
      return base::Error(base::Code::kPermissionDenied,
                         "peer refused our certificate (TLS alert: " + why + ")");
    if (alert == SSL_AD_BAD_RECORD_MAC || alert == SSL_AD_DECODE_ERROR ||
        alert == SSL_AD_DECRYPT_ERROR)
      return base::Error(base::Code::kDataLoss,
                         "peer reports a corrupted TLS stream (" + why + ")");
    return base::Error(base::Code::kUnavailable,
                       "peer aborted the TLS connection (TLS alert: " + why + ")");
  }
  if (reason == SSL_R_DECRYPTION_FAILED_OR_BAD_RECORD_MAC)
    return base::Error(base::Code::kDataLoss,
                       "TLS record failed authentication (corrupted or forged stream)");
  return base::Error(base::Code::kDataLoss, "malformed TLS record: " + why);
}

base::Error SocketFailure(int err) {
  if (err == ECONNRESET || err == EPIPE || err == ENOTCONN)
    return base::Error(base::Code::kUnavailable,
                       err == ECONNRESET ? "connection reset by peer" : "connection closed by peer",
                       err);
  return base::ErrnoError("TLS socket I/O", err);
}

class OpenSslSession final : public TlsSession {
 public:
  OpenSslSession(TlsPeer peer, std::unique_ptr<SocketBioState> bio, SSL* ssl)
      : TlsSession(std::move(peer)), bio_(std::move(bio)), ssl_(ssl) {}
  ~OpenSslSession() override {
    base::MutexLock lock(mu_);
    SSL_free(ssl_);  // frees the BIO too; bio_ (its state) goes after
  }

  base::Result<IoResult> Read(uint8_t* p, size_t n) override {
    base::MutexLock lock(mu_);
    ERR_clear_error();
    size_t got = 0;
    int r = SSL_read_ex(ssl_, p, n, &got);
    if (r == 1) return IoResult{got, Wait::kNone, false};
    return Failure(r);
  }

  base::Result<IoResult> Write(const uint8_t* p, size_t n) override {
    base::MutexLock lock(mu_);
    ERR_clear_error();
    if (sent_since_key_update_ >= kKeyUpdateBytes) {
      // Refused while a record is still pending; then the next Write tries.
      if (SSL_key_update(ssl_, SSL_KEY_UPDATE_NOT_REQUESTED) == 1) sent_since_key_update_ = 0;
      ERR_clear_error();
    }
    size_t put = 0;
    int r = SSL_write_ex(ssl_, p, n < kMaxWriteChunk ? n : kMaxWriteChunk, &put);
    if (r == 1) {
      sent_since_key_update_ += put;
      return IoResult{put, Wait::kNone, false};
    }
    return Failure(r);
  }

 private:
  base::Result<IoResult> Failure(int r) REQUIRES(mu_) {
    int e = SSL_get_error(ssl_, r);
    IoResult io;
    switch (e) {
      case SSL_ERROR_WANT_READ: io.wait = Wait::kReadable; return io;
      case SSL_ERROR_WANT_WRITE: io.wait = Wait::kWritable; return io;
      case SSL_ERROR_ZERO_RETURN: io.eof = true; return io;
      case SSL_ERROR_SYSCALL:
        ERR_clear_error();
        if (bio_->last_errno == 0) {  // TCP EOF without close_notify
          io.eof = true;
          return io;
        }
        return SocketFailure(bio_->last_errno);
      default: {
        unsigned long code = ERR_peek_error();
        ERR_clear_error();
        if (ERR_GET_REASON(code) == SSL_R_UNEXPECTED_EOF_WHILE_READING) {
          io.eof = true;
          return io;
        }
        return SslFailure(code);
      }
    }
  }

  base::Mutex mu_;
  const std::unique_ptr<SocketBioState> bio_;  // used by ssl_'s BIO
  SSL* const ssl_ GUARDED_BY(mu_);
  uint64_t sent_since_key_update_ GUARDED_BY(mu_) = 0;
};

// Why SSL_do_handshake failed, from OpenSSL's error, our verdict on the
// peer's certificate and what the socket saw.
base::Error HandshakeFailure(int ssl_error, const HandshakeVerdict& verdict,
                             const SocketBioState& bio) {
  auto closed = [&] {
    if (bio.bytes_read == 0)
      return base::Error(base::Code::kUnavailable,
                         "connection closed by peer during the TLS handshake");
    return base::Error(base::Code::kDataLoss, "truncated TLS handshake: the peer closed after " +
                                                  std::to_string(bio.bytes_read) + " bytes");
  };
  if (ssl_error == SSL_ERROR_SYSCALL) {
    ERR_clear_error();
    return bio.last_errno == 0 ? closed() : SocketFailure(bio.last_errno);
  }
  unsigned long code = ERR_peek_error();
  ERR_clear_error();
  int reason = ERR_GET_REASON(code);
  if (verdict.checked && !verdict.accepted) {
    std::string cn = verdict.subject.empty() ? "" : " (CN " + verdict.subject + ")";
    return base::Error(
        base::Code::kPermissionDenied,
        "peer certificate " + verdict.fingerprint + cn + " is not trusted: " + verdict.rejection);
  }
  if (reason == SSL_R_PEER_DID_NOT_RETURN_A_CERTIFICATE)
    return base::Error(base::Code::kPermissionDenied, "peer sent no certificate");
  if (reason == SSL_R_UNEXPECTED_EOF_WHILE_READING) return closed();
  if (reason >= SSL_AD_REASON_OFFSET) return SslFailure(code);
  const char* text = ERR_reason_error_string(code);
  return base::Error(base::Code::kDataLoss,
                     std::string("malformed TLS handshake: ") + (text ? text : "unknown error"));
}

std::string PeerName(int fd) {
  base::Result<PeerAddress> a = GetPeerAddress(fd);
  return a.has_value() ? a->text : "socket " + std::to_string(fd);
}

struct SslFree {
  void operator()(SSL* s) const { SSL_free(s); }
};

// Runs SSL_do_handshake to completion, polling the socket.
base::Status DriveHandshake(SSL* ssl, int fd, bool server, int cancel_fd, const Deadline& deadline,
                            const HandshakeVerdict& verdict, SocketBioState& bio) {
  bool reply_checked = server;
  for (;;) {
    ERR_clear_error();
    bio.last_errno = 0;
    int r = SSL_do_handshake(ssl);
    if (r == 1) return base::Ok();
    int e = SSL_get_error(ssl, r);
    short events = 0;
    if (e == SSL_ERROR_WANT_READ) {
      events = POLLIN;
    } else if (e == SSL_ERROR_WANT_WRITE) {
      events = POLLOUT;
    } else {
      return HandshakeFailure(e, verdict, bio);
    }
    if (!reply_checked && events == POLLIN) {
      // The ClientHello is out; before OpenSSL reads the answer, make sure
      // it is TLS and not an old peer's plaintext refusal.
      reply_checked = true;
      RETURN_IF_ERROR(ExpectTlsServer(fd, cancel_fd, deadline));
      bio.hold_reads = false;
    }
    RETURN_IF_ERROR(WaitFor(fd, events, cancel_fd, deadline, "waiting for the peer"));
  }
}

base::Result<std::unique_ptr<TlsSession>> Handshake(const TlsContext& context, int fd,
                                                    const std::string& expected, int timeout_ms,
                                                    int cancel_fd, bool server) {
  Deadline deadline(timeout_ms);
  HandshakeVerdict verdict;
  verdict.impl = &context.impl();
  if (!expected.empty()) {
    ASSIGN_OR_RETURN(Sha256 pin, ParseFingerprint(expected));
    verdict.expected_fingerprint = FormatFingerprint(pin);
  }
  if (server) RETURN_IF_ERROR(ExpectTlsClient(fd, cancel_fd, deadline));
  ERR_clear_error();
  auto bio_state = std::make_unique<SocketBioState>();
  bio_state->fd = fd;
  bio_state->hold_reads = !server;  // released by DriveHandshake once the reply is seen
  std::unique_ptr<SSL, SslFree> ssl(SSL_new(context.impl().ctx));
  BIO* bio = ssl ? NewSocketBio(bio_state.get()) : nullptr;
  if (bio == nullptr)
    return base::Error(base::Code::kInternal, "SSL_new: " + TakeOpenSslError("out of memory"));
  SSL_set_bio(ssl.get(), bio, bio);
  if (server) {
    SSL_set_accept_state(ssl.get());
  } else {
    SSL_set_connect_state(ssl.get());
  }
  SSL_set_ex_data(ssl.get(), VerdictIndex(), &verdict);
  base::Status done =
      DriveHandshake(ssl.get(), fd, server, cancel_fd, deadline, verdict, *bio_state);
  SSL_set_ex_data(ssl.get(), VerdictIndex(), nullptr);  // verdict dies with this frame
  RETURN_IF_ERROR(done);
  if (!verdict.accepted)  // cannot happen with SSL_VERIFY_PEER; never trust by default
    return base::Error(base::Code::kPermissionDenied, "peer sent no certificate");

  TlsPeer peer;
  peer.fingerprint = verdict.fingerprint;
  peer.subject = verdict.subject;
  peer.verified_by_ca = verdict.verified_by_ca;
  peer.cipher = SSL_get_cipher_name(ssl.get());
  if (SSL_export_keying_material(ssl.get(), peer.channel_binding.data(),
                                 peer.channel_binding.size(), kExporterLabel,
                                 std::strlen(kExporterLabel), nullptr, 0, 0) != 1)
    return base::Error(base::Code::kInternal,
                       "TLS exporter (channel binding): " + TakeOpenSslError("failed"));
  return std::unique_ptr<TlsSession>(
      new OpenSslSession(std::move(peer), std::move(bio_state), ssl.release()));
}

}  // namespace

base::Result<std::unique_ptr<TlsSession>> TlsConnect(const TlsContext& context, int fd,
                                                     const std::string& expected_fingerprint,
                                                     int timeout_ms, int cancel_fd) {
  auto r = Handshake(context, fd, expected_fingerprint, timeout_ms, cancel_fd, false);
  if (!r.has_value()) return r.error().Wrap("TLS handshake with " + PeerName(fd));
  return r;
}

base::Result<std::unique_ptr<TlsSession>> TlsAccept(const TlsContext& context, int fd,
                                                    const std::string& expected_fingerprint,
                                                    int timeout_ms, int cancel_fd) {
  auto r = Handshake(context, fd, expected_fingerprint, timeout_ms, cancel_fd, true);
  if (!r.has_value()) return r.error().Wrap("TLS handshake with " + PeerName(fd));
  return r;
}

}  // namespace transport
