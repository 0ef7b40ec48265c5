// <linux/kvm.h> made usable from C++. Include this instead of it.
//
// Debian 12's uapi headers (Linux 6.1) declare flexible arrays with
// __DECLARE_FLEX_ARRAY, which wraps them in a struct holding an empty struct.
// An empty struct has size 0 in C but 1 in C++, so in C++ kvm_cpuid2,
// kvm_msrs, kvm_msr_list and kvm_xsave get the wrong size and array offset,
// and the ioctl numbers (which encode the size) stop matching the kernel's:
// KVM_GET_SUPPORTED_CPUID fails with EINVAL. Later kernels define the macro
// as a zero-length array for C++; we do the same, and the static_asserts
// below check the layout the kernel expects.
#pragma once

#include <linux/stddef.h>

#undef __DECLARE_FLEX_ARRAY
#define __DECLARE_FLEX_ARRAY(TYPE, NAME) TYPE NAME[0]

#include <linux/kvm.h>

#include <cstddef>

static_assert(sizeof(kvm_cpuid2) == 8 && offsetof(kvm_cpuid2, entries) == 8,
              "kvm_cpuid2 layout differs from the kernel's");
static_assert(sizeof(kvm_msrs) == 8 && offsetof(kvm_msrs, entries) == 8,
              "kvm_msrs layout differs from the kernel's");
static_assert(sizeof(kvm_msr_list) == 4 && offsetof(kvm_msr_list, indices) == 4,
              "kvm_msr_list layout differs from the kernel's");
static_assert(sizeof(kvm_xsave) == 4096, "kvm_xsave layout differs from the kernel's");
