// BlockSink: where a disk copy goes. A local file or Disk now; later an SMB3
// share or a remote peer (appliance/ adapts a transport Channel to this
// interface, so storage/ never sees transport/).
//
// Contract:
// - A call returns once the sink has accepted the bytes: a later successful
//   Flush makes them durable. A sink may pipeline (a remote peer queues frames
//   and returns); it then reports an error of an earlier write from a later
//   call or from Flush. Callers treat everything written since the last
//   successful Flush as unconfirmed until that Flush succeeds.
// - Threads: calls may come from several threads at once (the mirror's copy
//   thread and guest write-through) but never for overlapping byte ranges at
//   the same time; the mirror job guarantees that ordering. Flush may run
//   concurrently with writes; it covers the writes that returned before it
//   was called.
// - Errors carry the destination's meaning: a full destination is
//   kResourceExhausted with errno ENOSPC, naming the destination.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>

#include "base/result.h"
#include "storage/disk.h"

namespace storage {

class BlockSink {
 public:
  virtual ~BlockSink() = default;
  // Guest-visible size of the destination, equal to the source's.
  virtual uint64_t size() const = 0;
  // True if never-written ranges read as zeros (a fresh sparse file): a copy
  // may then skip zero runs and holes stay holes.
  virtual bool reads_zero_initially() const = 0;
  virtual base::Status WriteExtent(uint64_t offset, std::span<const uint8_t> data) = 0;
  // Makes the range read as zeros (a file sink punches a hole).
  virtual base::Status WriteZeroes(uint64_t offset, uint64_t len) = 0;
  virtual base::Status Flush() = 0;
  // The copy is complete: everything is durable (data and the file's name).
  virtual base::Status Finish() = 0;
  // The copy is abandoned for now. What was written stays, so a later attempt
  // can resume from a bitmap; removing it is the caller's decision.
  virtual void Abort() = 0;
  // Names the destination in errors and logs.
  virtual const std::string& name() const = 0;
};

struct FileSinkOptions {
  // Create the file if missing, and size it to `size` (sparse). An existing
  // file keeps its contents (a resumed copy) and is resized to `size`.
  bool create = true;
  // The caller knows the file was created empty for this copy: unwritten
  // ranges read as zeros. False for a file of unknown contents.
  bool fresh = true;
};

// A raw image file as destination. Writes are pwrite on one descriptor
// (positioned writes from several threads are safe; an io_uring ring could not
// be shared between the copy thread and guest threads), zeroes punch holes,
// Flush is fdatasync, Finish also syncs the directory entry.
base::Result<std::unique_ptr<BlockSink>> OpenFileSink(const std::string& path, uint64_t size,
                                                      const FileSinkOptions& options = {});

// Any Disk as destination (for example a qcow2 overlay from OpenDisk). The
// sink serialises calls into the disk (Disk is not thread-safe) and borrows
// it: `disk` must outlive the sink. WriteZeroes is Disk::WriteZeroes.
std::unique_ptr<BlockSink> MakeDiskSink(Disk& disk, std::string name, bool reads_zero_initially);

}  // namespace storage
