// mirror_bench: does mirroring starve the guest, and how fast does it copy?
//
// In one run, on the same image:
//   1. A guest-like writer (the disk guest's pattern: 4 KiB writes to random
//      blocks, a re-read every 4 writes, a flush every 64) on the raw disk
//      with no mirror: write rate and worst latency.
//   2. The same writer on the same disk through a TrackingDisk while a
//      MirrorJob bulk-copies it to a fresh file: write rate, worst latency,
//      and the ratio to (1). Target: writes during the move within 1.3x.
//      Then the same while the job mirrors (bulk copy done, write-through).
//   3. Copy throughput: the mirror job alone (to a fresh file, durable: the
//      sink is flushed at the end) beside `cp --sparse=always` followed by
//      `sync` of the copy, each twice, alternating.
//
//   Phase 2 runs twice: copy unpaced, and paced at --max-rate-mib (the
//   MirrorOptions::max_bytes_per_second cap, default 64 MiB/s).
//
// Usage: mirror_bench [--size-mib N] [--seconds S] [--dir PATH] [--max-rate-mib R]
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "base/clock.h"
#include "base/fd.h"
#include "bench_util.h"
#include "storage/block_sink.h"
#include "storage/disk.h"
#include "storage/mirror_job.h"
#include "storage/tracking_disk.h"

namespace {

constexpr uint64_t kMiB = 1 << 20;
constexpr size_t kBlock = 4096;

using bench::Die;
using bench::Must;

// A fully allocated image of seeded, incompressible data.
void MakeImage(const std::string& path, uint64_t size) {
  base::Fd fd = Must(base::Fd::Open(path, O_RDWR | O_CREAT | O_TRUNC), "create image");
  std::vector<uint64_t> buf(kMiB / 8);
  uint64_t x = 0x9e3779b97f4a7c15ull;
  for (uint64_t off = 0; off < size; off += kMiB) {
    for (auto& w : buf) w = x = x * 6364136223846793005ull + 1442695040888963407ull;
    Must(base::PwriteAll(fd.get(), buf.data(), kMiB, off_t(off)), "fill image");
  }
  if (fsync(fd.get()) != 0) Die("fsync image");
}

struct WriterStats {
  uint64_t writes = 0;
  double seconds = 0;
  double worst_ms = 0;
  double p99_ms = 0;
  double rate() const { return seconds > 0 ? double(writes) / seconds : 0; }
};

// The disk guest's loop, for `seconds` or until stop() says so.
template <typename StopFn>
WriterStats RunWriter(storage::Disk& disk, double seconds, uint64_t seed, StopFn stop) {
  std::mt19937_64 rng(seed);
  const uint64_t blocks = disk.size() / kBlock;
  alignas(4096) static uint8_t wbuf[kBlock];
  alignas(4096) static uint8_t rbuf[kBlock];
  std::vector<double> lat;
  lat.reserve(1 << 20);
  WriterStats s;
  const uint64_t start = base::MonotonicNanos();
  const uint64_t deadline = start + uint64_t(seconds * 1e9);
  uint64_t seq = 0;
  while (base::MonotonicNanos() < deadline && !stop()) {
    const uint64_t block = rng() % blocks;
    std::memcpy(wbuf, &block, 8);
    std::memcpy(wbuf + 8, &++seq, 8);
    std::memset(wbuf + 16, int(seq), kBlock - 16);
    const uint64_t t0 = base::MonotonicNanos();
    Must(disk.Write(wbuf, kBlock, block * kBlock), "guest write");
    if (seq % 64 == 0) Must(disk.Flush(), "guest flush");
    lat.push_back(double(base::MonotonicNanos() - t0) / 1e6);
    if (seq % 4 == 0) Must(disk.Read(rbuf, kBlock, (rng() % blocks) * kBlock), "guest read");
    ++s.writes;
  }
  s.seconds = double(base::MonotonicNanos() - start) / 1e9;
  if (!lat.empty()) {
    std::sort(lat.begin(), lat.end());
    s.worst_ms = lat.back();
    s.p99_ms = lat[size_t(double(lat.size() - 1) * 0.99)];
  }
  return s;
}

void PrintWriter(const char* label, const WriterStats& s) {
  std::printf("  %-34s %9.0f writes/s  p99 %7.3f ms  worst %8.3f ms  (%lu writes, %.1f s)\n", label,
              s.rate(), s.p99_ms, s.worst_ms, static_cast<unsigned long>(s.writes), s.seconds);
}

double MirrorCopySeconds(const std::string& src, const std::string& dst, uint64_t size) {
  unlink(dst.c_str());
  auto raw = Must(storage::OpenRawDisk(src, false), "open source");
  auto disk = Must(storage::TrackingDisk::Create(std::move(raw)), "tracking disk");
  auto sink = Must(storage::OpenFileSink(dst, size), "open sink");
  storage::MirrorOptions o;
  o.open_source = [src] { return storage::OpenRawDisk(src, true); };
  const uint64_t t0 = base::MonotonicNanos();
  auto job = Must(storage::MirrorJob::Start(*disk, *sink, std::move(o)), "start mirror");
  Must(job->WaitReady(-1, -1), "mirror bulk copy");
  disk->PauseIo();
  Must(job->Complete(), "complete mirror");  // flushes the sink: durable
  const double secs = double(base::MonotonicNanos() - t0) / 1e9;
  disk->ResumeIo();
  return secs;
}

double CpSeconds(const std::string& src, const std::string& dst) {
  unlink(dst.c_str());
  std::string cmd = "cp --sparse=always '" + src + "' '" + dst + "' && sync '" + dst + "'";
  const uint64_t t0 = base::MonotonicNanos();
  if (std::system(cmd.c_str()) != 0) Die("cp failed: " + cmd);
  return double(base::MonotonicNanos() - t0) / 1e9;
}

}  // namespace

