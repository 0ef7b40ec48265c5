// Shared set-up for the live-move tests: the guest programs of vm/guests
// (memory-guest, disk-guest) under MachineOptions in a temp directory, page
// copying between two Machines the way a move does it, and parsing of the
// guests' heartbeat lines ("HB <n> t=<ms> dirtied=<d> errors=<e>",
// "DISK <n> t=<ms> writes=... errors=<e>"; vm/guests/README.md).
#pragma once

#include <gtest/gtest.h>

#include <chrono>
#include <cstdint>
#include <cstring>
#include <map>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "support/text.h"
#include "vm/machine.h"
#include "vm_fixture.h"

#ifndef FERRY_GUEST_DIR
#error "FERRY_GUEST_DIR must name the directory of the built guest programs"
#endif

namespace vm::testing {

inline constexpr uint64_t kPage = 4096;

struct Beat {
  uint64_t n = 0;
  std::map<std::string, uint64_t> fields;  // t, dirtied, writes, errors, ...
  uint64_t at(const std::string& key) const {
    auto it = fields.find(key);
    return it == fields.end() ? UINT64_MAX : it->second;
  }
};

using ferry_test::LinesStartingWith;

// Heartbeats with the given prefix ("HB " or "DISK "). A last line without
// its newline yet (the guest is mid-line) is left out.
inline std::vector<Beat> ParseBeats(std::string text, const std::string& prefix) {
  if (auto nl = text.rfind('\n'); nl != std::string::npos)
    text.resize(nl + 1);
  else
    text.clear();
  std::vector<Beat> out;
  for (const std::string& line : LinesStartingWith(text, prefix)) {
    std::istringstream in(line.substr(prefix.size()));
    Beat b;
    in >> b.n;
    for (std::string kv; in >> kv;) {
      auto eq = kv.find('=');
      if (eq != std::string::npos) b.fields[kv.substr(0, eq)] = std::stoull(kv.substr(eq + 1));
    }
    out.push_back(std::move(b));
  }
  return out;
}

// Heartbeats count 1, 2, 3, ... with no gap or repeat and report no errors;
// returns the largest step of guest time between two of them.
inline uint64_t CheckBeats(const std::vector<Beat>& beats, size_t min_count) {
  EXPECT_GE(beats.size(), min_count) << "too few heartbeats";
  uint64_t max_step = 0;
  for (size_t i = 0; i < beats.size(); ++i) {
    EXPECT_EQ(beats[i].n, i + 1) << "heartbeat numbers must continue with no gap or repeat";
    EXPECT_EQ(beats[i].at("errors"), 0u) << "heartbeat " << beats[i].n << " reports errors";
    if (i > 0) {
      EXPECT_GE(beats[i].at("t"), beats[i - 1].at("t"))
          << "guest time ran backwards at " << beats[i].n;
      max_step = std::max(max_step, beats[i].at("t") - beats[i - 1].at("t"));
    }
    if (::testing::Test::HasFailure()) break;  // one report, not thousands
  }
  return max_step;
}

inline bool PageIsZero(const uint8_t* p) {
  static const uint8_t kZero[kPage] = {};
  return std::memcmp(p, kZero, kPage) == 0;
}

// The move's first pass: every non-zero page of src into a fresh (zero) dst.
inline uint64_t CopyAllPages(Machine& src, Machine& dst) {
  uint64_t copied = 0;
  for (uint64_t off = 0; off < src.memory_size(); off += kPage) {
    if (PageIsZero(src.memory_base() + off)) continue;
    std::memcpy(dst.memory_base() + off, src.memory_base() + off, kPage);
    ++copied;
  }
  return copied;
}

inline bool TestBit(const std::vector<uint64_t>& bitmap, uint64_t page) {
  return (bitmap[page / 64] >> (page % 64)) & 1;
}

// A later pass: the pages a harvest reported, zero or not. `skip_page`
// (a page number) is left out, to make a move lose exactly that page.
inline uint64_t CopyDirtyPages(Machine& src, Machine& dst, const std::vector<uint64_t>& dirty,
                               uint64_t skip_page = UINT64_MAX) {
  uint64_t copied = 0;
  for (uint64_t page = 0; page < src.memory_size() / kPage; ++page) {
    if (!TestBit(dirty, page) || page == skip_page) continue;
    std::memcpy(dst.memory_base() + page * kPage, src.memory_base() + page * kPage, kPage);
    ++copied;
  }
  return copied;
}

class GuestProgramTest : public VmTest {
 protected:
  MachineOptions GuestOptions(const std::string& program, const std::string& cmdline,
                              uint32_t vcpus, uint64_t memory, const std::string& console) {
    MachineOptions o;
    o.definition.name = "move-vm";
    o.definition.id = "6d1c0a53-0f0e-4a57-8a43-5b2b3c4d5e6f";
    o.definition.vcpus = vcpus;
    o.definition.memory_bytes = memory;
    o.definition.program = std::string(FERRY_GUEST_DIR) + "/" + program;
    o.definition.cmdline = cmdline;
    o.vm_dir = dir_;
    o.console_path = Path(console);
    return o;
  }

  std::string Console(const MachineOptions& o) {
    auto s = base::ReadFileToString(o.console_path);
    return s ? *s : std::string();
  }

  // Waits (up to 10 s, saying for what) until the console holds `count`
  // complete heartbeats with `prefix`.
  ::testing::AssertionResult WaitForBeats(const MachineOptions& o, const std::string& prefix,
                                          size_t count) {
    return WaitFor(
        "heartbeats", [&] { return ParseBeats(Console(o), prefix).size() >= count; },
        std::chrono::milliseconds(5));  // polls a file; no busy loop
  }

  // Lets wall time pass without sleeping the test thread's logic on a guess:
  // the caller states why it waits.
  static void Spin(std::chrono::milliseconds d) {
    auto until = std::chrono::steady_clock::now() + d;
    while (std::chrono::steady_clock::now() < until)
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
};

}  // namespace vm::testing
