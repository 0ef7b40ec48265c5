// Telling a TLS peer from a plaintext one before OpenSSL sees any byte, so a
// ferry build without TLS (or with TLS switched off) gets a clear refusal in
// its own protocol instead of a TLS alert it cannot read.
#pragma once

#include "base/result.h"
#include "socket_wait.h"

namespace transport {

// Server side, before the handshake: waits (peeking, nothing consumed) for
// the first bytes. Ok when they begin a TLS record. Otherwise
// kPermissionDenied "peer does not speak TLS (plaintext ferry stream?)…";
// a peer that sent ferry's frame magic is first answered with a plaintext
// ferry Error frame (kPermissionDenied "this host requires TLS on every peer
// connection") and drained, so the frame reaches it before the close.
// EOF first: kUnavailable; cancel/timeout as WaitFor.
base::Status ExpectTlsClient(int fd, int cancel_fd, const Deadline& deadline);

// Client side, when the handshake first waits for the server's answer:
// peeks at the first bytes. Ok when they begin a TLS record, or when the
// peer closed without a byte (the handshake then reports it). Otherwise
// kPermissionDenied "peer does not speak TLS (plaintext ferry stream?)",
// followed by the peer's own text when the reply was a ferry Error frame.
base::Status ExpectTlsServer(int fd, int cancel_fd, const Deadline& deadline);

}  // namespace transport
