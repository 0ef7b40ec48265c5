#include "transport/rdma.h"

#include <dirent.h>

#include <cerrno>

#ifdef FERRY_HAVE_IBVERBS
#include <infiniband/verbs.h>
#endif

namespace transport {

RdmaProbe ProbeRdmaSysfs(const std::string& sysfs_dir) {
  DIR* dir = ::opendir(sysfs_dir.c_str());
  if (dir == nullptr) {
    if (errno == ENOENT)
      return {false,
              "no RDMA devices: " + sysfs_dir + " is missing (this kernel has no RDMA support)"};
    return {false, "no RDMA devices: cannot read " + sysfs_dir};
  }
  std::string first;
  while (dirent* e = ::readdir(dir)) {
    std::string name = e->d_name;
    if (name != "." && name != "..") {
      first = name;
      break;
    }
  }
  ::closedir(dir);
  if (first.empty()) return {false, "no RDMA devices: " + sysfs_dir + " is empty"};
  return {true, ""};
}

RdmaProbe ProbeRdma() {
#ifdef FERRY_HAVE_IBVERBS
  int count = 0;
  ibv_device** list = ::ibv_get_device_list(&count);
  if (list == nullptr)
    return {false, "no RDMA devices: ibv_get_device_list failed (is the ib_uverbs module loaded?)"};
  ::ibv_free_device_list(list);
  if (count == 0) return {false, "no RDMA devices: libibverbs lists none"};
  return {true, ""};
#else
  return ProbeRdmaSysfs("/sys/class/infiniband");
#endif
}

}  // namespace transport
