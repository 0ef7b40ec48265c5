// EnsureTracking: puts a storage::TrackingDisk under a running VM's disk so a
// move (storage-only or live) can mirror it. Shared by the "move" and
// "live-move" worker ops. Once wrapped a disk stays wrapped for the worker's
// life, so its dirty bitmap keeps recording guest writes between attempts.
#pragma once

#include <cstddef>

#include "base/result.h"
#include "storage/tracking_disk.h"
#include "vm/machine.h"

namespace appliance {

// Wraps disk `index` in a TrackingDisk unless it already is one; returns it
// (owned by the machine's device, valid until the machine shuts down).
// Called on the worker's control thread (Machine::TransformDisk's rule).
base::Result<storage::TrackingDisk*> EnsureTracking(vm::Machine& machine, size_t index);

}  // namespace appliance
