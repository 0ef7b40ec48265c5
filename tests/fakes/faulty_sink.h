// FaultySink: a BlockSink decorator that behaves like a destination that
// fills up. After `budget` bytes have been accepted by WriteExtent and
// WriteZeroes, every further write fails the way a full file system does
// (kResourceExhausted, errno ENOSPC, naming the destination); optionally
// Flush fails too. SetBudget heals it, as freeing space would. Optionally a
// seeded 1-in-N failure of individual writes (the seed is in every error, so a
// failing test can be replayed).
//
// Threads: as thread-safe as the wrapped sink (counters are atomic).
#pragma once

#include <atomic>
#include <cstdint>
#include <mutex>
#include <random>

#include "storage/block_sink.h"

namespace storage::fakes {

class FaultySink final : public BlockSink {
 public:
  static constexpr uint64_t kUnlimited = UINT64_MAX;

  // Borrows inner: it must outlive this sink.
  explicit FaultySink(BlockSink& inner, uint64_t budget = kUnlimited)
      : inner_(inner), budget_(budget) {}

  void SetBudget(uint64_t budget) { budget_ = budget; }
  void SetFailFlush(bool fail) { fail_flush_ = fail; }
  // Fails each write with probability 1/n (0: never), from seed.
  void FailOneIn(uint64_t n, uint64_t seed);

  uint64_t accepted() const { return accepted_; }
  uint64_t failures() const { return failures_; }

  uint64_t size() const override { return inner_.size(); }
  bool reads_zero_initially() const override { return inner_.reads_zero_initially(); }
  const std::string& name() const override { return inner_.name(); }
  base::Status WriteExtent(uint64_t offset, std::span<const uint8_t> data) override;
  base::Status WriteZeroes(uint64_t offset, uint64_t len) override;
  base::Status Flush() override;
  base::Status Finish() override;
  void Abort() override { inner_.Abort(); }

 private:
  base::Status Charge(const char* op, uint64_t offset, uint64_t len);

  BlockSink& inner_;
  std::atomic<uint64_t> budget_;
  std::atomic<uint64_t> accepted_{0};
  std::atomic<uint64_t> failures_{0};
  std::atomic<bool> fail_flush_{false};
  std::mutex rng_mu_;
  uint64_t one_in_ = 0;  // guarded by rng_mu_
  uint64_t seed_ = 0;
  std::mt19937_64 rng_;
};

}  // namespace storage::fakes
