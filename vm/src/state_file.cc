#include "state_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cstring>

#include "base/crc32c.h"
#include "base/le.h"

namespace vm {
namespace {

constexpr size_t kDirectWriteBytes = 64 << 10;  // appends this large bypass the buffer
constexpr size_t kWriteBufferBytes = 1 << 20;
constexpr size_t kReadAheadBytes = 1 << 20;

// Polynomial arithmetic modulo the reflected Castagnoli polynomial, for
// Crc32cCombine (the method of zlib 1.2.12's crc32_combine). Bit 31 is x^0.
constexpr uint32_t kCrcPoly = 0x82F63B78u;

constexpr uint32_t MultModP(uint32_t a, uint32_t b) {
  uint32_t m = 1u << 31, p = 0;
  for (;;) {
    if (a & m) {
      p ^= b;
      if ((a & (m - 1)) == 0) break;
    }
    m >>= 1;
    b = (b & 1) ? (b >> 1) ^ kCrcPoly : b >> 1;
  }
  return p;
}

// kX2n[k] = x^(2^k) mod P.
constexpr std::array<uint32_t, 32> MakeX2nTable() {
  std::array<uint32_t, 32> t{};
  uint32_t p = 1u << 30;  // x^1
  t[0] = p;
  for (int n = 1; n < 32; ++n) t[n] = p = MultModP(p, p);
  return t;
}
constexpr auto kX2n = MakeX2nTable();

// x^(n * 2^k) mod P.
uint32_t X2nModP(uint64_t n, unsigned k) {
  uint32_t p = 1u << 31;  // x^0
  for (; n != 0; n >>= 1, ++k)
    if (n & 1) p = MultModP(kX2n[k & 31], p);
  return p;
}

void EncodeSectionHeader(uint8_t* h, SectionType type, uint64_t len, uint32_t payload_crc) {
  base::PutLe32(h, static_cast<uint32_t>(type));
  base::PutLe32(h + 4, 0);
  base::PutLe64(h + 8, len);
  base::PutLe32(h + 16, payload_crc);
  base::PutLe32(h + 20, base::Crc32c(h, 20));
}

}  // namespace

std::string_view ToString(SectionType t) {
  switch (t) {
    case SectionType::kDefinition: return "definition";
    case SectionType::kMachine: return "machine";
    case SectionType::kVcpu: return "vcpu";
    case SectionType::kSerial: return "serial";
    case SectionType::kDevice: return "device";
    case SectionType::kMemory: return "memory";
  }
  return "unknown";
}

uint32_t Crc32cCombine(uint32_t crc_a, uint32_t crc_b, uint64_t len_b) {
  // Appending len_b bytes multiplies A's CRC by x^(8 * len_b); the pre- and
  // post-inversion of the standard CRC cancel out in the XOR.
  return MultModP(X2nModP(len_b, 3), crc_a) ^ crc_b;
}

// ---- Writer ---------------------------------------------------------------

StateFileWriter::StateFileWriter(std::string path, base::Fd fd)
    : path_(std::move(path)), tmp_path_(path_ + ".tmp"), fd_(std::move(fd)) {}

StateFileWriter::StateFileWriter(StateFileWriter&& o) noexcept
    : path_(std::move(o.path_)),
      tmp_path_(std::move(o.tmp_path_)),
      fd_(std::move(o.fd_)),
      buffer_(std::move(o.buffer_)),
      flushed_(o.flushed_),
      file_crc_(o.file_crc_),
      in_section_(o.in_section_),
      section_type_(o.section_type_),
      section_offset_(o.section_offset_),
      section_len_(o.section_len_),
      section_crc_(o.section_crc_),
      committed_(std::exchange(o.committed_, true)) {}

StateFileWriter::~StateFileWriter() {
  if (!committed_ && fd_.valid()) ::unlink(tmp_path_.c_str());
}

base::Result<StateFileWriter> StateFileWriter::Create(const std::string& path) {
  ASSIGN_OR_RETURN(base::Fd fd, base::Fd::Open(path + ".tmp", O_WRONLY | O_CREAT | O_TRUNC, 0600));
  StateFileWriter w(path, std::move(fd));
  w.WriteHeader(kStateMagic);
  return w;
}

StateFileWriter StateFileWriter::CreateInMemory(uint64_t magic, std::string label) {
  StateFileWriter w(std::move(label), base::Fd());
  w.tmp_path_.clear();
  w.WriteHeader(magic);
  return w;
}

void StateFileWriter::WriteHeader(uint64_t magic) {
  uint8_t h[kFileHeaderBytes] = {};
  base::PutLe64(h, magic);
  base::PutLe32(h + 8, kStateFormatVersion);
  base::PutLe32(h + 20, base::Crc32c(h, 20));
  buffer_.append(reinterpret_cast<const char*>(h), sizeof h);
  file_crc_ = base::Crc32c(h, sizeof h);
}

base::Error StateFileWriter::Fail(const base::Error& e) const {
  return e.Wrap(in_memory() ? "write " + path_ : "write state file " + path_);
}

base::Status StateFileWriter::Flush() {
  // In memory the buffer is the container: nothing to flush to.
  if (buffer_.empty() || in_memory()) return base::Ok();
  if (auto st = base::WriteAll(fd_.get(), buffer_.data(), buffer_.size()); !st)
    return Fail(st.error());
  flushed_ += buffer_.size();
  buffer_.clear();
  return base::Ok();
}

base::Status StateFileWriter::BeginSection(SectionType type) {
  if (in_section_) return base::Error(base::Code::kInternal, "BeginSection inside a section");
  in_section_ = true;
  section_type_ = type;
  section_offset_ = flushed_ + buffer_.size();
  section_len_ = 0;
  section_crc_ = 0;
  buffer_.append(kSectionHeaderBytes, '\0');  // filled in by EndSection
  return base::Ok();
}

base::Status StateFileWriter::Append(const void* data, size_t len) {
  section_crc_ = base::Crc32c(data, len, section_crc_);
  section_len_ += len;
  if (len >= kDirectWriteBytes && !in_memory()) {
    RETURN_IF_ERROR(Flush());
    if (auto st = base::WriteAll(fd_.get(), data, len); !st) return Fail(st.error());
    flushed_ += len;
    return base::Ok();
  }
  buffer_.append(static_cast<const char*>(data), len);
  if (buffer_.size() >= kWriteBufferBytes) return Flush();
  return base::Ok();
}

base::Status StateFileWriter::EndSection() {
  if (!in_section_) return base::Error(base::Code::kInternal, "EndSection outside a section");
  uint8_t h[kSectionHeaderBytes];
  EncodeSectionHeader(h, section_type_, section_len_, section_crc_);
  if (section_offset_ >= flushed_) {
    std::memcpy(buffer_.data() + (section_offset_ - flushed_), h, sizeof h);
  } else if (auto st = base::PwriteAll(fd_.get(), h, sizeof h, static_cast<off_t>(section_offset_));
             !st) {
    return Fail(st.error());
  }
  file_crc_ = Crc32cCombine(file_crc_, base::Crc32c(h, sizeof h), sizeof h);
  file_crc_ = Crc32cCombine(file_crc_, section_crc_, section_len_);
  in_section_ = false;
  return base::Ok();
}

base::Status StateFileWriter::AddSection(SectionType type, std::string_view payload) {
  RETURN_IF_ERROR(BeginSection(type));
  RETURN_IF_ERROR(Append(payload.data(), payload.size()));
  return EndSection();
}

base::Status StateFileWriter::Commit() {
  if (in_section_) return base::Error(base::Code::kInternal, "Commit inside a section");
  uint64_t data_end = flushed_ + buffer_.size();
  uint8_t t[kTrailerBytes];
  base::PutLe64(t, kTrailerMagic);
  base::PutLe64(t + 8, data_end);
  base::PutLe32(t + 16, file_crc_);
  base::PutLe32(t + 20, base::Crc32c(t, 20));
  buffer_.append(reinterpret_cast<const char*>(t), sizeof t);
  if (in_memory()) {
    committed_ = true;
    return base::Ok();
  }
  RETURN_IF_ERROR(Flush());
  if (::fsync(fd_.get()) != 0) return Fail(base::ErrnoError("fsync " + tmp_path_));
  if (::rename(tmp_path_.c_str(), path_.c_str()) != 0)
    return Fail(base::ErrnoError("rename " + tmp_path_ + " -> " + path_));
  committed_ = true;
  fd_.Reset();
  if (auto st = base::SyncParentDirectory(path_); !st) return Fail(st.error());
  return base::Ok();
}

std::string StateFileWriter::TakeBuffer() {
  if (!in_memory() || !committed_) return std::string();
  return std::move(buffer_);
}

// ---- Reader ---------------------------------------------------------------

StateFileReader::StateFileReader(std::string path, std::string label, base::Fd fd,
                                 std::string_view mem, uint64_t data_end, uint32_t file_crc)
    : path_(std::move(path)),
      label_(std::move(label)),
      fd_(std::move(fd)),
      mem_(mem),
      data_end_(data_end),
      expected_file_crc_(file_crc) {}

base::Error StateFileReader::Corrupt(const std::string& what) const {
  return base::Error(base::Code::kDataLoss, label_ + ": " + what);
}

base::Result<uint64_t> StateFileReader::CheckEnds(const uint8_t* h, const uint8_t* t, uint64_t size,
                                                  uint64_t magic, const std::string& label) {
  auto corrupt = [&](const std::string& what) {
    return base::Error(base::Code::kDataLoss, label + ": " + what);
  };
  uint64_t found = base::GetLe64(h);
  if (found != magic) {
    // The two containers share a layout; say which one arrived where.
    if (magic == kStateMagic && found == kDeviceStateMagic)
      return corrupt("bad magic; this is a device-state blob, not a ferry state file");
    if (magic == kDeviceStateMagic && found == kStateMagic)
      return corrupt("bad magic; this is a state file, not a device-state blob");
    return corrupt(magic == kStateMagic ? "bad magic; not a ferry state file"
                                        : "bad magic; not a ferry device-state blob");
  }
  if (base::GetLe32(h + 20) != base::Crc32c(h, 20)) return corrupt("file header checksum mismatch");
  uint32_t version = base::GetLe32(h + 8);
  if (version != kStateFormatVersion)
    return base::Error(base::Code::kFailedPrecondition,
                       label + " has format version " + std::to_string(version) +
                           "; this build reads version " + std::to_string(kStateFormatVersion));
  if (base::GetLe32(h + 12) != 0 || base::GetLe32(h + 16) != 0)
    return corrupt("reserved header fields are not zero");

  if (base::GetLe64(t) != kTrailerMagic)
    return corrupt("no trailer at the end (truncated or overwritten)");
  if (base::GetLe32(t + 20) != base::Crc32c(t, 20)) return corrupt("trailer checksum mismatch");
  uint64_t data_end = base::GetLe64(t + 8);
  if (data_end != size - kTrailerBytes)
    return corrupt("trailer says the sections end at " + std::to_string(data_end) +
                   ", but there are " + std::to_string(size) + " bytes");
  return data_end;
}

base::Result<StateFileReader> StateFileReader::Open(const std::string& path) {
  ASSIGN_OR_RETURN(base::Fd fd, base::Fd::Open(path, O_RDONLY));
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) return base::ErrnoError("stat state file " + path);
  uint64_t size = static_cast<uint64_t>(st.st_size);
  std::string label = "state file " + path;
  if (size < kFileHeaderBytes + kTrailerBytes)
    return base::Error(base::Code::kDataLoss, label + ": only " + std::to_string(size) +
                                                  " bytes; too short for header and trailer");
  uint8_t h[kFileHeaderBytes];
  ASSIGN_OR_RETURN(size_t got, base::PreadFull(fd.get(), h, sizeof h, 0));
  if (got != sizeof h)
    return base::Error(base::Code::kDataLoss, label + ": short read of the file header");
  uint8_t t[kTrailerBytes];
  ASSIGN_OR_RETURN(
      got, base::PreadFull(fd.get(), t, sizeof t, static_cast<off_t>(size - kTrailerBytes)));
  if (got != sizeof t)
    return base::Error(base::Code::kDataLoss, label + ": short read of the trailer");
  ASSIGN_OR_RETURN(uint64_t data_end, CheckEnds(h, t, size, kStateMagic, label));
  StateFileReader r(path, std::move(label), std::move(fd), {}, data_end, base::GetLe32(t + 16));
  r.pos_ = kFileHeaderBytes;
  r.file_crc_ = base::Crc32c(h, sizeof h);
  return r;
}

