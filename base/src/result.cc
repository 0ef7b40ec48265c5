#include "base/result.h"

#include <cstring>

namespace base {

std::string_view CodeName(Code code) {
  switch (code) {
    case Code::kOk: return "ok";
    case Code::kCancelled: return "cancelled";
    case Code::kUnknown: return "unknown";
    case Code::kInvalidArgument: return "invalid-argument";
    case Code::kDeadlineExceeded: return "deadline-exceeded";
    case Code::kNotFound: return "not-found";
    case Code::kAlreadyExists: return "already-exists";
    case Code::kPermissionDenied: return "permission-denied";
    case Code::kResourceExhausted: return "resource-exhausted";
    case Code::kFailedPrecondition: return "failed-precondition";
    case Code::kAborted: return "aborted";
    case Code::kOutOfRange: return "out-of-range";
    case Code::kUnimplemented: return "unimplemented";
    case Code::kInternal: return "internal";
    case Code::kUnavailable: return "unavailable";
    case Code::kDataLoss: return "data-loss";
    case Code::kUnauthenticated: return "unauthenticated";
  }
  return "unknown";
}

Error Error::FromPeer(Code code, std::string peer_text) {
  Error e(code, "peer: " + peer_text);
  e.from_peer_ = true;
  e.peer_message_ = std::move(peer_text);
  return e;
}

Error Error::Wrap(std::string_view context) const {
  std::string msg(context);
  msg += ": ";
  msg += message_;
  Error e(code_, std::move(msg), errno_);
  e.from_peer_ = from_peer_;
  e.peer_message_ = peer_message_;
  return e;
}

std::string Error::ToString() const {
  std::string s = message_;
  s += " (";
  s += CodeName(code_);
  s += ")";
  return s;
}

Code CodeFromErrno(int e) {
  switch (e) {
    case ENOENT:
    case ENODEV:
    case ENXIO: return Code::kNotFound;
    case EEXIST: return Code::kAlreadyExists;
    case EACCES:
    case EPERM:
    case EROFS: return Code::kPermissionDenied;
    case ENOSPC:
    case EDQUOT:
    case ENOMEM:
    case EMFILE:
    case ENFILE:
    case EFBIG: return Code::kResourceExhausted;
    case EINVAL:
    case ENAMETOOLONG:
    case ENOTDIR:
    case EISDIR: return Code::kInvalidArgument;
    case EAGAIN:
    case EINTR:
    case ECONNREFUSED:
    case ECONNRESET:
    case EPIPE:
    case EHOSTUNREACH:
    case ENETUNREACH:
    case EBUSY: return Code::kUnavailable;
    case ETIMEDOUT: return Code::kDeadlineExceeded;
    case ECANCELED: return Code::kCancelled;
    case EIO: return Code::kDataLoss;
    case ENOSYS:
    case EOPNOTSUPP: return Code::kUnimplemented;
    default: return Code::kUnknown;
  }
}

Error ErrnoError(std::string_view what, int sys_errno) {
  std::string msg(what);
  msg += ": ";
  msg += std::strerror(sys_errno);
  return Error(CodeFromErrno(sys_errno), std::move(msg), sys_errno);
}

}  // namespace base
