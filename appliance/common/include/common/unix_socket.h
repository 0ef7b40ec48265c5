// Unix stream sockets for ferry's local control paths: ferryd's API socket and
// each worker's control socket. Both are root-only: the socket file is 0600.
#pragma once

#include <string>

#include "base/fd.h"
#include "base/result.h"

namespace appliance {

// Largest path a sockaddr_un holds (without the terminating NUL).
inline constexpr size_t kMaxUnixSocketPath = 107;

// Binds and listens at path with file mode 0600. A socket file left behind by
// a dead process is replaced; one that still has a listener is kAlreadyExists
// (two daemons must never share a socket).
base::Result<base::Fd> ListenUnix(const std::string& path, int backlog = 16);

// Connects to the socket at path. The error names the path.
base::Result<base::Fd> ConnectUnix(const std::string& path);

// Reads one '\n'-terminated line (returned without the '\n') of at most
// max_bytes, waiting at most timeout_ms in total; what_for names the wait in
// the timeout error. End of stream before '\n' is kUnavailable.
base::Result<std::string> ReadLine(int fd, size_t max_bytes, int timeout_ms,
                                   std::string_view what_for);

// Writes line + '\n'. On a socket this never raises SIGPIPE; on a pipe the
// caller must ignore SIGPIPE.
base::Status WriteLine(int fd, std::string_view line);

// Creates dir (and missing parents) with the given mode for the parts it creates.
base::Status MakeDirectories(const std::string& dir, int mode);

}  // namespace appliance
