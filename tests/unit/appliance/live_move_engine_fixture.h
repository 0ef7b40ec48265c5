// The fixture of the live-move engine tests (live_move_engine_test.cc: moves
// that succeed; live_move_engine_fault_test.cc: moves that break): machine A
// runs a guest program and a LiveMoveSource, machine B is an incoming machine
// under a LiveMoveDestination, and the data streams run over loopback —
// directly, or through a FaultRelay that breaks them. The guests check
// themselves (vm/guests/README.md): memory-guest's heartbeats must continue
// from A's console into B's with no gap or repeat and no errors; disk-guest
// must find every block it wrote. CTest label "kvm"; skips without /dev/kvm.
#pragma once
#include <gtest/gtest.h>

#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <sstream>
#include <thread>

#include "base/event_fd.h"
#include "base/fd.h"
#include "config/vm_definition.h"
#include "engine/live_move_destination.h"
#include "engine/live_move_source.h"
#include "engine/tracking_disks.h"
#include "fakes/fault_relay.h"
#include "memory_precopy.h"
#include "peer_sink.h"
#include "plan/storage_move_plan.h"
#include "storage/qcow2.h"
#include "stream_pool.h"
#include "support/kvm.h"
#include "support/temp_dir.h"
#include "support/text.h"
#include "support/wait_for.h"
#include "vm/machine.h"

// A named namespace, not an anonymous one: every test file that includes
// this header must see the same fixture class (gtest refuses two).
namespace appliance::engine_test {

using std::chrono::milliseconds;
using std::chrono::steady_clock;

using ferry_test::LinesStartingWith;

inline std::string ReadText(const std::string& path) {
  auto s = base::ReadFileToString(path);
  return s ? *s : std::string();
}

// The complete lines (ended by a newline) of a console starting with prefix
// and holding `field` ("" for any): a VM paused or stopped mid-line leaves a
// partial last line.
inline std::vector<std::string> CompleteLines(const std::string& console, const std::string& prefix,
                                              const std::string& field = "") {
  std::vector<std::string> out;
  for (std::string& line : LinesStartingWith(console.substr(0, console.rfind('\n') + 1), prefix))
    if (line.find(field) != std::string::npos) out.push_back(std::move(line));
  return out;
}

// Waits (up to 10 s: a slow host runs the guest late, not wrongly) until the
// console holds `count` complete lines as CompleteLines counts them.
inline ::testing::AssertionResult WaitForLines(const std::string& console_path,
                                               const std::string& prefix, size_t count,
                                               const std::string& field = "") {
  return ferry_test::WaitFor(
      std::to_string(count) + " \"" + prefix + "\" lines in " + console_path,
      std::chrono::seconds(10),
      [&] { return CompleteLines(ReadText(console_path), prefix, field).size() >= count; },
      milliseconds(20));
}

// memory-guest heartbeats: numbered 1, 2, ... with no gap or repeat, errors=0.
inline void CheckHeartbeats(const std::string& console, size_t min_lines) {
  auto hb = CompleteLines(console, "HB ");
  ASSERT_GE(hb.size(), min_lines) << console;
  for (size_t i = 0; i < hb.size(); ++i) {
    uint64_t n = 0, t = 0, dirtied = 0, errors = 0;
    ASSERT_EQ(std::sscanf(hb[i].c_str(),
                          "HB %" SCNu64 " t=%" SCNu64 " dirtied=%" SCNu64 " errors=%" SCNu64, &n,
                          &t, &dirtied, &errors),
              4)
        << hb[i];
    ASSERT_EQ(n, i + 1) << "heartbeat gap or repeat at line " << i << ": " << hb[i];
    ASSERT_EQ(errors, 0u) << hb[i];
  }
  EXPECT_TRUE(LinesStartingWith(console, "MISMATCH").empty()) << console;
}

inline std::string FormatName(config::DiskFormat f) { return std::string(config::ToString(f)); }

// What ferryd's Prepare carries, built from the same plan the source makes.
inline PrepareRequest MakePrepare(const config::VmDefinition& def, const StorageMovePlan& plan,
                                  uint32_t streams) {
  PrepareRequest r;
  r.migration_id = NewMigrationId();
  r.vm_name = def.name;
  r.vm_id = def.id;
  r.definition_toml = config::FormatVmDefinition(plan.moved_definition);
  r.memory_bytes = def.memory_bytes;
  r.vcpus = def.vcpus;
  r.cpu_vendor = "GenuineIntel";
  r.destination = plan.destination;
  for (const DiskMove& d : plan.disks) {
    PreparedDisk p;
    p.index = uint32_t(d.index);
    p.format = FormatName(d.spec.format);
    p.disk_size = d.disk_size;
    p.top = d.top.dest;
    p.top_backing_name = d.top_backing_name;
    if (!d.top_backing_name.empty()) p.top_backing_format = FormatName(d.top_backing_format);
    for (const LayerMove& l : d.backing) {
      PreparedLayer pl;
      pl.dest = l.dest;
      pl.format = FormatName(l.format);
      pl.file_size = l.file_size;
      pl.rewrite_backing = l.rewrite_backing;
      if (!l.rewrite_backing.empty()) pl.backing_format = FormatName(l.backing_format);
      p.backing.push_back(pl);
    }
    r.disks.push_back(p);
  }
  r.disk_bytes = plan.bytes_total;
  r.streams = streams;
  r.performance = "compression";
  r.source_host = "127.0.0.1";
  return r;
}

struct MoveSetup {
  uint32_t streams = 4;
  uint64_t bandwidth_limit = 0;
  bool compression = true;
  uint32_t downtime_ms = 0;
  uint32_t time_limit_s = 30;
  bool use_relay = false;
  bool resume_b_on_commit = true;
  int lease_ms = 0;  // 0: no lease (the tests poll when they like)
};

class LiveMoveEngineTest : public ::testing::Test {
 protected:
  void SetUp() override {
    src_ = dir_ / "src";
    dst_ = dir_ / "dst";
    std::filesystem::create_directories(src_);
    std::filesystem::create_directories(dst_);
  }
  void TearDown() override {
    source_.reset();
    destination_.reset();
    relay_.reset();
    if (a_) a_->Shutdown();
    if (b_) b_->Shutdown();
  }

