// Shared set-up for the VMM tests: a temp directory removed afterwards, a
// guest program written into it, MachineOptions pointing there, and a skip
// (with the reason) when /dev/kvm is absent.
#pragma once

#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "base/fd.h"
#include "vm/machine.h"

namespace vm::testing {

inline bool KvmUsable() { return ::access("/dev/kvm", R_OK | W_OK) == 0; }

#define SKIP_WITHOUT_KVM()                                                        \
  do {                                                                            \
    if (!::vm::testing::KvmUsable()) GTEST_SKIP() << "/dev/kvm is not usable here"; \
  } while (0)

class VmTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/ferry-vm-test-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  std::string Path(const std::string& name) const { return dir_ + "/" + name; }

  void WriteFile(const std::string& name, const std::vector<uint8_t>& bytes) {
    std::ofstream out(Path(name), std::ios::binary | std::ios::trunc);
    out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
    ASSERT_TRUE(out.good());
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

  // Polls guest memory until pred() holds or 10 s pass; prints what it waits for.
  template <typename Pred>
  bool WaitFor(const char* what, Pred pred) {
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (!pred()) {
      if (std::chrono::steady_clock::now() > deadline) {
        ADD_FAILURE() << "timed out after 10 s waiting for " << what;
        return false;
      }
      std::this_thread::yield();
    }
    return true;
  }

  std::string dir_;
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
