#include "raw_disk.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <vector>

#include "base/escape.h"

namespace storage {

base::Status RawDisk::CheckRange(std::string_view op, uint64_t len, uint64_t offset) const {
  if (offset > size_ || len > size_ - offset) {
    return base::Error(base::Code::kOutOfRange, std::string(op) + " disk " + file_->display_path() +
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

base::Status RawDisk::CheckWritable(std::string_view op) const {
  if (read_only_) {
    return base::Error(
        base::Code::kPermissionDenied,
        std::string(op) + " disk " + file_->display_path() + ": the disk is read-only");
  }
  return base::Ok();
}

base::Status RawDisk::Write(const void* buf, size_t len, uint64_t offset) {
  RETURN_IF_ERROR(CheckWritable("write"));
  RETURN_IF_ERROR(CheckRange("write", len, offset));
  return file_->WriteAt(buf, len, offset);
}

base::Status RawDisk::WriteZeroBuffers(uint64_t offset, uint64_t len) {
  static const std::vector<uint8_t> zeros(1 << 20, 0);
  for (uint64_t done = 0; done < len;) {
    size_t n = size_t(std::min<uint64_t>(zeros.size(), len - done));
    RETURN_IF_ERROR(file_->WriteAt(zeros.data(), n, offset + done));
    done += n;
  }
  return base::Ok();
}

base::Status RawDisk::Discard(uint64_t offset, uint64_t len) {
  RETURN_IF_ERROR(CheckWritable("discard"));
  RETURN_IF_ERROR(CheckRange("discard", len, offset));
  base::Status st = file_->PunchHole(offset, len);
  if (!st && st.error().code() == base::Code::kUnimplemented) return WriteZeroBuffers(offset, len);
  return st;
}

base::Status RawDisk::WriteZeroes(uint64_t offset, uint64_t len) {
  RETURN_IF_ERROR(CheckWritable("zero"));
  RETURN_IF_ERROR(CheckRange("zero", len, offset));
  base::Status st = file_->ZeroRange(offset, len);
  if (!st && st.error().code() == base::Code::kUnimplemented) return WriteZeroBuffers(offset, len);
  return st;
}

base::Status RawDisk::Flush() {
  if (read_only_) return base::Ok();  // nothing of ours can be unwritten
  return file_->Flush();
}

base::Result<Extent> RawDisk::MapExtent(uint64_t offset, uint64_t max_len) {
  if (offset > size_) RETURN_IF_ERROR(CheckRange("map", 0, offset));
  const uint64_t limit = offset + std::min(max_len, size_ - offset);
  Extent e{offset, limit - offset, ExtentKind::kData};
  if (limit == offset) return e;
  off_t data = lseek(seek_fd_.get(), off_t(offset), SEEK_DATA);
  if (data < 0 && errno == ENXIO) {
    // No data at or after offset: a hole to the end of the file (and what
    // lies past the file's end reads as zeros too).
    e.kind = ExtentKind::kZero;
    return e;
  }
  if (data < 0) {
    // A file system without SEEK_DATA support: everything is data.
    if (errno == EINVAL || errno == EOPNOTSUPP) return e;
    return base::ErrnoError("lseek SEEK_DATA " + file_->display_path());
  }
  if (uint64_t(data) > offset) {
    e.kind = ExtentKind::kZero;
    e.length = std::min<uint64_t>(uint64_t(data), limit) - offset;
    return e;
  }
  off_t hole = lseek(seek_fd_.get(), off_t(offset), SEEK_HOLE);
  if (hole < 0) return base::ErrnoError("lseek SEEK_HOLE " + file_->display_path());
  e.length = std::min<uint64_t>(uint64_t(hole), limit) - offset;
  if (e.length == 0) e.length = limit - offset;  // raced with a write; call it data
  return e;
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
                       "raw disk " + base::Escaped(path) + " is smaller than one " +
                           std::to_string(kSectorSize) + "-byte sector (" +
                           std::to_string(file_size) + " bytes)");
  }
  ASSIGN_OR_RETURN(base::Fd seek_fd, base::Fd::Open(path, O_RDONLY));
  return std::unique_ptr<Disk>(
      std::make_unique<RawDisk>(std::move(file), std::move(seek_fd), size, read_only));
}

}  // namespace storage
