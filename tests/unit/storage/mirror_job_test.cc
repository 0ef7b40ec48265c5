// MirrorJob + TrackingDisk: the destination equals the source after
// Complete(), whatever the guest wrote meanwhile; guest writes never wait for
// the copier; a full destination fails the job and a new job resumes.
#include "storage/mirror_job.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include "base/clock.h"

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <thread>

#include "fakes/faulty_sink.h"
#include "mirror_test_util.h"
#include "storage/disk.h"
#include "support/wait_for.h"

namespace storage {
namespace {

using base::Code;
using fakes::FaultySink;
using testing::AllocatedBytes;
using testing::FilesEqual;
using testing::GateSink;
using testing::MakeSparseImage;
using testing::Pattern;
using testing::TempDir;
using testing::Writers;

constexpr uint64_t kMiB = 1 << 20;

// How the copier reads the source.
enum class Reader { kOwnUring = 1, kOwnSync = 2, kShared = 3 };

std::string ReaderName(const ::testing::TestParamInfo<Reader>& info) {
  switch (info.param) {
    case Reader::kOwnUring: return "OwnUringReader";
    case Reader::kOwnSync: return "OwnSyncReader";
    case Reader::kShared: return "SharedReader";
  }
  return "?";
}

std::unique_ptr<TrackingDisk> OpenTracked(const std::string& path, uint64_t granularity) {
  auto raw = OpenRawDisk(path, false, IoEngine::kSync);
  EXPECT_TRUE(raw.has_value()) << raw.error().ToString();
  auto tracked = TrackingDisk::Create(std::move(raw).value(), granularity);
  EXPECT_TRUE(tracked.has_value()) << tracked.error().ToString();
  return std::move(tracked).value();
}

SourceOpener RawReader(const std::string& path, IoEngine engine) {
  return [path, engine] { return OpenRawDisk(path, true, engine); };
}

MirrorOptions Options(Reader reader, const std::string& source) {
  MirrorOptions o;
  o.chunk_size = 256 << 10;
  o.flush_interval = 4 * kMiB;
  // These writers dirty the disk far faster than any floor rate: pacing
  // would only make the copy chase them (GuestFirstPacerTest covers it).
  o.guest_first = false;
  if (reader == Reader::kOwnUring) o.open_source = RawReader(source, IoEngine::kIoUring);
  if (reader == Reader::kOwnSync) o.open_source = RawReader(source, IoEngine::kSync);
  return o;
}

std::unique_ptr<BlockSink> FreshFileSink(const std::string& path, uint64_t size) {
  auto sink = OpenFileSink(path, size);
  EXPECT_TRUE(sink.has_value()) << sink.error().ToString();
  return std::move(sink).value();
}

base::Status PauseAndComplete(TrackingDisk& disk, MirrorJob& job) {
  disk.PauseIo();
  base::Status st = job.Complete();
  disk.ResumeIo();
  return st;
}

// What most tests mirror: a sparse source image of `size` bytes in a temp
// directory (seeded data in data_runs), the TrackingDisk over it, and a fresh
// file sink of the same size as the destination.
struct MirrorSetup {
  MirrorSetup(uint64_t size, const std::vector<std::pair<uint64_t, uint64_t>>& data_runs,
              uint64_t seed, uint64_t granularity = 64 << 10) {
    MakeSparseImage(src(), size, data_runs, seed);
    disk = OpenTracked(src(), granularity);
    file = FreshFileSink(dst(), size);
  }
  std::string src() const { return dir.File("src"); }
  std::string dst() const { return dir.File("dst"); }

