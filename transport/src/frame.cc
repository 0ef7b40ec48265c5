#include "transport/frame.h"

#include <cstdio>
#include <string>

#include "base/crc32c.h"
#include "base/le.h"

namespace transport {
namespace {

// The CRC covers the header up to (not including) the crc field itself.
constexpr size_t kCrcCoveredHeaderBytes = 24;

base::Error Malformed(const std::string& what) {
  return base::Error(base::Code::kDataLoss, "malformed frame header: " + what);
}

std::string Hex(uint32_t v) {
  char buf[16];
  snprintf(buf, sizeof buf, "0x%08x", v);
  return buf;
}

// The magic's bytes as they would read as text, or "" when they do not.
std::string PrintableText(const uint8_t in[4]) {
  std::string text;
  for (int i = 0; i < 4; ++i) {
    if (in[i] < 0x20 || in[i] > 0x7e) return "";
    text += char(in[i]);
  }
  return text;
}

}  // namespace

base::Status CheckFrameMagic(const uint8_t in[4]) {
  uint32_t magic = base::GetLe32(in);
  if (magic == kFrameMagic) return base::Ok();
  std::string what = "bad magic " + Hex(magic) + " (expected " + Hex(kFrameMagic) + ")";
  if (std::string text = PrintableText(in); !text.empty()) {
    what += ": the stream starts with text \"" + text + "\"";
    static constexpr const char* kHttpMethods[] = {"GET ", "POST", "PUT ", "HEAD",
                                                   "DELE", "OPTI", "PATC", "CONN"};
    for (const char* method : kHttpMethods) {
      if (text == method) {
        what +=
            ", an HTTP request? This port speaks the ferry migration protocol (docs/protocol.md)";
        break;
      }
    }
  }
  return Malformed(what);
}

void EncodeFrameHeader(const FrameHeader& h, uint8_t out[kFrameHeaderBytes]) {
  base::PutLe32(out + 0, kFrameMagic);
  base::PutLe16(out + 4, h.version);
  base::PutLe16(out + 6, h.type);
  base::PutLe32(out + 8, h.flags);
  base::PutLe32(out + 12, h.length);
  base::PutLe64(out + 16, h.sequence);
  base::PutLe32(out + 24, h.crc32c);
  base::PutLe32(out + 28, 0);
}

uint32_t FrameCrc(const uint8_t header[kFrameHeaderBytes], std::span<const uint8_t> payload) {
  return FrameCrc(header, payload, {});
}

uint32_t FrameCrc(const uint8_t header[kFrameHeaderBytes], std::span<const uint8_t> a,
                  std::span<const uint8_t> b) {
  uint32_t crc = base::Crc32c(header, kCrcCoveredHeaderBytes);
  if (!a.empty()) crc = base::Crc32c(a.data(), a.size(), crc);
  if (!b.empty()) crc = base::Crc32c(b.data(), b.size(), crc);
  return crc;
}

base::Result<FrameHeader> DecodeFrameHeader(const uint8_t in[kFrameHeaderBytes],
                                            uint32_t max_payload) {
  RETURN_IF_ERROR(CheckFrameMagic(in));
  FrameHeader h;
  h.version = base::GetLe16(in + 4);
  h.type = base::GetLe16(in + 6);
  h.flags = base::GetLe32(in + 8);
  h.length = base::GetLe32(in + 12);
  h.sequence = base::GetLe64(in + 16);
  h.crc32c = base::GetLe32(in + 24);
  uint32_t reserved = base::GetLe32(in + 28);
  if (h.version < kMinProtocolVersion || h.version > kProtocolVersion)
    return Malformed("unsupported version " + std::to_string(h.version) + " (we speak " +
                     std::to_string(kMinProtocolVersion) + ".." + std::to_string(kProtocolVersion) +
                     ")");
  if (h.type == 0) return Malformed("frame type 0 is invalid");
  if (h.flags & ~kKnownFrameFlags)
    return Malformed("unknown flag bits " + Hex(h.flags & ~kKnownFrameFlags));
  if (reserved != 0) return Malformed("reserved field is " + Hex(reserved) + ", must be 0");
  uint32_t limit = max_payload < kMaxFramePayload ? max_payload : kMaxFramePayload;
  if (h.length > limit)
    return Malformed("length " + std::to_string(h.length) + " over the maximum " +
                     std::to_string(limit));
  return h;
}

}  // namespace transport
