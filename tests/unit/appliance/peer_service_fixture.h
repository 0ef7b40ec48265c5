// The fixture of the PeerService tests (peer_service_test.cc: pre-flight and
// protocol robustness; peer_service_lifecycle_test.cc: launch, adopt, clean up,
// recovery).
//
// PeerService (the destination ferryd's side of live moves) on 127.0.0.1:0
// in a temp storage root: the pre-flight matrix, malformed control streams,
// and the launch / adopt / clean-up / recovery paths with a fake incoming
// worker (tests/fakes/fake_incoming_worker.cc), so no KVM is needed.
#pragma once

#include "daemon/peer_service.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <filesystem>
#include <fstream>

#include "base/clock.h"
#include "common/process.h"
#include "config/vm_definition.h"
#include "daemon/runtime_record.h"
#include "daemon/vm_json.h"
#include "fakes/stray_workers.h"
#include "ipc/vm_dir_files.h"
#include "peer/peer_client.h"
#include "support/temp_dir.h"
#include "support/test_tls.h"
#include "support/wait_for.h"
#include "transport/frame_stream.h"
#include "transport/tcp.h"

// A named namespace, not an anonymous one: every test file that includes
// this header must see the same fixture class (gtest refuses two).
namespace appliance::peer_service_test {

using nlohmann::json;

inline bool PathExists(const std::string& p) {
  struct stat st {};
  return ::lstat(p.c_str(), &st) == 0;
}
inline bool IsSymlink(const std::string& p) {
  struct stat st {};
  return ::lstat(p.c_str(), &st) == 0 && S_ISLNK(st.st_mode);
}

class PeerServiceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ::unsetenv("FAKE_INCOMING_MODE");
    vm_options_.host.storage_root = dir_ / "root";
    // VmService never launches a worker here (only adopts incoming ones).
    vm_options_.worker_binary = FAKE_INCOMING_WORKER_PATH;
    vm_options_.guest_dir = fake::MakeGuestDir(dir_.path());
    vm_options_.worker_ready_timeout_ms = 10000;
    vm_options_.exit_timeout_ms = 5000;
    auto vms = VmService::Open(vm_options_);
    ASSERT_TRUE(vms.has_value()) << vms.error().ToString();
    vms_ = std::move(*vms);

