// Streaming a checkpoint layer into the layer above it (qemu's "block-stream"
// / "blockpull" for one layer): the building block for deleting a checkpoint
// without changing what the guest sees.
//
//   before:   base <- X <- Y           (Y's unallocated clusters show X, then base)
//   stream:   copy into Y what X stores itself, wherever Y stores nothing
//   rebase:   SetQcow2Backing(Y, base) (qemu-img rebase -u)
//   after:    base <- Y                (X is no longer needed)
//
// Only clusters Y does not store are written, with exactly the bytes Y
// already shows there, so Y's contents never change, at any point, and an
// interrupted stream can simply be run again. Y may be written by a guest
// between calls (not during one: callers serialise, e.g. with the VM's disk
// I/O paused): a guest write allocates the cluster in Y, so the stream then
// leaves it alone.
//
// Threads: like every Disk, the disks are not thread-safe; callers serialise.
#pragma once

#include <cstdint>

#include "base/result.h"
#include "storage/disk.h"

namespace storage {

// Largest range StreamLayerRange is meant to be called with while a guest's
// I/O waits for it (a few milliseconds of copying).
inline constexpr uint64_t kStreamChunkBytes = 4u << 20;

// Copies, for [offset, offset + len), what `layer` stores itself (per its
// MapExtent) into `into`, wherever `into`'s top layer reports kUnallocated.
// Data runs are read from `layer` and written; zero runs are written as zeros
// when copy_zeros (they hide what lies below `layer`), and skipped otherwise
// (correct when `layer` has no backing file and `into` will have none either:
// an unallocated cluster without a backing file reads as zeros). `into` must
// be writable and at least as large as the range. Returns the bytes written.
base::Result<uint64_t> StreamLayerRange(Disk& layer, Disk& into, uint64_t offset, uint64_t len,
                                        bool copy_zeros);

}  // namespace storage
