// LiveMoveDestination against a hand-written source over real loopback TCP
// (transport::FrameStream): pages land in the incoming machine's memory,
// backing layers become byte-exact files, extents land in raw and qcow2 tops,
// and a real VM paused on the "source" resumes at the destination from its
// device state. Every way the move can break before the commit point ends in
// kFailed with a clear error and a kError frame back on stream 0.
//
// Needs /dev/kvm (vm::Machine::CreateIncoming opens it); skips without it.
// The full-disk case mounts a 2 MiB tmpfs (needs root; skips otherwise).
#include <fcntl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <csignal>

#include <chrono>
#include <cstring>
#include <filesystem>
#include <thread>

#include <gtest/gtest.h>

#include "engine/live_move_destination.h"
#include "ipc/vm_dir_files.h"
#include "protocol/move_protocol.h"
#include "ipc/worker_protocol.h"
#include "config/vm_definition.h"
#include "base/event_fd.h"
#include "base/fd.h"
#include "storage/disk.h"
#include "storage/qcow2.h"
#include "raw_opening.h"
#include "test_dir.h"
#include "test_guests.h"
#include "transport/frame_stream.h"
#include "transport/hello.h"
#include "transport/tcp.h"

namespace appliance {
namespace {

using test::TestDir;

constexpr const char* kMigrationId = "6a1b2c3d-4e5f-4a6b-8c7d-0e1f2a3b4c5d";
constexpr uint64_t kMemory = 8 << 20;

bool KvmUsable() { return ::access("/dev/kvm", R_OK | W_OK) == 0; }

#define SKIP_WITHOUT_KVM() \
  if (!KvmUsable()) GTEST_SKIP() << "/dev/kvm is not usable here"

void WriteBytes(const std::string& path, const std::vector<uint8_t>& bytes) {
  base::Fd fd(::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
  ASSERT_TRUE(fd.valid()) << path;
  ASSERT_TRUE(base::WriteAll(fd.get(), bytes.data(), bytes.size()));
}

std::vector<uint8_t> ReadBytes(const std::string& path) {
  auto s = base::ReadFileToString(path);
  if (!s) return {};
  return std::vector<uint8_t>(s->begin(), s->end());
}

std::vector<uint8_t> Pattern(size_t n, uint8_t seed) {
  std::vector<uint8_t> v(n);
  for (size_t i = 0; i < n; ++i) v[i] = uint8_t(seed + i * 7 + (i >> 9));
  return v;
}

// The source side, written by hand: N data streams, each counting the data
// frames it sent so StreamEnd can carry the count (or a wrong one).
class FakeSource {
 public:
  static std::unique_ptr<FakeSource> Connect(uint16_t port, uint16_t count, const char* id = kMigrationId) {
    auto src = std::make_unique<FakeSource>();
    auto parsed = ParseMigrationId(id);
    EXPECT_TRUE(parsed.has_value());
    for (uint16_t i = 0; i < count; ++i) {
      auto fd = transport::TcpConnect("127.0.0.1", port, "", 5000);
      EXPECT_TRUE(fd.has_value()) << fd.error().ToString();
      if (!fd) return nullptr;
      auto fs = std::make_unique<transport::FrameStream>(std::move(*fd), "test stream " + std::to_string(i));
      transport::Hello h;
      h.role = transport::StreamRole::kData;
      h.migration_id = *parsed;
      h.stream_index = i;
      h.stream_count = count;
      auto reply = transport::ClientHello(*fs, h, 5000);
      EXPECT_TRUE(reply.has_value()) << reply.error().ToString();
      if (!reply) return nullptr;
      src->streams.push_back(std::move(fs));
      src->frames.push_back(0);
    }
    return src;
  }

  void Data(size_t i, MoveFrame type, std::span<const uint8_t> a, std::span<const uint8_t> b = {}) {
    auto st = streams[i]->Send(uint16_t(type), a, b, nullptr, -1, 5000);
    // A test that makes the destination fail mid-stream may see its later
    // sends refused; the outcome is what it checks.
    if (!lenient) {
      ASSERT_TRUE(st) << st.error().ToString();
    }
    ++frames[i];
  }
  void Control(size_t i, MoveFrame type, std::span<const uint8_t> a) {
    auto st = streams[i]->Send(uint16_t(type), a, {}, nullptr, -1, 5000);
    ASSERT_TRUE(st) << st.error().ToString();
  }
  void End(size_t i, int64_t adjust = 0) {
    Control(i, MoveFrame::kStreamEnd, EncodeStreamEnd({uint64_t(int64_t(frames[i]) + adjust)}));
  }
  // Pages by the ordering rule: group g on stream g % N.
  void Pages(const std::vector<PageEntry>& pages, const uint8_t* memory) {
    std::vector<uint8_t> data;
    for (const auto& p : pages)
      if (!p.zero) data.insert(data.end(), memory + p.index * kPageBytes, memory + (p.index + 1) * kPageBytes);
    size_t stream = (pages.front().index / kMaxPagesPerBatch) % streams.size();
    Data(stream, MoveFrame::kPageBatch, EncodePageBatchHeader(pages), data);
  }
  void Extent(uint16_t disk, uint64_t offset, const std::vector<uint8_t>& data, uint64_t zero_length = 0) {
    DiskExtentHeader h{disk, data.empty(), offset, data.empty() ? zero_length : data.size()};
    size_t stream = (disk * 7919ull + offset / kRegionBytes) % streams.size();
    Data(stream, MoveFrame::kDiskExtent, EncodeDiskExtentHeader(h), data);
  }
  void Layer(uint32_t layer, const std::vector<uint8_t>& bytes, size_t chunk) {
    size_t stream = layer % streams.size();
    for (size_t off = 0; off < bytes.size(); off += chunk) {
      size_t n = std::min(chunk, bytes.size() - off);
      Data(stream, MoveFrame::kLayerChunk, EncodeLayerChunkHeader({layer, off}),
           std::span<const uint8_t>(bytes.data() + off, n));
    }
    Data(stream, MoveFrame::kLayerDone, EncodeLayerDone({layer, bytes.size()}));
  }
  // The destination's kError frame on stream 0, within 10 s.
  base::Error ReceiveError() {
    for (;;) {
      auto f = streams[0]->Receive(transport::kMaxFramePayload, -1, 10000);
      if (!f) return base::Error(base::Code::kInternal, "no error frame: " + f.error().ToString());
      if (f->type == uint16_t(transport::FrameType::kError)) return transport::DecodeErrorPayload(f->payload);
    }
  }

  std::vector<std::unique_ptr<transport::FrameStream>> streams;
  std::vector<uint64_t> frames;
  bool lenient = false;
};

class DestinationTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_FALSE(dir_.path().empty());
    ASSERT_EQ(::mkdir((dir_ / "src").c_str(), 0755), 0);
    ASSERT_EQ(::mkdir((dir_ / "dst").c_str(), 0755), 0);
    ASSERT_EQ(::mkdir((dir_ / "vm").c_str(), 0755), 0);
    auto notify = base::EventFd::Create();
    ASSERT_TRUE(notify.has_value());
    notify_.emplace(std::move(*notify));
  }
  void TearDown() override {
    dest_.reset();
    if (machine_) machine_->Shutdown();
    machine_.reset();
    if (source_vm_) source_vm_->Shutdown();
    source_vm_.reset();
    if (mounted_) ::umount2((dir_ / "small").c_str(), MNT_DETACH);
  }

