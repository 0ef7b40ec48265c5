// The guest's console: the subset of a 16550 UART at FERRY_SERIAL_PORT that a
// polling guest uses. Transmitted bytes are appended to the console file; the
// line status register always reports "transmitter empty"; there is no input
// and no interrupt. The other registers are plain storage so a saved and
// restored guest reads back what it wrote.
//
// Thread-safety: PortIn/PortOut may be called from any vCPU thread.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "base/fd.h"
#include "base/mutex.h"
#include "base/result.h"

namespace vm {

class Serial {
 public:
  // Opens (creates) the console file for appending. An empty path discards
  // the output.
  static base::Result<Serial> Open(const std::string& console_path);
  Serial(Serial&& other) noexcept;

  // offset is the port minus FERRY_SERIAL_PORT, 0..7.
  uint8_t PortIn(uint16_t offset);
  void PortOut(uint16_t offset, uint8_t value);

  std::string SaveState() const;
  base::Status RestoreState(std::string_view blob);
  uint64_t bytes_written() const;

 private:
  explicit Serial(base::Fd console) : console_(std::move(console)) {}

  struct Registers {
    uint8_t ier = 0, fcr = 0, lcr = 0, mcr = 0, scr = 0;
    uint8_t dll = 1, dlm = 0;  // divisor latch; 115200 baud as after firmware
  };

  mutable base::Mutex mu_;
  base::Fd console_ GUARDED_BY(mu_);
  Registers regs_ GUARDED_BY(mu_);
  uint64_t bytes_written_ GUARDED_BY(mu_) = 0;
  bool write_failed_ GUARDED_BY(mu_) = false;  // a console write error is logged once
};

}  // namespace vm
