// Damaged images: flipped header fields, bad L1/L2/refcount entries,
// truncation, absurd sizes. Every case must end in a clear error (the code
// and a message naming the file and the problem), never a crash or guest
// data from a broken mapping. Run under ASan in the sanitizer build.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstring>
#include <fstream>
#include <functional>

#include "qcow2_format.h"
#include "qcow2_test_util.h"

namespace storage {
namespace {

using base::Code;
using ferry_test::ReadBytes;
using ferry_test::WriteFile;
using qcow2::GetBe64;
using qcow2::PutBe32;
using qcow2::PutBe64;
using testing::Pattern;
using testing::TempDir;

// A 64 KiB-cluster image with data in cluster 0 and 3, a zero cluster at 5.
struct Image {
  std::string path;
  std::vector<uint8_t> bytes;
  qcow2::Header h;
  uint64_t l2_offset = 0;  // table of L1 entry 0
};

Image MakeImage(const TempDir& dir) {
  Image img;
  img.path = dir.File("disk.qcow2");
  Qcow2CreateOptions o;
  o.size = 4 << 20;
  EXPECT_TRUE(CreateQcow2(img.path, o).has_value());
  {
    auto d = OpenQcow2Disk(img.path, false);
    EXPECT_TRUE(d.has_value());
    auto data = Pattern(65536, 1);
    EXPECT_TRUE((*d)->Write(data.data(), data.size(), 0).has_value());
    EXPECT_TRUE((*d)->Write(data.data(), data.size(), 3 * 65536).has_value());
    EXPECT_TRUE((*d)->Write(data.data(), data.size(), 5 * 65536).has_value());
    EXPECT_TRUE((*d)->WriteZeroes(5 * 65536, 65536).has_value());
  }
  img.bytes = ReadBytes(img.path);
  auto h = qcow2::ParseHeader(img.bytes, img.bytes.size(), img.path);
  EXPECT_TRUE(h.has_value());
  img.h = *h;
  img.l2_offset = GetBe64(&img.bytes[img.h.l1_table_offset]) & qcow2::kOffsetMask;
  return img;
}

// Applies `mutate` to a copy of the image, then opens it (read-write or
// read-only) and reads everything. Returns the first error.
base::Error OpenAndReadError(const Image& img,
                             const std::function<void(std::vector<uint8_t>&)>& mutate,
                             bool read_only = true) {
  auto bytes = img.bytes;
  mutate(bytes);
  WriteFile(img.path, bytes);
  auto d = OpenQcow2Disk(img.path, read_only);
  if (!d) return d.error();
  std::vector<uint8_t> buf((*d)->size());
  auto s = (*d)->Read(buf.data(), buf.size(), 0);
  if (!s) return s.error();
  for (uint64_t off = 0; off < (*d)->size();) {
    auto e = (*d)->MapExtent(off, UINT64_MAX);
    if (!e) return e.error();
    off += e->length;
  }
  return base::Error(Code::kOk, "no error");
}

void ExpectError(const base::Error& e, Code code, const std::string& needle) {
  EXPECT_EQ(e.code(), code) << e.ToString();
  EXPECT_NE(e.message().find(needle), std::string::npos)
      << "message \"" << e.message() << "\" lacks \"" << needle << "\"";
}

class Qcow2CorruptionTest : public ::testing::Test {
 protected:
  void SetUp() override { img_ = MakeImage(dir_); }
  TempDir dir_;
  Image img_;
};

TEST_F(Qcow2CorruptionTest, Baseline) {
  EXPECT_EQ(OpenAndReadError(img_, [](auto&) {}).code(), Code::kOk);
}

TEST_F(Qcow2CorruptionTest, HeaderFields) {
  struct Case {
    const char* name;
    std::function<void(std::vector<uint8_t>&)> mutate;
    Code code;
    const char* needle;
  };
  std::vector<Case> cases = {
      {"magic", [](auto& b) { b[0] ^= 0xff; }, Code::kDataLoss, "bad magic"},
      {"version", [](auto& b) { PutBe32(&b[4], 4); }, Code::kUnimplemented, "version 4"},
      {"cluster bits", [](auto& b) { PutBe32(&b[20], 40); }, Code::kDataLoss, "cluster_bits 40"},
      {"cluster bits small", [](auto& b) { PutBe32(&b[20], 9); }, Code::kDataLoss,
       "cluster_bits 9"},
      {"absurd size", [](auto& b) { PutBe64(&b[24], ~0ull); }, Code::kDataLoss, "virtual size"},
      {"size beyond L1", [](auto& b) { PutBe64(&b[24], 1ull << 40); }, Code::kDataLoss,
       "too small"},
      {"encrypted", [](auto& b) { PutBe32(&b[32], 1); }, Code::kUnimplemented, "encrypted"},
      {"L1 size huge", [](auto& b) { PutBe32(&b[36], 0xffffffff); }, Code::kDataLoss, "L1 table"},
      {"L1 offset unaligned", [](auto& b) { b[47] = 0x10; }, Code::kDataLoss,
       "not cluster aligned"},
      {"L1 offset past end", [](auto& b) { PutBe64(&b[40], 1ull << 40); }, Code::kDataLoss,
       "past end of file"},
      {"reftable clusters huge", [](auto& b) { PutBe32(&b[56], 1u << 30); }, Code::kDataLoss,
       "refcount table of"},
      {"reftable clusters zero", [](auto& b) { PutBe32(&b[56], 0); }, Code::kDataLoss,
       "refcount table of 0"},
      {"reftable past end", [](auto& b) { PutBe64(&b[48], 1ull << 40); }, Code::kDataLoss,
       "refcount table at"},
      {"header length", [](auto& b) { PutBe32(&b[100], 105); }, Code::kDataLoss, "header length"},
      {"header length huge", [](auto& b) { PutBe32(&b[100], 1u << 20); }, Code::kDataLoss,
       "exceeds the cluster size"},
      {"refcount order", [](auto& b) { PutBe32(&b[96], 7); }, Code::kDataLoss, "refcount_order"},
      {"unknown incompatible", [](auto& b) { b[78] |= 0x04; }, Code::kUnimplemented,
       "unknown feature bit 10"},
      {"extended L2", [](auto& b) { b[79] |= 0x10; }, Code::kUnimplemented, "extended L2"},
      {"external data file", [](auto& b) { b[79] |= 0x04; }, Code::kUnimplemented,
       "external data file"},
      {"compression type", [](auto& b) { b[104] = 7; }, Code::kDataLoss, "compression type 7"},
      {"zstd without bit", [](auto& b) { b[104] = 1; }, Code::kDataLoss, "without the"},
      {"extension overruns", [](auto& b) { PutBe32(&b[112 + 4], 1u << 20); }, Code::kDataLoss,
       "header extension"},
      {"backing name outside",
       [](auto& b) {
         PutBe64(&b[8], 65000);
         PutBe32(&b[16], 1000);
       },
       Code::kDataLoss, "backing file name"},
      {"snapshots",
       [](auto& b) {
         PutBe32(&b[60], 1);
         PutBe64(&b[64], 12345);
       },
       Code::kDataLoss, "snapshot table"},
      {"truncated", [](auto& b) { b.resize(50); }, Code::kDataLoss, "too short"},
      {"truncated header cluster", [](auto& b) { b.resize(300); }, Code::kDataLoss, "past end"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    ExpectError(OpenAndReadError(img_, c.mutate), c.code, c.needle);
    ExpectError(OpenAndReadError(img_, c.mutate, false), c.code, c.needle);
  }
}

TEST_F(Qcow2CorruptionTest, CorruptAndDirtyBitsRefuseReadWrite) {
  auto corrupt = [](auto& b) { b[79] |= 0x02; };
  ExpectError(OpenAndReadError(img_, corrupt, false), Code::kFailedPrecondition, "marked corrupt");
  EXPECT_EQ(OpenAndReadError(img_, corrupt, true).code(), Code::kOk);
  auto dirty = [](auto& b) { b[79] |= 0x01; };
  ExpectError(OpenAndReadError(img_, dirty, false), Code::kFailedPrecondition, "dirty");
  EXPECT_EQ(OpenAndReadError(img_, dirty, true).code(), Code::kOk);
}

TEST_F(Qcow2CorruptionTest, L1Entries) {
  const uint64_t l1 = img_.h.l1_table_offset;
  ExpectError(OpenAndReadError(img_, [&](auto& b) { b[l1 + 7] |= 0x01; }), Code::kDataLoss,
              "L1 entry 0");
  ExpectError(OpenAndReadError(img_, [&](auto& b) { b[l1] |= 0x01; }), Code::kDataLoss,
              "reserved bits");
  ExpectError(
      OpenAndReadError(img_, [&](auto& b) { PutBe64(&b[l1], (1ull << 50) | (1ull << 63)); }),
      Code::kDataLoss, "L1 entry 0 (0x8004000000000000) points past end of file");
  ExpectError(OpenAndReadError(img_, [&](auto& b) { PutBe64(&b[l1], 0x8000000000001000ull); }),
              Code::kDataLoss, "not cluster aligned");
}

TEST_F(Qcow2CorruptionTest, L2Entries) {
  const uint64_t l2 = img_.l2_offset;
  const std::string where = "L2 entry 3 of table at " + qcow2::Hex(l2);
  ExpectError(
      OpenAndReadError(img_, [&](auto& b) { PutBe64(&b[l2 + 24], (1ull << 63) | (1ull << 45)); }),
      Code::kDataLoss, where + " (0x8000200000000000) points past end of file");
  ExpectError(OpenAndReadError(img_, [&](auto& b) { b[l2 + 24 + 6] |= 0x10; }), Code::kDataLoss,
              "not cluster aligned");
  ExpectError(OpenAndReadError(img_, [&](auto& b) { b[l2 + 24 + 7] |= 0x02; }), Code::kDataLoss,
              where);
  ExpectError(OpenAndReadError(img_, [&](auto& b) { b[l2 + 24] |= 0x01; }), Code::kDataLoss,
              "reserved bits");
  // A compressed entry whose bytes are not deflate data.
  ExpectError(OpenAndReadError(img_,
                               [&](auto& b) {
                                 uint64_t host = GetBe64(&b[l2 + 24]) & qcow2::kOffsetMask;
                                 PutBe64(&b[l2 + 24],
                                         qcow2::kOflagCompressed | host | (3ull << 54));
                                 std::memset(&b[host], 0xff, 64);
                               }),
              Code::kDataLoss, "compressed cluster at");
  // Unallocated with the copied flag.
  ExpectError(OpenAndReadError(img_, [&](auto& b) { PutBe64(&b[l2 + 8], 1ull << 63); }),
              Code::kDataLoss, "copied flag but no cluster");
}

TEST_F(Qcow2CorruptionTest, RefcountTable) {
  const uint64_t rt = img_.h.refcount_table_offset;
  ExpectError(OpenAndReadError(img_, [&](auto& b) { PutBe64(&b[rt + 8], 1ull << 44); }),
              Code::kDataLoss, "refcount table entry 1");
  ExpectError(OpenAndReadError(img_, [&](auto& b) { b[rt + 7] |= 0x01; }), Code::kDataLoss,
              "refcount table entry 0");
}

TEST_F(Qcow2CorruptionTest, TruncatedTables) {
  // Cut the file inside the L2 table: reading is an error, not zeros.
  uint64_t cut = img_.l2_offset + 100;
  auto e = OpenAndReadError(img_, [&](auto& b) { b.resize(cut); });
  EXPECT_EQ(e.code(), Code::kDataLoss) << e.ToString();
}

TEST_F(Qcow2CorruptionTest, AllocationSkipsClustersWithRefcounts) {
  // Claim the cluster at the end of the file in the refcount block: the next
  // allocation must not hand it out.
  auto bytes = img_.bytes;
  const uint64_t end_cluster = bytes.size() / 65536;
  uint64_t block = GetBe64(&bytes[img_.h.refcount_table_offset]);
  qcow2::PutBe16(&bytes[block + end_cluster * 2], 1);
  WriteFile(img_.path, bytes);
  {
    auto d = OpenQcow2Disk(img_.path, false);
    ASSERT_TRUE(d.has_value()) << d.error().ToString();
    auto data = Pattern(65536, 9);
    ASSERT_TRUE((*d)->Write(data.data(), data.size(), 65536).has_value());
  }
  auto after = ReadBytes(img_.path);
  uint64_t l2 = GetBe64(&after[img_.h.l1_table_offset]) & qcow2::kOffsetMask;
  uint64_t host = GetBe64(&after[l2 + 8]) & qcow2::kOffsetMask;
  EXPECT_NE(host, 0u);
  EXPECT_NE(host, end_cluster * 65536);
}

// Seeded random byte flips over the metadata area: whatever happens, no
// crash, and any error is kDataLoss/kUnimplemented/kFailedPrecondition.
TEST_F(Qcow2CorruptionTest, RandomFlipsInMetadata) {
  const uint64_t meta_end = img_.h.l1_table_offset + 65536;
  for (uint64_t seed = 1; seed <= 200; ++seed) {
    auto e = OpenAndReadError(img_, [&](auto& b) {
      uint64_t x = seed * 0x9E3779B97F4A7C15ull;
      for (int i = 0; i < 4; ++i) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        uint64_t pos = x % meta_end;
        if (i % 2 == 1) pos = img_.l2_offset + x % 512;  // the live L2 entries
        b[pos] ^= uint8_t(1u << (x >> 60 & 7));
      }
    });
    EXPECT_TRUE(e.code() == Code::kOk || e.code() == Code::kDataLoss ||
                e.code() == Code::kUnimplemented || e.code() == Code::kFailedPrecondition)
        << "seed " << seed << ": " << e.ToString();
  }
}

}  // namespace
}  // namespace storage
