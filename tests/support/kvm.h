// The one skip for tests that boot KVM guests: without a usable /dev/kvm
// they are skipped, and the skip says why (missing, or no permission).
#pragma once

#include <gtest/gtest.h>

#include <string>

namespace ferry_test {

// Why this process cannot use /dev/kvm ("" when it can).
std::string KvmUnusableReason();

}  // namespace ferry_test

// In a test body or SetUp(): skips the test unless /dev/kvm is usable.
#define FERRY_SKIP_WITHOUT_KVM()                                                               \
  do {                                                                                         \
    if (std::string ferry_kvm_why = ::ferry_test::KvmUnusableReason(); !ferry_kvm_why.empty()) \
      GTEST_SKIP() << ferry_kvm_why;                                                           \
  } while (0)