  TempDir dir;
  std::unique_ptr<TrackingDisk> disk;
  std::unique_ptr<BlockSink> file;
};

// Starts a job over m (1 MiB chunks) and waits until its copier is held at
// `gate`, inside its first sink write; null after a failure.
std::unique_ptr<MirrorJob> StartHeldAtGate(const MirrorSetup& m, GateSink& gate) {
  MirrorOptions o;
  o.chunk_size = kMiB;
  auto job = MirrorJob::Start(*m.disk, gate, o);
  if (!job.has_value()) {
    ADD_FAILURE() << job.error().ToString();
    return nullptr;
  }
  if (!gate.WaitCopierAtGate()) {
    ADD_FAILURE() << "the copier never reached its first sink write";
    gate.Open();  // let the job end
    return nullptr;
  }
  return std::move(job).value();
}

// The end of a copy: converged with guest I/O paused, and the destination
// equal to the source.
void CompleteAndCompare(const MirrorSetup& m, MirrorJob& job) {
  ASSERT_TRUE(PauseAndComplete(*m.disk, job).has_value());
  EXPECT_TRUE(FilesEqual(m.src(), m.dst()));
}

class MirrorConcurrentTest : public ::testing::TestWithParam<Reader> {};

INSTANTIATE_TEST_SUITE_P(Readers, MirrorConcurrentTest,
                         ::testing::Values(Reader::kOwnUring, Reader::kOwnSync, Reader::kShared),
                         ReaderName);

// Seeded writer threads hit the disk through the whole copy and the mirroring
// phase after it; with them stopped and guest I/O paused, Complete() leaves a
// destination equal to the source byte for byte.
TEST_P(MirrorConcurrentTest, WritersDuringCopyConverge) {
  for (uint64_t seed : {1, 2, 3}) {
    SCOPED_TRACE("seed " + std::to_string(seed));
    MirrorSetup m(32 * kMiB, {{0, 12 * kMiB}, {20 * kMiB, 3 * kMiB}}, seed, 4096);
    auto job = MirrorJob::Start(*m.disk, *m.file, Options(GetParam(), m.src()));
    ASSERT_TRUE(job.has_value()) << job.error().ToString();
    {
      Writers writers(*m.disk, 3, seed, 300);
      ASSERT_TRUE((*job)->WaitReady(-1, 60'000).has_value());
      // Some writes land after the bulk copy, in write-through mode.
      uint64_t at_ready = writers.writes();
      while (writers.writes() < at_ready + 200) std::this_thread::yield();
      writers.StopAndJoin();
      EXPECT_EQ(writers.failures(), 0u);
    }
    ASSERT_TRUE(PauseAndComplete(*m.disk, **job).has_value());
    ASSERT_TRUE((*job)->Wait().has_value());
    EXPECT_EQ((*job)->Progress().state, MirrorState::kConverged);
    EXPECT_EQ((*job)->Progress().bytes_remaining, 0u);
    EXPECT_TRUE(FilesEqual(m.src(), m.dst()));
  }
}

// The copier is held inside its sink write of the first chunk. Guest writes
// to that chunk, to a chunk not yet copied and to the end of the disk all
// complete meanwhile: none waits for the copier.
TEST(MirrorJobTest, GuestWritesNeverWaitForTheCopier) {
  const uint64_t size = 8 * kMiB;
  MirrorSetup m(size, {{0, size}}, 7);
  auto& disk = m.disk;
  GateSink gate(*m.file);
  std::unique_ptr<MirrorJob> job = StartHeldAtGate(m, gate);
  ASSERT_TRUE(job);

  auto data = Pattern(8192, 99);
  for (uint64_t off : {uint64_t(4096), 5 * kMiB, size - 8192}) {
    ASSERT_TRUE(disk->Write(data.data(), data.size(), off).has_value());
  }
  // All three were source-only: the chunk being copied and dirty blocks.
  EXPECT_EQ(gate.guest_writes(), 0u);
  EXPECT_TRUE(disk->dirty().TestAll(4096, 8192));

  gate.Open();
  ASSERT_TRUE(job->WaitReady(-1, 60'000).has_value());
  // Copied and clean now: the next write goes through to the sink.
  ASSERT_TRUE(disk->Write(data.data(), 4096, 0).has_value());
  EXPECT_EQ(gate.guest_writes(), 1u);
  EXPECT_FALSE(disk->dirty().TestAny(0, 4096));
  CompleteAndCompare(m, *job);
}

// Guest-first pacing: the floor while the guest did I/O in the last window
// (completed or in flight), the cap (or no limit) once a window was idle.
TEST(GuestFirstPacerTest, FloorWhileBusyCapWhileIdle) {
  GuestFirstPacer p(16 * kMiB, 0);
  EXPECT_EQ(p.rate(), 16 * kMiB);  // guest-first until a window shows it idle
  EXPECT_EQ(p.Update(0, 0), GuestFirstPacer::kUnlimited);
  EXPECT_EQ(p.Update(12, 0), 16 * kMiB);
  EXPECT_EQ(p.Update(0, 1), 16 * kMiB);  // a long flush still running
  EXPECT_EQ(p.Update(0, 0), GuestFirstPacer::kUnlimited);

  GuestFirstPacer capped(16 * kMiB, 100 * kMiB);
  EXPECT_EQ(capped.Update(0, 0), 100 * kMiB);
  EXPECT_EQ(capped.Update(3, 0), 16 * kMiB);

  // A cap below the floor is the rate, busy or idle.
  GuestFirstPacer low(16 * kMiB, 4 * kMiB);
  EXPECT_EQ(low.rate(), 4 * kMiB);
  EXPECT_EQ(low.Update(5, 0), 4 * kMiB);
  EXPECT_EQ(low.Update(0, 0), 4 * kMiB);
}

// A busy guest (a writer doing small writes with flushes, far slower than
// the floor) still sees the copy converge, and the guest's I/O is counted.
TEST(MirrorJobTest, GuestFirstCopyConvergesUnderABusyGuest) {
  const uint64_t size = 8 * kMiB;
  MirrorSetup m(size, {{0, size}}, 5);
  auto& disk = m.disk;
  MirrorOptions o;
  o.chunk_size = kMiB;
  o.min_bytes_per_second = 16 * kMiB;
  auto job = MirrorJob::Start(*disk, *m.file, o);
  ASSERT_TRUE(job.has_value());
  std::atomic<bool> stop{false};
  std::thread guest([&] {
    auto data = Pattern(4096, 3);
    for (uint64_t i = 0; !stop; ++i) {
      EXPECT_TRUE(disk->Write(data.data(), data.size(), (i * 37 % 2048) * 4096).has_value());
      if (i % 16 == 15) {
        EXPECT_TRUE(disk->Flush().has_value());
      }
      // A sleep on purpose: it paces the guest's writes beside the copy.
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
  });
  ASSERT_TRUE((*job)->WaitReady(-1, 60'000).has_value());
  stop = true;
  guest.join();
  EXPECT_GT(disk->guest_io_stats().ops, 0u);
  EXPECT_EQ(disk->guest_io_stats().in_flight, 0u);
  CompleteAndCompare(m, **job);
}

TEST(MirrorJobTest, CompleteNeedsGuestIoPaused) {
  MirrorSetup m(kMiB, {{0, kMiB}}, 1, 4096);
  auto job = MirrorJob::Start(*m.disk, *m.file, {});
  ASSERT_TRUE(job.has_value());
  auto st = (*job)->Complete();
  ASSERT_FALSE(st.has_value());
  EXPECT_EQ(st.error().code(), Code::kFailedPrecondition);
  ASSERT_TRUE(PauseAndComplete(*m.disk, **job).has_value());
}

TEST(MirrorJobTest, BadOptionsAreRefused) {
  MirrorSetup m(kMiB, {{0, kMiB}}, 1);
  MirrorOptions o;
  o.chunk_size = 100 << 10;  // not a multiple of 64 KiB
  EXPECT_EQ(MirrorJob::Start(*m.disk, *m.file, o).error().code(), Code::kInvalidArgument);
  auto small = FreshFileSink(m.dir.File("small"), kMiB / 2);
  EXPECT_EQ(MirrorJob::Start(*m.disk, *small, {}).error().code(), Code::kInvalidArgument);
}

TEST(MirrorJobTest, CancelStopsTheJobAndKeepsTheBitmap) {
  const uint64_t size = 8 * kMiB;
  MirrorSetup m(size, {{0, size}}, 3);
  auto& disk = m.disk;
  GateSink gate(*m.file);
  std::unique_ptr<MirrorJob> job = StartHeldAtGate(m, gate);
  ASSERT_TRUE(job);
  job->Cancel();
  gate.Open();
  auto st = job->Wait();
  ASSERT_FALSE(st.has_value());
  EXPECT_EQ(st.error().code(), Code::kCancelled);
  EXPECT_EQ(job->Progress().state, MirrorState::kCancelled);
  // Nothing was confirmed durable at the destination: all of it is left.
  EXPECT_EQ(disk->dirty().dirty_bytes(), size);
  // The guest is unaffected and still tracked.
  auto data = Pattern(4096, 5);
  ASSERT_TRUE(disk->Write(data.data(), data.size(), 0).has_value());
}

TEST(MirrorJobTest, CancelFdInterruptsWaitReady) {
  MirrorSetup m(4 * kMiB, {{0, 4 * kMiB}}, 3);
  GateSink gate(*m.file);
  auto job = MirrorJob::Start(*m.disk, gate, {});
  ASSERT_TRUE(job.has_value());
  ASSERT_TRUE(gate.WaitCopierAtGate());
  auto cancel = base::EventFd::Create();
  ASSERT_TRUE(cancel.has_value());
  ASSERT_TRUE(cancel->Signal().has_value());
  auto st = (*job)->WaitReady(cancel->fd(), -1);
  ASSERT_FALSE(st.has_value());
  EXPECT_EQ(st.error().code(), Code::kCancelled);
  auto timed = (*job)->WaitReady(-1, 10);
  ASSERT_FALSE(timed.has_value());
  EXPECT_EQ(timed.error().code(), Code::kDeadlineExceeded);
  gate.Open();
}

// A destination that fills up fails the job with a clear error, the guest's
// writes keep succeeding, and once there is space a new job copies only what
// is left.
TEST(MirrorJobTest, FullDestinationFailsCleanlyAndRetryResumes) {
  const uint64_t size = 16 * kMiB;
  MirrorSetup m(size, {{0, size}}, 11);
  auto& disk = m.disk;
  FaultySink full(*m.file, 6 * kMiB);
  MirrorOptions o = Options(Reader::kOwnUring, m.src());
  auto job = MirrorJob::Start(*disk, full, o);
  ASSERT_TRUE(job.has_value());
  // The guest starts writing once the first 4 MiB are flushed (confirmed), so
  // the failure always leaves a confirmed part behind: without the wait, the
  // writers' write-through could use up the sink's budget before the first
  // flush and nothing would be confirmed, which is correct but tests less.
  ASSERT_TRUE(ferry_test::WaitFor(
      "the copy to pass 5 MiB (or fail)", std::chrono::seconds(60),
      [&] {
        return (*job)->Progress().bytes_copied >= 5 * kMiB ||
               (*job)->Progress().state == MirrorState::kFailed;
      },
      std::chrono::milliseconds(1)));
  Writers writers(*disk, 2, 42, 200);
  auto st = (*job)->Wait();
  ASSERT_FALSE(st.has_value());
  EXPECT_EQ(st.error().code(), Code::kResourceExhausted);
  EXPECT_EQ(st.error().sys_errno(), ENOSPC);
  EXPECT_NE(st.error().message().find(m.dst()), std::string::npos) << st.error().message();
  EXPECT_EQ((*job)->Progress().state, MirrorState::kFailed);
  writers.StopAndJoin();
  EXPECT_EQ(writers.failures(), 0u) << "a destination failure must not fail guest writes";
  const uint64_t left = disk->dirty().dirty_bytes();
  EXPECT_GT(left, 0u);
  EXPECT_LT(left, size);

  full.SetBudget(FaultySink::kUnlimited);
  o.start = MirrorStart::kFromBitmap;
  auto retry = MirrorJob::Start(*disk, full, o);
  ASSERT_TRUE(retry.has_value()) << retry.error().ToString();
  ASSERT_TRUE((*retry)->WaitReady(-1, 60'000).has_value());
  EXPECT_LE((*retry)->Progress().bytes_copied, left) << "the retry started over";
  CompleteAndCompare(m, **retry);
}

// A failed flush confirms nothing: everything since the last good flush is
// dirty again.
TEST(MirrorJobTest, FailedFlushMergesUnconfirmedRangesBack) {
  const uint64_t size = 4 * kMiB;
  MirrorSetup m(size, {{0, size}}, 12);
  FaultySink sink(*m.file);
  sink.SetFailFlush(true);
  auto job = MirrorJob::Start(*m.disk, sink, {});
  ASSERT_TRUE(job.has_value());
  auto st = (*job)->Wait();
  ASSERT_FALSE(st.has_value());
  EXPECT_EQ(st.error().code(), Code::kResourceExhausted);
  EXPECT_EQ(m.disk->dirty().dirty_bytes(), size);
}

// An interrupted move saved its bitmap; after a "restart" (new tracking disk
// over the same files) a job from that bitmap finishes the copy.
TEST(MirrorJobTest, ResumesFromSavedBitmapAfterRestart) {
  TempDir dir;
  const uint64_t size = 16 * kMiB;
  MakeSparseImage(dir.File("src"), size, {{0, 12 * kMiB}}, 21);
  {
    auto disk = OpenTracked(dir.File("src"), 64 << 10);
    auto file = FreshFileSink(dir.File("dst"), size);
    FaultySink full(*file, 5 * kMiB);
    MirrorOptions first;
    first.flush_interval = kMiB;  // some copies are confirmed before it fails
    auto job = MirrorJob::Start(*disk, full, first);
    ASSERT_TRUE(job.has_value());
    ASSERT_FALSE((*job)->Wait().has_value());
    ASSERT_TRUE(disk->ResumeBitmap().Save(dir.File("bitmap")).has_value());
  }
  auto saved = DirtyBitmap::Load(dir.File("bitmap"));
  ASSERT_TRUE(saved.has_value()) << saved.error().ToString();
  EXPECT_GT(saved->dirty_bytes(), 0u);
  EXPECT_LT(saved->dirty_bytes(), 12 * kMiB);

  auto disk = OpenTracked(dir.File("src"), 64 << 10);
  auto data = Pattern(64 << 10, 77);  // the guest writes again after restart
  ASSERT_TRUE(disk->Write(data.data(), data.size(), 14 * kMiB).has_value());
  FileSinkOptions keep;
  keep.fresh = false;
  auto file = OpenFileSink(dir.File("dst"), size, keep);
  ASSERT_TRUE(file.has_value());
  MirrorOptions o;
  o.start = MirrorStart::kFromBitmap;
  o.resume = &*saved;
  auto job = MirrorJob::Start(*disk, **file, o);
  ASSERT_TRUE(job.has_value()) << job.error().ToString();
  ASSERT_TRUE((*job)->WaitReady(-1, 60'000).has_value());
  ASSERT_TRUE(PauseAndComplete(*disk, **job).has_value());
  EXPECT_TRUE(FilesEqual(dir.File("src"), dir.File("dst")));
}

// Holes stay holes: zero runs of a fresh destination are not written, and
// data blocks full of zeros become holes too.
TEST(MirrorJobTest, SparseSourceStaysSparse) {
  MirrorSetup m(64 * kMiB, {{kMiB, 2 * kMiB}, {40 * kMiB, kMiB}}, 5);
  {  // a data region full of zeros
    auto fd = base::Fd::Open(m.src(), O_RDWR);
    ASSERT_TRUE(fd.has_value());
    std::vector<uint8_t> zeros(kMiB, 0);
    ASSERT_TRUE(base::PwriteAll(fd->get(), zeros.data(), zeros.size(), 50 * kMiB).has_value());
  }
  auto job = MirrorJob::Start(*m.disk, *m.file, Options(Reader::kOwnUring, m.src()));
  ASSERT_TRUE(job.has_value());
  ASSERT_TRUE((*job)->WaitReady(-1, 60'000).has_value());
  CompleteAndCompare(m, **job);
  EXPECT_LE(AllocatedBytes(m.dst()), 3 * kMiB + 64 * 1024);
  EXPECT_LE((*job)->Progress().bytes_copied, 4 * kMiB);  // the 61 MiB of holes were skipped
}

// The end of a storage move: converge, switch the running disk to the copy,
// resume; the guest's next writes go to the copy only.
TEST(MirrorJobTest, SwitchToTheCopy) {
  MirrorSetup m(4 * kMiB, {{0, 4 * kMiB}}, 8);
  auto& disk = m.disk;
  auto job = MirrorJob::Start(*disk, *m.file, {});
  ASSERT_TRUE(job.has_value());
  ASSERT_TRUE((*job)->WaitReady(-1, 60'000).has_value());
  disk->PauseIo();
  ASSERT_TRUE((*job)->Complete().has_value());
  auto dst = OpenRawDisk(m.dst(), false, IoEngine::kSync);
  ASSERT_TRUE(dst.has_value());
  auto old = disk->SwitchTo(std::move(dst).value());
  ASSERT_TRUE(old.has_value()) << old.error().ToString();
  disk->ResumeIo();
  EXPECT_TRUE(FilesEqual(m.src(), m.dst()));
  auto data = Pattern(4096, 1234);
  ASSERT_TRUE(disk->Write(data.data(), data.size(), 0).has_value());
  ASSERT_TRUE(disk->Flush().has_value());
  auto dst_bytes = testing::ReadWhole(m.dst());
  auto src_bytes = testing::ReadWhole(m.src());
  EXPECT_TRUE(std::equal(data.begin(), data.end(), dst_bytes.begin()));
  EXPECT_FALSE(std::equal(data.begin(), data.end(), src_bytes.begin()));
}

// Guest discards and write-zeroes are guest writes: without a mirror they
// mark the bitmap; while mirroring they reach the sink as zeros
// (write-through), and the copy still equals the source.
TEST(MirrorJobTest, DiscardAndWriteZeroesAreTrackedAndMirrored) {
  MirrorSetup m(4 * kMiB, {{0, 4 * kMiB}}, 9);
  auto& disk = m.disk;
  ASSERT_TRUE(disk->Discard(128 << 10, 64 << 10).has_value());
  ASSERT_TRUE(disk->WriteZeroes(1 << 20, 100).has_value());
  EXPECT_TRUE(disk->dirty().TestAll(128 << 10, 64 << 10));
  EXPECT_TRUE(disk->dirty().TestAll(1 << 20, 100));
  EXPECT_FALSE(disk->dirty().TestAny(0, 128 << 10));
  std::vector<uint8_t> back(64 << 10, 0xee);
  ASSERT_TRUE(disk->Read(back.data(), back.size(), 128 << 10).has_value());
  EXPECT_EQ(back, std::vector<uint8_t>(64 << 10, 0));

  auto job = MirrorJob::Start(*disk, *m.file, {});
  ASSERT_TRUE(job.has_value());
  ASSERT_TRUE((*job)->WaitReady(-1, 60'000).has_value());
  // Mirroring now: these are written through.
  ASSERT_TRUE(disk->Discard(2 << 20, 256 << 10).has_value());
  ASSERT_TRUE(disk->WriteZeroes(3 << 20, 4096).has_value());
  CompleteAndCompare(m, **job);
  auto dst = testing::ReadWhole(m.dst());
  EXPECT_TRUE(std::all_of(dst.begin() + (2 << 20), dst.begin() + (2 << 20) + (256 << 10),
                          [](uint8_t b) { return b == 0; }));
}

TEST(MirrorJobTest, SwitchNeedsPauseAndSameSize) {
  TempDir dir;
  MakeSparseImage(dir.File("src"), kMiB, {{0, kMiB}}, 1);
  MakeSparseImage(dir.File("other"), 2 * kMiB, {}, 1);
  auto disk = OpenTracked(dir.File("src"), 4096);
  auto other = OpenRawDisk(dir.File("other"), false, IoEngine::kSync);
  ASSERT_TRUE(other.has_value());
  EXPECT_EQ(disk->SwitchTo(std::move(other).value()).error().code(), Code::kFailedPrecondition);
  other = OpenRawDisk(dir.File("other"), false, IoEngine::kSync);
  disk->PauseIo();
  EXPECT_EQ(disk->SwitchTo(std::move(other).value()).error().code(), Code::kInvalidArgument);
  disk->ResumeIo();
}

}  // namespace
}  // namespace storage
