// CheckDiskImage: is a disk image (with its whole backing chain) fit to be
// used? For the admin-facing operations that accept an image without running
// it: `ferry vm create` and an offline `ferry move-storage`, which would
// otherwise take a damaged image and fail only at start, or copy it and
// report success.
//
// What is checked: the image is opened read-only through OpenDisk, which
// validates the header, the L1 and refcount tables and every backing file
// down the chain (a loop, a missing file, an unsupported feature); then every
// qcow2 layer's mapping is walked over the whole virtual size, which reads
// every allocated L2 table and validates every entry: offsets aligned and
// inside the file, no reserved bits, tables not cut short. So a truncated
// image whose tables point past its end is refused. Data clusters are not
// read (compressed ones are not inflated): the cost is the L2 tables, at most
// 1/8192 of the virtual size with 64 KiB clusters (128 MiB for a fully
// allocated 1 TiB image), read once. Raw files have nothing to validate
// beyond being a readable file of at least one sector.
//
// Nothing is written: a qcow2 opened read-only keeps its autoclear bits.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "base/result.h"
#include "config/vm_definition.h"
#include "storage/block_file.h"

namespace storage {

struct ImageCheckOptions {
  // The disk will be opened read-write (a writable disk of a VM): also refuse
  // what a read-write open refuses (a qcow2 marked corrupt or dirty, version
  // 2), so the admin hears it now rather than at start.
  bool writable = false;
  IoEngine engine = IoEngine::kSync;
};

struct ImageCheckReport {
  std::vector<std::string> files;  // the chain, top first, as opened
  uint64_t virtual_size = 0;       // guest-visible bytes of the top
};

// Errors keep the code of what is wrong (kDataLoss for damage, kNotFound for
// a missing file, kUnimplemented for an unsupported feature,
// kFailedPrecondition for a writable disk that cannot be written) and name
// the file and the problem; every image-derived name is escaped.
base::Result<ImageCheckReport> CheckDiskImage(const std::string& path, config::DiskFormat format,
                                              const ImageCheckOptions& options = {});

}  // namespace storage
