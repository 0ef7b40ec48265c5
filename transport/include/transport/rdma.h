// Whether RDMA can be used on this host, without touching a device. The RDMA
// channel (later) is offered only when available is true; reason says why
// not, for pre-flight reports and skipped tests.
#pragma once

#include <string>

namespace transport {

struct RdmaProbe {
  bool available = false;
  std::string reason;  // empty when available; otherwise a sentence for humans
};

// Built with libibverbs (its dev package present at configure time): asks
// ibv_get_device_list. Without it: looks at /sys/class/infiniband, which the
// kernel populates with one entry per RDMA device (also soft-RoCE / siw).
RdmaProbe ProbeRdma();

// The sysfs check on its own, with the directory as a parameter (tests).
RdmaProbe ProbeRdmaSysfs(const std::string& sysfs_dir);

}  // namespace transport