  // A plan with one raw disk of `disk_size` at dst/data.raw, and the
  // incoming machine whose definition points at it.
  PrepareRequest RawPlan(uint64_t disk_size = 2 << 20, const std::string& top = "") {
    PrepareRequest p;
    p.migration_id = kMigrationId;
    p.vm_name = "web1";
    p.definition_toml = "(unused by the destination engine)";
    p.memory_bytes = kMemory;
    p.vcpus = 1;
    p.destination = dir_ / "dst";
    PreparedDisk d;
    d.index = 0;
    d.format = "raw";
    d.disk_size = disk_size;
    d.top = top.empty() ? dir_ / "dst/data.raw" : top;
    p.disks.push_back(d);
    p.streams = 2;
    return p;
  }

  vm::MachineOptions MachineFor(const PrepareRequest& plan, const std::string& dir) {
    vm::MachineOptions o;
    o.definition.name = "web1";
    o.definition.id = "0b5f4c8e-7a43-4c51-9d0e-2f3a1b6c7d8e";
    o.definition.vcpus = 1;
    o.definition.memory_bytes = kMemory;
    o.definition.program = "guest.bin";
    o.definition.cmdline = "mode=test";
    for (const auto& d : plan.disks)
      o.definition.disks.push_back(
          {d.top, d.format == "qcow2" ? config::DiskFormat::kQcow2 : config::DiskFormat::kRaw, false});
    o.vm_dir = dir;
    o.console_path = dir + "/console.log";
    return o;
  }

