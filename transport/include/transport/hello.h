// Opening a stream: the connecting side sends a Hello (versions it speaks,
// which migration and which stream this is); the accepting side answers with
// a HelloReply naming the chosen version, or an Error frame and closes.
// Byte layouts: docs/protocol.md.
#pragma once

#include <array>
#include <cstdint>
#include <span>
#include <vector>

#include "base/result.h"
#include "transport/frame.h"

namespace transport {

enum class StreamRole : uint8_t {
  kControl = 1,  // the move's control conversation
  kData = 2,     // one of the parallel bulk streams
};

struct Hello {
  uint16_t min_version = kMinProtocolVersion;
  uint16_t max_version = kProtocolVersion;
  StreamRole role = StreamRole::kControl;
  std::array<uint8_t, 16> migration_id{};
  uint16_t stream_index = 0;  // < stream_count
  uint16_t stream_count = 1;  // >= 1
};

struct HelloReply {
  uint16_t version = kProtocolVersion;  // chosen by the accepting side
};

// Payload sizes of this version. Decoders accept longer payloads and ignore
// the tail, so a later version may append fields.
inline constexpr size_t kHelloBytes = 28;
inline constexpr size_t kHelloReplyBytes = 4;
// Receive limit while waiting for a hello, reply or error during the opening.
inline constexpr uint32_t kMaxHelloPayload = 4096;

std::vector<uint8_t> EncodeHello(const Hello& hello);
// kDataLoss for a short payload, an unknown role, min > max, version 0,
// stream_count 0, stream_index >= stream_count or nonzero reserved bytes.
base::Result<Hello> DecodeHello(std::span<const uint8_t> payload);

std::vector<uint8_t> EncodeHelloReply(const HelloReply& reply);
base::Result<HelloReply> DecodeHelloReply(std::span<const uint8_t> payload);

// The accepting side's choice: min(peer.max_version, kProtocolVersion) if that
// is >= max(peer.min_version, kMinProtocolVersion). Otherwise
// kFailedPrecondition "no common protocol version (peer speaks a..b, we speak
// c..d)": retrying is useless until one side is upgraded.
base::Result<uint16_t> NegotiateVersion(const Hello& peer);

// Error frame payload: u32 code (base::Code's numeric value) + UTF-8 message
// (the rest of the payload, no terminator).
std::vector<uint8_t> EncodeErrorPayload(const base::Error& error);
// The peer's error with its code, as base::Error::FromPeer: message()
// "peer: <its text>", peer_message() its text alone. A payload shorter
// than 4 bytes gives kDataLoss "malformed error frame from peer"; a code this
// build does not know (or kOk) becomes kUnknown.
base::Error DecodeErrorPayload(std::span<const uint8_t> payload);

}  // namespace transport