base::Result<StateFileReader> StateFileReader::OpenBuffer(std::string_view data, uint64_t magic,
                                                          std::string label) {
  uint64_t size = data.size();
  if (size < kFileHeaderBytes + kTrailerBytes)
    return base::Error(base::Code::kDataLoss, label + ": only " + std::to_string(size) +
                                                  " bytes; too short for header and trailer");
  const auto* h = reinterpret_cast<const uint8_t*>(data.data());
  const uint8_t* t = h + size - kTrailerBytes;
  ASSIGN_OR_RETURN(uint64_t data_end, CheckEnds(h, t, size, magic, label));
  StateFileReader r("", std::move(label), base::Fd(), data, data_end, base::GetLe32(t + 16));
  r.pos_ = kFileHeaderBytes;
  r.file_crc_ = base::Crc32c(h, kFileHeaderBytes);
  return r;
}

base::Status StateFileReader::ReadRaw(void* out, size_t len) {
  if (len > data_end_ - pos_) return Corrupt("truncated: read past the last section");
  auto* dst = static_cast<uint8_t*>(out);
  if (!fd_.valid()) {
    std::memcpy(dst, mem_.data() + pos_, len);
    pos_ += len;
    return base::Ok();
  }
  while (len > 0) {
    if (buf_pos_ == buf_.size()) {
      buf_.clear();
      buf_pos_ = 0;
      if (len >= kReadAheadBytes / 4) {
        // Large reads (page runs) go straight to the destination.
        ASSIGN_OR_RETURN(size_t n, base::PreadFull(fd_.get(), dst, len, static_cast<off_t>(pos_)));
        if (n != len) return Corrupt("file shrank while reading");
        pos_ += len;
        return base::Ok();
      }
      size_t want = static_cast<size_t>(std::min<uint64_t>(kReadAheadBytes, data_end_ - pos_));
      buf_.resize(want);
      ASSIGN_OR_RETURN(size_t n,
                       base::PreadFull(fd_.get(), buf_.data(), want, static_cast<off_t>(pos_)));
      if (n != want) return Corrupt("file shrank while reading");
    }
    size_t take = std::min(len, buf_.size() - buf_pos_);
    std::memcpy(dst, buf_.data() + buf_pos_, take);
    buf_pos_ += take;
    pos_ += take;
    dst += take;
    len -= take;
  }
  return base::Ok();
}