  void StartDestination(const PrepareRequest& plan, int connect_timeout_ms = 10000, int idle_timeout_ms = 10000) {
    auto m = vm::Machine::CreateIncoming(MachineFor(plan, dir_ / "vm"));
    ASSERT_TRUE(m.has_value()) << m.error().ToString();
    machine_ = std::move(*m);
    LiveMoveDestination::Options o;
    o.machine = machine_.get();
    o.vm_dir = dir_ / "vm";
    o.plan = plan;
    o.listen_host = "127.0.0.1";
    o.notify_fd = notify_->fd();
    o.resume = [this]() -> base::Status {
      resumed_ = true;
      return machine_->Resume();
    };
    o.connect_timeout_ms = connect_timeout_ms;
    o.idle_timeout_ms = idle_timeout_ms;
    auto d = LiveMoveDestination::Start(std::move(o));
    ASSERT_TRUE(d.has_value()) << d.error().ToString();
    dest_ = std::move(*d);
    ASSERT_NE(dest_->port(), 0);
  }

  // Waits (at most 20 s) for the destination to decide.
  LiveMoveDestination::Outcome WaitOutcome() {
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
    while (dest_->outcome() == LiveMoveDestination::Outcome::kRunning) {
      if (std::chrono::steady_clock::now() > deadline) {
        ADD_FAILURE() << "timed out waiting for the destination's outcome";
        break;
      }
      (void)base::WaitReadable(notify_->fd(), -1, 100);
    }
    return dest_->outcome();
  }

  // Expects kFailed with `code` and the message containing `fragment`, and
  // the same failure sent back on stream 0 (when a source is connected).
  void ExpectFailed(FakeSource* src, base::Code code, const std::string& fragment) {
    ASSERT_EQ(WaitOutcome(), LiveMoveDestination::Outcome::kFailed);
    base::Error e = dest_->error();
    EXPECT_EQ(e.code(), code) << e.ToString();
    EXPECT_NE(e.message().find(fragment), std::string::npos) << e.ToString();
    LiveMoveStatus s = dest_->Status();
    EXPECT_EQ(s.phase, LiveMovePhase::kFailed);
    EXPECT_EQ(s.error_code, std::string(base::CodeName(code)));
    if (src != nullptr) {
      base::Error sent = src->ReceiveError();
      EXPECT_EQ(sent.code(), code) << sent.ToString();
      EXPECT_NE(sent.message().find(fragment), std::string::npos) << sent.ToString();
    }
    EXPECT_FALSE(resumed_);
    EXPECT_FALSE(std::filesystem::exists(dir_ / "vm/committed"));
    EXPECT_EQ(machine_->state(), vm::RunState::kIncoming);
  }

  TestDir dir_;
  std::optional<base::EventFd> notify_;
  std::unique_ptr<vm::Machine> source_vm_;
  std::unique_ptr<vm::Machine> machine_;
  std::unique_ptr<LiveMoveDestination> dest_;
  bool resumed_ = false;
  bool mounted_ = false;
};

// The whole path: a real VM (the counter guest) paused at the "source",
// its memory sent in page batches, a qcow2 disk over a two-layer chain and a
// raw disk, then the device state. The destination commits, resumes the VM
// (its counter keeps going from where the source stopped) and every file is
// what was sent.
TEST_F(DestinationTest, CommitsAndTheVmRunsFromTheSourceState) {
  SKIP_WITHOUT_KVM();
  // Source files: base.raw <- mid.qcow2 (layers), a top over mid, a raw disk.
  const std::string src = dir_ / "src", dst = dir_ / "dst";
  const std::vector<uint8_t> base_bytes = Pattern(1 << 20, 3);
  WriteBytes(src + "/base.raw", base_bytes);
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
  WriteBytes(dir_ / "src/guest.bin", vm::test_guests::kCounter);
  WriteBytes(dir_ / "vm/guest.bin", vm::test_guests::kCounter);
  WriteBytes(src + "/s0.raw", std::vector<uint8_t>(1 << 20));
  WriteBytes(src + "/s1.raw", std::vector<uint8_t>(3 << 20));
  vm::MachineOptions so = MachineFor(plan, src);
  so.definition.disks = {{src + "/s0.raw", config::DiskFormat::kRaw, false},
                         {src + "/s1.raw", config::DiskFormat::kRaw, false}};
  auto created = vm::Machine::Create(so);
  ASSERT_TRUE(created.has_value()) << created.error().ToString();
  source_vm_ = std::move(*created);
  ASSERT_TRUE(source_vm_->Start());
  auto counter = [](vm::Machine& m) {
    return __atomic_load_n(reinterpret_cast<uint64_t*>(m.memory_base() + vm::test_guests::kCounterBase),
                           __ATOMIC_RELAXED);
  };
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (counter(*source_vm_) < 100000 && std::chrono::steady_clock::now() < deadline) std::this_thread::yield();
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
    std::vector<PageEntry> pages;
    for (uint64_t i = g * kMaxPagesPerBatch; i < (g + 1) * kMaxPagesPerBatch; ++i) {
      const uint8_t* p = memory + i * kPageBytes;
      if (std::any_of(p, p + kPageBytes, [](uint8_t b) { return b != 0; })) pages.push_back({i, false});
    }
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
  s->Control(0, MoveFrame::kDeviceState,
             std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(state->data()), state->size()));

