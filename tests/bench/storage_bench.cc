// storage_bench: ferry's storage I/O beside the tools admins compare it with,
// measured in one run on the same images, printed side by side with ratios.
//
//   (a) Copy throughput of a partly sparse raw image (default 1 GiB: in every
//       8 MiB, 4 MiB of random data, 1 MiB of written zeros, 3 MiB of hole).
//       Every copy is durable when its clock stops:
//         ferry CopySparseFile   .part + fdatasync + rename + directory sync
//                                (io_uring engine, and the sync engine)
//         ferry MirrorJob        TrackingDisk -> FileSink, Complete() flushes
//         cp --sparse=always     then `sync FILE`
//         qemu-img convert -t none   O_DIRECT writes, flushed at close
//       The source is read once first, so every copy starts with it cached.
//   (b) 4 KiB write IOPS into a fresh qcow2 image (qemu-img create, 64 KiB
//       clusters) with qemu-img bench's access pattern: offset k is
//       k * step mod (size - 4 KiB), step an odd multiple of 4 KiB that is
//       coprime with the block count, so the writes scatter over the whole
//       image and hit each block once (qemu-img bench has no random mode;
//       this is its -S step). Two passes: allocating (fresh image) and
//       overwrite (the same offsets again).
//         ferry qcow2    Disk::Write, one at a time, as virtio-blk issues
//                        them (queue depth 1), then Flush (in the time)
//         qemu-img bench -w -t none -d 1 and -d D (its own "Run completed"
//                        time; O_DIRECT, no flush), and -t writeback -d 1
//                        with one flush at the end (caching like ferry)
//       Plus the engine alone on a preallocated raw file: ferry BlockFile
//       SubmitBatch at depth D with O_DIRECT, registered buffers on and off,
//       vs qemu-img bench -f raw -t none -d D.
//   Each measurement runs `--rounds` times, ferry and the reference
//   alternating; the best of each is compared (the machine is shared).
//
// Usage: storage_bench [--size-mib N] [--dir PATH] [--rounds R] [--count N]
//                      [--depth D] [--only copy|iops]
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <numeric>
#include <string>
#include <vector>

#include "base/clock.h"
#include "base/fd.h"
#include "bench_util.h"
#include "storage/block_file.h"
#include "storage/block_sink.h"
#include "storage/disk.h"
#include "storage/mirror_job.h"
#include "storage/qcow2.h"
#include "storage/sparse_copy.h"
#include "storage/tracking_disk.h"

namespace {

constexpr uint64_t kMiB = 1 << 20;
constexpr uint64_t kBlock = 4096;
constexpr uint8_t kPattern = 0xa5;  // qemu-img bench --pattern; never a zero cluster

using bench::Die;
using bench::Must;

double Since(uint64_t t0) { return double(base::MonotonicNanos() - t0) / 1e9; }

std::string Run(const std::string& cmd) {
  FILE* p = popen((cmd + " 2>&1").c_str(), "r");
  if (p == nullptr) Die("popen " + cmd);
  std::string out;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof(buf), p)) > 0) out.append(buf, n);
  if (pclose(p) != 0) Die("command failed: " + cmd + "\n" + out);
  return out;
}

double Timed(const std::string& cmd) {
  const uint64_t t0 = base::MonotonicNanos();
  Run(cmd);
  return Since(t0);
}

uint64_t AllocatedMiB(const std::string& path) {
  struct stat st {};
  if (stat(path.c_str(), &st) != 0) Die("stat " + path);
  return uint64_t(st.st_blocks) * 512 / kMiB;
}

// --- (a) copy -------------------------------------------------------------

