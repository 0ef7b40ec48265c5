#include "support/temp_dir.h"

#include <gtest/gtest.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>

namespace ferry_test {

std::string TempBaseDir() {
  // Room is left for "<prefix>-XXXXXX/<sub dir>/<socket name>" below 108 bytes.
  constexpr size_t kMaxBaseLength = 40;
  const char* base = std::getenv("TMPDIR");
  if (base == nullptr || *base == '\0' || std::strlen(base) > kMaxBaseLength) return "/tmp";
  return base;
}

TempDir::TempDir(std::string_view prefix) {
  std::string tmpl = TempBaseDir() + "/" + std::string(prefix) + "-XXXXXX";
  if (::mkdtemp(tmpl.data()) == nullptr) {
    ADD_FAILURE() << "mkdtemp " << tmpl << ": " << std::strerror(errno);
    return;
  }
  path_ = tmpl;
}

TempDir::~TempDir() {
  std::error_code ec;
  if (!path_.empty()) std::filesystem::remove_all(path_, ec);
}

}  // namespace ferry_test
