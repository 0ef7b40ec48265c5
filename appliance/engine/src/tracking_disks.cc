#include "engine/tracking_disks.h"

#include <memory>
#include <string>

namespace appliance {

base::Result<storage::TrackingDisk*> EnsureTracking(vm::Machine& machine, size_t index) {
  storage::TrackingDisk* tracking = nullptr;
  base::Status st = machine.TransformDisk(
      index,
      [&](std::unique_ptr<storage::Disk>& current) -> base::Result<std::unique_ptr<storage::Disk>> {
        if (auto* t = dynamic_cast<storage::TrackingDisk*>(current.get())) {
          tracking = t;
          return std::move(current);
        }
        // Create consumes `current` even when it fails; the only way it
        // fails is the bitmap, so check that first and leave `current`
        // intact on error (TransformDisk's contract).
        if (auto probe = storage::DirtyBitmap::Create(current->size()); !probe)
          return probe.error();
        auto created = storage::TrackingDisk::Create(std::move(current));
        if (!created) return created.error();
        tracking = created->get();
        return std::unique_ptr<storage::Disk>(std::move(*created));
      });
  if (!st) return st.error().Wrap("track disk " + std::to_string(index));
  return tracking;
}

}  // namespace appliance