void MakeSparseImage(const std::string& path, uint64_t size) {
  base::Fd fd = Must(base::Fd::Open(path, O_RDWR | O_CREAT | O_TRUNC), "create image");
  if (ftruncate(fd.get(), off_t(size)) != 0) Die("truncate image");
  std::vector<uint64_t> buf(4 * kMiB / 8);
  std::vector<uint8_t> zeros(kMiB, 0);
  uint64_t x = 0x9e3779b97f4a7c15ull;
  for (uint64_t off = 0; off < size; off += 8 * kMiB) {
    for (auto& w : buf) w = x = x * 6364136223846793005ull + 1442695040888963407ull;
    Must(base::PwriteAll(fd.get(), buf.data(), 4 * kMiB, off_t(off)), "fill image");
    Must(base::PwriteAll(fd.get(), zeros.data(), kMiB, off_t(off + 4 * kMiB)), "fill image");
  }
  if (fsync(fd.get()) != 0) Die("fsync image");
}

double FerrySparseCopy(const std::string& src, const std::string& dst, storage::IoEngine engine) {
  unlink(dst.c_str());
  const uint64_t t0 = base::MonotonicNanos();
  storage::SparseCopyOptions o;
  o.engine = engine;
  Must(storage::CopySparseFile(src, dst, o), "CopySparseFile");
  return Since(t0);
}

double FerryMirrorCopy(const std::string& src, const std::string& dst, uint64_t size) {
  unlink(dst.c_str());
  const uint64_t t0 = base::MonotonicNanos();
  auto raw = Must(storage::OpenRawDisk(src, false), "open source");
  auto disk = Must(storage::TrackingDisk::Create(std::move(raw)), "tracking disk");
  auto sink = Must(storage::OpenFileSink(dst, size), "open sink");
  storage::MirrorOptions o;
  o.open_source = [src] { return storage::OpenRawDisk(src, true); };
  auto job = Must(storage::MirrorJob::Start(*disk, *sink, std::move(o)), "start mirror");
  Must(job->WaitReady(-1, -1), "mirror bulk copy");
  disk->PauseIo();
  Must(job->Complete(), "complete mirror");  // flushes and finishes the sink
  disk->ResumeIo();
  return Since(t0);
}

double CpCopy(const std::string& src, const std::string& dst) {
  unlink(dst.c_str());
  return Timed("cp --sparse=always '" + src + "' '" + dst + "' && sync '" + dst + "'");
}

double QemuConvert(const std::string& src, const std::string& dst) {
  unlink(dst.c_str());
  return Timed("qemu-img convert -f raw -O raw -t none '" + src + "' '" + dst + "'");
}

void CopyBench(const std::string& dir, uint64_t size, int rounds) {
  const std::string src = dir + "/storage-bench-src.img";
  const std::string dst = dir + "/storage-bench-dst.img";
  const double mib = double(size) / kMiB;
  MakeSparseImage(src, size);
  Run("cat '" + src + "' > /dev/null");  // every copy starts from a cached source
  std::printf(
      "(a) copy of a %.0f MiB raw image, %lu MiB allocated (50%% data, 12.5%% written "
      "zeros, 37.5%% holes), durable\n",
      mib, static_cast<unsigned long>(AllocatedMiB(src)));
  struct Method {
    const char* name;
    double (*run)(const std::string&, const std::string&, uint64_t);
    double best = 1e30;
    uint64_t allocated = 0;
  };
  Method methods[] = {
      {"ferry CopySparseFile",
       [](auto& s, auto& d, uint64_t) {
         return FerrySparseCopy(s, d, storage::IoEngine::kIoUring);
       }},
      {"ferry CopySparseFile (sync eng.)",
       [](auto& s, auto& d, uint64_t) { return FerrySparseCopy(s, d, storage::IoEngine::kSync); }},
      {"ferry MirrorJob -> FileSink",
       [](auto& s, auto& d, uint64_t n) { return FerryMirrorCopy(s, d, n); }},
      {"cp --sparse=always + sync", [](auto& s, auto& d, uint64_t) { return CpCopy(s, d); }},
      {"qemu-img convert -t none", [](auto& s, auto& d, uint64_t) { return QemuConvert(s, d); }},
  };
  for (int round = 1; round <= rounds; ++round) {
    std::printf("  round %d:", round);
    for (Method& m : methods) {
      double secs = m.run(src, dst, size);
      m.best = std::min(m.best, secs);
      m.allocated = AllocatedMiB(dst);
      std::printf("  %s %.2f s", m.name, secs);
      std::fflush(stdout);
    }
    std::printf("\n");
  }
  std::printf("  %-30s %10s %12s %14s %14s\n", "best of rounds", "MiB/s", "dst alloc", "vs cp",
              "vs qemu-img");
  for (const Method& m : methods) {
    std::printf("  %-30s %10.0f %8lu MiB %13.2fx %13.2fx\n", m.name, mib / m.best,
                static_cast<unsigned long>(m.allocated), methods[3].best / m.best,
                methods[4].best / m.best);
  }
  std::printf("  (ratio = other's time / this one's: above 1 means faster than the other)\n");
  unlink(src.c_str());
  unlink(dst.c_str());
}

