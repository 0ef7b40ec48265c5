#include "initramfs.h"

#include <sys/stat.h>

#include <cstdio>
#include <cstdlib>

#include "base/fd.h"

namespace bench {
namespace {

void Pad4(std::string& out) {
  while (out.size() % 4) out.push_back('\0');
}

void Header(std::string& out, uint32_t ino, uint32_t mode, uint32_t nlink, size_t size, uint32_t rmaj,
            uint32_t rmin, const std::string& name) {
  char h[111];
  std::snprintf(h, sizeof h, "070701%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X", ino, mode, 0u, 0u,
                nlink, 0u, unsigned(size), 0u, 0u, rmaj, rmin, unsigned(name.size() + 1), 0u);
  out.append(h, 110);
  out.append(name);
  out.push_back('\0');
  Pad4(out);
}

}  // namespace

std::string CpioNewc(const std::vector<CpioEntry>& entries) {
  std::string out;
  uint32_t ino = 1;
  for (const auto& e : entries) {
    bool dir = S_ISDIR(e.mode);
    Header(out, ino++, e.mode, dir ? 2 : 1, e.data.size(), e.rdev_major, e.rdev_minor, e.path);
    out.append(e.data);
    Pad4(out);
  }
  Header(out, 0, 0, 1, 0, 0, 0, "TRAILER!!!");
  return out;
}

base::Result<std::string> BuildReferenceInitramfs(const std::string& source_dir, const std::string& work_dir,
                                                  const std::string& busybox) {
  const std::string dirtier = work_dir + "/dirtier", log = work_dir + "/gcc.log";
  // -static with glibc: the initramfs has no libc. The kernel runs the ELF
  // directly, so nothing else is needed.
  std::string cmd = "gcc -O2 -static -o '" + dirtier + "' '" + source_dir + "/dirtier.c' >'" + log + "' 2>&1";
  if (std::system(cmd.c_str()) != 0) {
    auto text = base::ReadFileToString(log);
    return base::Error(base::Code::kInternal, "compiling the dirtier failed: " + (text ? *text : cmd));
  }
  ASSIGN_OR_RETURN(std::string dirtier_bin, base::ReadFileToString(dirtier));
  ASSIGN_OR_RETURN(std::string init, base::ReadFileToString(source_dir + "/init.sh"));
  auto bb = base::ReadFileToString(busybox);
  if (!bb) return bb.error().Wrap("busybox (install busybox-static)");

  std::vector<CpioEntry> entries = {
      {"bin", S_IFDIR | 0755, "", 0, 0},
      {"dev", S_IFDIR | 0755, "", 0, 0},
      // The kernel opens /dev/console for init's stdio before init runs, so
      // the node must be in the archive (devtmpfs comes later).
      {"dev/console", S_IFCHR | 0600, "", 5, 1},
      {"proc", S_IFDIR | 0755, "", 0, 0},
      {"sys", S_IFDIR | 0755, "", 0, 0},
      {"tmp", S_IFDIR | 01777, "", 0, 0},
      {"bin/busybox", S_IFREG | 0755, std::move(*bb), 0, 0},
      {"bin/sh", S_IFLNK | 0777, "busybox", 0, 0},
      {"dirtier", S_IFREG | 0755, std::move(dirtier_bin), 0, 0},
      {"init", S_IFREG | 0755, std::move(init), 0, 0},
  };
  const std::string path = work_dir + "/initramfs.cpio";
  RETURN_IF_ERROR(base::WriteFileAtomically(path, CpioNewc(entries)));
  return path;
}

}  // namespace bench
