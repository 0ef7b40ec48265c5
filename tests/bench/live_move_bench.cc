// Live-move benchmark: for a VM of 1 GiB memory with a 2 GiB raw disk, three
// workloads — idle, the memory guest dirtying a set fraction of the link
// rate, the disk guest writing steadily — each moved once with ferry's own
// engine, beside:
//   - the link limit measured in the same run (raw loopback TCP, the same
//     stream count, incompressible data: link_probe.h), and the ratio;
//   - for the same memory size and dirty rate, QEMU's live migration over
//     loopback (qemu_reference.h: Debian's qemu-system-x86_64 under TCG with
//     a busybox initramfs that dirties memory), with QEMU's own total time,
//     downtime, bytes and dirty-sync rounds, and whether its destination
//     guest still verifies (QEMU 7.2 under TCG loses dirty pages once a move
//     needs four or more rounds: that is reported, not hidden).
//
// ferry side, in process: the source is a vm::Machine running the memory or
// disk guest, its disk wrapped in a TrackingDisk as ferry-vmm does; the
// destination an incoming Machine (Machine::CreateIncoming); LiveMoveSource
// sends to LiveMoveDestination over loopback exactly as the two workers do,
// with the plan ferryd would make (PlanStorageMove + BuildPrepareRequest).
// After the commit the destination guest must keep verifying itself (the
// memory guest sweeps its whole working set every second; the disk guest
// re-reads what it wrote): if it reports an error the benchmark exits 1.
//
// Exit status: 0 when every ferry move committed and its guest verified
// (even if the QEMU reference failed verification: that is a finding); 1
// otherwise.
//
//   live_move_bench [--quick] [--streams 4] [--dir /var/tmp/ferry-live-move-bench]
//                   [--ws-mib 256] [--fractions 0.1,0.3] [--downtime-ms 300]
//                   [--performance compression|tcp|both] [--no-qemu] [--no-ferry] [--qemu-multifd]
//                   [--kernel /boot/vmlinuz-...] [--link-mib 1024] [--disk-fill-mib 1024]
//                   [--workloads idle,memory,disk] [--disk-mib 2048] [--verbose] [--busy-copy-mib
//                   16] [--tls on|off|both]
#include <fcntl.h>
#include <glob.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "base/clock.h"
#include "base/event_fd.h"
#include "base/fd.h"
#include "bench_util.h"
#include "config/vm_definition.h"
#include "daemon/live_move_service.h"
#include "engine/live_move_destination.h"
#include "engine/live_move_source.h"
#include "guest_initramfs/initramfs.h"
#include "link_probe.h"
#include "plan/storage_move_plan.h"
#include "qemu_reference.h"
#include "storage/tracking_disk.h"
#include "transport/tcp.h"
#include "transport/tls.h"
#include "vm/machine.h"

