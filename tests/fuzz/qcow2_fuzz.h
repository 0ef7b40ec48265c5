// The qcow2 fuzz entry point, shared by the libFuzzer target (clang) and the
// deterministic smoke run in the test suite (any compiler).
#pragma once

#include <cstddef>
#include <cstdint>

namespace storage::fuzz {

// Treats data as a qcow2 image held in memory: opens it read-only and
// read-write (backing files refused), maps and reads it, and on the writable
// open writes, zeroes, discards and flushes. Must never crash, leak or read
// out of bounds, whatever the bytes; errors are the expected outcome.
void Qcow2FuzzOne(const uint8_t* data, size_t size);

}  // namespace storage::fuzz
