// The container format of a saved VM (vm/STATE_FORMAT.md): a file header,
// typed sections each with its length and CRC32C, and a trailer with the
// CRC32C of everything before it. This file knows the container only; what
// the sections hold is machine_state.cc's business.
//
// Two kinds of container share the layout and differ in the header's magic,
// so neither is ever taken for the other: a state file (kStateMagic; every
// section, memory included) and a device-state blob (kDeviceStateMagic; no
// memory section; built in memory for a live move, device_state_blob.h).
//
// Writing a file goes to path + ".tmp", which Commit() fsyncs and renames
// into place (then fsyncs the directory); a writer destroyed before Commit
// removes it. An in-memory writer keeps everything in a string that
// TakeBuffer() returns after Commit. Reading checks the header and trailer
// up front and each section's header and payload CRC as it goes; every
// defect is a kDataLoss error naming the file (or "device-state blob") and
// what was wrong. Neither class is thread-safe.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "base/fd.h"
#include "base/result.h"

namespace vm {

enum class SectionType : uint32_t {
  kDefinition = 1,
  kMachine = 2,
  kVcpu = 3,
  kSerial = 4,
  kDevice = 5,
  kMemory = 6,
};
std::string_view ToString(SectionType t);

inline constexpr uint64_t kStateMagic = 0x5441545359525246ull;        // "FRRYSTAT"
inline constexpr uint64_t kDeviceStateMagic = 0x5356454459525246ull;  // "FRRYDEVS"
inline constexpr uint64_t kTrailerMagic = 0x444e455959525246ull;      // "FRRYYEND"
inline constexpr uint32_t kStateFormatVersion = 1;
inline constexpr size_t kFileHeaderBytes = 24;
inline constexpr size_t kSectionHeaderBytes = 24;
inline constexpr size_t kTrailerBytes = 24;

// crc32c(A || B) from crc32c(A), crc32c(B) and |B|, without rereading A or B.
uint32_t Crc32cCombine(uint32_t crc_a, uint32_t crc_b, uint64_t len_b);

class StateFileWriter {
 public:
  static base::Result<StateFileWriter> Create(const std::string& path);
  // A container with the given header magic, kept in memory; never touches
  // the file system. `label` names it in errors.
  static StateFileWriter CreateInMemory(uint64_t magic, std::string label);
  StateFileWriter(StateFileWriter&&) noexcept;
  StateFileWriter& operator=(StateFileWriter&&) = delete;
  ~StateFileWriter();

  base::Status BeginSection(SectionType type);
  // Small appends are buffered; large ones (page runs) go straight to the
  // file so memory is written with large sequential writes and no copy.
  base::Status Append(const void* data, size_t len);
  base::Status EndSection();
  base::Status AddSection(SectionType type, std::string_view payload);
  base::Status Commit();
  // In-memory writers only, after Commit: the whole container.
  std::string TakeBuffer();

 private:
  StateFileWriter(std::string path, base::Fd fd);
  void WriteHeader(uint64_t magic);
  bool in_memory() const { return !fd_.valid(); }
  base::Status Flush();
  base::Error Fail(const base::Error& e) const;

  std::string path_, tmp_path_;  // in memory: path_ is the label, no tmp
  base::Fd fd_;                  // invalid for an in-memory writer
  std::string buffer_;
  uint64_t flushed_ = 0;   // bytes already written to fd_
  uint32_t file_crc_ = 0;  // CRC of every finished byte (header, sections)
  bool in_section_ = false;
  SectionType section_type_{};
  uint64_t section_offset_ = 0;  // where the section header goes
  uint64_t section_len_ = 0;
  uint32_t section_crc_ = 0;
  bool committed_ = false;
};

class StateFileReader {
 public:
  // Checks the file header and the trailer (so a truncated file is refused
  // before anything else is read).
  static base::Result<StateFileReader> Open(const std::string& path);
  // Reads a container held in memory whose header must carry `magic`.
  // `data` must outlive the reader; `label` names it in errors.
  static base::Result<StateFileReader> OpenBuffer(std::string_view data, uint64_t magic,
                                                  std::string label);

  // Reads the next section header, which must be of the expected type;
  // returns its payload length. max_len guards allocations.
  base::Result<uint64_t> BeginSection(SectionType expected, uint64_t max_len);
  // Reads part of the current payload.
  base::Status Read(void* out, size_t len);
  // Reads the whole remaining payload of the current section.
  base::Result<std::string> ReadRest();
  // Checks that the payload was consumed exactly and its CRC matches.
  base::Status EndSection();
  // Checks that the trailer follows and the whole-file CRC matches.
  base::Status Finish();

  uint64_t section_remaining() const { return section_len_ - section_read_; }
  const std::string& path() const { return path_; }
  // A kDataLoss error naming the source: "state file /x/vm.state: <what>" or
  // "device-state blob: <what>".
  base::Error Corrupt(const std::string& what) const;

 private:
  StateFileReader(std::string path, std::string label, base::Fd fd, std::string_view mem,
                  uint64_t data_end, uint32_t file_crc);
  // Checks the file header h and trailer t of a container of `size` bytes;
  // returns the trailer's data end.
  static base::Result<uint64_t> CheckEnds(const uint8_t* h, const uint8_t* t, uint64_t size,
                                          uint64_t magic, const std::string& label);
  base::Status ReadRaw(void* out, size_t len);

  std::string path_;
  std::string label_;     // "state file <path>" or the buffer's label
  base::Fd fd_;           // invalid when reading from memory
  std::string_view mem_;  // the container when reading from memory
  uint64_t data_end_;     // offset of the trailer
  uint32_t expected_file_crc_;
  uint64_t pos_ = 0;  // file offset of the next unread byte
  uint32_t file_crc_ = 0;
  std::string buf_;  // read-ahead for small reads
  size_t buf_pos_ = 0;
  bool in_section_ = false;
  SectionType section_type_{};
  uint64_t section_len_ = 0, section_read_ = 0;
  uint32_t section_crc_ = 0, expected_section_crc_ = 0;
};

}  // namespace vm
