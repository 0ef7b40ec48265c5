// Errors as values: base::Error carries a code chosen by what the caller should
// do next (Abseil's canonical codes), the errno if one was involved, and a
// human context string ("open /x/disk.img: No such file or directory").
// base::Result<T> mirrors std::expected's members so it can become an alias later.
#pragma once

#include <cerrno>
#include <cstdlib>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <variant>

namespace base {

enum class Code : int {
  kOk = 0,
  kCancelled = 1,
  kUnknown = 2,
  kInvalidArgument = 3,  // the request itself is wrong; do not retry as is
  kDeadlineExceeded = 4,
  kNotFound = 5,
  kAlreadyExists = 6,
  kPermissionDenied = 7,
  kResourceExhausted = 8,   // disk full, limit reached
  kFailedPrecondition = 9,  // state must be fixed before retrying
  kAborted = 10,            // retry at a higher level
  kOutOfRange = 11,
  kUnimplemented = 12,
  kInternal = 13,
  kUnavailable = 14,  // transient; retrying the call may work
  kDataLoss = 15,     // corruption: raise an alarm
  kUnauthenticated = 16,
};

std::string_view CodeName(Code code);

class [[nodiscard]] Error {
 public:
  Error(Code code, std::string message, int sys_errno = 0)
      : code_(code), errno_(sys_errno), message_(std::move(message)) {}

  // An error the other end of a stream reported (transport's error frame).
  // message() is the form shown everywhere, "peer: <its text>"; the peer's
  // own text is kept apart (peer_message) so a caller that names the peer
  // itself asks for it instead of cutting the prefix off a string.
  static Error FromPeer(Code code, std::string peer_text);

  Code code() const { return code_; }
  int sys_errno() const { return errno_; }
  const std::string& message() const { return message_; }
  // Whether the error came from the peer (FromPeer), wrapped or not.
  bool from_peer() const { return from_peer_; }
  // The peer's own text for an error from_peer(), "" otherwise.
  const std::string& peer_message() const { return peer_message_; }

  // Prefixes context, keeping code, errno and the peer's origin and text:
  // "save vm web1: " + message.
  Error Wrap(std::string_view context) const;
  // "message (code-name)" for logs and CLI output.
  std::string ToString() const;

 private:
  Code code_;
  int errno_;
  std::string message_;
  bool from_peer_ = false;
  std::string peer_message_;
};

// Builds an Error from the current errno: "what: strerror(errno)". The code is
// derived from errno (ENOENT -> kNotFound, ENOSPC -> kResourceExhausted, ...).
Error ErrnoError(std::string_view what, int sys_errno = errno);
Code CodeFromErrno(int sys_errno);

struct Unexpected {
  Error error;
};

template <typename T>
class [[nodiscard]] Result {
 public:
  using value_type = T;
  Result(T value) : v_(std::in_place_index<0>, std::move(value)) {}      // NOLINT
  Result(Error error) : v_(std::in_place_index<1>, std::move(error)) {}  // NOLINT
  template <typename U, typename = std::enable_if_t<std::is_constructible_v<T, U&&> &&
                                                    !std::is_same_v<std::decay_t<U>, Result> &&
                                                    !std::is_same_v<std::decay_t<U>, Error>>>
  Result(U&& value) : v_(std::in_place_index<0>, T(std::forward<U>(value))) {}  // NOLINT

  bool has_value() const { return v_.index() == 0; }
  explicit operator bool() const { return has_value(); }

  T& value() & {
    Check();
    return std::get<0>(v_);
  }
  const T& value() const& {
    Check();
    return std::get<0>(v_);
  }
  T&& value() && {
    Check();
    return std::get<0>(std::move(v_));
  }
  const Error& error() const { return std::get<1>(v_); }

  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T&& operator*() && { return std::move(*this).value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }

 private:
  void Check() const {
    if (!has_value()) std::abort();  // a bug: value() on an error
  }
  std::variant<T, Error> v_;
};

template <>
class [[nodiscard]] Result<void> {
 public:
  Result() = default;
  Result(Error error) : error_(std::move(error)), ok_(false) {}  // NOLINT
  bool has_value() const { return ok_; }
  explicit operator bool() const { return ok_; }
  void value() const {
    if (!ok_) std::abort();
  }
  const Error& error() const { return error_; }

 private:
  Error error_{Code::kOk, ""};
  bool ok_ = true;
};

using Status = Result<void>;

inline Status Ok() { return Status(); }

}  // namespace base

#define FERRY_CONCAT_INNER(a, b) a##b
#define FERRY_CONCAT(a, b) FERRY_CONCAT_INNER(a, b)

// RETURN_IF_ERROR(expr): expr yields a Result<T>; on error, returns its Error.
#define RETURN_IF_ERROR(expr)                                     \
  do {                                                            \
    auto&& ferry_status_ = (expr);                                \
    if (!ferry_status_.has_value()) return ferry_status_.error(); \
  } while (0)

// ASSIGN_OR_RETURN(lhs, expr): lhs = *expr, or return expr's Error.
#define ASSIGN_OR_RETURN(lhs, expr) \
  ASSIGN_OR_RETURN_IMPL(FERRY_CONCAT(ferry_result_, __LINE__), lhs, expr)
#define ASSIGN_OR_RETURN_IMPL(tmp, lhs, expr) \
  auto tmp = (expr);                          \
  if (!tmp.has_value()) return tmp.error();   \
  lhs = std::move(tmp).value()
