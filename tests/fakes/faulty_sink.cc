#include "fakes/faulty_sink.h"

#include <cerrno>
#include <cstring>

namespace storage::fakes {

void FaultySink::FailOneIn(uint64_t n, uint64_t seed) {
  std::lock_guard lock(rng_mu_);
  one_in_ = n;
  seed_ = seed;
  rng_.seed(seed);
}

base::Status FaultySink::Charge(const char* op, uint64_t offset, uint64_t len) {
  bool random_fail = false;
  {
    std::lock_guard lock(rng_mu_);
    random_fail = one_in_ != 0 && rng_() % one_in_ == 0;
  }
  // Claim the bytes atomically so concurrent writers cannot both squeeze in.
  uint64_t before = accepted_.load();
  while (!random_fail) {
    if (budget_.load() < before || len > budget_.load() - before) break;
    if (accepted_.compare_exchange_weak(before, before + len)) return base::Ok();
  }
  ++failures_;
  std::string why = random_fail ? " (injected 1 in " + std::to_string(one_in_) + ", seed " +
                                      std::to_string(seed_) + ")"
                                : "";
  return base::Error(base::Code::kResourceExhausted,
                     std::string(op) + " " + inner_.name() + " at offset " +
                         std::to_string(offset) + " (" + std::to_string(len) +
                         " bytes): " + std::strerror(ENOSPC) + why,
                     ENOSPC);
}

base::Status FaultySink::WriteExtent(uint64_t offset, std::span<const uint8_t> data) {
  RETURN_IF_ERROR(Charge("write", offset, data.size()));
  return inner_.WriteExtent(offset, data);
}

base::Status FaultySink::WriteZeroes(uint64_t offset, uint64_t len) {
  RETURN_IF_ERROR(Charge("zero", offset, len));
  return inner_.WriteZeroes(offset, len);
}

base::Status FaultySink::Flush() {
  if (fail_flush_) {
    ++failures_;
    return base::Error(base::Code::kResourceExhausted,
                       "flush " + inner_.name() + ": " + std::strerror(ENOSPC), ENOSPC);
  }
  return inner_.Flush();
}

base::Status FaultySink::Finish() {
  RETURN_IF_ERROR(Flush());
  return inner_.Finish();
}

}  // namespace storage::fakes