  config::VmDefinition Definition(const std::string& program, const std::string& cmdline,
                                  uint64_t memory) {
    config::VmDefinition d;
    d.name = "mover";
    d.id = config::NewUuid();
    d.vcpus = 1;
    d.memory_bytes = memory;
    d.program = std::string(FERRY_GUEST_DIR) + "/" + program;
    d.cmdline = cmdline;
    return d;
  }

  // A machine for `def` in vm_dir, its console in vm_dir/console.
  static vm::MachineOptions MachineOptionsFor(const config::VmDefinition& def,
                                              const std::string& vm_dir,
                                              const std::string& console) {
    vm::MachineOptions o;
    o.definition = def;
    o.vm_dir = vm_dir;
    o.console_path = vm_dir + "/" + console;
    return o;
  }

  // Boots A from `def`, plans the move into dst_, creates B and both engines.
  void StartMove(const config::VmDefinition& def, const MoveSetup& setup) {
    def_ = def;
    vm::MachineOptions ao = MachineOptionsFor(def, src_, "console.log");
    auto a = vm::Machine::Create(ao);
    ASSERT_TRUE(a.has_value()) << a.error().ToString();
    a_ = std::move(*a);
    ASSERT_TRUE(a_->Start().has_value());
    // Let the guest reach its steady state: both guests write their working
    // set (or first blocks) before their first heartbeat.
    const bool disk_guest = def.program.find("disk-guest") != std::string::npos;
    ASSERT_TRUE(WaitForLines(ao.console_path, disk_guest ? "DISK " : "HB ", 1))
        << ReadText(ao.console_path);
    ASSERT_EQ(a_->state(), vm::RunState::kRunning) << a_->failure() << ReadText(ao.console_path);

    auto plan = PlanStorageMove(def, src_, dst_);
    ASSERT_TRUE(plan.has_value()) << plan.error().ToString();
    plan_ = *plan;
    prepare_ = MakePrepare(def, plan_, setup.streams);

    vm::MachineOptions bo;
    bo.definition = plan_.moved_definition;
    bo.vm_dir = dst_;
    bo.console_path = dst_ + "/console.log";
    auto b = vm::Machine::CreateIncoming(bo);
    ASSERT_TRUE(b.has_value()) << b.error().ToString();
    b_ = std::move(*b);

    auto dn = base::EventFd::Create();
    auto sn = base::EventFd::Create();
    ASSERT_TRUE(dn.has_value() && sn.has_value());
    dest_event_.emplace(std::move(*dn));
    source_event_.emplace(std::move(*sn));

    LiveMoveDestination::Options d;
    d.machine = b_.get();
    d.vm_dir = dst_;
    d.plan = prepare_;
    d.listen_host = "127.0.0.1";
    d.notify_fd = dest_event_->fd();
    d.connect_timeout_ms = 20000;
    d.idle_timeout_ms = 20000;
    vm::Machine* bm = b_.get();
    if (setup.resume_b_on_commit)
      d.resume = [bm] { return bm->Resume(); };
    else
      d.resume = [] { return base::Ok(); };
    auto dest = LiveMoveDestination::Start(std::move(d));
    ASSERT_TRUE(dest.has_value()) << dest.error().ToString();
    destination_ = std::move(*dest);

    uint16_t port = destination_->port();
    if (setup.use_relay) {
      auto relay = testing::FaultRelay::Start("127.0.0.1", port);
      ASSERT_TRUE(relay.has_value()) << relay.error().ToString();
      relay_ = std::move(*relay);
      port = relay_->port();
    }

    LiveMoveSource::Options so;
    so.machine = a_.get();
    for (size_t i = 0; i < a_->disk_count(); ++i) {
      auto t = EnsureTracking(*a_, i);
      ASSERT_TRUE(t.has_value()) << t.error().ToString();
      so.disks.push_back(*t);
    }
    so.definition = def;
    so.vm_dir = src_;
    vm::Machine* am = a_.get();
    so.pause = [am] { return am->Pause(); };
    so.resume = [am] { return am->Resume(); };
    so.notify_fd = source_event_->fd();
    so.lease_ms = setup.lease_ms;
    LiveMoveRequest req;
    req.prepare = prepare_;
    req.data_host = "127.0.0.1";
    req.data_port = port;
    req.source_host = "127.0.0.1";
    req.streams = setup.streams;
    req.bandwidth_limit = setup.bandwidth_limit;
    req.compression = setup.compression;
    req.downtime_ms = setup.downtime_ms;
    req.time_limit_s = setup.time_limit_s;
    start_ = steady_clock::now();
    auto src = LiveMoveSource::Start(std::move(so), req);
    ASSERT_TRUE(src.has_value()) << src.error().ToString();
    source_ = std::move(*src);
  }

