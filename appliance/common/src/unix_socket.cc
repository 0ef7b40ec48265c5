#include "common/unix_socket.h"

#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>

#include "base/clock.h"

namespace appliance {
namespace {

base::Result<sockaddr_un> MakeAddress(const std::string& path) {
  if (path.empty()) return base::Error(base::Code::kInvalidArgument, "socket path is empty");
  if (path.size() > kMaxUnixSocketPath)
    return base::Error(
        base::Code::kInvalidArgument,
        "socket path " + path + " is longer than " + std::to_string(kMaxUnixSocketPath) + " bytes");
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::memcpy(addr.sun_path, path.data(), path.size());
  return addr;
}

base::Result<base::Fd> NewSocket() {
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return base::ErrnoError("socket(AF_UNIX)");
  return base::Fd(fd);
}

}  // namespace

base::Result<base::Fd> ConnectUnix(const std::string& path) {
  ASSIGN_OR_RETURN(sockaddr_un addr, MakeAddress(path));
  ASSIGN_OR_RETURN(base::Fd fd, NewSocket());
  int r;
  do {
    r = ::connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr);
  } while (r != 0 && errno == EINTR);
  if (r != 0) return base::ErrnoError("connect to " + path);
  return fd;
}

base::Result<base::Fd> ListenUnix(const std::string& path, int backlog) {
  ASSIGN_OR_RETURN(sockaddr_un addr, MakeAddress(path));
  struct stat st {};
  if (::lstat(path.c_str(), &st) == 0) {
    if (!S_ISSOCK(st.st_mode))
      return base::Error(base::Code::kAlreadyExists, path + " exists and is not a socket");
    // Only a socket nobody answers on is stale; a live listener means another
    // daemon (or worker) owns this path.
    if (ConnectUnix(path).has_value())
      return base::Error(base::Code::kAlreadyExists,
                         "another process is already listening on " + path);
    if (::unlink(path.c_str()) != 0) return base::ErrnoError("remove stale socket " + path);
  }
  ASSIGN_OR_RETURN(base::Fd fd, NewSocket());
  if (::bind(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0)
    return base::ErrnoError("bind " + path);
  // The socket's directory is 0700, so the moment between bind and chmod
  // exposes nothing; chmod instead of umask because umask is process-wide.
  if (::chmod(path.c_str(), 0600) != 0) return base::ErrnoError("chmod 0600 " + path);
  if (::listen(fd.get(), backlog) != 0) return base::ErrnoError("listen on " + path);
  return fd;
}

base::Result<std::string> ReadLine(int fd, size_t max_bytes, int timeout_ms,
                                   std::string_view what_for) {
  const uint64_t deadline = base::MonotonicNanos() + uint64_t(timeout_ms) * 1000000;
  std::string line;
  char c;
  for (;;) {
    uint64_t now = base::MonotonicNanos();
    if (now >= deadline)
      return base::Error(base::Code::kDeadlineExceeded,
                         "timed out after " + std::to_string(timeout_ms) + " ms waiting for " +
                             std::string(what_for));
    pollfd p{fd, POLLIN, 0};
    int r = ::poll(&p, 1, int((deadline - now + 999999) / 1000000));
    if (r < 0) {
      if (errno == EINTR) continue;
      return base::ErrnoError("poll");
    }
    if (r == 0) continue;  // the deadline check above reports it
    // Byte-at-a-time keeps the stream positioned right after the newline;
    // requests and replies are short, so the cost does not matter.
    ssize_t n = ::read(fd, &c, 1);
    if (n < 0) {
      if (errno == EINTR || errno == EAGAIN) continue;
      return base::ErrnoError("read " + std::string(what_for));
    }
    if (n == 0)
      return base::Error(base::Code::kUnavailable,
                         "connection closed while waiting for " + std::string(what_for));
    if (c == '\n') return line;
    if (line.size() >= max_bytes)
      return base::Error(base::Code::kInvalidArgument, std::string(what_for) + " is longer than " +
                                                           std::to_string(max_bytes) + " bytes");
    line.push_back(c);
  }
}

base::Status WriteLine(int fd, std::string_view line) {
  std::string buf(line);
  buf.push_back('\n');
  size_t off = 0;
  while (off < buf.size()) {
    ssize_t n = ::send(fd, buf.data() + off, buf.size() - off, MSG_NOSIGNAL);
    // Pipes (the worker's ready fd) are not sockets; their writers ignore SIGPIPE.
    if (n < 0 && errno == ENOTSOCK) n = ::write(fd, buf.data() + off, buf.size() - off);
    if (n < 0) {
      if (errno == EINTR) continue;
      return base::ErrnoError("write");
    }
    off += size_t(n);
  }
  return base::Ok();
}

base::Status MakeDirectories(const std::string& dir, int mode) {
  if (dir.empty()) return base::Ok();
  struct stat st {};
  if (::stat(dir.c_str(), &st) == 0) {
    if (!S_ISDIR(st.st_mode))
      return base::Error(base::Code::kFailedPrecondition, dir + " exists and is not a directory");
    return base::Ok();
  }
  auto slash = dir.rfind('/');
  if (slash != std::string::npos && slash > 0)
    RETURN_IF_ERROR(MakeDirectories(dir.substr(0, slash), mode));
  if (::mkdir(dir.c_str(), mode_t(mode)) != 0 && errno != EEXIST)
    return base::ErrnoError("mkdir " + dir);
  return base::Ok();
}

}  // namespace appliance