  // Committed arrives on stream 0; the source then closes.
  auto committed = s->streams[0]->Receive(transport::kMaxFramePayload, -1, 20000);
  ASSERT_TRUE(committed.has_value()) << committed.error().ToString() << " / " << dest_->error().ToString();
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
  EXPECT_EQ(st.disk_sent, base_bytes.size() + mid_bytes.size() + top_block.size() + raw_a.size() + raw_b.size());
  ASSERT_EQ(st.streams.size(), 3u);
  EXPECT_GT(st.wire_bytes, st.memory_sent);
  EXPECT_TRUE(st.error.empty()) << st.error;

  // The VM runs on from the source's pause point.
  EXPECT_EQ(machine_->state(), vm::RunState::kRunning);
  deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (counter(*machine_) < paused_at + 100000 && std::chrono::steady_clock::now() < deadline)
    std::this_thread::yield();
  EXPECT_GE(counter(*machine_), paused_at + 100000) << "the guest did not continue at the destination";
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

TEST_F(DestinationTest, StreamEndCountMismatchFails) {
  SKIP_WITHOUT_KVM();
  StartDestination(RawPlan());
  auto s = FakeSource::Connect(dest_->port(), 2);
  ASSERT_TRUE(s);
  s->Extent(0, 0, Pattern(4096, 1));  // stream 0
  s->End(0, -1);                     // claims none
  ExpectFailed(s.get(), base::Code::kDataLoss, "stream 0: the source sent 0 data frames, 1 arrived");
}

TEST_F(DestinationTest, CorruptedFrameFails) {
  SKIP_WITHOUT_KVM();
  StartDestination(RawPlan());
  auto s = FakeSource::Connect(dest_->port(), 2);
  ASSERT_TRUE(s);
  // A stream-end frame, sequence 1 (after the hello), with a flipped CRC bit.
  std::vector<uint8_t> payload = EncodeStreamEnd({0});
  transport::FrameHeader h;
  h.version = s->streams[1]->version();
  h.type = uint16_t(MoveFrame::kStreamEnd);
  h.length = uint32_t(payload.size());
  h.sequence = 1;
  uint8_t raw[transport::kFrameHeaderBytes];
  transport::EncodeFrameHeader(h, raw);
  h.crc32c = transport::FrameCrc(raw, payload) ^ 1;
  transport::EncodeFrameHeader(h, raw);
  ASSERT_TRUE(base::WriteAll(s->streams[1]->fd(), raw, sizeof raw));
  ASSERT_TRUE(base::WriteAll(s->streams[1]->fd(), payload.data(), payload.size()));
  ExpectFailed(s.get(), base::Code::kDataLoss, "frame CRC mismatch");
  EXPECT_NE(dest_->error().message().find("stream 1"), std::string::npos) << dest_->error().ToString();
}

TEST_F(DestinationTest, PageBeyondMemoryFails) {
  SKIP_WITHOUT_KVM();
  StartDestination(RawPlan());
  auto s = FakeSource::Connect(dest_->port(), 2);
  ASSERT_TRUE(s);
  const uint64_t beyond = kMemory / kPageBytes;  // group 8 -> stream 0
  std::vector<uint8_t> page(kPageBytes, 1);
  s->Data(0, MoveFrame::kPageBatch, EncodePageBatchHeader(std::vector<PageEntry>{{beyond, false}}), page);
  ExpectFailed(s.get(), base::Code::kDataLoss, "page 2048 is beyond guest memory (2048 pages)");
}

TEST_F(DestinationTest, FrameOnTheWrongStreamFails) {
  SKIP_WITHOUT_KVM();
  StartDestination(RawPlan());
  auto s = FakeSource::Connect(dest_->port(), 2);
  ASSERT_TRUE(s);
  std::vector<uint8_t> page(kPageBytes, 1);
  // Group 1 belongs on stream 1.
  s->Data(0, MoveFrame::kPageBatch, EncodePageBatchHeader(std::vector<PageEntry>{{256, false}}), page);
  ExpectFailed(s.get(), base::Code::kDataLoss, "page group 1 belongs on stream 1 (ordering rule), not 0");
}

TEST_F(DestinationTest, StreamClosedEarlyFails) {
  SKIP_WITHOUT_KVM();
  StartDestination(RawPlan());
  auto s = FakeSource::Connect(dest_->port(), 2);
  ASSERT_TRUE(s);
  s->Extent(0, 1 << 20, Pattern(4096, 1));  // region 1 -> stream 1
  s->streams[1]->Shutdown();
  ExpectFailed(s.get(), base::Code::kUnavailable, "stream 1 closed before the move completed");
}

TEST_F(DestinationTest, SourceAbortFails) {
  SKIP_WITHOUT_KVM();
  StartDestination(RawPlan());
  auto s = FakeSource::Connect(dest_->port(), 2);
  ASSERT_TRUE(s);
  s->Control(0, MoveFrame::kAbort, JsonPayload({{"reason", "did not converge"}}));
  ExpectFailed(s.get(), base::Code::kAborted, "the source aborted the move: did not converge");
}

TEST_F(DestinationTest, LocalAbortFailsAndTellsTheSource) {
  SKIP_WITHOUT_KVM();
  StartDestination(RawPlan());
  auto s = FakeSource::Connect(dest_->port(), 2);
  ASSERT_TRUE(s);
  // Stream 0 is registered once its hello is answered and the acceptor has
  // moved on; wait so the error has somewhere to go.
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (dest_->Status().streams.size() < 2 && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  dest_->Abort("stopped by request");
  ExpectFailed(s.get(), base::Code::kAborted, "incoming move aborted: stopped by request");
}

TEST_F(DestinationTest, NoSourceWithinTheConnectTimeoutFails) {
  SKIP_WITHOUT_KVM();
  StartDestination(RawPlan(), /*connect_timeout_ms=*/300);
  ExpectFailed(nullptr, base::Code::kDeadlineExceeded, "no data stream from the source within 300 ms");
}

TEST_F(DestinationTest, DeviceStateBeforeEveryStreamEndedWaitsAndMissingEndTimesOut) {
  SKIP_WITHOUT_KVM();
  StartDestination(RawPlan(), 10000, /*idle_timeout_ms=*/500);
  auto s = FakeSource::Connect(dest_->port(), 2);
  ASSERT_TRUE(s);
  s->End(0);
  s->Control(0, MoveFrame::kDeviceState, std::vector<uint8_t>{1, 2, 3});
  // Stream 1 never ends: its receiver times out; nothing is committed.
  ExpectFailed(s.get(), base::Code::kDeadlineExceeded, "(stream 1 has not ended)");
  EXPECT_NE(dest_->error().message().find("the source sent nothing for"), std::string::npos);
}

// Silence is judged for the whole move: a stream with nothing to carry may
// stay quiet far longer than the idle timeout while another is busy.
TEST_F(DestinationTest, AQuietStreamIsFineWhileAnotherCarriesData) {
  SKIP_WITHOUT_KVM();
  // Stream 0 sends every 100 ms, well inside the timeout even on a slow
  // host; stream 1 stays quiet three times as long as the timeout.
  StartDestination(RawPlan(), 10000, /*idle_timeout_ms=*/1000);
  auto s = FakeSource::Connect(dest_->port(), 2);
  ASSERT_TRUE(s);
  for (int i = 0; i < 30; ++i) {  // ~3 s of traffic on stream 0 only
    s->Extent(0, 0, Pattern(4096, uint8_t(i)));
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  EXPECT_EQ(dest_->outcome(), LiveMoveDestination::Outcome::kRunning) << dest_->error().ToString();
  s->End(0);
  s->End(1);
  s->Control(0, MoveFrame::kDeviceState, std::vector<uint8_t>{1, 2, 3});
  ExpectFailed(s.get(), base::Code::kDataLoss, "build the vm from its device state");
  // The disk was finished and renamed before the state was tried.
  EXPECT_EQ(ReadBytes(dir_ / "dst/data.raw").size(), 2u << 20);
}

TEST_F(DestinationTest, BadDeviceStateFailsBeforeTheCommitPoint) {
  SKIP_WITHOUT_KVM();
  StartDestination(RawPlan());
  auto s = FakeSource::Connect(dest_->port(), 2);
  ASSERT_TRUE(s);
  s->End(0);
  s->End(1);
  s->Control(0, MoveFrame::kDeviceState, std::vector<uint8_t>{1, 2, 3});
  ExpectFailed(s.get(), base::Code::kDataLoss, "build the vm from its device state");
}

TEST_F(DestinationTest, WrongMigrationIdIsRejected) {
  SKIP_WITHOUT_KVM();
  StartDestination(RawPlan(), /*connect_timeout_ms=*/1500);
  auto fd = transport::TcpConnect("127.0.0.1", dest_->port(), "", 5000);
  ASSERT_TRUE(fd.has_value());
  transport::FrameStream fs(std::move(*fd), "stray");
  transport::Hello h;
  h.role = transport::StreamRole::kData;
  h.migration_id = *ParseMigrationId("00000000-0000-4000-8000-000000000000");
  h.stream_count = 1;
  ASSERT_TRUE(transport::ClientHello(fs, h, 5000).has_value());
  auto f = fs.Receive(transport::kMaxFramePayload, -1, 5000);
  ASSERT_TRUE(f.has_value()) << f.error().ToString();
  ASSERT_EQ(f->type, uint16_t(transport::FrameType::kError));
  EXPECT_NE(transport::DecodeErrorPayload(f->payload).message().find("is not the one expected here"),
            std::string::npos);
  // The move itself goes on waiting for the real source (and then times out).
  ExpectFailed(nullptr, base::Code::kDeadlineExceeded, "no data stream from the source");
}

// The data port answers every opening that is not a proper data stream
// (garbage, an HTTP request, a bad CRC, a header declaring 4 GiB, a control
// hello) with an error frame naming the problem, and still accepts the
// move's real streams afterwards.
TEST_F(DestinationTest, BadOpeningsOnTheDataPortGetAnErrorFrameAndTheMoveGoesOn) {
  SKIP_WITHOUT_KVM();
  StartDestination(RawPlan());
  const uint16_t port = dest_->port();
  auto expect = [&](const std::vector<uint8_t>& bytes, base::Code code, const std::string& part) {
    base::Error e = test::RefusalOf(port, bytes);
    EXPECT_EQ(e.code(), code) << e.ToString();
    EXPECT_NE(e.message().find(part), std::string::npos) << e.ToString();
  };
  const uint64_t seed = 0x5eed0002;
  SCOPED_TRACE("garbage seed " + std::to_string(seed));
  expect(test::GarbageBytes(seed, 1000), base::Code::kDataLoss, "malformed frame header: bad magic");
  expect(test::TextBytes("GET / HTTP/1.1\r\n\r\n"), base::Code::kDataLoss, "an HTTP request?");
  expect(test::HelloFrameBytes(/*crc_xor=*/0x80), base::Code::kDataLoss, "frame CRC mismatch");
  expect(test::HelloHeaderBytes(0xffffffffu), base::Code::kDataLoss, "length 4294967295 over the maximum 4096");
  expect(test::HelloFrameBytes(), base::Code::kFailedPrecondition, "not a data stream");

  auto s = FakeSource::Connect(port, 2);
  ASSERT_TRUE(s);
  s->Control(0, MoveFrame::kAbort, JsonPayload({{"reason", "test over"}}));
  ExpectFailed(s.get(), base::Code::kAborted, "the source aborted the move: test over");
}

// A destination file system that fills up: kResourceExhausted naming the file.
TEST_F(DestinationTest, FullDiskFailsWithResourceExhaustedNamingTheFile) {
  SKIP_WITHOUT_KVM();
  if (::geteuid() != 0) GTEST_SKIP() << "mounting a tmpfs needs root";
  const std::string small = dir_ / "small";
  ASSERT_EQ(::mkdir(small.c_str(), 0755), 0);
  if (::mount("tmpfs", small.c_str(), "tmpfs", 0, "size=2m") != 0)
    GTEST_SKIP() << "cannot mount a tmpfs here: " << std::strerror(errno);
  mounted_ = true;
  PrepareRequest plan = RawPlan(8 << 20, small + "/data.raw");
  plan.streams = 1;
  StartDestination(plan);
  auto s = FakeSource::Connect(dest_->port(), 1);
  ASSERT_TRUE(s);
  s->lenient = true;
  for (uint64_t region = 0; region < 4; ++region) s->Extent(0, region << 20, Pattern(1 << 20, uint8_t(region)));
  ExpectFailed(s.get(), base::Code::kResourceExhausted, small + "/data.raw.part");
}

// The incoming worker itself (ferry-vmm --incoming): ready line with the
// port, "incoming" status while receiving, other requests refused; after the
// commit an ordinary worker whose VM runs; a failed move ends the worker
// with an exit record naming the error.
class IncomingWorkerTest : public DestinationTest {
 protected:
  void TearDown() override {
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
    }
    DestinationTest::TearDown();
  }

  // Writes D/vm.toml and D/incoming.json for a one-raw-disk VM and starts
  // ferry-vmm; returns the data port from its ready line.
  uint16_t Launch(const PrepareRequest& plan) {
    const std::string d = dir_ / "vm";
    WriteBytes(d + "/guest.bin", vm::test_guests::kCounter);
    config::VmDefinition def = MachineFor(plan, d).definition;
    EXPECT_TRUE(base::WriteFileAtomically(d + "/vm.toml", config::FormatVmDefinition(def)));
    EXPECT_TRUE(base::WriteFileAtomically(d + "/" + kIncomingPlanFile, ToJson(plan).dump()));
    int pipefd[2];
    EXPECT_EQ(::pipe(pipefd), 0);
    pid_ = ::fork();
    if (pid_ == 0) {
      ::close(pipefd[0]);
      std::string fd = std::to_string(pipefd[1]);
      std::string sock = d + "/ctl.sock";
      ::execl(FERRY_VMM_PATH, "ferry-vmm", "--vm-dir", d.c_str(), "--control-socket", sock.c_str(), "--incoming",
              "127.0.0.1", "--migration-id", kMigrationId, "--ready-fd", fd.c_str(), nullptr);
      ::_exit(127);
    }
    ::close(pipefd[1]);
    base::Fd r(pipefd[0]);
    char buf[64] = {};
    size_t got = 0;
    while (got < sizeof buf - 1) {
      ssize_t n = ::read(r.get(), buf + got, sizeof buf - 1 - got);
      if (n <= 0) break;
      got += size_t(n);
      if (buf[got - 1] == '\n') break;
    }
    std::string line(buf, got);
    EXPECT_EQ(line.rfind("ready ", 0), 0u) << "ready line: " << line;
    return line.size() > 6 ? uint16_t(std::stoi(line.substr(6))) : 0;
  }

  base::Result<WorkerReply> Call(WorkerOp op) {
    WorkerRequest req{op, ""};
    return CallWorker(dir_ / "vm/ctl.sock", req, 5000);
  }

  // Waits for the worker to exit; returns its exit status.
  int WaitExit() {
    int status = 0;
    for (int i = 0; i < 400; ++i) {
      pid_t r = ::waitpid(pid_, &status, WNOHANG);
      if (r == pid_) {
        pid_ = -1;
        return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    ADD_FAILURE() << "the worker did not exit within 20 s";
    return -1;
  }

  pid_t pid_ = -1;
};

TEST_F(IncomingWorkerTest, CommitsThenServesAsAnOrdinaryWorker) {
  SKIP_WITHOUT_KVM();
  PrepareRequest plan = RawPlan(1 << 20);
  // The source VM: the counter guest with one raw disk, paused.
  WriteBytes(dir_ / "src/guest.bin", vm::test_guests::kCounter);
  WriteBytes(dir_ / "src/s0.raw", std::vector<uint8_t>(1 << 20));
  vm::MachineOptions so = MachineFor(plan, dir_ / "src");
  so.definition.disks = {{dir_ / "src/s0.raw", config::DiskFormat::kRaw, false}};
  auto created = vm::Machine::Create(so);
  ASSERT_TRUE(created.has_value()) << created.error().ToString();
  source_vm_ = std::move(*created);
  ASSERT_TRUE(source_vm_->Start());
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  ASSERT_TRUE(source_vm_->Pause());
  auto state = source_vm_->SaveDeviceState();
  ASSERT_TRUE(state.has_value()) << state.error().ToString();

  const uint16_t port = Launch(plan);
  ASSERT_NE(port, 0);
  auto st = Call(WorkerOp::kStatus);
  ASSERT_TRUE(st.has_value()) << st.error().ToString();
  EXPECT_EQ(st->state, "incoming");
  auto status = LiveMoveStatusFromJson(nlohmann::json::parse(st->live_move));
  ASSERT_TRUE(status.has_value()) << st->live_move;
  EXPECT_EQ(status->migration_id, kMigrationId);
  auto refused = Call(WorkerOp::kPause);
  ASSERT_FALSE(refused.has_value());
  EXPECT_EQ(refused.error().code(), base::Code::kFailedPrecondition);
  EXPECT_NE(refused.error().message().find("vm is incoming"), std::string::npos);

  auto s = FakeSource::Connect(port, 2);
  ASSERT_TRUE(s);
  const uint8_t* memory = source_vm_->memory_base();
  for (uint64_t g = 0; g < kMemory / kPageBytes / kMaxPagesPerBatch; ++g) {
    std::vector<PageEntry> pages;
    for (uint64_t i = g * kMaxPagesPerBatch; i < (g + 1) * kMaxPagesPerBatch; ++i) {
      const uint8_t* p = memory + i * kPageBytes;
      if (std::any_of(p, p + kPageBytes, [](uint8_t b) { return b != 0; })) pages.push_back({i, false});
    }
    if (!pages.empty()) s->Pages(pages, memory);
  }
  s->Extent(0, 4096, Pattern(8192, 5));
  s->End(0);
  s->End(1);
  s->Control(0, MoveFrame::kDeviceState,
             std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(state->data()), state->size()));
  auto committed = s->streams[0]->Receive(transport::kMaxFramePayload, -1, 20000);
  ASSERT_TRUE(committed.has_value()) << committed.error().ToString();
  EXPECT_EQ(committed->type, uint16_t(MoveFrame::kCommitted));
  s.reset();
  EXPECT_TRUE(std::filesystem::exists(dir_ / "vm/committed"));

  // Once the worker has taken the outcome it is an ordinary worker.
  std::string last;
  for (int i = 0; i < 200; ++i) {
    auto r = Call(WorkerOp::kStatus);
    ASSERT_TRUE(r.has_value()) << r.error().ToString();
    last = r->state;
    if (last == "running" && r->live_move.empty()) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  EXPECT_EQ(last, "running");
  auto paused = Call(WorkerOp::kPause);
  ASSERT_TRUE(paused.has_value()) << paused.error().ToString();
  EXPECT_EQ(paused->state, "paused");
  auto stopped = Call(WorkerOp::kStop);
  ASSERT_TRUE(stopped.has_value()) << stopped.error().ToString();
  EXPECT_EQ(WaitExit(), kWorkerExitOk);
  auto exit = base::ReadFileToString(dir_ / "vm/worker.exit");
  ASSERT_TRUE(exit.has_value());
  EXPECT_NE(exit->find("\"stopped\""), std::string::npos) << *exit;
  auto data = ReadBytes(dir_ / "dst/data.raw");
  ASSERT_EQ(data.size(), 1u << 20);
  auto pattern = Pattern(8192, 5);
  EXPECT_TRUE(std::equal(pattern.begin(), pattern.end(), data.begin() + 4096));
}

TEST_F(IncomingWorkerTest, AFailedMoveEndsTheWorkerWithTheError) {
  SKIP_WITHOUT_KVM();
  const uint16_t port = Launch(RawPlan());
  ASSERT_NE(port, 0);
  auto s = FakeSource::Connect(port, 2);
  ASSERT_TRUE(s);
  s->End(0, +3);
  base::Error sent = s->ReceiveError();
  EXPECT_EQ(sent.code(), base::Code::kDataLoss) << sent.ToString();
  EXPECT_EQ(WaitExit(), kWorkerExitVmFailed);
  auto text = base::ReadFileToString(dir_ / "vm/worker.exit");
  ASSERT_TRUE(text.has_value());
  auto exit = DecodeExitRecord(*text, "worker.exit");
  ASSERT_TRUE(exit.has_value()) << *text;
  EXPECT_EQ(exit->state, "failed");
  EXPECT_EQ(exit->code, "data-loss");
  EXPECT_NE(exit->message.find("the source sent 3 data frames, 0 arrived"), std::string::npos) << exit->message;
  EXPECT_FALSE(std::filesystem::exists(dir_ / "vm/committed"));
}

TEST_F(IncomingWorkerTest, StopAbortsTheMove) {
  SKIP_WITHOUT_KVM();
  const uint16_t port = Launch(RawPlan());
  ASSERT_NE(port, 0);
  auto s = FakeSource::Connect(port, 2);
  ASSERT_TRUE(s);
  auto stopped = Call(WorkerOp::kStop);
  ASSERT_TRUE(stopped.has_value()) << stopped.error().ToString();
  EXPECT_EQ(stopped->state, "stopped");
  EXPECT_EQ(WaitExit(), kWorkerExitOk);
  auto text = base::ReadFileToString(dir_ / "vm/worker.exit");
  ASSERT_TRUE(text.has_value());
  EXPECT_NE(text->find("incoming move aborted"), std::string::npos) << *text;
}

}  // namespace
}  // namespace appliance
