#include "block_file_base.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cinttypes>
#include <cstdint>
#include <limits>

namespace storage {

std::optional<FileId> BlockFileBase::id() const {
  struct stat st {};
  if (fstat(fd_.get(), &st) != 0) return std::nullopt;
  return FileId{uint64_t(st.st_dev), uint64_t(st.st_ino)};
}

std::string BlockFileBase::Describe(IoOp op, uint64_t offset, size_t len) const {
  return std::string(op == IoOp::kRead ? "read " : "write ") + display_path() + " at offset " +
         std::to_string(offset) + " (" + std::to_string(len) + " bytes)";
}

base::Status BlockFileBase::CheckRequests(std::span<const IoRequest> requests) const {
  constexpr auto kMaxOffset = static_cast<uint64_t>(std::numeric_limits<off_t>::max());
  for (const IoRequest& r : requests) {
    if (r.op != IoOp::kRead && r.op != IoOp::kWrite) {
      return base::Error(base::Code::kInvalidArgument, display_path() +
                                                           ": request with invalid operation " +
                                                           std::to_string(static_cast<int>(r.op)));
    }
    if (r.op == IoOp::kWrite && !options_.writable) {
      return base::Error(base::Code::kPermissionDenied,
                         Describe(r.op, r.offset, r.len) + ": file is open read-only");
    }
    if (r.offset > kMaxOffset || r.len > kMaxOffset - r.offset) {
      return base::Error(base::Code::kInvalidArgument,
                         Describe(r.op, r.offset, r.len) + ": beyond the largest file offset");
    }
    if (r.len > 0 && r.buf == nullptr) {
      return base::Error(base::Code::kInvalidArgument,
                         Describe(r.op, r.offset, r.len) + ": null buffer");
    }
    if (options_.direct) {
      auto address = reinterpret_cast<uintptr_t>(r.buf);
      if (r.offset % kDirectAlignment != 0 || r.len % kDirectAlignment != 0 ||
          address % kDirectAlignment != 0) {
        return base::Error(base::Code::kInvalidArgument,
                           Describe(r.op, r.offset, r.len) +
                               ": O_DIRECT needs offset, length and buffer address aligned to " +
                               std::to_string(kDirectAlignment) + " bytes");
      }
    }
  }
  return base::Ok();
}

base::Result<size_t> BlockFileBase::ReadAt(void* buf, size_t len, uint64_t offset) {
  IoRequest request{IoOp::kRead, buf, len, offset};
  ASSIGN_OR_RETURN(std::vector<size_t> done, SubmitBatch({&request, 1}));
  return done[0];
}

base::Status BlockFileBase::WriteAt(const void* buf, size_t len, uint64_t offset) {
  // The request type is shared with reads; a write never modifies buf.
  IoRequest request{IoOp::kWrite, const_cast<void*>(buf), len, offset};
  ASSIGN_OR_RETURN(std::vector<size_t> done, SubmitBatch({&request, 1}));
  (void)done;  // writes either complete fully or fail
  return base::Ok();
}

base::Result<uint64_t> BlockFileBase::Size() {
  struct stat st;
  if (fstat(fd_.get(), &st) != 0) return base::ErrnoError("fstat " + display_path());
  return static_cast<uint64_t>(st.st_size);
}

base::Status BlockFileBase::Truncate(uint64_t size) {
  if (!options_.writable) {
    return base::Error(base::Code::kPermissionDenied,
                       "truncate " + display_path() + ": file is open read-only");
  }
  if (size > static_cast<uint64_t>(std::numeric_limits<off_t>::max())) {
    return base::Error(base::Code::kInvalidArgument, "truncate " + display_path() + ": size " +
                                                         std::to_string(size) + " is too large");
  }
  if (ftruncate(fd_.get(), static_cast<off_t>(size)) != 0) {
    return base::ErrnoError("truncate " + display_path() + " to " + std::to_string(size) +
                            " bytes");
  }
  return base::Ok();
}

base::Status BlockFileBase::Fallocate(int mode, std::string_view what, uint64_t offset,
                                      uint64_t len) {
  auto describe = [&] {
    return std::string(what) + " " + display_path() + " at offset " + std::to_string(offset) +
           " (" + std::to_string(len) + " bytes)";
  };
  if (!options_.writable) {
    return base::Error(base::Code::kPermissionDenied, describe() + ": file is open read-only");
  }
  constexpr auto kMaxOffset = static_cast<uint64_t>(std::numeric_limits<off_t>::max());
  if (offset > kMaxOffset || len > kMaxOffset - offset) {
    return base::Error(base::Code::kInvalidArgument,
                       describe() + ": beyond the largest file offset");
  }
  if (len == 0) return base::Ok();
  while (fallocate(fd_.get(), mode, static_cast<off_t>(offset), static_cast<off_t>(len)) != 0) {
    if (errno == EINTR) continue;
    // EOPNOTSUPP is the documented "this file system cannot"; older kernels
    // and some file systems say ENOTSUP/ENOSYS. All mean: fall back.
    int e = errno == ENOTSUP || errno == ENOSYS ? EOPNOTSUPP : errno;
    return base::ErrnoError(describe(), e);
  }
  return base::Ok();
}

base::Status BlockFileBase::PunchHole(uint64_t offset, uint64_t len) {
  return Fallocate(FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, "punch hole in", offset, len);
}

base::Status BlockFileBase::ZeroRange(uint64_t offset, uint64_t len) {
  return Fallocate(FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE, "zero range of", offset, len);
}

}  // namespace storage
