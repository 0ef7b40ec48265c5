#include "base/fd.h"

#include <fcntl.h>
#include <unistd.h>

#include <string>

#include "base/escape.h"

namespace base {

Result<Fd> Fd::Open(const std::string& path, int flags, int mode) {
  int fd = ::open(path.c_str(), flags | O_CLOEXEC, mode);
  // Escaped: the path may come from a disk image (a backing file name).
  if (fd < 0) return ErrnoError("open " + Escaped(path));
  return Fd(fd);
}

void Fd::Reset(int fd) {
  if (fd_ >= 0) ::close(fd_);
  fd_ = fd;
}

Status WriteAll(int fd, const void* data, size_t len) {
  const char* p = static_cast<const char*>(data);
  while (len > 0) {
    ssize_t n = ::write(fd, p, len);
    if (n < 0) {
      if (errno == EINTR) continue;
      return ErrnoError("write");
    }
    p += n;
    len -= static_cast<size_t>(n);
  }
  return Ok();
}

Status PwriteAll(int fd, const void* data, size_t len, off_t offset) {
  const char* p = static_cast<const char*>(data);
  while (len > 0) {
    ssize_t n = ::pwrite(fd, p, len, offset);
    if (n < 0) {
      if (errno == EINTR) continue;
      return ErrnoError("pwrite");
    }
    p += n;
    offset += n;
    len -= static_cast<size_t>(n);
  }
  return Ok();
}

Result<size_t> ReadFull(int fd, void* data, size_t len) {
  char* p = static_cast<char*>(data);
  size_t done = 0;
  while (done < len) {
    ssize_t n = ::read(fd, p + done, len - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      return ErrnoError("read");
    }
    if (n == 0) break;
    done += static_cast<size_t>(n);
  }
  return done;
}

Result<size_t> PreadFull(int fd, void* data, size_t len, off_t offset) {
  char* p = static_cast<char*>(data);
  size_t done = 0;
  while (done < len) {
    ssize_t n = ::pread(fd, p + done, len - done, offset + static_cast<off_t>(done));
    if (n < 0) {
      if (errno == EINTR) continue;
      return ErrnoError("pread");
    }
    if (n == 0) break;
    done += static_cast<size_t>(n);
  }
  return done;
}

Result<std::string> ReadFileToString(const std::string& path) {
  ASSIGN_OR_RETURN(Fd fd, Fd::Open(path, O_RDONLY));
  std::string out;
  char buf[65536];
  for (;;) {
    ssize_t n = ::read(fd.get(), buf, sizeof buf);
    if (n < 0) {
      if (errno == EINTR) continue;
      return ErrnoError("read " + path);
    }
    if (n == 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
  return out;
}

Status SyncParentDirectory(const std::string& path) {
  auto slash = path.rfind('/');
  std::string dir = slash == std::string::npos ? "." : (slash == 0 ? "/" : path.substr(0, slash));
  ASSIGN_OR_RETURN(Fd d, Fd::Open(dir, O_RDONLY | O_DIRECTORY));
  if (::fsync(d.get()) != 0) return ErrnoError("fsync " + dir);
  return Ok();
}

Status WriteFileAtomically(const std::string& path, std::string_view contents) {
  std::string tmp = path + ".tmp." + std::to_string(::getpid());
  {
    ASSIGN_OR_RETURN(Fd fd, Fd::Open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0600));
    Status st = WriteAll(fd.get(), contents.data(), contents.size());
    if (st && ::fsync(fd.get()) != 0) st = ErrnoError("fsync " + tmp);
    if (!st) {
      ::unlink(tmp.c_str());
      return st.error().Wrap("write " + path);
    }
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    Error e = ErrnoError("rename " + tmp + " -> " + path);
    ::unlink(tmp.c_str());
    return e;
  }
  return SyncParentDirectory(path);
}

}  // namespace base
