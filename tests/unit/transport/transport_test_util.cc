#include "transport_test_util.h"

#include <sys/socket.h>

#include <cstdio>
#include <random>

#include <gtest/gtest.h>

#include "base/le.h"

namespace transport::testing {

std::pair<base::Fd, base::Fd> SocketPair() {
  int sv[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) {
    ADD_FAILURE() << "socketpair failed";
    return {};
  }
  return {base::Fd(sv[0]), base::Fd(sv[1])};
}

std::vector<uint8_t> FromHex(const std::string& hex) {
  std::vector<uint8_t> out;
  unsigned v = 0;
  int digits = 0;
  for (char c : hex) {
    int d = (c >= '0' && c <= '9') ? c - '0' : (c >= 'a' && c <= 'f') ? c - 'a' + 10 : -1;
    if (d < 0) continue;
    v = v * 16 + unsigned(d);
    if (++digits == 2) {
      out.push_back(uint8_t(v));
      v = 0;
      digits = 0;
    }
  }
  return out;
}

std::string ToHex(const std::vector<uint8_t>& bytes) {
  std::string out;
  for (size_t i = 0; i < bytes.size(); ++i) {
    char buf[4];
    snprintf(buf, sizeof buf, "%02x", bytes[i]);
    if (i) out += ' ';
    out += buf;
  }
  return out;
}

std::vector<uint8_t> RawFrame(FrameHeader h, const std::vector<uint8_t>& payload) {
  std::vector<uint8_t> out(kFrameHeaderBytes);
  EncodeFrameHeader(h, out.data());
  if (h.crc32c == 0) {
    h.crc32c = FrameCrc(out.data(), payload);
    EncodeFrameHeader(h, out.data());
  }
  out.insert(out.end(), payload.begin(), payload.end());
  return out;
}

void WriteRaw(int fd, const std::vector<uint8_t>& bytes) {
  ASSERT_TRUE(base::WriteAll(fd, bytes.data(), bytes.size()).has_value());
}

std::vector<uint8_t> RandomBytes(uint64_t seed, size_t n) {
  std::mt19937_64 rng(seed);
  std::vector<uint8_t> out(n);
  size_t i = 0;
  for (; i + 8 <= n; i += 8) base::PutLe64(&out[i], rng());
  for (; i < n; ++i) out[i] = uint8_t(rng());
  return out;
}

std::vector<uint8_t> TextBytes(uint64_t seed, size_t n) {
  static const char* kWords[] = {"guest ",  "memory ",     "page ",   "dirty ", "round ", "disk ",
                                 "extent ", "switchover ", "commit ", "ferry ", "move ",  "vcpu "};
  std::mt19937_64 rng(seed);
  std::vector<uint8_t> out;
  out.reserve(n + 16);
  while (out.size() < n) {
    const char* w = kWords[rng() % (sizeof kWords / sizeof kWords[0])];
    out.insert(out.end(), w, w + strlen(w));
  }
  out.resize(n);
  return out;
}

std::vector<uint8_t> SeededPayload(uint64_t seed, uint64_t index, size_t max_size) {
  std::mt19937_64 rng(seed * 1'000'003 + index);
  size_t size = rng() % (max_size + 1);
  switch (rng() % 3) {
    case 0: {
      std::vector<uint8_t> v(size, 0);
      if (size > 0) v[size / 2] = uint8_t(index);  // not all zero, still mostly
      return v;
    }
    case 1: return TextBytes(rng(), size);
    default: return RandomBytes(rng(), size);
  }
}

}  // namespace transport::testing
