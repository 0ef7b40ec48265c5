#include "raw_disk.h"

#include <cstring>

namespace storage {

base::Status RawDisk::CheckRange(std::string_view op, size_t len, uint64_t offset) const {
  if (offset > size_ || len > size_ - offset) {
    return base::Error(base::Code::kOutOfRange, std::string(op) + " disk " + file_->path() +
                                                    " at offset " + std::to_string(offset) + " (" +
                                                    std::to_string(len) +
                                                    " bytes): beyond the end of the disk (" +
                                                    std::to_string(size_) + " bytes)");
  }
  return base::Ok();
}

base::Status RawDisk::Read(void* buf, size_t len, uint64_t offset) {
  RETURN_IF_ERROR(CheckRange("read", len, offset));
  ASSIGN_OR_RETURN(size_t n, file_->ReadAt(buf, len, offset));
  // The file may have shrunk under us since open; what is gone reads as zeros,
  // as it would past the end of a sparse file.
  if (n < len) std::memset(static_cast<uint8_t*>(buf) + n, 0, len - n);
  return base::Ok();
}

base::Status RawDisk::Write(const void* buf, size_t len, uint64_t offset) {
  if (read_only_) {
    return base::Error(base::Code::kPermissionDenied,
                       "write disk " + file_->path() + ": the disk is read-only");
  }
  RETURN_IF_ERROR(CheckRange("write", len, offset));
  return file_->WriteAt(buf, len, offset);
}

base::Status RawDisk::Flush() {
  if (read_only_) return base::Ok();  // nothing of ours can be unwritten
  return file_->Flush();
}

base::Result<std::unique_ptr<Disk>> OpenRawDisk(const std::string& path, bool read_only,
                                                IoEngine engine) {
  OpenOptions options;
  options.writable = !read_only;
  options.engine = engine;
  ASSIGN_OR_RETURN(auto file, OpenBlockFile(path, options));
  ASSIGN_OR_RETURN(uint64_t file_size, file->Size());
  uint64_t size = file_size / kSectorSize * kSectorSize;
  if (size == 0) {
    return base::Error(base::Code::kInvalidArgument,
                       "raw disk " + path + " is smaller than one " + std::to_string(kSectorSize) +
                           "-byte sector (" + std::to_string(file_size) + " bytes)");
  }
  return std::unique_ptr<Disk>(std::make_unique<RawDisk>(std::move(file), size, read_only));
}

}  // namespace storage