base::Result<uint64_t> StateFileReader::BeginSection(SectionType expected, uint64_t max_len) {
  if (in_section_) return base::Error(base::Code::kInternal, "BeginSection inside a section");
  if (pos_ == data_end_)
    return Corrupt(std::string("expected a ") + std::string(ToString(expected)) +
                   " section, found the end of the file");
  uint64_t at = pos_;
  uint8_t h[kSectionHeaderBytes];
  RETURN_IF_ERROR(ReadRaw(h, sizeof h));
  std::string where = " at offset " + std::to_string(at);
  if (base::GetLe32(h + 20) != base::Crc32c(h, 20))
    return Corrupt("section header checksum mismatch" + where);
  uint32_t type = base::GetLe32(h);
  if (type != static_cast<uint32_t>(expected))
    return Corrupt("section type " + std::to_string(type) + where + ", expected " +
                   std::string(ToString(expected)) + " (" +
                   std::to_string(static_cast<uint32_t>(expected)) + ")");
  if (base::GetLe32(h + 4) != 0)
    return Corrupt("reserved section header field is not zero" + where);
  uint64_t len = base::GetLe64(h + 8);
  if (len > data_end_ - pos_)
    return Corrupt(std::string(ToString(expected)) + " section" + where + " claims " +
                   std::to_string(len) + " bytes, more than the file holds (truncated?)");
  if (len > max_len)
    return Corrupt(std::string(ToString(expected)) + " section" + where + " claims " +
                   std::to_string(len) + " bytes; at most " + std::to_string(max_len) +
                   " are valid");
  file_crc_ = Crc32cCombine(file_crc_, base::Crc32c(h, sizeof h), sizeof h);
  in_section_ = true;
  section_type_ = expected;
  section_len_ = len;
  section_read_ = 0;
  section_crc_ = 0;
  expected_section_crc_ = base::GetLe32(h + 16);
  return len;
}

