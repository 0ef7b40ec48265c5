// A full file system must surface as kResourceExhausted naming the file, from
// both engines and from batches. The test mounts a 1 MiB tmpfs in a temp dir
// (root only) and unmounts it afterwards.
#include <gtest/gtest.h>
#include <sys/mount.h>

#include <cerrno>
#include <cstring>

#include "storage/block_file.h"
#include "storage/disk.h"
#include "test_util.h"

namespace storage {
namespace {

using base::Code;
using testing::Pattern;
using testing::TempDir;

// A tiny tmpfs mounted on a temp dir for the life of the object.
class TinyTmpfs {
 public:
  TinyTmpfs() {
    if (mount("ferry-test", dir_.path().c_str(), "tmpfs", MS_NOSUID | MS_NODEV, "size=1m") == 0) {
      mounted_ = true;
    } else {
      error_ = std::strerror(errno);
    }
  }
  ~TinyTmpfs() {
    if (mounted_ && umount2(dir_.path().c_str(), 0) != 0) {
      ADD_FAILURE() << "umount " << dir_.path() << ": " << std::strerror(errno);
    }
  }
  bool mounted() const { return mounted_; }
  const std::string& error() const { return error_; }
  std::string File(const std::string& name) const { return dir_.File(name); }

 private:
  TempDir dir_;  // outlives the mount: destroyed after ~TinyTmpfs unmounts
  bool mounted_ = false;
  std::string error_;
};

class EnospcTest : public ::testing::TestWithParam<IoEngine> {};

INSTANTIATE_TEST_SUITE_P(Engines, EnospcTest,
                         ::testing::Values(IoEngine::kIoUring, IoEngine::kSync),
                         testing::EngineName);

TEST_P(EnospcTest, WriteAtIsResourceExhaustedNamingThePath) {
  TinyTmpfs fs;
  if (!fs.mounted()) GTEST_SKIP() << "cannot mount a tmpfs here (" << fs.error() << "); needs root";
  OpenOptions o;
  o.engine = GetParam();
  o.create = true;
  o.queue_depth = 4;
  o.max_chunk = 256 << 10;
  std::string path = fs.File("big.img");
  auto f = OpenBlockFile(path, o);
  ASSERT_TRUE(f.has_value()) << f.error().ToString();
  auto data = Pattern(2 << 20, 1);
  auto w = (*f)->WriteAt(data.data(), data.size(), 0);
  ASSERT_FALSE(w.has_value());
  EXPECT_EQ(w.error().code(), Code::kResourceExhausted);
  EXPECT_EQ(w.error().sys_errno(), ENOSPC);
  EXPECT_NE(w.error().message().find("write " + path + " at offset "), std::string::npos)
      << w.error().message();
  EXPECT_NE(w.error().message().find(std::strerror(ENOSPC)), std::string::npos);

  // The file stays usable: what fit reads back.
  std::vector<uint8_t> back(4096);
  EXPECT_EQ(*(*f)->ReadAt(back.data(), back.size(), 0), back.size());
  EXPECT_TRUE(std::equal(back.begin(), back.end(), data.begin()));
}

TEST_P(EnospcTest, BatchAndDiskWritesReportIt) {
  TinyTmpfs fs;
  if (!fs.mounted()) GTEST_SKIP() << "cannot mount a tmpfs here (" << fs.error() << "); needs root";
  std::string path = fs.File("disk.img");
  {
    OpenOptions o;
    o.engine = GetParam();
    o.create = true;
    auto f = OpenBlockFile(path, o);
    ASSERT_TRUE(f.has_value());
    ASSERT_TRUE((*f)->Truncate(4 << 20).has_value());  // sparse: larger than the file system
    auto data = Pattern(512 << 10, 2);
    IoRequest batch[] = {{IoOp::kWrite, data.data(), data.size(), 0},
                         {IoOp::kWrite, data.data(), data.size(), 1 << 20},
                         {IoOp::kWrite, data.data(), data.size(), 2 << 20}};
    auto r = (*f)->SubmitBatch(batch);
    ASSERT_FALSE(r.has_value());
    EXPECT_EQ(r.error().code(), Code::kResourceExhausted);
    EXPECT_NE(r.error().message().find(path), std::string::npos);
  }
  auto disk = OpenRawDisk(path, false, GetParam());
  ASSERT_TRUE(disk.has_value()) << disk.error().ToString();
  auto data = Pattern(1 << 20, 3);
  auto w = (*disk)->Write(data.data(), data.size(), 3 << 20);
  ASSERT_FALSE(w.has_value());
  EXPECT_EQ(w.error().code(), Code::kResourceExhausted);
  EXPECT_NE(w.error().message().find(path), std::string::npos);
}

}  // namespace
}  // namespace storage
