#include "uuid.h"

#include <fcntl.h>
#include <sys/random.h>

#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>

#include "base/fd.h"
#include "base/log.h"
#include "config/vm_definition.h"

namespace config {
namespace {

bool IsHyphenPosition(size_t i) { return i == 8 || i == 13 || i == 18 || i == 23; }

// 16 random bytes. getrandom() blocks only until the kernel's pool is seeded
// once after boot and cannot fail for 16 bytes afterwards; /dev/urandom covers
// kernels without the syscall.
void FillRandom(uint8_t* out, size_t len) {
  size_t done = 0;
  while (done < len) {
    ssize_t n = getrandom(out + done, len - done, 0);
    if (n > 0) {
      done += static_cast<size_t>(n);
    } else if (errno != EINTR) {
      break;
    }
  }
  if (done == len) return;
  auto fd = base::Fd::Open("/dev/urandom", O_RDONLY);
  if (fd) {
    auto n = base::ReadFull(fd->get(), out, len);
    if (n && *n == len) return;
  }
  // Without randomness no id is unique; handing out a guessable one would be
  // worse than stopping.
  base::LogError("NewUuid: no source of random bytes (getrandom and /dev/urandom failed)");
  std::abort();
}

}  // namespace

std::optional<std::string> NormalizeUuid(std::string_view text) {
  if (text.size() != 36) return std::nullopt;
  std::string out(text);
  for (size_t i = 0; i < out.size(); ++i) {
    char& c = out[i];
    if (IsHyphenPosition(i)) {
      if (c != '-') return std::nullopt;
    } else if (c >= 'A' && c <= 'F') {
      c = static_cast<char>(c - 'A' + 'a');
    } else if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) {
      return std::nullopt;
    }
  }
  return out;
}

std::string NewUuid() {
  uint8_t b[16];
  FillRandom(b, sizeof b);
  b[6] = static_cast<uint8_t>((b[6] & 0x0f) | 0x40);  // version 4
  b[8] = static_cast<uint8_t>((b[8] & 0x3f) | 0x80);  // RFC 4122 variant
  char text[37];
  std::snprintf(text, sizeof text,
                "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", b[0], b[1],
                b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13], b[14],
                b[15]);
  return text;
}

}  // namespace config