// --- (b) IOPS -------------------------------------------------------------

// qemu-img bench's offsets: k * step mod (size - buffer size).
std::vector<uint64_t> BenchOffsets(uint64_t size, uint64_t step, uint64_t count) {
  std::vector<uint64_t> out;
  out.reserve(count);
  uint64_t offset = 0;
  for (uint64_t k = 0; k < count; ++k) {
    out.push_back(offset);
    offset = (offset + step) % (size - kBlock);
  }
  return out;
}

// A block step coprime with the number of block positions, near size/phi.
uint64_t PickStep(uint64_t size) {
  const uint64_t blocks = (size - kBlock) / kBlock;
  uint64_t s = uint64_t(double(blocks) * 0.6180339887) | 1;
  while (std::gcd(s, blocks) != 1) s += 2;
  return s * kBlock;
}

double QemuBenchIops(const std::string& path, const char* fmt, uint64_t count, unsigned depth,
                     uint64_t step) {
  std::string out =
      Run("qemu-img bench -f " + std::string(fmt) + " -w -t none -c " + std::to_string(count) +
          " -d " + std::to_string(depth) + " -s 4k -S " + std::to_string(step) +
          " --pattern=" + std::to_string(kPattern) + " '" + path + "'");
  auto at = out.find("Run completed in ");
  if (at == std::string::npos) Die("unexpected qemu-img bench output:\n" + out);
  double secs = std::atof(out.c_str() + at + std::strlen("Run completed in "));
  return double(count) / std::max(secs, 1e-9);
}

// The same with qemu caching like ferry (page cache, one flush at the end).
double QemuBenchWritebackIops(const std::string& path, uint64_t count, uint64_t step) {
  std::string out =
      Run("qemu-img bench -f qcow2 -w -t writeback -d 1 --flush-interval=" + std::to_string(count) +
          " -c " + std::to_string(count) + " -s 4k -S " + std::to_string(step) +
          " --pattern=" + std::to_string(kPattern) + " '" + path + "'");
  auto at = out.find("Run completed in ");
  if (at == std::string::npos) Die("unexpected qemu-img bench output:\n" + out);
  double secs = std::atof(out.c_str() + at + std::strlen("Run completed in "));
  return double(count) / std::max(secs, 1e-9);
}

double FerryQcow2Iops(const std::string& path, const std::vector<uint64_t>& offsets) {
  auto disk = Must(storage::OpenQcow2Disk(path, false), "open qcow2");
  std::vector<uint8_t> buf(kBlock, kPattern);
  const uint64_t t0 = base::MonotonicNanos();
  for (uint64_t off : offsets) Must(disk->Write(buf.data(), kBlock, off), "qcow2 write");
  Must(disk->Flush(), "qcow2 flush");
  return double(offsets.size()) / Since(t0);
}

double FerryRawIops(const std::string& path, const std::vector<uint64_t>& offsets, unsigned depth,
                    unsigned fixed_buffers) {
  storage::OpenOptions o;
  o.direct = true;
  o.queue_depth = depth;
  o.fixed_buffers = fixed_buffers;
  auto file = Must(storage::OpenBlockFile(path, o), "open raw");
  // Separate aligned buffers, as a VM's requests would have.
  uint8_t* mem = static_cast<uint8_t*>(std::aligned_alloc(kBlock, kBlock * depth));
  std::memset(mem, kPattern, kBlock * depth);
  std::vector<storage::IoRequest> batch;
  const uint64_t t0 = base::MonotonicNanos();
  for (size_t i = 0; i < offsets.size(); i += depth) {
    batch.clear();
    for (size_t j = i; j < std::min(offsets.size(), i + depth); ++j)
      batch.push_back({storage::IoOp::kWrite, mem + (j - i) * kBlock, kBlock, offsets[j]});
    Must(file->SubmitBatch(batch), "raw batch");
  }
  double iops = double(offsets.size()) / Since(t0);
  std::free(mem);
  return iops;
}

