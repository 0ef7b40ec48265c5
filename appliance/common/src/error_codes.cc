#include "common/error_codes.h"

namespace appliance {

base::Code CodeFromName(std::string_view name) {
  for (int i = 0; i <= static_cast<int>(base::Code::kUnauthenticated); ++i) {
    auto code = static_cast<base::Code>(i);
    if (base::CodeName(code) == name) return code;
  }
  return base::Code::kUnknown;
}

int HttpStatusForCode(base::Code code) {
  using base::Code;
  switch (code) {
    case Code::kOk: return 200;
    case Code::kInvalidArgument:
    case Code::kOutOfRange: return 400;
    case Code::kUnauthenticated: return 401;
    case Code::kPermissionDenied: return 403;
    case Code::kNotFound: return 404;
    // The resource exists but is in the wrong state for the request.
    case Code::kAlreadyExists:
    case Code::kFailedPrecondition:
    case Code::kAborted: return 409;
    // The request was well formed but what it pointed at (a state file) is corrupt.
    case Code::kDataLoss: return 422;
    case Code::kUnimplemented: return 501;
    case Code::kUnavailable:
    case Code::kResourceExhausted: return 503;
    case Code::kDeadlineExceeded: return 504;
    case Code::kCancelled:
    case Code::kUnknown:
    case Code::kInternal: return 500;
  }
  return 500;
}

}  // namespace appliance
