// LiveMoveDestination: a move that commits, and the VM runs from the source's
// state (the fixture: live_move_destination_fixture.h).
#include "live_move_destination_fixture.h"

namespace appliance::dest_test {
namespace {

TEST_F(DestinationTest, CommitsAndTheVmRunsFromTheSourceState) {
  FERRY_SKIP_WITHOUT_KVM();
  // Source files: base.raw <- mid.qcow2 (layers), a top over mid, a raw disk.
  const std::string src = dir_ / "src", dst = dir_ / "dst";
  const std::vector<uint8_t> base_bytes = Pattern(1 << 20, 3);
  WriteFile(src + "/base.raw", base_bytes);
  storage::Qcow2CreateOptions co;
  co.backing_file = src + "/base.raw";
  co.backing_format = config::DiskFormat::kRaw;
  ASSERT_TRUE(storage::CreateQcow2(src + "/mid.qcow2", co));
  {
    auto mid = storage::OpenQcow2Disk(src + "/mid.qcow2", false);
    ASSERT_TRUE(mid.has_value()) << mid.error().ToString();
    auto block = Pattern(65536, 90);
    ASSERT_TRUE((*mid)->Write(block.data(), block.size(), 131072));
    ASSERT_TRUE((*mid)->Flush());
  }
  const std::vector<uint8_t> mid_bytes = ReadBytes(src + "/mid.qcow2");
  ASSERT_FALSE(mid_bytes.empty());

  PrepareRequest plan;
  plan.migration_id = kMigrationId;
  plan.vm_name = "web1";
  plan.definition_toml = "(unused)";
  plan.memory_bytes = kMemory;
  plan.destination = dst;
  PreparedDisk d0;
  d0.index = 0;
  d0.format = "qcow2";
  d0.disk_size = 1 << 20;
  d0.top = dst + "/top.qcow2";
  d0.top_backing_name = "mid.qcow2";
  d0.top_backing_format = "qcow2";
  d0.backing.push_back({dst + "/base.raw", "raw", base_bytes.size(), "", ""});
  d0.backing.push_back({dst + "/mid.qcow2", "qcow2", mid_bytes.size(), "base.raw", "raw"});
  plan.disks.push_back(d0);
  PreparedDisk d1;
  d1.index = 1;
  d1.format = "raw";
  d1.disk_size = 3 << 20;
  d1.top = dst + "/data.raw";
  plan.disks.push_back(d1);
  plan.streams = 3;

  // The source VM: same shape, its own disks (the guest does not use them).
  WriteFile(dir_ / "src/guest.bin", vm::test_guests::kCounter);
  WriteFile(dir_ / "vm/guest.bin", vm::test_guests::kCounter);
  WriteFile(src + "/s0.raw", std::vector<uint8_t>(1 << 20));
  WriteFile(src + "/s1.raw", std::vector<uint8_t>(3 << 20));
  vm::MachineOptions so = MachineFor(plan, src);
  so.definition.disks = {{src + "/s0.raw", config::DiskFormat::kRaw, false},
                         {src + "/s1.raw", config::DiskFormat::kRaw, false}};
  auto created = vm::Machine::Create(so);
  ASSERT_TRUE(created.has_value()) << created.error().ToString();
  source_vm_ = std::move(*created);
  ASSERT_TRUE(source_vm_->Start());
  auto counter = [](vm::Machine& m) {
    return __atomic_load_n(
        reinterpret_cast<uint64_t*>(m.memory_base() + vm::test_guests::kCounterBase),
        __ATOMIC_RELAXED);
  };
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (counter(*source_vm_) < 100000 && std::chrono::steady_clock::now() < deadline)
    std::this_thread::yield();
  ASSERT_TRUE(source_vm_->Pause());
  const uint64_t paused_at = counter(*source_vm_);
  ASSERT_GE(paused_at, 100000u);
  auto state = source_vm_->SaveDeviceState();
  ASSERT_TRUE(state.has_value()) << state.error().ToString();
  const uint8_t* memory = source_vm_->memory_base();

  StartDestination(plan);
  EXPECT_EQ(dest_->Status().phase, LiveMovePhase::kPreparing);
  // A page the source never dirtied but the destination holds garbage in:
  // a zero flag must clear it.
  const uint64_t zero_page = kMemory / kPageBytes - 1;
  ASSERT_TRUE(std::all_of(memory + zero_page * kPageBytes, memory + (zero_page + 1) * kPageBytes,
                          [](uint8_t b) { return b == 0; }));
  std::memset(machine_->memory_base() + zero_page * kPageBytes, 0xff, kPageBytes);

  auto s = FakeSource::Connect(dest_->port(), 3);
  ASSERT_TRUE(s);
  // Layers first (as the source sends them), in uneven chunks.
  s->Layer(0, base_bytes, 300000);
  s->Layer(1, mid_bytes, 65536);
  // Memory: every non-zero page, by group.
  uint64_t sent_pages = 0;
  for (uint64_t g = 0; g < kMemory / kPageBytes / kMaxPagesPerBatch; ++g) {
    std::vector<PageEntry> pages = NonZeroPagesOfGroup(memory, g);
    if (g == zero_page / kMaxPagesPerBatch) pages.push_back({zero_page, true});
    if (pages.empty()) continue;
    sent_pages += pages.size();
    s->Pages(pages, memory);
  }
  ASSERT_GT(sent_pages, 0u);
  // Disks: qcow2 top — data over the chain, zeroes over base data; raw disk
  // — data in two regions, zeroes in a third.
  const auto top_block = Pattern(4096, 200);
  s->Extent(0, 8192, top_block);
  s->Extent(0, 65536, {}, 8192);
  const auto raw_a = Pattern(1 << 20, 11), raw_b = Pattern(512, 77);
  s->Extent(1, 0, raw_a);
  s->Extent(1, (2 << 20) + 512, raw_b);
  s->Extent(1, 1 << 20, {}, 1 << 20);
  for (size_t i = 0; i < 3; ++i) s->End(i);
  s->Control(
      0, MoveFrame::kDeviceState,
      std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(state->data()), state->size()));

