// Move-only owner of a file descriptor; closes it on destruction.
#pragma once

#include <string>
#include <utility>

#include "base/result.h"

namespace base {

class Fd {
 public:
  Fd() = default;
  explicit Fd(int fd) : fd_(fd) {}
  Fd(Fd&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
  Fd& operator=(Fd&& other) noexcept {
    if (this != &other) Reset(std::exchange(other.fd_, -1));
    return *this;
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  ~Fd() { Reset(); }

  // Opens with O_CLOEXEC always added. The error names the path.
  static Result<Fd> Open(const std::string& path, int flags, int mode = 0644);

  int get() const { return fd_; }
  bool valid() const { return fd_ >= 0; }
  int Release() { return std::exchange(fd_, -1); }
  void Reset(int fd = -1);

 private:
  int fd_ = -1;
};

// Writes/reads the whole buffer, retrying on EINTR and short transfers.
Status WriteAll(int fd, const void* data, size_t len);
Status PwriteAll(int fd, const void* data, size_t len, off_t offset);
// Returns the number of bytes read; fewer than len only at end of file.
Result<size_t> ReadFull(int fd, void* data, size_t len);
Result<size_t> PreadFull(int fd, void* data, size_t len, off_t offset);

// Reads a whole (small) file into a string.
Result<std::string> ReadFileToString(const std::string& path);
// Writes a file atomically: temp file in the same directory, fsync, rename,
// fsync of the directory. A reader sees the old or the new file, never half.
Status WriteFileAtomically(const std::string& path, std::string_view contents);
// fsync of the directory holding path, so a rename or create is durable.
Status SyncParentDirectory(const std::string& path);

}  // namespace base