void PrintRow(const char* name, double iops, double ref, const char* ref_name) {
  std::printf("  %-44s %9.0f IOPS   %6.2fx %s\n", name, iops, iops / ref, ref_name);
}

void IopsBench(const std::string& dir, uint64_t size, uint64_t count, unsigned depth, int rounds) {
  const std::string fq = dir + "/storage-bench-ferry.qcow2";
  const std::string qq = dir + "/storage-bench-qemu.qcow2";
  const std::string raw = dir + "/storage-bench-raw.img";
  const uint64_t step = PickStep(size);
  const auto offsets = BenchOffsets(size, step, count);
  std::printf("(b) 4 KiB writes, %lu per run, qemu-img bench pattern (-S %lu) over %lu MiB\n",
              static_cast<unsigned long>(count), static_cast<unsigned long>(step),
              static_cast<unsigned long>(size / kMiB));
  double f_alloc = 0, f_over = 0, q1_alloc = 0, q1_over = 0, qd_alloc = 0, qd_over = 0;
  double wb_alloc = 0, wb_over = 0;  // qemu-img bench -t writeback + one flush
  for (int round = 1; round <= rounds; ++round) {
    // Fresh images each round, made the same way for both.
    for (const std::string& p : {fq, qq}) {
      unlink(p.c_str());
      Run("qemu-img create -q -f qcow2 -o cluster_size=65536 '" + p + "' " + std::to_string(size));
    }
    f_alloc = std::max(f_alloc, FerryQcow2Iops(fq, offsets));
    q1_alloc = std::max(q1_alloc, QemuBenchIops(qq, "qcow2", count, 1, step));
    f_over = std::max(f_over, FerryQcow2Iops(fq, offsets));
    q1_over = std::max(q1_over, QemuBenchIops(qq, "qcow2", count, 1, step));
    unlink(qq.c_str());
    Run("qemu-img create -q -f qcow2 -o cluster_size=65536 '" + qq + "' " + std::to_string(size));
    qd_alloc = std::max(qd_alloc, QemuBenchIops(qq, "qcow2", count, depth, step));
    qd_over = std::max(qd_over, QemuBenchIops(qq, "qcow2", count, depth, step));
    unlink(qq.c_str());
    Run("qemu-img create -q -f qcow2 -o cluster_size=65536 '" + qq + "' " + std::to_string(size));
    wb_alloc = std::max(wb_alloc, QemuBenchWritebackIops(qq, count, step));
    wb_over = std::max(wb_over, QemuBenchWritebackIops(qq, count, step));
    std::printf("  round %d done\n", round);
    std::fflush(stdout);
  }
  const std::string qd_name = "qemu-img bench -d " + std::to_string(depth);
  std::printf("  qcow2, allocating (fresh image):\n");
  PrintRow("ferry qcow2 Disk::Write (QD1, + Flush)", f_alloc, q1_alloc, "of qemu-img bench -d 1");
  PrintRow("qemu-img bench -w -t none -d 1", q1_alloc, q1_alloc, "");
  PrintRow(qd_name.c_str(), qd_alloc, q1_alloc, "of qemu-img bench -d 1");
  PrintRow("qemu-img bench -t writeback -d 1 + 1 flush", wb_alloc, q1_alloc,
           "of qemu-img bench -d 1");
  std::printf("  ferry / %s: %.2fx;  ferry / qemu-img writeback+flush: %.2fx\n", qd_name.c_str(),
              f_alloc / qd_alloc, f_alloc / wb_alloc);
  std::printf("  qcow2, overwrite (same offsets again):\n");
  PrintRow("ferry qcow2 Disk::Write (QD1, + Flush)", f_over, q1_over, "of qemu-img bench -d 1");
  PrintRow("qemu-img bench -w -t none -d 1", q1_over, q1_over, "");
  PrintRow(qd_name.c_str(), qd_over, q1_over, "of qemu-img bench -d 1");
  PrintRow("qemu-img bench -t writeback -d 1 + 1 flush", wb_over, q1_over,
           "of qemu-img bench -d 1");
  std::printf("  ferry / %s: %.2fx;  ferry / qemu-img writeback+flush: %.2fx\n", qd_name.c_str(),
              f_over / qd_over, f_over / wb_over);

  // The engine alone: raw file, O_DIRECT, depth D.
  {
    base::Fd fd = Must(base::Fd::Open(raw, O_RDWR | O_CREAT | O_TRUNC), "create raw");
    if (posix_fallocate(fd.get(), 0, off_t(size)) != 0) Die("fallocate raw");
  }
  // Untimed first pass: converts the preallocated (unwritten) extents, which
  // would otherwise make whichever side runs first pay for it.
  (void)FerryRawIops(raw, offsets, depth, 0);
  double r_fixed = 0, r_plain = 0, r_qemu = 0;
  for (int round = 1; round <= rounds; ++round) {
    r_fixed = std::max(r_fixed, FerryRawIops(raw, offsets, depth, 32));
    r_plain = std::max(r_plain, FerryRawIops(raw, offsets, depth, 0));
    r_qemu = std::max(r_qemu, QemuBenchIops(raw, "raw", count, depth, step));
  }
  std::printf("  raw file, O_DIRECT, depth %u (preallocated):\n", depth);
  PrintRow("ferry BlockFile SubmitBatch, registered bufs", r_fixed, r_qemu, "of qemu-img bench");
  PrintRow("ferry BlockFile SubmitBatch, plain bufs", r_plain, r_qemu, "of qemu-img bench");
  PrintRow(qd_name.c_str(), r_qemu, r_qemu, "");
  std::printf("  registered / plain buffers: %.2fx\n", r_fixed / r_plain);
  for (const std::string& p : {fq, qq, raw}) unlink(p.c_str());
}

}  // namespace

