// Helpers shared by the transport tests: socket pairs, hex golden bytes,
// hand-built raw frames and seeded payloads.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "base/fd.h"
#include "transport/frame.h"

namespace transport::testing {

// A connected AF_UNIX stream pair (CLOEXEC).
std::pair<base::Fd, base::Fd> SocketPair();

// "46 59 52 46" <-> bytes.
std::vector<uint8_t> FromHex(const std::string& hex);
std::string ToHex(const std::vector<uint8_t>& bytes);

// Header + payload as FrameStream would send it; the CRC is computed over
// the final header fields unless h.crc32c is nonzero (then sent as given).
std::vector<uint8_t> RawFrame(FrameHeader h, const std::vector<uint8_t>& payload);

// Writes all bytes to fd (the test's fake peer).
void WriteRaw(int fd, const std::vector<uint8_t>& bytes);

// Deterministic payload for frame `index` of a stream seeded with `seed`:
// a random size up to max_size and a content mix (zeros, text, random) so
// the compressor sees every kind of batch.
std::vector<uint8_t> SeededPayload(uint64_t seed, uint64_t index, size_t max_size);

// Random bytes from a seed.
std::vector<uint8_t> RandomBytes(uint64_t seed, size_t n);
// Compressible, not mostly-zero: words from a small vocabulary.
std::vector<uint8_t> TextBytes(uint64_t seed, size_t n);

}  // namespace transport::testing
