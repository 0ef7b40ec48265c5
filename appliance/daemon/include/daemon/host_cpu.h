// What CPU a VM on this host may be given, as both ends of a live move see it
// (docs/live_move.md, Prepare's CPU check). The source ferryd fills
// PrepareRequest::cpu_vendor / cpu_features from ReadHostCpu; the destination
// ferryd compares them with its own ReadHostCpu. Both sides use this one
// function, so they compare like with like.
//
// The features are read from KVM_GET_SUPPORTED_CPUID (what KVM lets a guest
// see), not from the host's CPUID or /proc/cpuinfo: on some hosts KVM strips
// leaf 1 (PLATFORM.md), and a guest can only ever have used what KVM offered.
// The vendor is CPUID leaf 0's vendor string.
//
// Thread-safety: ReadHostCpu opens its own /dev/kvm fd; call it from any thread.
#pragma once

#include <span>
#include <string>
#include <vector>

#include "base/result.h"

namespace appliance {

struct HostCpu {
  std::string vendor;                 // "GenuineIntel", "AuthenticAMD", ...
  std::vector<std::string> features;  // sorted lower-case names: "sse2", "avx2", "x2apic", ...
};

// Reads the vendor and KVM's supported feature flags of CPUID leaf 1
// (ECX, EDX) and leaf 7 subleaf 0 (EBX, ECX, EDX), named as Linux's
// /proc/cpuinfo names them. kUnavailable if kvm_device cannot be opened.
base::Result<HostCpu> ReadHostCpu(const std::string& kvm_device = "/dev/kvm");

// The names in wanted that host lacks, in the order of wanted.
std::vector<std::string> MissingCpuFeatures(const HostCpu& host,
                                            std::span<const std::string> wanted);

}  // namespace appliance