  // Polls the source (as ferryd does) until it is terminal; returns the
  // last status. pred(status) may act on the way (inject a fault).
  template <typename OnStatus>
  LiveMoveStatus WaitSource(OnStatus on_status, int timeout_s = 40) {
    LiveMoveStatus s;
    ::testing::AssertionResult ended = ferry_test::WaitFor(
        "the source", std::chrono::seconds(timeout_s),
        [&] {
          s = source_->Status();
          on_status(s);
          return IsTerminal(s.phase);
        },
        milliseconds(20));
    EXPECT_TRUE(ended) << "status " << ToJson(s).dump();
    return s;
  }
  LiveMoveStatus WaitSource() {
    return WaitSource([](const LiveMoveStatus&) {});
  }

  LiveMoveDestination::Outcome WaitDestination() {
    (void)ferry_test::WaitFor(
        "the destination", std::chrono::seconds(30),
        [&] { return destination_->outcome() != LiveMoveDestination::Outcome::kRunning; },
        milliseconds(20));
    return destination_->outcome();  // the caller says what it expected
  }

  // A failed move: A runs on unthrottled with its guest intact, B failed.
  void ExpectFailedCleanly(const LiveMoveStatus& s) {
    EXPECT_EQ(s.phase, LiveMovePhase::kFailed) << ToJson(s).dump();
    EXPECT_FALSE(s.error.empty());
    EXPECT_FALSE(source_->committed());
    EXPECT_EQ(a_->state(), vm::RunState::kRunning) << a_->failure();
    EXPECT_EQ(a_->throttle(), 0);
    EXPECT_EQ(WaitDestination(), LiveMoveDestination::Outcome::kFailed);
    // A sleep on purpose: time passes to show the guest keeps running.
    std::this_thread::sleep_for(milliseconds(500));
    EXPECT_EQ(a_->state(), vm::RunState::kRunning) << a_->failure();
    ASSERT_TRUE(a_->Pause().has_value());
    CheckHeartbeats(ReadText(src_ + "/console.log"), 5);
  }

  static void Print(const char* what, const LiveMoveStatus& s) {
    std::cout << "[ measured ] " << what << ": phase=" << ToString(s.phase)
              << " total_ms=" << s.total_ms << " downtime_ms=" << s.downtime_ms
              << " rounds=" << s.round << " memory_sent=" << s.memory_sent
              << " zero_pages=" << s.zero_pages << " disk_sent=" << s.disk_sent
              << " wire_bytes=" << s.wire_bytes << " throttle=" << s.throttle_percent
              << " predicted_ms=" << s.predicted_downtime_ms
              << (s.error.empty() ? "" : " error=" + s.error) << "\n";
  }

  ferry_test::TempDir dir_;
  std::string src_, dst_;
  config::VmDefinition def_;
  StorageMovePlan plan_;
  PrepareRequest prepare_;
  std::unique_ptr<vm::Machine> a_, b_;
  std::optional<base::EventFd> dest_event_, source_event_;
  std::unique_ptr<testing::FaultRelay> relay_;
  std::unique_ptr<LiveMoveDestination> destination_;
  std::unique_ptr<LiveMoveSource> source_;
  steady_clock::time_point start_;
};

}  // namespace appliance::engine_test