base::Status StateFileReader::Read(void* out, size_t len) {
  if (!in_section_) return base::Error(base::Code::kInternal, "Read outside a section");
  if (len > section_len_ - section_read_)
    return Corrupt(std::string(ToString(section_type_)) +
                   " section ends before its contents do (needs " + std::to_string(len) +
                   " more bytes, has " + std::to_string(section_len_ - section_read_) + ")");
  RETURN_IF_ERROR(ReadRaw(out, len));
  section_crc_ = base::Crc32c(out, len, section_crc_);
  section_read_ += len;
  return base::Ok();
}

base::Result<std::string> StateFileReader::ReadRest() {
  std::string s(section_remaining(), '\0');
  RETURN_IF_ERROR(Read(s.data(), s.size()));
  return s;
}

base::Status StateFileReader::EndSection() {
  if (!in_section_) return base::Error(base::Code::kInternal, "EndSection outside a section");
  if (section_read_ != section_len_)
    return Corrupt(std::to_string(section_len_ - section_read_) +
                   " unexplained bytes at the end of the " + std::string(ToString(section_type_)) +
                   " section");
  if (section_crc_ != expected_section_crc_)
    return Corrupt(std::string(ToString(section_type_)) +
                   " section checksum mismatch (contents corrupted)");
  file_crc_ = Crc32cCombine(file_crc_, section_crc_, section_len_);
  in_section_ = false;
  return base::Ok();
}

base::Status StateFileReader::Finish() {
  if (in_section_) return base::Error(base::Code::kInternal, "Finish inside a section");
  if (pos_ != data_end_)
    return Corrupt(std::to_string(data_end_ - pos_) + " unexpected bytes after the last section");
  if (file_crc_ != expected_file_crc_) return Corrupt("whole-file checksum mismatch");
  return base::Ok();
}

}  // namespace vm
