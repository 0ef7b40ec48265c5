// Helpers for the mirror tests: sparse source images, a sink gate that holds
// the copier mid-chunk, seeded guest-like writer threads, file comparison.
#pragma once

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <random>
#include <span>
#include <thread>
#include <vector>

#include "base/fd.h"
#include "storage/block_sink.h"
#include "storage/mirror_job.h"
#include "storage/tracking_disk.h"
#include "test_util.h"

namespace storage::testing {

// A sparse image of `size` bytes with seeded data in `data_runs` (offset,
// length pairs) and holes elsewhere.
inline void MakeSparseImage(const std::string& path, uint64_t size,
                            const std::vector<std::pair<uint64_t, uint64_t>>& data_runs,
                            uint64_t seed) {
  auto fd = base::Fd::Open(path, O_RDWR | O_CREAT | O_TRUNC);
  ASSERT_TRUE(fd.has_value()) << fd.error().ToString();
  ASSERT_EQ(ftruncate(fd->get(), off_t(size)), 0);
  for (auto [off, len] : data_runs) {
    std::vector<uint64_t> words((len + 7) / 8);
    uint64_t x = (seed + off) | 1;
    for (auto& w : words) w = x = x * 6364136223846793005ull + 1442695040888963407ull;
    auto data = std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(words.data()), len);
    ASSERT_TRUE(base::PwriteAll(fd->get(), data.data(), data.size(), off_t(off)).has_value());
  }
}

inline uint64_t AllocatedBytes(const std::string& path) {
  struct stat st {};
  EXPECT_EQ(stat(path.c_str(), &st), 0) << path;
  return uint64_t(st.st_blocks) * 512;
}

inline std::vector<uint8_t> ReadWhole(const std::string& path) {
  std::vector<uint8_t> out;
  auto fd = base::Fd::Open(path, O_RDONLY);
  if (!fd) {
    ADD_FAILURE() << fd.error().ToString();
    return out;
  }
  struct stat st {};
  fstat(fd->get(), &st);
  out.resize(size_t(st.st_size));
  auto n = base::PreadFull(fd->get(), out.data(), out.size(), 0);
  EXPECT_TRUE(n.has_value() && *n == out.size()) << "read " << path;
  return out;
}

// Byte-for-byte comparison naming the first difference.
inline ::testing::AssertionResult FilesEqual(const std::string& a, const std::string& b) {
  auto x = ReadWhole(a);
  auto y = ReadWhole(b);
  if (x.size() != y.size()) {
    return ::testing::AssertionFailure()
           << a << " has " << x.size() << " bytes, " << b << " has " << y.size();
  }
  if (x == y) return ::testing::AssertionSuccess();
  for (size_t i = 0; i < x.size(); ++i) {
    if (x[i] != y[i]) {
      return ::testing::AssertionFailure()
             << a << " and " << b << " differ first at byte " << i << " (block " << i / 4096 << ")";
    }
  }
  return ::testing::AssertionSuccess();
}

// Guest-like writers: each thread writes seeded random data at random
// sector-aligned offsets (512 B .. 128 KiB) until told to stop and at least
// min_writes are done.
class Writers {
 public:
  Writers(Disk& disk, int threads, uint64_t seed, uint64_t min_writes) : min_writes_(min_writes) {
    for (int t = 0; t < threads; ++t) {
      threads_.emplace_back([this, &disk, t, seed] { Loop(disk, seed * 1000 + t); });
    }
  }
  ~Writers() { StopAndJoin(); }
  void StopAndJoin() {
    stop_ = true;
    for (auto& th : threads_) {
      if (th.joinable()) th.join();
    }
  }
  uint64_t writes() const { return writes_; }
  uint64_t failures() const { return failures_; }

 private:
  void Loop(Disk& disk, uint64_t seed) {
    std::mt19937_64 rng(seed);
    const uint64_t sectors = disk.size() / 512;
    uint64_t done = 0;
    while (!stop_ || done < min_writes_) {
      uint64_t len_sectors = 1 + rng() % 256;
      uint64_t start = rng() % (sectors - len_sectors + 1);
      std::vector<uint64_t> data(len_sectors * 512 / 8);
      uint64_t x = rng() | 1;
      for (auto& w : data) w = x = x * 6364136223846793005ull + 1442695040888963407ull;
      if (!disk.Write(data.data(), data.size() * 8, start * 512).has_value()) ++failures_;
      ++done;
      ++writes_;
    }
  }

  const uint64_t min_writes_;
  std::atomic<bool> stop_{false};
  std::atomic<uint64_t> writes_{0};
  std::atomic<uint64_t> failures_{0};
  std::vector<std::thread> threads_;
};

// Holds every write from threads other than the constructing one (the
// copier) at a gate until Open(); counts writes from the constructing thread
// (guest write-through). The test waits for "copier is at the gate" with a
// bounded wait that fails with a message instead of hanging.
class GateSink final : public BlockSink {
 public:
  explicit GateSink(BlockSink& inner) : inner_(inner), guest_(std::this_thread::get_id()) {}

  void Open() {
    std::lock_guard lock(mu_);
    open_ = true;
    cv_.notify_all();
  }
  bool WaitCopierAtGate() {
    std::unique_lock lock(mu_);
    return cv_.wait_for(lock, std::chrono::seconds(30), [&] { return waiting_ > 0; });
  }
  uint64_t guest_writes() const { return guest_writes_; }

  uint64_t size() const override { return inner_.size(); }
  bool reads_zero_initially() const override { return inner_.reads_zero_initially(); }
  const std::string& name() const override { return inner_.name(); }
  base::Status WriteExtent(uint64_t offset, std::span<const uint8_t> data) override {
    Gate();
    return inner_.WriteExtent(offset, data);
  }
  base::Status WriteZeroes(uint64_t offset, uint64_t len) override {
    Gate();
    return inner_.WriteZeroes(offset, len);
  }
  base::Status Flush() override { return inner_.Flush(); }
  base::Status Finish() override { return inner_.Finish(); }
  void Abort() override { inner_.Abort(); }

 private:
  void Gate() {
    if (std::this_thread::get_id() == guest_) {
      ++guest_writes_;
      return;
    }
    std::unique_lock lock(mu_);
    ++waiting_;
    cv_.notify_all();
    cv_.wait(lock, [&] { return open_; });
    --waiting_;
  }

  BlockSink& inner_;
  const std::thread::id guest_;
  std::atomic<uint64_t> guest_writes_{0};
  std::mutex mu_;
  std::condition_variable cv_;
  bool open_ = false;
  int waiting_ = 0;
};

}  // namespace storage::testing