namespace {

constexpr uint64_t kMiB = 1ull << 20;
constexpr uint64_t kPage = 4096;

struct Args {
  bool quick = false;
  uint32_t streams = 4;
  std::string dir = "/var/tmp/ferry-live-move-bench";
  uint64_t memory_mib = 1024;
  uint64_t disk_mib = 2048;
  uint64_t ws_mib = 256;
  std::vector<double> fractions = {0.1, 0.3};
  uint32_t downtime_ms = appliance::LiveMoveSource::kDefaultDowntimeMs;
  std::string performance = "compression";
  std::string tls = "on";  // "on" (as ferryd moves), "off" (plain streams), "both"
  bool qemu = true;
  bool ferry = true;
  bool verbose = false;                        // ferry's move status every 250 ms on stderr
  std::string workloads = "idle,memory,disk";  // which kinds to run
  bool qemu_multifd = false;
  std::string kernel;
  uint64_t link_mib = 1024;
  uint64_t busy_copy_mib = 0;     // the mirrors' rate while the guest writes (0: ferry's default)
  uint64_t disk_fill_mib = 1024;  // data in the disk workload's disk before the move
  uint64_t disk_blocks = 65536;   // the disk guest's span: 256 MiB of 4 KiB blocks
  double settle_s = 2;            // the workload runs this long before the move
  double check_s = 2.5;           // the destination guest runs this long after it
  double qemu_timeout_s = 60;
};

void Usage() {
  std::fprintf(
      stderr,
      "usage: live_move_bench [--quick] [--streams N] [--dir DIR] [--ws-mib N] [--fractions F,F]\n"
      "                       [--downtime-ms N] [--performance compression|tcp|both] [--no-qemu] "
      "[--no-ferry]\n"
      "                       [--workloads idle,memory,disk] [--disk-mib N] [--verbose]\n"
      "                       [--qemu-multifd] [--kernel PATH] [--link-mib N] [--disk-fill-mib N]\n"
      "                       [--busy-copy-mib N] [--tls on|off|both]\n");
  std::exit(2);
}

Args ParseArgs(int argc, char** argv) {
  Args a;
  for (int i = 1; i < argc; ++i) {
    std::string k = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) Usage();
      return argv[++i];
    };
    if (k == "--quick") {
      a.quick = true;
      a.fractions = {0.1};
      a.link_mib = 512;
      a.disk_fill_mib = 256;
      a.settle_s = 1.5;
      a.check_s = 2.2;
      a.qemu_timeout_s = 30;
    } else if (k == "--streams")
      a.streams = uint32_t(std::stoul(value()));
    else if (k == "--dir")
      a.dir = value();
    else if (k == "--ws-mib")
      a.ws_mib = std::stoull(value());
    else if (k == "--downtime-ms")
      a.downtime_ms = uint32_t(std::stoul(value()));
    else if (k == "--performance")
      a.performance = value();
    else if (k == "--tls")
      a.tls = value();
    else if (k == "--no-qemu")
      a.qemu = false;
    else if (k == "--no-ferry")
      a.ferry = false;
    else if (k == "--workloads")
      a.workloads = value();
    else if (k == "--disk-mib")
      a.disk_mib = std::stoull(value());
    else if (k == "--verbose")
      a.verbose = true;
    else if (k == "--qemu-multifd")
      a.qemu_multifd = true;
    else if (k == "--kernel")
      a.kernel = value();
    else if (k == "--link-mib")
      a.link_mib = std::stoull(value());
    else if (k == "--disk-fill-mib")
      a.disk_fill_mib = std::stoull(value());
    else if (k == "--busy-copy-mib")
      a.busy_copy_mib = std::stoull(value());
    else if (k == "--fractions") {
      a.fractions.clear();
      std::stringstream ss(value());
      for (std::string f; std::getline(ss, f, ',');) a.fractions.push_back(std::stod(f));
    } else
      Usage();
  }
  if (a.performance != "compression" && a.performance != "tcp" && a.performance != "both") Usage();
  if (a.tls != "on" && a.tls != "off" && a.tls != "both") Usage();
  if (a.tls == "both" && a.performance == "both") Usage();  // one comparison per run
  return a;
}

void SleepS(double s) { std::this_thread::sleep_for(std::chrono::microseconds(int64_t(s * 1e6))); }

// ---- Workloads ----------------------------------------------------------------

enum class Kind { kIdle, kMemory, kDisk };

struct Workload {
  std::string name;
  std::string slug;  // VM and directory name
  Kind kind = Kind::kIdle;
  double fraction = 0;  // of the link rate (memory workloads)
  uint64_t ws_mib = 0;
  uint64_t rate_pages = 0;  // asked of the guest, pages/s (memory); writes/s (disk, 0: flat out)
};

// ---- Output ---------------------------------------------------------------------

std::string Ms(double v) {
  char b[32];
  std::snprintf(b, sizeof b, v < 0 ? "-" : "%.0f", v);
  return b;
}
std::string MiB(uint64_t bytes) {
  char b[32];
  std::snprintf(b, sizeof b, "%.1f", double(bytes) / double(kMiB));
  return b;
}
std::string Fixed(double v, int prec) {
  char b[32];
  std::snprintf(b, sizeof b, "%.*f", prec, v);
  return b;
}

// ---- ferry's move ---------------------------------------------------------------

struct FerryResult {
  bool moved = false;
  std::string error;
  appliance::LiveMoveStatus status;
  double guest_rate = 0;         // pages/s dirtied (memory), writes/s (disk), before the move
  double guest_rate_during = 0;  // the same from the move's start to its end, at the source
  bool verified = false;
  std::string verify_detail;
};

// Heartbeats: memory guest "HB n t=.. dirtied=.. errors=..", disk guest
// "DISK n t=.. writes=.. ... errors=..".
struct Beat {
  uint64_t t_ms = 0, count = 0, errors = 0;
};

