// TempDir: a fresh directory for one test, removed with everything in it
// when the object goes away, so tests leave nothing behind.
#pragma once

#include <string>
#include <string_view>

namespace ferry_test {

// Where TempDir makes its directories: $TMPDIR, or /tmp when it is unset or
// long. Tests' hosts accept moves into it (migration.incoming_directories).
std::string TempBaseDir();

class TempDir {
 public:
  // Made under $TMPDIR, or /tmp when $TMPDIR is unset or long: Unix socket
  // paths inside must stay under 108 bytes. A failure to create it is a
  // gtest failure, and path() is then "".
  explicit TempDir(std::string_view prefix = "ferry-test");
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::string& path() const { return path_; }
  std::string File(const std::string& name) const { return path_ + "/" + name; }
  std::string operator/(const std::string& name) const { return File(name); }

 private:
  std::string path_;
};

}  // namespace ferry_test
