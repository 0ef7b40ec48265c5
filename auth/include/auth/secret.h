// Secret: a password (or any credential) held in memory only as long as it is
// needed. The bytes live in one heap buffer that this object owns alone; it
// is overwritten with zeros (explicit_bzero, which the compiler may not drop)
// before it is freed, so a freed page or a core dump taken later does not
// hold the password.
//
// What it does not protect against: copies the caller made before handing
// the bytes over (wipe them, or use the std::string&& constructor, which
// wipes its argument), copies made by whoever reads view(), and swapping
// (the buffer is not mlock'ed: locking is per page and would unlock pages
// shared with other allocations on munlock).
//
// Move-only. Moving hands the buffer over without copying the bytes, so the
// moved-from Secret is empty and holds nothing to wipe. There is no
// operator<< and no conversion to std::string: a Secret cannot end up in a
// log line by accident. Not thread-safe; like a std::string, one owner.
#pragma once

#include <cstddef>
#include <memory>
#include <string>
#include <string_view>

namespace auth {

class Secret {
 public:
  Secret() = default;
  // Copies the bytes; the caller still owns (and should wipe) `bytes`.
  explicit Secret(std::string_view bytes);
  // A literal or C string (tests, mostly); up to its NUL.
  explicit Secret(const char* bytes) : Secret(std::string_view(bytes)) {}
  // Copies the bytes, then wipes `bytes` (its whole capacity) and clears it.
  explicit Secret(std::string&& bytes);
  ~Secret();

  Secret(Secret&& other) noexcept;
  Secret& operator=(Secret&& other) noexcept;
  Secret(const Secret&) = delete;
  Secret& operator=(const Secret&) = delete;

  size_t size() const { return size_; }
  bool empty() const { return size_ == 0; }
  // The bytes, valid until this Secret is cleared, assigned to, moved from
  // or destroyed. Do not keep copies.
  std::string_view view() const { return {data_.get(), size_}; }

  // Wipes the bytes in place and makes the Secret empty. The buffer itself is
  // kept (zeroed) until destruction or assignment, so a view().data() taken
  // before still points at owned, now zeroed memory.
  void Clear();

 private:
  // Clear(), then frees the buffer.
  void Release();

  std::unique_ptr<char[]> data_;
  size_t size_ = 0;
  size_t capacity_ = 0;  // bytes in data_, wiped whole on Clear()
};

}  // namespace auth
