// Shared set-up for the VMM tests: a temp directory removed afterwards, a
// guest program written into it, MachineOptions pointing there, and a skip
// (with the reason, FERRY_SKIP_WITHOUT_KVM) when /dev/kvm is absent.
#pragma once

#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include "base/fd.h"
#include "support/files.h"
#include "support/kvm.h"
#include "support/temp_dir.h"
#include "support/wait_for.h"
#include "vm/machine.h"

namespace vm::testing {

class VmTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_FALSE(dir_.empty()); }

  std::string Path(const std::string& name) const { return dir_ + "/" + name; }

  void WriteFile(const std::string& name, const std::vector<uint8_t>& bytes) {
    ferry_test::WriteFile(Path(name), bytes);
  }

  std::string ReadConsole() {
    auto s = base::ReadFileToString(Path("console.log"));
    return s ? *s : std::string();
  }

  MachineOptions Options(const std::vector<uint8_t>& program, uint32_t vcpus = 1,
                         uint64_t memory = 8ull << 20) {
    WriteFile("guest.bin", program);
    MachineOptions o;
    o.definition.name = "test-vm";
    o.definition.id = "0b5f4c8e-7a43-4c51-9d0e-2f3a1b6c7d8e";
    o.definition.vcpus = vcpus;
    o.definition.memory_bytes = memory;
    o.definition.program = "guest.bin";
    o.definition.cmdline = "mode=test";
    o.vm_dir = dir_;
    o.console_path = Path("console.log");
    return o;
  }

  // Polls until pred() holds or 10 s pass. By default it yields between
  // polls (guest memory counters move within microseconds); a pred that
  // reads a file passes an interval instead.
  ::testing::AssertionResult WaitFor(
      const char* what, const std::function<bool()>& pred,
      std::chrono::milliseconds interval = std::chrono::milliseconds(0)) {
    return ferry_test::WaitFor(what, std::chrono::seconds(10), pred, interval);
  }

  ferry_test::TempDir temp_{"ferry-vm-test"};
  const std::string dir_ = temp_.path();
};

inline uint64_t Load64(const Machine& m, uint64_t gpa) {
  uint64_t v;
  std::memcpy(&v, const_cast<Machine&>(m).memory_base() + gpa, 8);
  return v;
}

inline uint64_t VolatileLoad64(Machine& m, uint64_t gpa) {
  return __atomic_load_n(reinterpret_cast<uint64_t*>(m.memory_base() + gpa), __ATOMIC_RELAXED);
}

}  // namespace vm::testing
