// CopySparseFile: holes stay holes, contents equal, all-or-nothing.
#include <gtest/gtest.h>
#include <unistd.h>

#include "base/event_fd.h"
#include "mirror_test_util.h"
#include "storage/sparse_copy.h"

namespace storage {
namespace {

using testing::AllocatedBytes;
using testing::FilesEqual;
using testing::MakeSparseImage;
using testing::TempDir;

constexpr uint64_t kMiB = 1 << 20;

class SparseCopyTest : public ::testing::TestWithParam<IoEngine> {};

INSTANTIATE_TEST_SUITE_P(Engines, SparseCopyTest,
                         ::testing::Values(IoEngine::kIoUring, IoEngine::kSync),
                         testing::EngineName);

TEST_P(SparseCopyTest, HolesStayHoles) {
  TempDir dir;
  const uint64_t size = 32 * kMiB + 4096 + 100;  // odd tail
  MakeSparseImage(dir.File("layer"), size,
                  {{kMiB, 256 << 10}, {10 * kMiB, 3 * kMiB}, {size - 5000, 5000}}, 3);
  {  // allocated zeros: become a hole in the copy (like cp --sparse=always)
    auto fd = base::Fd::Open(dir.File("layer"), O_RDWR);
    ASSERT_TRUE(fd.has_value());
    std::vector<uint8_t> zeros(2 * kMiB, 0);
    ASSERT_TRUE(base::PwriteAll(fd->get(), zeros.data(), zeros.size(), 20 * kMiB).has_value());
  }
  SparseCopyOptions o;
  o.engine = GetParam();
  uint64_t last_done = 0;
  o.progress = [&](uint64_t done, uint64_t total) {
    EXPECT_GE(done, last_done);
    EXPECT_EQ(total, size);
    last_done = done;
  };
  auto stats = CopySparseFile(dir.File("layer"), dir.File("copy"), o);
  ASSERT_TRUE(stats.has_value()) << stats.error().ToString();
  EXPECT_TRUE(FilesEqual(dir.File("layer"), dir.File("copy")));
  EXPECT_EQ(stats->size, size);
  EXPECT_LT(stats->data_bytes, 4 * kMiB);
  EXPECT_EQ(stats->data_bytes + stats->skipped_bytes, size);
  EXPECT_LE(AllocatedBytes(dir.File("copy")), AllocatedBytes(dir.File("layer")) - 2 * kMiB);
  EXPECT_NE(access((dir.File("copy") + ".part").c_str(), F_OK), 0);
}

TEST_P(SparseCopyTest, EmptyAndAllHoleFiles) {
  TempDir dir;
  MakeSparseImage(dir.File("empty"), 0, {}, 1);
  MakeSparseImage(dir.File("holes"), 8 * kMiB, {}, 1);
  SparseCopyOptions o;
  o.engine = GetParam();
  ASSERT_TRUE(CopySparseFile(dir.File("empty"), dir.File("e2"), o).has_value());
  auto st = CopySparseFile(dir.File("holes"), dir.File("h2"), o);
  ASSERT_TRUE(st.has_value());
  EXPECT_EQ(st->data_bytes, 0u);
  EXPECT_TRUE(FilesEqual(dir.File("holes"), dir.File("h2")));
  EXPECT_EQ(AllocatedBytes(dir.File("h2")), 0u);
}

TEST_P(SparseCopyTest, CancelLeavesNothing) {
  TempDir dir;
  MakeSparseImage(dir.File("layer"), 4 * kMiB, {{0, 4 * kMiB}}, 3);
  auto cancel = base::EventFd::Create();
  ASSERT_TRUE(cancel.has_value());
  ASSERT_TRUE(cancel->Signal().has_value());
  SparseCopyOptions o;
  o.engine = GetParam();
  o.cancel_fd = cancel->fd();
  auto st = CopySparseFile(dir.File("layer"), dir.File("copy"), o);
  ASSERT_FALSE(st.has_value());
  EXPECT_EQ(st.error().code(), base::Code::kCancelled);
  EXPECT_NE(access(dir.File("copy").c_str(), F_OK), 0);
  EXPECT_NE(access((dir.File("copy") + ".part").c_str(), F_OK), 0);
}

TEST_P(SparseCopyTest, MissingSourceIsNotFound) {
  TempDir dir;
  SparseCopyOptions o;
  o.engine = GetParam();
  auto st = CopySparseFile(dir.File("nope"), dir.File("copy"), o);
  ASSERT_FALSE(st.has_value());
  EXPECT_EQ(st.error().code(), base::Code::kNotFound);
}

}  // namespace
}  // namespace storage