std::vector<Beat> ReadBeats(const std::string& console, Kind kind) {
  auto text = base::ReadFileToString(console);
  std::vector<Beat> out;
  if (!text) return out;
  std::stringstream in(*text);
  const std::string prefix = kind == Kind::kDisk ? "DISK " : "HB ";
  const std::string counter = kind == Kind::kDisk ? " writes=" : " dirtied=";
  for (std::string line; std::getline(in, line);) {
    if (line.rfind(prefix, 0) != 0) continue;
    size_t t = line.find(" t="), c = line.find(counter), e = line.find(" errors=");
    if (t == std::string::npos || c == std::string::npos || e == std::string::npos) continue;
    out.push_back(Beat{std::stoull(line.substr(t + 3)),
                       std::stoull(line.substr(c + counter.size())),
                       std::stoull(line.substr(e + 8))});
  }
  return out;
}

// Rate over the last ~window_ms of heartbeats.
double BeatRate(const std::vector<Beat>& beats, uint64_t window_ms) {
  if (beats.size() < 2) return 0;
  const Beat& last = beats.back();
  size_t i = beats.size() - 2;
  while (i > 0 && last.t_ms - beats[i].t_ms < window_ms) --i;
  const Beat& first = beats[i];
  return last.t_ms > first.t_ms
             ? double(last.count - first.count) * 1000.0 / double(last.t_ms - first.t_ms)
             : 0;
}

bool HasBadLine(const std::string& console) {
  auto text = base::ReadFileToString(console);
  if (!text) return false;
  for (const char* bad : {"MISMATCH", "DISK-IOERR", "ARG-ERROR", "error:"})
    if (text->find(bad) != std::string::npos) return true;
  return false;
}

base::Status MakeDisk(const std::string& path, uint64_t size, uint64_t fill) {
  ASSIGN_OR_RETURN(base::Fd fd, base::Fd::Open(path, O_WRONLY | O_CREAT | O_TRUNC));
  std::vector<uint8_t> buf(kMiB);
  for (uint64_t m = 0; m < fill / kMiB; ++m) {
    for (size_t i = 0; i < buf.size(); i += 8) {  // distinct per MiB: no dedup, no zero runs
      uint64_t v = (m << 32 | i) * 0x9e3779b97f4a7c15ull;
      std::memcpy(&buf[i], &v, 8);
    }
    RETURN_IF_ERROR(base::WriteAll(fd.get(), buf.data(), buf.size()));
  }
  if (::ftruncate(fd.get(), off_t(size)) != 0) return base::ErrnoError("truncate " + path);
  if (::fsync(fd.get()) != 0) return base::ErrnoError("fsync " + path);
  return base::Ok();
}

// Everything one ferry move holds, torn down in the order a worker does it
// (engines first, then the machines), on every path.
struct Rig {
  std::unique_ptr<vm::Machine> src, dst;
  storage::TrackingDisk* tracking = nullptr;  // owned by src's disk device
  std::unique_ptr<appliance::LiveMoveSource> source;
  std::unique_ptr<appliance::LiveMoveDestination> incoming;
  ~Rig() {
    source.reset();  // aborts a move still running, joins
    incoming.reset();
    // Work-around: the source engine leaves guest I/O paused on the tracking
    // disks after a commit (and after an in-doubt end), and Machine::Shutdown's
    // drain flushes through the TrackingDisk, which would wait for it
    // forever. The vCPUs are stopped by then, so only that flush goes through.
    if (tracking && tracking->io_paused()) tracking->ResumeIo();
    if (src) src->Shutdown();
    if (dst) dst->Shutdown();
  }
};

// Two host identities that pin each other, as two ferryds' [tls] would, for
// the source's request and the destination's options.
base::Result<std::pair<appliance::PeerTrust, appliance::PeerTrust>> PinnedPair(
    const std::string& dir) {
  for (const char* host : {"src", "dst"})
    RETURN_IF_ERROR(transport::GenerateHostIdentity(dir + "/" + host + ".crt",
                                                    dir + "/" + host + ".key", host));
  ASSIGN_OR_RETURN(std::string src_fp, transport::CertificateFingerprint(dir + "/src.crt"));
  ASSIGN_OR_RETURN(std::string dst_fp, transport::CertificateFingerprint(dir + "/dst.crt"));
  appliance::PeerTrust src{dir + "/src.crt", dir + "/src.key", "", {dst_fp}, dst_fp};
  appliance::PeerTrust dst{dir + "/dst.crt", dir + "/dst.key", "", {src_fp}, src_fp};
  return std::make_pair(src, dst);
}