int main(int argc, char** argv) {
  uint64_t size_mib = 1024;
  double seconds = 5;
  uint64_t max_rate_mib = 64;
  std::string dir = std::getenv("TMPDIR") != nullptr ? std::getenv("TMPDIR") : "/var/tmp";
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string a = argv[i];
    if (a == "--size-mib")
      size_mib = std::strtoull(argv[i + 1], nullptr, 10);
    else if (a == "--seconds")
      seconds = std::atof(argv[i + 1]);
    else if (a == "--dir")
      dir = argv[i + 1];
    else if (a == "--max-rate-mib")
      max_rate_mib = std::strtoull(argv[i + 1], nullptr, 10);
    else
      Die("unknown argument " + a + " (--size-mib N --seconds S --dir PATH)");
  }
  const uint64_t size = size_mib * kMiB;
  const std::string src = dir + "/mirror-bench-src.img";
  const std::string dst = dir + "/mirror-bench-dst.img";
  std::printf("mirror_bench: %lu MiB image in %s, writer %.1f s per phase, %ld CPUs online\n",
              static_cast<unsigned long>(size_mib), dir.c_str(), seconds,
              sysconf(_SC_NPROCESSORS_ONLN));
  MakeImage(src, size);

  // 1. No mirror: the raw disk as the VM uses it without a move.
  std::printf("guest-like writer (4 KiB random writes, re-read every 4, flush every 64):\n");
  WriterStats base_stats;
  {
    auto raw = Must(storage::OpenRawDisk(src, false), "open source");
    base_stats = RunWriter(*raw, seconds, 1, [] { return false; });
    PrintWriter("no mirror (raw disk)", base_stats);
  }

  // 2. The same disk during a move: unpaced, then paced.
  for (uint64_t rate_mib : {uint64_t(0), max_rate_mib}) {
    WriterStats bulk_stats, wt_stats;
    unlink(dst.c_str());
    auto raw = Must(storage::OpenRawDisk(src, false), "open source");
    auto disk = Must(storage::TrackingDisk::Create(std::move(raw)), "tracking disk");
    auto sink = Must(storage::OpenFileSink(dst, size), "open sink");
    storage::MirrorOptions o;
    o.open_source = [src] { return storage::OpenRawDisk(src, true); };
    o.max_bytes_per_second = rate_mib * kMiB;
    auto job = Must(storage::MirrorJob::Start(*disk, *sink, std::move(o)), "start mirror");
    const uint64_t t0 = base::MonotonicNanos();
    bulk_stats = RunWriter(*disk, seconds * 4, 2,
                           [&] { return job->Progress().state != storage::MirrorState::kCopying; });
    const double writer_done = double(base::MonotonicNanos() - t0) / 1e9;
    Must(job->WaitReady(-1, -1), "mirror bulk copy");
    const double copy_during = double(base::MonotonicNanos() - t0) / 1e9;
    wt_stats = RunWriter(*disk, seconds, 3, [] { return false; });
    disk->PauseIo();
    Must(job->Complete(), "complete mirror");
    disk->ResumeIo();
    std::string pace = rate_mib == 0 ? "unpaced" : "paced " + std::to_string(rate_mib) + " MiB/s";
    std::printf(" mirror %s:\n", pace.c_str());
    PrintWriter("during bulk copy", bulk_stats);
    PrintWriter("during mirroring (write-through)", wt_stats);
    std::printf("  slowdown during bulk copy: %.2fx rate, worst latency %.1fx  (target <= 1.3x)\n",
                base_stats.rate() / std::max(bulk_stats.rate(), 1e-9),
                bulk_stats.worst_ms / std::max(base_stats.worst_ms, 1e-9));
    std::printf("  slowdown while mirroring:  %.2fx rate, worst latency %.1fx\n",
                base_stats.rate() / std::max(wt_stats.rate(), 1e-9),
                wt_stats.worst_ms / std::max(base_stats.worst_ms, 1e-9));
    std::printf(
        "  bulk copy with the writer running: %.2f s (%.0f MiB/s; writer stopped at %.1f s)\n",
        copy_during, double(size_mib) / copy_during, writer_done);
  }
  {  // the baseline again: the machine's load drifts (shared CPUs)
    auto raw = Must(storage::OpenRawDisk(src, false), "open source");
    PrintWriter("no mirror again (raw disk)", RunWriter(*raw, seconds, 4, [] { return false; }));
  }

  // 3. Copy throughput, durable on both sides.
  std::printf("copy throughput (%lu MiB, durable):\n", static_cast<unsigned long>(size_mib));
  double best_mirror = 1e30, best_cp = 1e30;
  for (int round = 0; round < 2; ++round) {
    double c = CpSeconds(src, dst);
    double m = MirrorCopySeconds(src, dst, size);
    std::printf(
        "  round %d: cp --sparse=always + sync %.2f s (%.0f MiB/s), mirror job %.2f s "
        "(%.0f MiB/s)\n",
        round + 1, c, double(size_mib) / c, m, double(size_mib) / m);
    best_cp = std::min(best_cp, c);
    best_mirror = std::min(best_mirror, m);
  }
  std::printf("  best: mirror %.0f MiB/s, cp %.0f MiB/s, ratio mirror/cp %.2f\n",
              double(size_mib) / best_mirror, double(size_mib) / best_cp, best_cp / best_mirror);
  unlink(src.c_str());
  unlink(dst.c_str());
  return 0;
}
