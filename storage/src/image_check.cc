// CheckDiskImage: open the chain read-only, then walk every qcow2 layer's
// mapping so each allocated L2 table is read and each entry validated.
#include "storage/image_check.h"

#include "base/escape.h"
#include "storage/disk.h"
#include "storage/qcow2.h"

namespace storage {
namespace {

// Longest run asked of MapExtent at once; the walk itself has no limit.
constexpr uint64_t kWalkStep = uint64_t{1} << 40;

// Every entry of every allocated L2 table is decoded (and so validated) by
// Qcow2Disk::MapExtent; unallocated L2 tables are skipped whole. Its errors
// name the layer's file already; `context` says how the layer was reached
// (empty for the top).
base::Status WalkMapping(Disk& layer, const std::string& context) {
  for (uint64_t pos = 0; pos < layer.size();) {
    auto extent = layer.MapExtent(pos, kWalkStep);
    if (!extent) return context.empty() ? extent.error() : extent.error().Wrap(context);
    if (extent->length == 0)
      return base::Error(base::Code::kInternal, "checking " + context +
                                                    ": mapping walk made no progress at offset " +
                                                    std::to_string(pos));
    pos += extent->length;
  }
  return base::Ok();
}

base::Status CheckWritable(const Qcow2Info& info, const std::string& name) {
  auto refuse = [&](base::Code code, const std::string& why) {
    return base::Error(code, name + " cannot be used as a writable disk: " + why);
  };
  if (info.corrupt)
    return refuse(base::Code::kDataLoss,
                  "the image is marked corrupt; repair it (qemu-img check -r all)");
  if (info.dirty)
    return refuse(
        base::Code::kFailedPrecondition,
        "the image is dirty (lazy refcounts, not closed cleanly); repair its refcounts with "
        "qemu-img check -r all first");
  if (info.version != 3)
    return refuse(base::Code::kUnimplemented, "only version 3 qcow2 images are writable");
  return base::Ok();
}

}  // namespace

base::Result<ImageCheckReport> CheckDiskImage(const std::string& path, config::DiskFormat format,
                                              const ImageCheckOptions& options) {
  ImageCheckReport report;
  report.files.push_back(path);
  if (format == config::DiskFormat::kRaw) {
    ASSIGN_OR_RETURN(auto disk, OpenRawDisk(path, /*read_only=*/true, options.engine));
    report.virtual_size = disk->size();
    return report;
  }
  ASSIGN_OR_RETURN(std::unique_ptr<Qcow2Disk> top,
                   OpenQcow2Disk(path, /*read_only=*/true, options.engine));
  report.virtual_size = top->size();
  if (options.writable) RETURN_IF_ERROR(CheckWritable(top->info(), base::Escaped(path)));
  Disk* layer = top.get();
  std::string context;
  while (auto* q = dynamic_cast<Qcow2Disk*>(layer)) {
    RETURN_IF_ERROR(WalkMapping(*q, context));
    if (q->backing() == nullptr) break;
    context = "backing file of " + base::Escaped(report.files.back());
    report.files.push_back(q->info().backing_path);
    layer = q->backing();
  }
  return report;
}

}  // namespace storage
