// The fixture of the LiveMoveDestination tests (live_move_destination_test.cc:
// a move that commits; live_move_destination_fault_test.cc: every way one
// breaks; incoming_worker_test.cc: the worker process around it).
//
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
#pragma once

#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <csignal>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <thread>

#include <gtest/gtest.h>

#include "base/event_fd.h"
#include "base/fd.h"
#include "config/vm_definition.h"
#include "engine/live_move_destination.h"
#include "fakes/raw_opening.h"
#include "ipc/vm_dir_files.h"
#include "ipc/worker_protocol.h"
#include "protocol/move_protocol.h"
#include "storage/disk.h"
#include "storage/qcow2.h"
#include "support/files.h"
#include "support/kvm.h"
#include "support/temp_dir.h"
#include "support/test_tls.h"
#include "support/wait_for.h"
#include "test_guests.h"
#include "transport/frame_stream.h"
#include "transport/hello.h"
#include "transport/tcp.h"
#include "transport/tls.h"

// A named namespace, not an anonymous one: every test file that includes
// this header must see the same fixture class (gtest refuses two).
namespace appliance::dest_test {

using ferry_test::TempDir;

inline constexpr const char* kMigrationId = "6a1b2c3d-4e5f-4a6b-8c7d-0e1f2a3b4c5d";
inline constexpr uint64_t kMemory = 8 << 20;

using ferry_test::ReadBytes;
using ferry_test::WriteFile;

// The non-zero pages of 1 MiB group g of a source's memory, as one batch's
// entries (what a source sends for that group in a full pass).
inline std::vector<PageEntry> NonZeroPagesOfGroup(const uint8_t* memory, uint64_t g) {
  std::vector<PageEntry> pages;
  for (uint64_t i = g * kMaxPagesPerBatch; i < (g + 1) * kMaxPagesPerBatch; ++i) {
    const uint8_t* p = memory + i * kPageBytes;
    if (std::any_of(p, p + kPageBytes, [](uint8_t b) { return b != 0; }))
      pages.push_back({i, false});
  }
  return pages;
}

inline std::vector<uint8_t> Pattern(size_t n, uint8_t seed) {
  std::vector<uint8_t> v(n);
  for (size_t i = 0; i < n; ++i) v[i] = uint8_t(seed + i * 7 + (i >> 9));
  return v;
}

// The source side, written by hand: N data streams, each counting the data
// frames it sent so StreamEnd can carry the count (or a wrong one).
class FakeSource {
 public:
  // With tls, each stream is TLS with that identity (as a source worker's).
  static std::unique_ptr<FakeSource> Connect(uint16_t port, uint16_t count,
                                             const char* id = kMigrationId,
                                             const transport::TlsContext* tls = nullptr) {
    auto src = std::make_unique<FakeSource>();
    auto parsed = ParseMigrationId(id);
    EXPECT_TRUE(parsed.has_value());
    for (uint16_t i = 0; i < count; ++i) {
      auto fd = transport::TcpConnect("127.0.0.1", port, "", 5000);
      EXPECT_TRUE(fd.has_value()) << fd.error().ToString();
      if (!fd) return nullptr;
      std::unique_ptr<transport::TlsSession> session;
      if (tls != nullptr) {
        auto s = transport::TlsConnect(*tls, fd->get(), "", 5000);
        EXPECT_TRUE(s.has_value()) << s.error().ToString();
        if (!s) return nullptr;
        session = *std::move(s);
      }
      auto fs = std::make_unique<transport::FrameStream>(
          std::move(*fd), "test stream " + std::to_string(i), std::move(session));
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
      if (!p.zero)
        data.insert(data.end(), memory + p.index * kPageBytes, memory + (p.index + 1) * kPageBytes);
    size_t stream = (pages.front().index / kMaxPagesPerBatch) % streams.size();
    Data(stream, MoveFrame::kPageBatch, EncodePageBatchHeader(pages), data);
  }
  void Extent(uint16_t disk, uint64_t offset, const std::vector<uint8_t>& data,
              uint64_t zero_length = 0) {
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
      if (f->type == uint16_t(transport::FrameType::kError))
        return transport::DecodeErrorPayload(f->payload);
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
          {d.top, d.format == "qcow2" ? config::DiskFormat::kQcow2 : config::DiskFormat::kRaw,
           false});
    o.vm_dir = dir;
    o.console_path = dir + "/console.log";
    return o;
  }

  void StartDestination(const PrepareRequest& plan, int connect_timeout_ms = 10000,
                        int idle_timeout_ms = 10000) {
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

  TempDir dir_;
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

}  // namespace appliance::dest_test