FerryResult RunFerry(const Args& args, const Workload& w, const std::string& performance, bool tls,
                     const std::string& dir) {
  FerryResult r;
  Rig rig;
  auto fail = [&](const std::string& what, const base::Error& e) {
    r.error = what + ": " + e.ToString();
    return r;
  };
  std::filesystem::remove_all(dir);
  const std::string src_dir = dir + "/src", dest_dir = dir + "/dest", in_dir = dir + "/incoming";
  std::filesystem::create_directories(src_dir);
  std::filesystem::create_directories(in_dir);
  const std::string src_console = src_dir + "/console.log", dst_console = in_dir + "/console.log";
  const std::string disk = src_dir + "/disk.img";
  if (auto st = MakeDisk(disk, args.disk_mib * kMiB,
                         w.kind == Kind::kDisk ? args.disk_fill_mib * kMiB : 0);
      !st)
    return fail("disk", st.error());

  config::VmDefinition def;
  def.name = "bench-" + w.slug;
  def.id = config::NewUuid();
  def.memory_bytes = args.memory_mib * kMiB;
  def.disks.push_back(config::DiskSpec{disk, config::DiskFormat::kRaw, false});
  if (w.kind == Kind::kDisk) {
    def.program = std::string(FERRY_GUEST_DIR) + "/disk-guest.bin";
    def.cmdline = "blocks=" + std::to_string(args.disk_blocks) +
                  " hb_ms=100 rate=" + std::to_string(w.rate_pages);
  } else {
    def.program = std::string(FERRY_GUEST_DIR) + "/memory-guest.bin";
    def.cmdline = "ws_mib=" + std::to_string(w.ws_mib) + " rate=" + std::to_string(w.rate_pages) +
                  " hb_ms=100";
  }

  vm::MachineOptions so;
  so.definition = def;
  so.vm_dir = src_dir;
  so.console_path = src_console;
  auto src = vm::Machine::Create(so);
  if (!src) return fail("source machine", src.error());
  rig.src = std::move(*src);
  vm::Machine* src_machine = rig.src.get();
  auto wrapped = src_machine->TransformDisk(
      0, [&](std::unique_ptr<storage::Disk>& cur) -> base::Result<std::unique_ptr<storage::Disk>> {
        auto t = storage::TrackingDisk::Create(std::move(cur));
        if (!t) return t.error();
        rig.tracking = t->get();
        return std::unique_ptr<storage::Disk>(std::move(*t));
      });
  if (!wrapped) return fail("tracking disk", wrapped.error());
  if (auto st = src_machine->Start(); !st) return fail("start", st.error());
  // Running: the working set is written once before the first heartbeat.
  for (int i = 0; i < 600 && ReadBeats(src_console, w.kind).size() < 2; ++i) SleepS(0.05);
  if (ReadBeats(src_console, w.kind).size() < 2) {
    r.error = "the guest did not start (" + src_machine->failure() + ")";
    return r;
  }
  SleepS(args.settle_s);
  r.guest_rate = BeatRate(ReadBeats(src_console, w.kind), uint64_t(args.settle_s * 1000) - 200);

  // The plan ferryd would make and the incoming side ferry-vmm --incoming
  // would build.
  auto plan = appliance::PlanStorageMove(def, src_dir, dest_dir);
  if (!plan) return fail("plan", plan.error());
  if (auto st = appliance::PrepareDestination(dest_dir); !st)
    return fail("destination", st.error());
  appliance::PrepareRequest prepare =
      appliance::BuildPrepareRequest(def, *plan, args.streams,
                                     performance == "tcp" ? config::PerformanceOption::kTcp
                                                          : config::PerformanceOption::kCompression,
                                     "127.0.0.1");
  prepare.migration_id = appliance::NewMigrationId();

  vm::MachineOptions dopt;
  dopt.definition = plan->moved_definition;
  dopt.vm_dir = in_dir;
  dopt.console_path = dst_console;
  auto dst = vm::Machine::CreateIncoming(dopt);
  if (!dst) return fail("incoming machine", dst.error());
  rig.dst = std::move(*dst);
  auto dst_event = base::EventFd::Create();
  auto src_event = base::EventFd::Create();
  if (!dst_event || !src_event)
    return fail("eventfd", dst_event ? src_event.error() : dst_event.error());
  vm::Machine* dst_machine = rig.dst.get();
  appliance::LiveMoveDestination::Options dopts;
  dopts.machine = dst_machine;
  dopts.vm_dir = in_dir;
  dopts.plan = prepare;
  dopts.listen_host = "127.0.0.1";
  dopts.notify_fd = dst_event->fd();
  dopts.resume = [dst_machine] { return dst_machine->Resume(); };
  std::optional<appliance::PeerTrust> source_trust;
  if (tls) {
    auto pair = PinnedPair(dir);
    if (!pair) return fail("TLS identities", pair.error());
    source_trust = pair->first;
    dopts.tls = pair->second;
  }
  auto incoming = appliance::LiveMoveDestination::Start(std::move(dopts));
  if (!incoming) return fail("destination engine", incoming.error());
  rig.incoming = std::move(*incoming);

  // The source resolves with the destination's ferryd only when the data
  // stream breaks after the state was sent; nothing listens on this port, so
  // such a move ends "in doubt" and the benchmark fails.
  appliance::LiveMoveSource::Options sopts;
  sopts.machine = src_machine;
  sopts.disks = {rig.tracking};
  sopts.definition = def;
  sopts.vm_dir = src_dir;
  sopts.pause = [src_machine] { return src_machine->Pause(); };
  sopts.resume = [src_machine] { return src_machine->Resume(); };
  sopts.notify_fd = src_event->fd();
  if (args.busy_copy_mib > 0) sopts.busy_guest_copy_rate = args.busy_copy_mib * kMiB;
  appliance::LiveMoveRequest req;
  req.prepare = prepare;
  req.control_host = "127.0.0.1";
  req.control_port = 9;  // discard: refused on loopback
  req.data_host = "127.0.0.1";
  req.data_port = rig.incoming->port();
  req.source_host = "127.0.0.1";
  req.streams = args.streams;
  req.compression = performance == "compression";
  req.downtime_ms = args.downtime_ms;
  req.time_limit_s = 120;
  req.tls = source_trust;
  auto source = appliance::LiveMoveSource::Start(std::move(sopts), req);
  if (!source) return fail("source engine", source.error());
  rig.source = std::move(*source);
  const std::vector<Beat> beats_at_start = ReadBeats(src_console, w.kind);
  uint64_t t0 = base::MonotonicNanos(), next_report = 0;
  for (;;) {
    r.status = rig.source->Status();
    if (appliance::IsTerminal(r.status.phase)) break;
    uint64_t ms = (base::MonotonicNanos() - t0) / 1000000;
    if (args.verbose && ms >= next_report) {
      next_report = ms + 250;
      std::fprintf(stderr,
                   "  %6llu ms %-10s round %u  memory sent %s MiB (dirty %s MiB)  disk sent %s MiB "
                   "(left %s MiB)  %.2f GB/s\n",
                   (unsigned long long)ms, std::string(appliance::ToString(r.status.phase)).c_str(),
                   r.status.round, MiB(r.status.memory_sent).c_str(),
                   MiB(r.status.memory_remaining).c_str(), MiB(r.status.disk_sent).c_str(),
                   MiB(r.status.disk_remaining).c_str(), r.status.bytes_per_second / 1e9);
    }
    SleepS(0.02);
  }
  for (int i = 0;
       i < 500 && rig.incoming->outcome() == appliance::LiveMoveDestination::Outcome::kRunning; ++i)
    SleepS(0.01);
  if (r.status.phase != appliance::LiveMovePhase::kCompleted) {
    r.error = "move " + std::string(appliance::ToString(r.status.phase)) + ": " + r.status.error;
    return r;
  }
  if (rig.incoming->outcome() != appliance::LiveMoveDestination::Outcome::kCommitted) {
    r.error = "the source completed but the destination did not commit";
    return r;
  }
  r.moved = true;
  // The guest's own rate while the move ran (its heartbeats at the source
  // from the start to the switchover): what the move cost it.
  if (auto at_end = ReadBeats(src_console, w.kind); !beats_at_start.empty() && !at_end.empty()) {
    const Beat &a = beats_at_start.back(), &b = at_end.back();
    if (b.t_ms > a.t_ms)
      r.guest_rate_during = double(b.count - a.count) * 1000.0 / double(b.t_ms - a.t_ms);
  }
  // As the source worker does on Committed: its VM is gone from here.
  rig.source.reset();
  if (rig.tracking->io_paused()) rig.tracking->ResumeIo();  // see Rig
  rig.src->Shutdown();
  rig.src.reset();
  rig.tracking = nullptr;

  // The destination guest carries on from where it was paused; its own
  // checks must stay clean and its heartbeats keep coming.
  SleepS(args.check_s);
  auto beats = ReadBeats(dst_console, w.kind);
  vm::RunState state = dst_machine->state();
  if (state != vm::RunState::kRunning) {
    r.verify_detail =
        "destination vm " + std::string(vm::ToString(state)) + ": " + dst_machine->failure();
  } else if (HasBadLine(dst_console) || (!beats.empty() && beats.back().errors != 0)) {
    r.verify_detail = "destination guest reported errors (see " + dst_console + ")";
  } else if (beats.size() < 2 || beats.back().count <= beats.front().count) {
    r.verify_detail =
        "destination guest made no progress (" + std::to_string(beats.size()) + " heartbeats)";
  } else {
    r.verified = true;
    r.verify_detail = "OK";
  }
  rig.incoming.reset();
  rig.dst->Shutdown();
  rig.dst.reset();
  if (r.verified) std::filesystem::remove_all(dir);
  return r;
}

