#include "support/kvm.h"

#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace ferry_test {

std::string KvmUnusableReason() {
  if (::access("/dev/kvm", R_OK | W_OK) == 0) return "";
  return std::string("/dev/kvm is not usable here (") + std::strerror(errno) +
         "); this test boots a KVM guest";
}

}  // namespace ferry_test
