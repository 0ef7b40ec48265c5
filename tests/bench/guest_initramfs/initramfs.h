// The QEMU reference guest's initramfs, built at benchmark time (no binaries
// in the tree): busybox (Debian's busybox-static), /init (init.sh beside this
// file) and the dirtier (dirtier.c, compiled here with gcc -static), packed
// as an uncompressed cpio "newc" archive, which every kernel can unpack.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "base/result.h"

namespace bench {

struct CpioEntry {
  std::string path;   // without leading "/", e.g. "bin/busybox"
  uint32_t mode = 0;  // type and permission bits (S_IFREG | 0755, ...)
  std::string data;   // file contents, or a symlink's target
  uint32_t rdev_major = 0, rdev_minor = 0;  // device nodes
};

// The archive bytes, entries in order, then the trailer.
std::string CpioNewc(const std::vector<CpioEntry>& entries);

// Builds <work_dir>/initramfs.cpio from source_dir (dirtier.c, init.sh) and
// `busybox` (a static busybox binary); returns its path. Compiler output is
// in the error when gcc fails.
base::Result<std::string> BuildReferenceInitramfs(const std::string& source_dir, const std::string& work_dir,
                                                  const std::string& busybox = "/bin/busybox");

}  // namespace bench
