// The guest names available in a guest directory: files named
// <name>-guest.bin, sorted (vm_service.cc).
#pragma once

#include <string>
#include <vector>

namespace appliance {

std::vector<std::string> GuestNames(const std::string& dir);

}  // namespace appliance