int main(int argc, char** argv) {
  uint64_t size_mib = 1024;
  uint64_t count = 20000;
  unsigned depth = 16;
  int rounds = 2;
  std::string only;
  std::string dir = std::getenv("TMPDIR") != nullptr ? std::getenv("TMPDIR") : "/var/tmp";
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string a = argv[i];
    if (a == "--size-mib")
      size_mib = std::strtoull(argv[i + 1], nullptr, 10);
    else if (a == "--count")
      count = std::strtoull(argv[i + 1], nullptr, 10);
    else if (a == "--depth")
      depth = unsigned(std::strtoul(argv[i + 1], nullptr, 10));
    else if (a == "--rounds")
      rounds = std::atoi(argv[i + 1]);
    else if (a == "--dir")
      dir = argv[i + 1];
    else if (a == "--only")
      only = argv[i + 1];
    else
      Die("unknown argument " + a +
          " (--size-mib N --count N --depth D --rounds R --dir PATH --only copy|iops)");
  }
  if (size_mib < 16 || depth < 1 || depth > 256 || rounds < 1 || count < 1)
    Die("bad arguments: need --size-mib >= 16, --depth 1..256, --rounds >= 1, --count >= 1");
  Run("qemu-img --version");  // fail early with a clear message without qemu-utils
  std::printf("storage_bench: %lu MiB images in %s, %d rounds, %ld CPUs online\n",
              static_cast<unsigned long>(size_mib), dir.c_str(), rounds,
              sysconf(_SC_NPROCESSORS_ONLN));
  const uint64_t size = size_mib * kMiB;
  if (only.empty() || only == "copy") CopyBench(dir, size, rounds);
  if (only.empty() || only == "iops") IopsBench(dir, size, count, depth, rounds);
  return 0;
}
