// Explicit little-endian encoding for wire and file formats. Structs are never
// memcpy'd to disk or wire; every field goes through these.
#pragma once

#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

#include "base/result.h"

namespace base {

inline void PutLe16(uint8_t* p, uint16_t v) {
  p[0] = uint8_t(v);
  p[1] = uint8_t(v >> 8);
}
inline void PutLe32(uint8_t* p, uint32_t v) {
  for (int i = 0; i < 4; ++i) p[i] = uint8_t(v >> (8 * i));
}
inline void PutLe64(uint8_t* p, uint64_t v) {
  for (int i = 0; i < 8; ++i) p[i] = uint8_t(v >> (8 * i));
}
inline uint16_t GetLe16(const uint8_t* p) { return uint16_t(p[0] | (p[1] << 8)); }
inline uint32_t GetLe32(const uint8_t* p) {
  uint32_t v = 0;
  for (int i = 3; i >= 0; --i) v = (v << 8) | p[i];
  return v;
}
inline uint64_t GetLe64(const uint8_t* p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | p[i];
  return v;
}

// Appends little-endian fields to a growing byte string.
class LeWriter {
 public:
  void U8(uint8_t v) { buf_.push_back(char(v)); }
  void U16(uint16_t v) {
    uint8_t b[2];
    PutLe16(b, v);
    Bytes(b, 2);
  }
  void U32(uint32_t v) {
    uint8_t b[4];
    PutLe32(b, v);
    Bytes(b, 4);
  }
  void U64(uint64_t v) {
    uint8_t b[8];
    PutLe64(b, v);
    Bytes(b, 8);
  }
  void Bytes(const void* p, size_t n) { buf_.append(static_cast<const char*>(p), n); }
  // u32 length + bytes.
  void Blob(std::string_view s) {
    U32(uint32_t(s.size()));
    Bytes(s.data(), s.size());
  }
  const std::string& data() const { return buf_; }
  std::string Take() { return std::move(buf_); }

 private:
  std::string buf_;
};

// Reads little-endian fields with bounds checks; every read past the end is
// an error (kDataLoss), never undefined behaviour.
class LeReader {
 public:
  LeReader(const void* p, size_t n) : p_(static_cast<const uint8_t*>(p)), n_(n) {}
  explicit LeReader(std::string_view s) : LeReader(s.data(), s.size()) {}

  Result<uint8_t> U8() {
    RETURN_IF_ERROR(Need(1));
    return p_[pos_++];
  }
  Result<uint16_t> U16() {
    RETURN_IF_ERROR(Need(2));
    auto v = GetLe16(p_ + pos_);
    pos_ += 2;
    return v;
  }
  Result<uint32_t> U32() {
    RETURN_IF_ERROR(Need(4));
    auto v = GetLe32(p_ + pos_);
    pos_ += 4;
    return v;
  }
  Result<uint64_t> U64() {
    RETURN_IF_ERROR(Need(8));
    auto v = GetLe64(p_ + pos_);
    pos_ += 8;
    return v;
  }
  Status Bytes(void* out, size_t n) {
    RETURN_IF_ERROR(Need(n));
    std::memcpy(out, p_ + pos_, n);
    pos_ += n;
    return Ok();
  }
  Result<std::string_view> View(size_t n) {
    RETURN_IF_ERROR(Need(n));
    std::string_view v(reinterpret_cast<const char*>(p_ + pos_), n);
    pos_ += n;
    return v;
  }
  Result<std::string_view> Blob(size_t max_len) {
    ASSIGN_OR_RETURN(uint32_t len, U32());
    if (len > max_len)
      return Error(Code::kDataLoss, "field length " + std::to_string(len) + " exceeds limit " +
                                        std::to_string(max_len));
    return View(len);
  }
  size_t remaining() const { return n_ - pos_; }
  size_t position() const { return pos_; }

 private:
  Status Need(size_t k) const {
    if (n_ - pos_ < k)
      return Error(Code::kDataLoss, "truncated: need " + std::to_string(k) + " bytes at offset " +
                                        std::to_string(pos_) + ", have " +
                                        std::to_string(n_ - pos_));
    return Ok();
  }
  const uint8_t* p_;
  size_t n_;
  size_t pos_ = 0;
};

}  // namespace base
