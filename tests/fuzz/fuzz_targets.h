// Entry points of the byte-parsing fuzz targets, each shared by its libFuzzer
// binary (clang, FERRY_LIBFUZZER) and its deterministic smoke run. Each must
// never crash, hang or read out of bounds whatever the bytes: a refusal is an
// error value, and an invariant that breaks aborts with a message
// (ferry_fuzz::Fail).
#pragma once

#include <cstddef>
#include <cstdint>

namespace ferry_fuzz {

// transport: the frame header, hello/reply/error payload decoders, and a
// FrameStream receiving the bytes from a socket until it refuses them or
// they end.
void FrameFuzzOne(const uint8_t* data, size_t size);

// appliance/protocol (ferry_protocol alone): every binary frame decoder of
// move_protocol.h and every JSON decoder of move_protocol.h and
// live_move_types.h. The first byte picks the decoder, the rest is its input.
void ProtocolFuzzOne(const uint8_t* data, size_t size);

// config: ParseVmDefinition and ParseHostSettings on the bytes as TOML.
void ConfigFuzzOne(const uint8_t* data, size_t size);

}  // namespace ferry_fuzz
