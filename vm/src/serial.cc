#include "serial.h"

#include <fcntl.h>

#include "base/le.h"
#include "base/log.h"

namespace vm {
namespace {

// Register offsets from the base port.
constexpr uint16_t kData = 0;    // THR on write, RBR on read; DLL when DLAB
constexpr uint16_t kIer = 1;     // DLM when DLAB
constexpr uint16_t kIirFcr = 2;  // IIR on read, FCR on write
constexpr uint16_t kLcr = 3;
constexpr uint16_t kMcr = 4;
constexpr uint16_t kLsr = 5;
constexpr uint16_t kMsr = 6;
constexpr uint16_t kScr = 7;

constexpr uint8_t kLcrDlab = 0x80;
constexpr uint8_t kLsrThrEmpty = 0x20;
constexpr uint8_t kLsrTransmitterEmpty = 0x40;
constexpr uint8_t kIirNoInterrupt = 0x01;
constexpr uint8_t kIirFifoEnabled = 0xc0;

constexpr uint8_t kStateVersion = 1;

}  // namespace

base::Result<Serial> Serial::Open(const std::string& console_path) {
  if (console_path.empty()) return Serial(base::Fd());
  ASSIGN_OR_RETURN(base::Fd fd, base::Fd::Open(console_path, O_WRONLY | O_CREAT | O_APPEND, 0644));
  return Serial(std::move(fd));
}

Serial::Serial(Serial&& other) noexcept
    : console_(std::move(other.console_)),
      regs_(other.regs_),
      bytes_written_(other.bytes_written_),
      write_failed_(other.write_failed_) {}

uint8_t Serial::PortIn(uint16_t offset) {
  base::MutexLock lock(mu_);
  bool dlab = regs_.lcr & kLcrDlab;
  switch (offset) {
    case kData: return dlab ? regs_.dll : 0;  // no input: the receive buffer is empty
    case kIer: return dlab ? regs_.dlm : regs_.ier;
    case kIirFcr: return kIirNoInterrupt | ((regs_.fcr & 1) ? kIirFifoEnabled : 0);
    case kLcr: return regs_.lcr;
    case kMcr: return regs_.mcr;
    case kLsr: return kLsrThrEmpty | kLsrTransmitterEmpty;
    case kMsr: return 0;
    case kScr: return regs_.scr;
    default: return 0xff;
  }
}

void Serial::PortOut(uint16_t offset, uint8_t value) {
  base::MutexLock lock(mu_);
  bool dlab = regs_.lcr & kLcrDlab;
  switch (offset) {
    case kData:
      if (dlab) {
        regs_.dll = value;
        return;
      }
      ++bytes_written_;
      if (console_.valid()) {
        // Written at once, unbuffered: the console must show the guest's last
        // words even if the VMM dies right after.
        if (auto st = base::WriteAll(console_.get(), &value, 1); !st && !write_failed_) {
          write_failed_ = true;
          base::LogWarning("serial console write failed, further output is lost: " +
                           st.error().ToString());
        }
      }
      return;
    case kIer:
      if (dlab)
        regs_.dlm = value;
      else
        regs_.ier = value & 0x0f;
      return;
    case kIirFcr: regs_.fcr = value & 0xc9; return;  // keep enable, DMA mode, trigger level
    case kLcr: regs_.lcr = value; return;
    case kMcr: regs_.mcr = value & 0x1f; return;
    case kScr: regs_.scr = value; return;
    default: return;  // LSR and MSR are read-only
  }
}

std::string Serial::SaveState() const {
  base::MutexLock lock(mu_);
  base::LeWriter w;
  w.U8(kStateVersion);
  for (uint8_t v : {regs_.ier, regs_.fcr, regs_.lcr, regs_.mcr, regs_.scr, regs_.dll, regs_.dlm})
    w.U8(v);
  w.U64(bytes_written_);
  return w.Take();
}

base::Status Serial::RestoreState(std::string_view blob) {
  base::LeReader r(blob);
  ASSIGN_OR_RETURN(uint8_t version, r.U8());
  if (version != kStateVersion)
    return base::Error(base::Code::kDataLoss, "serial state version " + std::to_string(version) +
                                                  " is not " + std::to_string(kStateVersion));
  Registers regs;
  for (uint8_t* v : {&regs.ier, &regs.fcr, &regs.lcr, &regs.mcr, &regs.scr, &regs.dll, &regs.dlm}) {
    ASSIGN_OR_RETURN(*v, r.U8());
  }
  ASSIGN_OR_RETURN(uint64_t written, r.U64());
  if (r.remaining() != 0)
    return base::Error(base::Code::kDataLoss, "serial state has " + std::to_string(r.remaining()) +
                                                  " unexpected trailing bytes");
  base::MutexLock lock(mu_);
  regs_ = regs;
  bytes_written_ = written;
  return base::Ok();
}

uint64_t Serial::bytes_written() const {
  base::MutexLock lock(mu_);
  return bytes_written_;
}

}  // namespace vm