// MB/s: whole numbers, but an idle guest's trickle still shows.
std::string Rate(double mbps) { return Fixed(mbps, mbps < 10 ? 2 : 0); }

void Row(const std::vector<std::string>& cells) {
  static const int widths[] = {18, 7, 9, 9, 10, 7, 7, 6, 10, 0};
  std::string line;
  for (size_t i = 0; i < cells.size(); ++i) {
    char b[256];
    int wdt = i < std::size(widths) ? widths[i] : 0;
    std::snprintf(b, sizeof b, i == 0 ? "%-*s" : " %*s", wdt, cells[i].c_str());
    line += b;
  }
  std::printf("%s\n", line.c_str());
}

std::string FindKernel(const std::string& given) {
  if (!given.empty()) return given;
  glob_t g{};
  std::string best;
  if (::glob("/boot/vmlinuz-*", 0, nullptr, &g) == 0 && g.gl_pathc > 0)
    best = g.gl_pathv[g.gl_pathc - 1];
  ::globfree(&g);
  return best;
}

}  // namespace

int main(int argc, char** argv) {
  Args args = ParseArgs(argc, argv);
  // A QEMU that died must not kill us when we write to its console pipe.
  ::signal(SIGPIPE, SIG_IGN);
  std::filesystem::create_directories(args.dir);

  // 1. The link limit.
  auto link =
      bench::Must(bench::MeasureLoopbackLink(args.streams, args.link_mib * kMiB), "link probe");
  const double link_bps = link.bytes_per_second();
  std::printf("link limit: %u loopback TCP streams, %s MiB incompressible: %.2f GB/s\n",
              link.streams, MiB(link.bytes).c_str(), link_bps / 1e9);
  std::fflush(stdout);

  // 2. The workloads, rates set from the link just measured.
  std::vector<Workload> workloads;
  auto wanted = [&](const char* kind) { return args.workloads.find(kind) != std::string::npos; };
  if (wanted("idle")) workloads.push_back({"idle", "idle", Kind::kIdle, 0, 16, 10});
  for (double f : wanted("memory") ? args.fractions : std::vector<double>{}) {
    char name[32];
    std::snprintf(name, sizeof name, "memory %.0f%% link", f * 100);
    workloads.push_back({name, "memory" + std::to_string(int(f * 100)), Kind::kMemory, f,
                         args.ws_mib, uint64_t(f * link_bps / double(kPage))});
  }
  if (wanted("disk")) workloads.push_back({"disk writing", "disk", Kind::kDisk, 0, 0, 0});

  // 3. The QEMU reference's guest, built now (nothing binary in the tree).
  std::string kernel = FindKernel(args.kernel), initramfs, qemu_dir = args.dir + "/qemu";
  std::string qemu_note;
  if (args.qemu) {
    std::filesystem::create_directories(qemu_dir);
    auto built = bench::BuildReferenceInitramfs(FERRY_INITRAMFS_SRC, qemu_dir);
    if (kernel.empty())
      qemu_note = "no kernel under /boot (scripts/setup.sh installs one)";
    else if (!built)
      qemu_note = built.error().ToString();
    else
      initramfs = *built;
    if (::access("/usr/bin/qemu-system-x86_64", X_OK) != 0)
      qemu_note = "qemu-system-x86_64 is not installed";
  }

  struct Done {
    Workload w;
    FerryResult ferry;      // args.performance ("compression" for both)
    FerryResult ferry_tcp;  // --performance both: the same move with plain streams
    bool has_tcp = false;
    FerryResult ferry_plain;  // --tls both: the same move without TLS
    bool has_plain = false;
    bool qemu_ran = false;
    std::string qemu_error;
    bench::QemuReferenceResult qemu;
  };
  std::vector<Done> done;
  bool ferry_ok = true;
  for (const Workload& w : workloads) {
    std::printf("running %s ...\n", w.name.c_str());
    std::fflush(stdout);
    Done d{w, {}, {}, false, {}, false, false, "", {}};
    if (args.ferry) {
      const bool both = args.performance == "both";
      const std::string performance = both ? "compression" : args.performance;
      d.ferry = RunFerry(args, w, performance, args.tls != "off", args.dir + "/ferry");
      if (!d.ferry.moved || !d.ferry.verified) ferry_ok = false;
      if (both) {
        d.has_tcp = true;
        d.ferry_tcp = RunFerry(args, w, "tcp", args.tls != "off", args.dir + "/ferry-tcp");
        if (!d.ferry_tcp.moved || !d.ferry_tcp.verified) ferry_ok = false;
      }
      if (args.tls == "both") {
        d.has_plain = true;
        d.ferry_plain = RunFerry(args, w, performance, false, args.dir + "/ferry-plain");
        if (!d.ferry_plain.moved || !d.ferry_plain.verified) ferry_ok = false;
      }
    } else {
      d.ferry.error = "skipped (--no-ferry)";
    }
    if (args.qemu && w.kind != Kind::kDisk) {
      if (!qemu_note.empty()) {
        d.qemu_error = qemu_note;
      } else {
        bench::QemuReferenceOptions q;
        q.qemu = "/usr/bin/qemu-system-x86_64";
        q.kernel = kernel;
        q.initramfs = initramfs;
        q.work_dir = qemu_dir;
        q.memory_mib = args.memory_mib;
        q.ws_mib = w.ws_mib;
        q.dirty_pages_per_s = w.rate_pages;
        q.downtime_ms = args.downtime_ms;
        q.multifd_channels = args.qemu_multifd ? args.streams : 0;
        q.settle_s = args.settle_s;
        q.migrate_timeout_s = args.qemu_timeout_s;
        auto qr = bench::RunQemuReference(q);
        if (qr) {
          d.qemu_ran = true;
          d.qemu = *qr;
        } else {
          d.qemu_error = qr.error().ToString();
        }
      }
    }
    done.push_back(std::move(d));
  }
  if (args.qemu) std::filesystem::remove_all(qemu_dir);
  {
    std::error_code ec;  // kept only when a failed move left its files there
    std::filesystem::remove(args.dir, ec);
  }

  // 4. The table.
  std::printf(
      "\nlive move of a %llu MiB VM with a %llu MiB raw disk over loopback, %u streams (%s, TLS "
      "%s), "
      "downtime target %u ms\n",
      (unsigned long long)args.memory_mib, (unsigned long long)args.disk_mib, args.streams,
      args.performance.c_str(), args.tls.c_str(), args.downtime_ms);
  std::printf("link limit (raw TCP, %u streams, same run): %.2f GB/s\n\n", args.streams,
              link_bps / 1e9);
  Row({"workload", "engine", "total ms", "down ms", "sent MiB", "rounds", "GB/s", "/link",
       "dirty MB/s", "guest check"});
  auto ferry_row = [&](const Done& d, const FerryResult& f, const std::string& name,
                       const std::string& engine) {
    std::string dirty = !args.ferry ? ""
                        : d.w.kind == Kind::kDisk
                            ? Fixed(f.guest_rate * 4096 / 1e6, 1) + "w" +
                                  (f.moved ? "/" + Fixed(f.guest_rate_during * 4096 / 1e6, 1) : "")
                            : Rate(f.guest_rate * kPage / 1e6);
    if (f.moved) {
      double secs = f.status.total_ms / 1000.0;
      double bps = secs > 0 ? double(f.status.wire_bytes) / secs : 0;
      Row({name, engine, Ms(f.status.total_ms), Ms(f.status.downtime_ms), MiB(f.status.wire_bytes),
           std::to_string(f.status.round), Fixed(bps / 1e9, 2), Fixed(bps / link_bps, 2), dirty,
           f.verified ? "OK" : "FAIL: " + f.verify_detail});
    } else {
      Row({name, engine, args.ferry ? "MOVE FAILED: " + f.error : f.error});
    }
  };
  for (const Done& d : done) {
    ferry_row(d, d.ferry, d.w.name, d.has_tcp ? "ferry-z" : d.has_plain ? "ferry-tls" : "ferry");
    if (d.has_plain) {
      ferry_row(d, d.ferry_plain, "", "ferry-plain");
      const FerryResult &a = d.ferry, &b = d.ferry_plain;
      if (a.moved && b.moved && a.status.total_ms > 0 && b.status.total_ms > 0) {
        const double tput_a = double(a.status.wire_bytes) / a.status.total_ms;
        const double tput_b = double(b.status.wire_bytes) / b.status.total_ms;
        std::printf("%-18s tls / plain: total time %.2f, throughput %.2f\n", "",
                    a.status.total_ms / b.status.total_ms, tput_a / tput_b);
      }
    }
    if (d.has_tcp) {
      ferry_row(d, d.ferry_tcp, "", "ferry-t");
      const double z = d.ferry.status.total_ms, t = d.ferry_tcp.status.total_ms;
      if (d.ferry.moved && d.ferry_tcp.moved && t > 0)
        std::printf("%-18s compression / tcp total time: %.2f\n", "", z / t);
    }
    if (d.w.kind == Kind::kDisk) {
      Row({"", "qemu", "n/a (memory-only reference)"});
    } else if (!args.qemu) {
      Row({"", "qemu", "skipped (--no-qemu)"});
    } else if (!d.qemu_ran) {
      Row({"", "qemu", "did not run: " + d.qemu_error});
    } else {
      const auto& q = d.qemu;
      double bps = q.total_ms > 0 ? double(q.ram_transferred) / (q.total_ms / 1000.0) : 0;
      std::string check =
          q.completed() ? std::string(bench::ToString(q.verdict)) : "migration " + q.status;
      if (q.verdict != bench::GuestVerdict::kOk && !q.verdict_detail.empty())
        check += " (" + q.verdict_detail + ")";
      if (q.throttle_percent > 0)
        check += " [throttled " + std::to_string(q.throttle_percent) + "%]";
      Row({"", "qemu", Ms(q.total_ms), Ms(q.downtime_ms), MiB(q.ram_transferred),
           std::to_string(q.dirty_sync_count), Fixed(bps / 1e9, 2), Fixed(bps / link_bps, 2),
           Rate(q.guest_dirty_pages_per_s * kPage / 1e6), check});
    }
  }
  // 5. What the columns mean, and ferry's own breakdown.
  std::printf("\nmemory workloads: %llu MiB working set, dirty rate asked = fraction x link rate (",
              (unsigned long long)args.ws_mib);
  const char* sep = "";
  for (const Done& d : done)
    if (d.w.kind == Kind::kMemory) {
      std::printf("%s%.0f MB/s", sep, double(d.w.rate_pages) * kPage / 1e6);
      sep = ", ";
    }
  std::printf(
      ");\n  \"dirty MB/s\" is what each guest reached before the move (one that cannot reach the\n"
      "  asked rate dirties as fast as it can). idle: 16 MiB working set, 10 pages/s.\n"
      "disk writing: the disk guest writing 4 KiB blocks flat out over %llu MiB of its disk, "
      "which\n"
      "  held %llu MiB of data (\"w\": its write MB/s before the move / while the move ran, at "
      "the\n"
      "  source); the other workloads' disks are empty (sparse).\n"
      "ferry: sent = bytes on the wire (all streams), rounds = memory rounds, GB/s = sent / "
      "total,\n"
      "  ferry-z / ferry-t (--performance both): the same move with compression / plain streams,\n"
      "  ferry-tls / ferry-plain (--tls both): the same move over TLS 1.3 / without TLS,\n"
      "  downtime = source vCPUs stopped until the destination's Committed arrived.\n"
      "qemu: TCG, %s, auto-converge on, max-bandwidth raised; total/downtime/sent (ram "
      "transferred)\n"
      "  are QEMU's query-migrate figures, rounds its dirty-sync-count; after every run its\n"
      "  destination guest is asked to verify its working set (VERIFY OK / FAIL / CRASHED / NO "
      "ANSWER).\n",
      (unsigned long long)(args.disk_blocks * 4096 / kMiB), (unsigned long long)args.disk_fill_mib,
      args.qemu_multifd ? "multifd" : "one migration stream");
  if (args.ferry) {
    std::printf("\nferry breakdown:\n");
    for (const Done& d : done) {
      const auto& st = d.ferry.status;
      if (!d.ferry.moved) continue;
      double secs = st.total_ms / 1000.0;
      std::printf(
          "  %-18s memory sent %s MiB, disk sent %s MiB, %llu zero pages skipped, throttle %d%%;"
          " %s MiB of state moved in %.2f s = %.2f GB/s\n",
          d.w.name.c_str(), MiB(st.memory_sent).c_str(), MiB(st.disk_sent).c_str(),
          (unsigned long long)st.zero_pages, st.throttle_percent,
          MiB(st.memory_bytes + st.disk_bytes).c_str(), secs,
          secs > 0 ? double(st.memory_bytes + st.disk_bytes) / secs / 1e9 : 0.0);
    }
  }
  if (!ferry_ok) {
    std::fprintf(stderr,
                 "live_move_bench: a ferry move failed or its destination guest did not verify\n");
    return 1;
  }
  return 0;
}
