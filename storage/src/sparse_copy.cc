#include "storage/sparse_copy.h"

#include <fcntl.h>
#include <poll.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <vector>

#include "base/fd.h"

namespace storage {
namespace {

constexpr size_t kPiece = 4096;

bool IsZero(const uint8_t* p, size_t n) {
  return n == 0 || (p[0] == 0 && std::memcmp(p, p + 1, n - 1) == 0);
}

// The next data run at or after offset: [start, end). end == start at EOF.
base::Result<std::pair<uint64_t, uint64_t>> NextData(int fd, uint64_t offset, uint64_t size,
                                                     const std::string& path) {
  off_t data = lseek(fd, off_t(offset), SEEK_DATA);
  if (data < 0) {
    if (errno == ENXIO) return std::pair<uint64_t, uint64_t>{size, size};
    return base::ErrnoError("seek data in " + path);
  }
  off_t hole = lseek(fd, data, SEEK_HOLE);
  if (hole < 0) return base::ErrnoError("seek hole in " + path);
  return std::pair<uint64_t, uint64_t>{std::min<uint64_t>(uint64_t(data), size),
                                       std::min<uint64_t>(uint64_t(hole), size)};
}

base::Status Copy(const std::string& src, const std::string& part, const SparseCopyOptions& o,
                  SparseCopyStats& stats) {
  OpenOptions ro;
  ro.writable = false;
  ro.engine = o.engine;
  ASSIGN_OR_RETURN(auto in, OpenBlockFile(src, ro));
  // A second descriptor for SEEK_DATA/SEEK_HOLE: BlockFile does positioned
  // I/O only and does not lend out its fd.
  ASSIGN_OR_RETURN(base::Fd seek_fd, base::Fd::Open(src, O_RDONLY));
  ASSIGN_OR_RETURN(stats.size, in->Size());

  OpenOptions rw;
  rw.create = true;
  rw.engine = o.engine;
  (void)unlink(part.c_str());  // a leftover from an interrupted attempt
  ASSIGN_OR_RETURN(auto out, OpenBlockFile(part, rw));
  RETURN_IF_ERROR(out->Truncate(stats.size));

  std::vector<uint8_t> buf(std::max<size_t>(o.buffer_size, kPiece));
  uint64_t offset = 0;
  while (offset < stats.size) {
    ASSIGN_OR_RETURN(auto run, NextData(seek_fd.get(), offset, stats.size, src));
    stats.skipped_bytes += run.first - offset;
    offset = run.first;
    while (offset < run.second) {
      pollfd p{o.cancel_fd, POLLIN, 0};
      if (o.cancel_fd >= 0 && poll(&p, 1, 0) > 0) {
        return base::Error(base::Code::kCancelled, "copy " + src + " cancelled");
      }
      const size_t want = size_t(std::min<uint64_t>(buf.size(), run.second - offset));
      ASSIGN_OR_RETURN(size_t got, in->ReadAt(buf.data(), want, offset));
      if (got != want) {
        return base::Error(base::Code::kAborted,
                           "copy " + src + ": the file shrank during the copy");
      }
      // Write the non-zero pieces, coalesced.
      size_t pos = 0;
      while (pos < got) {
        size_t n = std::min(kPiece, got - pos);
        if (IsZero(buf.data() + pos, n)) {
          stats.skipped_bytes += n;
          pos += n;
          continue;
        }
        size_t end = pos + n;
        while (end < got) {
          size_t m = std::min(kPiece, got - end);
          if (IsZero(buf.data() + end, m)) break;
          end += m;
        }
        RETURN_IF_ERROR(out->WriteAt(buf.data() + pos, end - pos, offset + pos));
        stats.data_bytes += end - pos;
        pos = end;
      }
      offset += got;
      if (o.progress) o.progress(offset, stats.size);
    }
  }
  RETURN_IF_ERROR(out->Flush());
  return base::Ok();
}

}  // namespace

base::Result<SparseCopyStats> CopySparseFile(const std::string& src, const std::string& dst,
                                             const SparseCopyOptions& options) {
  const std::string part = dst + ".part";
  SparseCopyStats stats;
  base::Status st = Copy(src, part, options, stats);
  if (!st) {
    (void)unlink(part.c_str());
    return st.error().Wrap("sparse copy " + src + " to " + dst);
  }
  if (rename(part.c_str(), dst.c_str()) != 0) {
    base::Error e = base::ErrnoError("rename " + part + " to " + dst);
    (void)unlink(part.c_str());
    return e;
  }
  RETURN_IF_ERROR(base::SyncParentDirectory(dst));
  return stats;
}

}  // namespace storage