  // Committed arrives on stream 0; the source then closes.
  auto committed = s->streams[0]->Receive(transport::kMaxFramePayload, -1, 20000);
  ASSERT_TRUE(committed.has_value())
      << committed.error().ToString() << " / " << dest_->error().ToString();
  EXPECT_EQ(committed->type, uint16_t(MoveFrame::kCommitted));
  EXPECT_EQ(std::string(committed->payload.begin(), committed->payload.end()), "{}");
  s.reset();
  ASSERT_EQ(WaitOutcome(), LiveMoveDestination::Outcome::kCommitted);
  EXPECT_TRUE(resumed_);
  auto marker = base::ReadFileToString(dir_ / "vm/committed");
  ASSERT_TRUE(marker.has_value());
  EXPECT_EQ(*marker, std::string(kMigrationId) + "\n");

  LiveMoveStatus st = dest_->Status();
  EXPECT_EQ(st.phase, LiveMovePhase::kCompleted);
  EXPECT_EQ(st.zero_pages, 1u);
  EXPECT_EQ(st.memory_sent, (sent_pages - 1) * kPageBytes);
  EXPECT_EQ(st.disk_sent,
            base_bytes.size() + mid_bytes.size() + top_block.size() + raw_a.size() + raw_b.size());
  ASSERT_EQ(st.streams.size(), 3u);
  EXPECT_GT(st.wire_bytes, st.memory_sent);
  EXPECT_TRUE(st.error.empty()) << st.error;

  // The VM runs on from the source's pause point.
  EXPECT_EQ(machine_->state(), vm::RunState::kRunning);
  deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (counter(*machine_) < paused_at + 100000 && std::chrono::steady_clock::now() < deadline)
    std::this_thread::yield();
  EXPECT_GE(counter(*machine_), paused_at + 100000)
      << "the guest did not continue at the destination";
  ASSERT_TRUE(machine_->Pause());
  // The program image arrived intact and the zero-flagged page was cleared.
  EXPECT_EQ(std::memcmp(machine_->memory_base() + (1 << 20), memory + (1 << 20), kPageBytes), 0);
  const uint8_t* zp = machine_->memory_base() + zero_page * kPageBytes;
  EXPECT_TRUE(std::all_of(zp, zp + kPageBytes, [](uint8_t b) { return b == 0; }));

  // Files: the raw layer byte-exact, the qcow2 layer re-pointed at its new
  // backing name, the .part files renamed away.
  EXPECT_EQ(ReadBytes(dst + "/base.raw"), base_bytes);
  auto mid_info = storage::ReadQcow2Info(dst + "/mid.qcow2");
  ASSERT_TRUE(mid_info.has_value()) << mid_info.error().ToString();
  EXPECT_EQ(mid_info->backing_file, "base.raw");
  EXPECT_FALSE(std::filesystem::exists(dst + "/top.qcow2.part"));
  EXPECT_FALSE(std::filesystem::exists(dst + "/data.raw.part"));
  dest_.reset();
  machine_->Shutdown();
  machine_.reset();

  // Disk 0 as the guest sees it: chain data, the extent, the zeroes.
  auto top = storage::OpenDisk(dst + "/top.qcow2", config::DiskFormat::kQcow2, true);
  ASSERT_TRUE(top.has_value()) << top.error().ToString();
  std::vector<uint8_t> got(1 << 20);
  ASSERT_TRUE((*top)->Read(got.data(), got.size(), 0));
  std::vector<uint8_t> want = base_bytes;
  auto mid_block = Pattern(65536, 90);
  std::copy(mid_block.begin(), mid_block.end(), want.begin() + 131072);
  std::copy(top_block.begin(), top_block.end(), want.begin() + 8192);
  std::fill(want.begin() + 65536, want.begin() + 65536 + 8192, 0);
  EXPECT_TRUE(got == want) << "qcow2 top over the copied chain differs";
  // Disk 1: a raw file of the disk's size.
  std::vector<uint8_t> raw_want(3 << 20, 0);
  std::copy(raw_a.begin(), raw_a.end(), raw_want.begin());
  std::copy(raw_b.begin(), raw_b.end(), raw_want.begin() + (2 << 20) + 512);
  EXPECT_TRUE(ReadBytes(dst + "/data.raw") == raw_want) << "raw disk differs";
}

}  // namespace
}  // namespace appliance::dest_test
