#include "sync_block_file.h"

#include <unistd.h>

#include <algorithm>
#include <cerrno>

namespace storage {

base::Result<std::vector<size_t>> SyncBlockFile::SubmitBatch(std::span<const IoRequest> requests) {
  RETURN_IF_ERROR(CheckRequests(requests));
  std::vector<size_t> done;
  done.reserve(requests.size());
  for (const IoRequest& r : requests) {
    if (r.op == IoOp::kRead) {
      ASSIGN_OR_RETURN(size_t n, Read(r));
      done.push_back(n);
    } else {
      RETURN_IF_ERROR(Write(r));
      done.push_back(r.len);
    }
  }
  return done;
}

base::Result<size_t> SyncBlockFile::Read(const IoRequest& r) {
  auto* p = static_cast<uint8_t*>(r.buf);
  size_t done = 0;
  while (done < r.len) {
    size_t len = std::min(r.len - done, options_.max_chunk);
    ssize_t n = ::pread(fd_.get(), p + done, len, static_cast<off_t>(r.offset + done));
    if (n < 0) {
      if (errno == EINTR) continue;
      return base::ErrnoError(Describe(IoOp::kRead, r.offset + done, len));
    }
    if (n == 0) break;  // end of file
    done += static_cast<size_t>(n);
    if (static_cast<size_t>(n) < len && UnalignedEnd(r.offset + done)) break;
  }
  return done;
}

base::Status SyncBlockFile::Write(const IoRequest& r) {
  const auto* p = static_cast<const uint8_t*>(r.buf);
  size_t done = 0;
  while (done < r.len) {
    size_t len = std::min(r.len - done, options_.max_chunk);
    ssize_t n = ::pwrite(fd_.get(), p + done, len, static_cast<off_t>(r.offset + done));
    if (n < 0) {
      if (errno == EINTR) continue;
      return base::ErrnoError(Describe(IoOp::kWrite, r.offset + done, len));
    }
    if (n == 0) {
      return base::Error(base::Code::kDataLoss,
                         Describe(IoOp::kWrite, r.offset + done, len) + ": wrote nothing");
    }
    done += static_cast<size_t>(n);
  }
  return base::Ok();
}

base::Status SyncBlockFile::Flush() {
  while (fdatasync(fd_.get()) != 0) {
    if (errno != EINTR) return base::ErrnoError("fdatasync " + display_path());
  }
  return base::Ok();
}

}  // namespace storage