    options_.host = vm_options_.host;
    options_.host.incoming_enabled = true;
    options_.host.max_live_moves = 2;
    options_.host.listen_addresses = {config::ListenAddress{"127.0.0.1", 0, "127.0.0.1:0"}};
    options_.worker_binary = FAKE_INCOMING_WORKER_PATH;
    options_.host_cpu = HostCpu{"GenuineIntel", {"fpu", "sse", "sse2"}};
    options_.worker_ready_timeout_ms = 10000;
    options_.io_timeout_ms = 5000;
    options_.poll_interval_ms = 20;
    options_.worker_call_timeout_ms = 2000;
    options_.tls = ferry_test::TestTlsContext(dir_ / "host-b", "host-b");
    source_tls_ = ferry_test::TestTlsContext(dir_ / "host-a", "host-a");
    // Where Request() puts the disks.
    options_.host.incoming_directories = {dir_ / "dest"};
  }

  void TearDown() override {
    // Every fake worker this test started goes, and is reaped; the records
    // name them. waitid(WNOWAIT) says whether it is still our child, so a
    // recycled pid is never signalled.
    std::vector<int64_t> pids;
    std::error_code ec;
    for (const auto& e : std::filesystem::directory_iterator(dir_ / "root/incoming-records", ec)) {
      auto text = base::ReadFileToString(e.path().string());
      if (!text) continue;
      pids.push_back(json::parse(*text, nullptr, false).value("pid", int64_t{0}));
    }
    fake::StrayWorkers strays(pids);
    peer_.reset();
    vms_.reset();
    strays.Reap();
    ::unsetenv("FAKE_INCOMING_MODE");
  }

  void StartPeer() {
    auto p = PeerService::Start(*vms_, options_);
    ASSERT_TRUE(p.has_value()) << p.error().ToString();
    peer_ = std::move(*p);
    ASSERT_EQ(peer_->listening().size(), 1u);
    endpoint_ = PeerEndpoint{"127.0.0.1", peer_->listening()[0].second, "", source_tls_, ""};
  }

  PrepareRequest Request(const std::string& name) {
    config::VmDefinition def;
    def.name = name;
    def.id = config::NewUuid();
    def.memory_bytes = 64ull << 20;
    def.program = dir_ / "guests/memory-guest.bin";
    def.disks.push_back(
        config::DiskSpec{dir_ / ("dest/" + name + ".img"), config::DiskFormat::kRaw, false});
    PrepareRequest r;
    r.migration_id = NewMigrationId();
    r.vm_name = name;
    r.vm_id = def.id;
    r.definition_toml = config::FormatVmDefinition(def);
    r.memory_bytes = def.memory_bytes;
    r.cpu_vendor = "GenuineIntel";
    r.cpu_features = {"sse2"};
    r.destination = dir_ / "dest";
    PreparedDisk disk;
    disk.index = 0;
    disk.format = "raw";
    disk.disk_size = 1 << 20;
    disk.top = def.disks[0].path;
    r.disks.push_back(disk);
    r.disk_bytes = 1 << 20;
    r.performance = "tcp";
    return r;
  }

  base::Result<json> Prepare(const PrepareRequest& r) {
    return CallPeer(endpoint_, MoveFrame::kPrepare, ToJson(r), MoveFrame::kPrepareReply, 15000);
  }
  // Starts the peer and a move of vm1 whose Prepare succeeds: req_ and
  // reply_ describe it, and its fake incoming worker runs.
  void StartPeerAndPrepareVm1() {
    StartPeer();
    req_ = Request("vm1");
    auto reply = Prepare(req_);
    ASSERT_TRUE(reply.has_value()) << reply.error().ToString();
    reply_ = *reply;
  }
  // A Prepare refused with `code`, its message naming `part`.
  static void ExpectRefused(const base::Result<json>& r, base::Code code, const std::string& part) {
    ASSERT_FALSE(r.has_value());
    EXPECT_EQ(r.error().code(), code) << r.error().ToString();
    EXPECT_NE(r.error().message().find(part), std::string::npos) << r.error().message();
  }
  // A VM of that name that already exists on this host.
  void CreateVm(const std::string& name) {
    CreateRequest create;
    create.definition.name = name;
    create.definition.memory_bytes = 64ull << 20;
    create.guest = "memory";
    ASSERT_TRUE(vms_->Create(create).has_value());
  }
  json Status(const std::string& id) {
    auto r = CallPeer(endpoint_, MoveFrame::kStatusQuery, json{{"migration_id", id}},
                      MoveFrame::kStatusReply, 60000);
    EXPECT_TRUE(r.has_value()) << r.error().ToString();
    return r.has_value() ? *r : json();
  }
  json Abort(const std::string& id) {
    auto r = CallPeer(endpoint_, MoveFrame::kAbort, json{{"migration_id", id}, {"reason", "test"}},
                      MoveFrame::kAbortReply, 60000);
    EXPECT_TRUE(r.has_value()) << r.error().ToString();
    return r.has_value() ? *r : json();
  }
  // Sends one byte to the fake incoming worker's data port: 'c' commits.
  void Tell(const json& prepare_reply, char what) {
    auto fd =
        transport::TcpConnect(prepare_reply["data_host"], prepare_reply["data_port"], "", 5000);
    ASSERT_TRUE(fd.has_value()) << fd.error().ToString();
    ASSERT_EQ(::write(fd->get(), &what, 1), 1);
  }
  // Polls (every 10 ms, up to 10 s) for an effect of another thread.
  static ::testing::AssertionResult Eventually(const std::function<bool()>& pred) {
    return ferry_test::WaitFor("an effect of PeerService's threads", std::chrono::seconds(10),
                               pred);
  }
  std::string IncomingDir(const std::string& id) { return dir_ / ("root/incoming/" + id); }
  // Tells vm1's worker to commit and waits for its commit marker.
  void CommitVm1() {
    Tell(reply_, 'c');
    ASSERT_TRUE(
        Eventually([&] { return PathExists(IncomingDir(req_.migration_id) + "/committed"); }));
  }
  json Record(const std::string& id) {
    auto text = base::ReadFileToString(dir_ / ("root/incoming-records/" + id + ".json"));
    return text ? json::parse(*text, nullptr, false) : json();
  }

  ferry_test::TempDir dir_;
  ServiceOptions vm_options_;
  PeerService::Options options_;
  // Show as the API emits it.
  base::Result<nlohmann::json> ShowJson(const std::string& name) {
    auto r = vms_->Show(name);
    if (!r) return r.error();
    return VmViewToJson(*r);
  }

  std::unique_ptr<VmService> vms_;
  std::unique_ptr<PeerService> peer_;
  std::shared_ptr<const transport::TlsContext> source_tls_;  // the source host's identity
  PeerEndpoint endpoint_;
  PrepareRequest req_;  // StartPeerAndPrepareVm1's move
  json reply_;
};

}  // namespace appliance::peer_service_test
