#include "transport/hello.h"

#include <algorithm>
#include <string>

#include "base/le.h"

namespace transport {
namespace {

base::Error Malformed(const char* what, const std::string& detail) {
  return base::Error(base::Code::kDataLoss, std::string("malformed ") + what + ": " + detail);
}

std::string Range(uint16_t lo, uint16_t hi) {
  return std::to_string(lo) + ".." + std::to_string(hi);
}

}  // namespace

// Layout (docs/protocol.md): min u16 | max u16 | role u8 | reserved u8 |
// stream_index u16 | stream_count u16 | reserved u16 | migration_id 16 bytes.
std::vector<uint8_t> EncodeHello(const Hello& h) {
  std::vector<uint8_t> out(kHelloBytes, 0);
  base::PutLe16(&out[0], h.min_version);
  base::PutLe16(&out[2], h.max_version);
  out[4] = uint8_t(h.role);
  base::PutLe16(&out[6], h.stream_index);
  base::PutLe16(&out[8], h.stream_count);
  std::copy(h.migration_id.begin(), h.migration_id.end(), out.begin() + 12);
  return out;
}

base::Result<Hello> DecodeHello(std::span<const uint8_t> p) {
  if (p.size() < kHelloBytes)
    return Malformed("hello", "payload is " + std::to_string(p.size()) + " bytes, need " +
                                  std::to_string(kHelloBytes));
  Hello h;
  h.min_version = base::GetLe16(&p[0]);
  h.max_version = base::GetLe16(&p[2]);
  uint8_t role = p[4];
  h.stream_index = base::GetLe16(&p[6]);
  h.stream_count = base::GetLe16(&p[8]);
  std::copy(p.begin() + 12, p.begin() + 28, h.migration_id.begin());
  if (h.min_version == 0 || h.min_version > h.max_version)
    return Malformed("hello", "bad version range " + Range(h.min_version, h.max_version));
  if (role != uint8_t(StreamRole::kControl) && role != uint8_t(StreamRole::kData))
    return Malformed("hello", "unknown stream role " + std::to_string(role));
  h.role = StreamRole(role);
  if (h.stream_count == 0 || h.stream_index >= h.stream_count)
    return Malformed("hello", "stream index " + std::to_string(h.stream_index) + " of " +
                                  std::to_string(h.stream_count));
  if (p[5] != 0 || base::GetLe16(&p[10]) != 0) return Malformed("hello", "reserved bytes not 0");
  return h;
}

std::vector<uint8_t> EncodeHelloReply(const HelloReply& r) {
  std::vector<uint8_t> out(kHelloReplyBytes, 0);
  base::PutLe16(&out[0], r.version);
  return out;
}

base::Result<HelloReply> DecodeHelloReply(std::span<const uint8_t> p) {
  if (p.size() < kHelloReplyBytes)
    return Malformed("hello reply", "payload is " + std::to_string(p.size()) + " bytes, need " +
                                        std::to_string(kHelloReplyBytes));
  HelloReply r;
  r.version = base::GetLe16(&p[0]);
  if (r.version == 0) return Malformed("hello reply", "version 0");
  if (base::GetLe16(&p[2]) != 0) return Malformed("hello reply", "reserved bytes not 0");
  return r;
}

base::Result<uint16_t> NegotiateVersion(const Hello& peer) {
  uint16_t chosen = std::min(peer.max_version, kProtocolVersion);
  if (chosen < std::max(peer.min_version, kMinProtocolVersion))
    return base::Error(base::Code::kFailedPrecondition,
                       "no common protocol version (peer speaks " +
                           Range(peer.min_version, peer.max_version) + ", we speak " +
                           Range(kMinProtocolVersion, kProtocolVersion) + ")");
  return chosen;
}

std::vector<uint8_t> EncodeErrorPayload(const base::Error& e) {
  std::vector<uint8_t> out(4 + e.message().size());
  base::PutLe32(&out[0], uint32_t(e.code()));
  std::copy(e.message().begin(), e.message().end(), out.begin() + 4);
  return out;
}

base::Error DecodeErrorPayload(std::span<const uint8_t> p) {
  if (p.size() < 4)
    return base::Error(base::Code::kDataLoss,
                       "malformed error frame from peer (" + std::to_string(p.size()) + " bytes)");
  uint32_t code = base::GetLe32(&p[0]);
  // kOk in an error frame is a peer bug; an unknown code comes from a newer
  // peer. Either way the stream is aborted, only the retry advice is lost.
  base::Code c = (code == 0 || code > uint32_t(base::Code::kUnauthenticated)) ? base::Code::kUnknown
                                                                              : base::Code(code);
  std::string message(reinterpret_cast<const char*>(p.data()) + 4, p.size() - 4);
  return base::Error::FromPeer(c, std::move(message));
}

}  // namespace transport
