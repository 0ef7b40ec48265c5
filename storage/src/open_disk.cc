// OpenDisk: the one place that maps a configured format to its Disk.
#include "storage/disk.h"
#include "storage/qcow2.h"

namespace storage {

base::Result<std::unique_ptr<Disk>> OpenDisk(const std::string& path, config::DiskFormat format,
                                             bool read_only, IoEngine engine) {
  switch (format) {
    case config::DiskFormat::kRaw: return OpenRawDisk(path, read_only, engine);
    case config::DiskFormat::kQcow2: {
      ASSIGN_OR_RETURN(auto disk, OpenQcow2Disk(path, read_only, engine));
      return std::unique_ptr<Disk>(std::move(disk));
    }
  }
  return base::Error(base::Code::kInvalidArgument, "open " + path + ": unknown disk format " +
                                                       std::to_string(static_cast<int>(format)));
}

}  // namespace storage
