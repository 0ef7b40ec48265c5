// The frame container: every ferry stream (control and data) is a sequence of
// frames, each a fixed 32-byte little-endian header followed by a payload.
// The byte-level specification, with a golden example, is docs/protocol.md;
// this header and that page must change together.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>

#include "base/result.h"

namespace transport {

// Bytes 'F','Y','R','F' on the wire (the u32 read little-endian is 0x46525946).
// A stream that does not start with them is not ferry.
inline constexpr uint32_t kFrameMagic = 0x46525946;
// Versions of the protocol this build speaks; a hello negotiates one of them.
inline constexpr uint16_t kProtocolVersion = 1;     // highest we speak
inline constexpr uint16_t kMinProtocolVersion = 1;  // lowest we still accept
// Hello, HelloReply and an Error answering a hello are always stamped with
// this header version, so that two builds of any versions can negotiate: the
// 32-byte header layout of version 1 is frozen.
inline constexpr uint16_t kHelloFrameVersion = 1;
inline constexpr size_t kFrameHeaderBytes = 32;
// Hard cap on a payload as sent; a larger length field is malformed, so a
// corrupt header can never make a receiver allocate gigabytes.
inline constexpr uint32_t kMaxFramePayload = 16u << 20;

// Header layout (little-endian):
//   off  0 u32 magic     off  4 u16 version   off  6 u16 type
//   off  8 u32 flags     off 12 u32 length    off 16 u64 sequence
//   off 24 u32 crc32c    off 28 u32 reserved (must be 0)
// crc32c covers header bytes 0..23 (magic..sequence) followed by the payload
// bytes as sent (compressed if flagged). A compressed payload additionally
// carries zstd's content checksum over the uncompressed bytes, so corruption
// introduced by the compressor itself is caught too.
enum FrameFlags : uint32_t {
  kFlagCompressed = 1u << 0,  // payload is exactly one zstd frame
};
// Every flag this version defines; any other bit set is malformed.
inline constexpr uint32_t kKnownFrameFlags = kFlagCompressed;

struct FrameHeader {
  uint16_t version = kProtocolVersion;
  uint16_t type = 0;  // 0 is invalid, so a zeroed header is never a frame
  uint32_t flags = 0;
  uint32_t length = 0;    // payload bytes as sent
  uint64_t sequence = 0;  // 0 for the first frame of each direction, +1 per frame
  uint32_t crc32c = 0;
};

// Writes the header; the crc32c field is written as given (compute it with
// FrameCrc over the encoded header and the payload, then encode again or
// patch bytes 24..27).
void EncodeFrameHeader(const FrameHeader& header, uint8_t out[kFrameHeaderBytes]);

// CRC32C over header bytes 0..23 followed by the payload as sent.
uint32_t FrameCrc(const uint8_t header[kFrameHeaderBytes], std::span<const uint8_t> payload);
// The same with the payload in two parts (a then b), as FrameStream sends it.
uint32_t FrameCrc(const uint8_t header[kFrameHeaderBytes], std::span<const uint8_t> a,
                  std::span<const uint8_t> b);

// Checks the first 4 header bytes, the magic, on their own, so a receiver
// can refuse a stream that is not ferry as soon as they arrive (an HTTP
// request is shorter than a header and would otherwise wait for the rest):
// kDataLoss "malformed frame header: bad magic 0x… (expected 0x46525946)",
// followed by the bytes as text when they are printable ("GET ").
base::Status CheckFrameMagic(const uint8_t in[4]);

// Parses and checks everything that can be checked without the payload:
// magic (CheckFrameMagic), version within [kMinProtocolVersion, kProtocolVersion], type != 0,
// no unknown flag bits, reserved word zero, length <= min(max_payload,
// kMaxFramePayload). Each failure is kDataLoss with a message naming the
// field and its value. The CRC is not checked here (it needs the payload).
base::Result<FrameHeader> DecodeFrameHeader(const uint8_t in[kFrameHeaderBytes],
                                            uint32_t max_payload);

// Frame types 1..15 are the transport's own; 16.. belong to the application
// (appliance/ move_protocol.h). A receiver aborts on a type it does not know.
enum class FrameType : uint16_t {
  kHello = 1,       // first frame of every stream, client -> server
  kHelloReply = 2,  // server's answer: the chosen version
  kError = 3,       // the sender aborts the stream; payload: code + message
};
inline constexpr uint16_t kFirstApplicationFrameType = 16;

}  // namespace transport
