// Live move between two Machines in one process, the way ferry's move does
// it: the destination is CreateIncoming'd, guest memory is copied while the
// source runs (a full pass, then rounds of dirty pages), the source pauses,
// the last dirty pages and the device-state blob go across, and the
// destination continues. The guests are the witnesses: memory-guest verifies
// every page before rewriting it and sweeps its working set every second,
// disk-guest verifies its blocks; both number their heartbeats, so a gap, a
// repeat or a lost page shows. A negative test loses one page on purpose to
// prove the witness sees it.
#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <iostream>
#include <memory>
#include <optional>
#include <string>
#include <utility>

#include "base/le.h"
#include "live_move_fixture.h"
#include "vm/guest_abi.h"

namespace vm {
namespace {

using testing::Beat;
using testing::CheckBeats;
using testing::CopyAllPages;
using testing::CopyDirtyPages;
using testing::kPage;
using testing::LinesStartingWith;
using testing::ParseBeats;
using Clock = std::chrono::steady_clock;

constexpr int kGuestEndTimeoutMs = 20000;

class LiveMoveTest : public testing::GuestProgramTest {
 protected:
  // Pre-copy from a running src into an incoming dst: full pass, `rounds`
  // rounds of dirty pages, pause, last dirty pages (all but `skip_page`).
  // Before each harvest the guest prints one more heartbeat (`prefix`), so
  // every round — the final one too — has work the guest did meanwhile.
  // Returns the device-state blob.
  std::string PreCopy(Machine& src, Machine& dst, const MachineOptions& src_options,
                      const std::string& prefix, int rounds, uint64_t skip_page = UINT64_MAX) {
    auto next_beat = [&] {
      EXPECT_TRUE(
          WaitForBeats(src_options, prefix, ParseBeats(Console(src_options), prefix).size() + 1));
    };
    EXPECT_TRUE(src.EnableDirtyLog());
    uint64_t full = CopyAllPages(src, dst);
    std::string log = "full pass " + std::to_string(full) + " pages";
    for (int r = 0; r < rounds; ++r) {
      next_beat();
      auto dirty = src.HarvestDirtyPages();
      EXPECT_TRUE(dirty) << dirty.error().ToString();
      if (!dirty) return "";
      log += ", round " + std::to_string(r + 1) + " " +
             std::to_string(CopyDirtyPages(src, dst, *dirty));
    }
    next_beat();
    auto paused_at = Clock::now();
    EXPECT_TRUE(src.Pause());
    auto last = src.HarvestDirtyPages();
    EXPECT_TRUE(last) << last.error().ToString();
    if (!last) return "";
    final_pages_ = CopyDirtyPages(src, dst, *last, skip_page);
    // The guest ran (it printed a heartbeat, using its stack) since the last
    // round, so the final pass cannot be empty.
    EXPECT_GT(final_pages_, 0u);
    log += ", final " + std::to_string(final_pages_);
    auto blob = src.SaveDeviceState();
    EXPECT_TRUE(blob) << blob.error().ToString();
    std::cout << "[ note ] " << log << "; device state " << (blob ? blob->size() : 0) << " bytes; "
              << std::chrono::duration<double, std::milli>(Clock::now() - paused_at).count()
              << " ms from pause to blob\n";
    return blob ? *blob : "";
  }

  // Starts the source a_ (from oa) until its console shows `beats`
  // heartbeats with `prefix`, and creates the incoming destination b_ (ob).
  void StartSourceAndIncoming(const MachineOptions& oa, const MachineOptions& ob,
                              const std::string& prefix, size_t beats) {
    auto a = Machine::Create(oa);
    ASSERT_TRUE(a) << a.error().ToString();
    a_ = std::move(*a);
    ASSERT_TRUE(a_->Start());
    ASSERT_TRUE(WaitForBeats(oa, prefix, beats)) << Console(oa);
    auto b = Machine::CreateIncoming(ob);
    ASSERT_TRUE(b) << b.error().ToString();
    b_ = std::move(*b);
    ASSERT_EQ(b_->state(), RunState::kIncoming);
  }

  // Waits until the guest on b_ powers off by itself; returns both consoles,
  // the source's first (nullopt, after a failure showing them, if it did not).
  std::optional<std::pair<std::string, std::string>> WaitGuestDoneOnDestination(
      const MachineOptions& oa, const MachineOptions& ob) {
    RunState end = b_->WaitWhileRunning(kGuestEndTimeoutMs);
    std::string ca = Console(oa), cb = Console(ob);
    EXPECT_EQ(end, RunState::kPoweredOff) << b_->failure() << "\n--- source\n"
                                          << ca << "--- destination\n"
                                          << cb;
    if (end != RunState::kPoweredOff) return std::nullopt;
    return std::pair(ca, cb);
  }

  // The machines go before the directory that holds their files.
  void TearDown() override {
    a_.reset();
    b_.reset();
    GuestProgramTest::TearDown();
  }

  std::unique_ptr<Machine> a_, b_;  // the move's source and destination
  uint64_t final_pages_ = 0;
};

TEST_F(LiveMoveTest, MemoryGuestContinuesOnTheDestination) {
  FERRY_SKIP_WITHOUT_KVM();
  constexpr uint64_t kHbMs = 50;
  // The guest's 8 s (guest time) cover the source phase, which a slow host
  // stretches, and still leave the destination its 20 heartbeats.
  const std::string cmd = "ws_mib=16 hb_ms=50 seconds=8";
  MachineOptions oa = GuestOptions("memory-guest.bin", cmd, 2, 64ull << 20, "a.log");
  MachineOptions ob = GuestOptions("memory-guest.bin", cmd, 2, 64ull << 20, "b.log");
  ASSERT_NO_FATAL_FAILURE(StartSourceAndIncoming(oa, ob, "HB ", 3));

  std::string blob = PreCopy(*a_, *b_, oa, "HB ", 3);
  ASSERT_FALSE(blob.empty());
  ASSERT_EQ(a_->state(), RunState::kPaused);
  // Downtime long enough that a guest clock that jumped would show it.
  Spin(std::chrono::milliseconds(500));
  auto st = b_->FinishIncoming(blob);
  ASSERT_TRUE(st) << st.error().ToString();
  EXPECT_EQ(b_->state(), RunState::kPaused);
  ASSERT_TRUE(b_->Resume());
  EXPECT_EQ(a_->state(), RunState::kPaused) << "the source stays paused";
  a_->Shutdown();

  auto consoles = WaitGuestDoneOnDestination(oa, ob);
  ASSERT_TRUE(consoles.has_value());
  const auto& [ca, cb] = *consoles;
  // One stream: what the source printed, then what the destination did (a
  // line cut by the pause is finished by the destination).
  std::vector<Beat> beats = ParseBeats(ca + cb, "HB ");
  size_t on_source = ParseBeats(ca, "HB ").size();
  uint64_t max_step = CheckBeats(beats, on_source + 20);
  EXPECT_LT(max_step, kHbMs + 400) << "guest time jumped across the move";
  EXPECT_TRUE(LinesStartingWith(ca + cb, "MISMATCH").empty()) << cb;
  auto done = LinesStartingWith(cb, "MEMGUEST done ");
  ASSERT_EQ(done.size(), 1u) << cb;
  EXPECT_NE(done[0].find(" errors=0"), std::string::npos) << done[0];
  EXPECT_GT(beats.back().at("dirtied"), beats[on_source - 1].at("dirtied"))
      << "the guest kept working";
  MachineStats s = b_->stats();
  EXPECT_NE(s.guest_clock, GuestClockSync::kNotRestored);
  std::cout << "[ note ] " << on_source << " heartbeats on the source, " << beats.size() - on_source
            << " on the destination; largest guest-time step " << max_step << " ms; clock kept by "
            << ToString(s.guest_clock) << "\n";
}

TEST_F(LiveMoveTest, DiskGuestContinuesOnCopiedDisks) {
  FERRY_SKIP_WITHOUT_KVM();
  WriteFile("a-disk.img", {});
  std::filesystem::resize_file(Path("a-disk.img"), 16ull << 20);
  // As above: 6 s leave the destination its 10 heartbeats on a slow host.
  const std::string cmd = "blocks=1024 hb_ms=50 flush_every=16 seconds=6";
  MachineOptions oa = GuestOptions("disk-guest.bin", cmd, 1, 32ull << 20, "a.log");
  oa.definition.disks.push_back({"a-disk.img", config::DiskFormat::kRaw, false});
  MachineOptions ob = GuestOptions("disk-guest.bin", cmd, 1, 32ull << 20, "b.log");
  ob.definition.disks.push_back({"b-disk.img", config::DiskFormat::kRaw, false});

  // The destination's disk does not exist yet: CreateIncoming needs none.
  ASSERT_NO_FATAL_FAILURE(StartSourceAndIncoming(oa, ob, "DISK ", 3));
  std::string blob = PreCopy(*a_, *b_, oa, "DISK ", 3);
  ASSERT_FALSE(blob.empty());

  // Finishing before the disk is there fails, names it, and can be retried.
  auto st = b_->FinishIncoming(blob);
  ASSERT_FALSE(st);
  EXPECT_NE(st.error().message().find("b-disk.img"), std::string::npos) << st.error().ToString();
  EXPECT_EQ(b_->state(), RunState::kIncoming);

  // The source is paused and drained: its disk is final. Copy it byte-exact.
  std::filesystem::copy_file(Path("a-disk.img"), Path("b-disk.img"));
  st = b_->FinishIncoming(blob);
  ASSERT_TRUE(st) << st.error().ToString();
  ASSERT_TRUE(b_->Resume());
  a_->Shutdown();

  auto consoles = WaitGuestDoneOnDestination(oa, ob);
  ASSERT_TRUE(consoles.has_value());
  const auto& [ca, cb] = *consoles;
  std::vector<Beat> beats = ParseBeats(ca + cb, "DISK ");
  size_t on_source = ParseBeats(ca, "DISK ").size();
  CheckBeats(beats, on_source + 10);
  EXPECT_TRUE(LinesStartingWith(ca + cb, "DISK-MISMATCH").empty()) << cb;
  EXPECT_TRUE(LinesStartingWith(ca + cb, "DISK-IOERR").empty()) << cb;
  auto done = LinesStartingWith(cb, "DISKGUEST done ");
  ASSERT_EQ(done.size(), 1u) << cb;
  EXPECT_NE(done[0].find(" errors=0"), std::string::npos) << done[0];
  EXPECT_GT(beats.back().at("writes"), beats[on_source - 1].at("writes"));
  b_->Shutdown();

  // And the destination's disk verifies on its own after a fresh boot.
  MachineOptions ov =
      GuestOptions("disk-guest.bin", "mode=verify blocks=1024", 1, 32ull << 20, "verify.log");
  ov.definition.disks = ob.definition.disks;
  auto v = Machine::Create(ov);
  ASSERT_TRUE(v) << v.error().ToString();
  ASSERT_TRUE((*v)->Start());
  ASSERT_EQ((*v)->WaitWhileRunning(kGuestEndTimeoutMs), RunState::kPoweredOff) << Console(ov);
  auto verify = LinesStartingWith(Console(ov), "DISK-VERIFY ");
  ASSERT_EQ(verify.size(), 1u) << Console(ov);
  EXPECT_NE(verify[0].find(" bad=0"), std::string::npos) << verify[0];
}

// The witness works: a move that leaves out one page the guest rewrote after
// the last round hands the destination a stale page, and the memory guest
// reports exactly that page. (So MemoryGuestContinuesOnTheDestination could
// fail.)
TEST_F(LiveMoveTest, ALostPageIsReportedByTheGuest) {
  FERRY_SKIP_WITHOUT_KVM();
  constexpr uint64_t kWsMib = 8;
  const std::string cmd = "ws_mib=8 hb_ms=50";
  MachineOptions oa = GuestOptions("memory-guest.bin", cmd, 1, 32ull << 20, "a.log");
  MachineOptions ob = GuestOptions("memory-guest.bin", cmd, 1, 32ull << 20, "b.log");
  ASSERT_NO_FATAL_FAILURE(StartSourceAndIncoming(oa, ob, "HB ", 2));

  // The working set's place (README: tables after program_end, then pages).
  uint64_t program_end = base::GetLe64(a_->memory_base() + FERRY_PARAMS_GPA +
                                       offsetof(ferry_guest_params, program_end));
  const uint64_t npages = kWsMib * (1 << 20) / kPage;
  const uint64_t ws_first_page = (program_end + (npages * 8 + kPage - 1) / kPage * kPage) / kPage;

  ASSERT_TRUE(a_->EnableDirtyLog());
  CopyAllPages(*a_, *b_);
  auto dirty = a_->HarvestDirtyPages();
  ASSERT_TRUE(dirty);
  CopyDirtyPages(*a_, *b_, *dirty);
  size_t beats = ParseBeats(Console(oa), "HB ").size();
  ASSERT_TRUE(WaitForBeats(oa, "HB ", beats + 1));  // let it rewrite more pages
  ASSERT_TRUE(a_->Pause());
  auto last = a_->HarvestDirtyPages();
  ASSERT_TRUE(last);
  // A working-set page the guest changed since the destination's copy.
  uint64_t lost = UINT64_MAX;
  for (uint64_t p = ws_first_page; p < ws_first_page + npages && lost == UINT64_MAX; ++p)
    if (testing::TestBit(*last, p) &&
        std::memcmp(a_->memory_base() + p * kPage, b_->memory_base() + p * kPage, kPage) != 0)
      lost = p;
  ASSERT_NE(lost, UINT64_MAX) << "the guest rewrote no working-set page after the round";
  CopyDirtyPages(*a_, *b_, *last, lost);
  auto blob = a_->SaveDeviceState();
  ASSERT_TRUE(blob) << blob.error().ToString();
  ASSERT_TRUE(b_->FinishIncoming(*blob));
  ASSERT_TRUE(b_->Resume());
  a_->Shutdown();

  // Every page is verified within a second (the sweep) or before its next
  // rewrite, whichever comes first.
  const std::string want = "MISMATCH page=" + std::to_string(lost - ws_first_page) + " ";
  EXPECT_TRUE(WaitFor(
      "the guest to report the lost page",
      [&] { return !LinesStartingWith(Console(ob), want).empty(); }, std::chrono::milliseconds(5)))
      << Console(ob);
  b_->Shutdown();
  auto mismatches = LinesStartingWith(Console(ob), "MISMATCH ");
  ASSERT_FALSE(mismatches.empty());
  EXPECT_EQ(mismatches.size(), 1u) << "only the lost page is wrong:\n" << Console(ob);
}

// Harvesting while the vCPUs run (GET then CLEAR with manual protect) loses
// no write: a shadow copy kept up to date from harvests alone — many rounds
// while two vCPUs rewrite pages as fast as they can, then one after the
// pause — equals guest RAM byte for byte.
TEST_F(LiveMoveTest, HarvestWhileRunningLosesNothing) {
  FERRY_SKIP_WITHOUT_KVM();
  MachineOptions o =
      GuestOptions("memory-guest.bin", "ws_mib=16 hb_ms=50", 2, 64ull << 20, "a.log");
  auto a = Machine::Create(o);
  ASSERT_TRUE(a) << a.error().ToString();
  Machine& m = **a;
  ASSERT_TRUE(m.Start());
  ASSERT_TRUE(WaitForBeats(o, "HB ", 2));
  ASSERT_TRUE(m.EnableDirtyLog());
  std::vector<uint8_t> shadow(m.memory_size());
  std::memcpy(shadow.data(), m.memory_base(), shadow.size());
  uint64_t harvested = 0;
  auto copy = [&](const std::vector<uint64_t>& dirty) {
    for (uint64_t p = 0; p < m.memory_size() / kPage; ++p)
      if (testing::TestBit(dirty, p)) {
        std::memcpy(shadow.data() + p * kPage, m.memory_base() + p * kPage, kPage);
        ++harvested;
      }
  };
  auto start = Clock::now();
  int rounds = 0;
  while (Clock::now() - start < std::chrono::milliseconds(1000)) {
    auto dirty = m.HarvestDirtyPages();
    ASSERT_TRUE(dirty) << dirty.error().ToString();
    copy(*dirty);
    ++rounds;
    // A sleep on purpose: it varies the harvest interval (0-3 ms).
    std::this_thread::sleep_for(std::chrono::milliseconds(rounds % 4));
  }
  ASSERT_TRUE(m.Pause());
  auto last = m.HarvestDirtyPages();
  ASSERT_TRUE(last);
  copy(*last);
  uint64_t differ = 0, first = UINT64_MAX;
  for (uint64_t p = 0; p < m.memory_size() / kPage; ++p)
    if (std::memcmp(shadow.data() + p * kPage, m.memory_base() + p * kPage, kPage) != 0) {
      ++differ;
      first = std::min(first, p);
    }
  EXPECT_EQ(differ, 0u) << "pages written but never harvested; first is page " << first;
  EXPECT_GT(harvested, 10000u) << "the guest should have dirtied many pages";
  CheckBeats(ParseBeats(Console(o), "HB "), 10);
  std::cout << "[ note ] " << rounds << " harvests while running, " << harvested << " pages\n";
  m.Shutdown();
}

}  // namespace
}  // namespace vm
