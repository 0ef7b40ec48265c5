// White-box tests of the io_uring engine's completion handling: short
// completions, -EINTR, -ECANCELED and hard errors are injected through the
// engine's completion hook, since a healthy kernel does not produce them on
// demand. Plus: a kernel that refuses io_uring gives kUnavailable.
#include <gtest/gtest.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <sys/prctl.h>
#include <sys/syscall.h>

#include <cerrno>
#include <cstddef>
#include <random>

#include "test_util.h"
#include "uring_block_file.h"

namespace storage {
namespace {

using base::Code;
using ferry_test::ReadBytes;
using testing::Pattern;
using testing::TempDir;

std::unique_ptr<BlockFile> OpenUring(const std::string& path, unsigned depth, size_t chunk) {
  OpenOptions o;
  o.create = true;
  o.queue_depth = depth;
  o.max_chunk = chunk;
  auto r = OpenBlockFile(path, o);
  EXPECT_TRUE(r.has_value()) << r.error().ToString();
  return r.has_value() ? *std::move(r) : nullptr;
}

UringBlockFile& Engine(BlockFile& f) { return dynamic_cast<UringBlockFile&>(f); }

TEST(UringFaultsTest, ShortAndInterruptedCompletionsAreResubmitted) {
  for (uint64_t seed = 1; seed <= 5; ++seed) {
    SCOPED_TRACE("seed " + std::to_string(seed));
    TempDir dir;
    auto f = OpenUring(dir.File("f"), 4, 8192);
    ASSERT_NE(f, nullptr);
    std::mt19937_64 rng(seed);
    int faults = 0;
    Engine(*f).SetCompletionFilterForTesting([&](int res) {
      uint64_t roll = rng() % 8;
      if (res > 1 && roll < 3) {
        ++faults;
        return static_cast<int>(1 + rng() % static_cast<uint64_t>(res - 1));  // short
      }
      if (roll == 3) return ++faults, -EINTR;
      if (roll == 4) return ++faults, -ECANCELED;
      if (roll == 5) return ++faults, -EAGAIN;
      return res;
    });
    auto data = Pattern(300000, seed);
    ASSERT_TRUE(f->WriteAt(data.data(), data.size(), 1234).has_value());
    ASSERT_TRUE(f->Flush().has_value());
    std::vector<uint8_t> back(400000, 0xcc);
    auto n = f->ReadAt(back.data(), back.size(), 1234);
    ASSERT_TRUE(n.has_value()) << n.error().ToString();
    EXPECT_EQ(*n, data.size());
    EXPECT_TRUE(std::equal(data.begin(), data.end(), back.begin()));
    EXPECT_GT(faults, 20);  // the hook really was exercised
    Engine(*f).SetCompletionFilterForTesting(nullptr);
    auto on_disk = ReadBytes(dir.File("f"));
    ASSERT_EQ(on_disk.size(), 1234 + data.size());
    EXPECT_TRUE(std::equal(data.begin(), data.end(), on_disk.begin() + 1234));
  }
}

TEST(UringFaultsTest, EndlessInterruptsGiveUpWithAnError) {
  TempDir dir;
  auto f = OpenUring(dir.File("f"), 2, 4096);
  ASSERT_NE(f, nullptr);
  int calls = 0;
  Engine(*f).SetCompletionFilterForTesting([&](int) { return ++calls, -EINTR; });
  uint8_t b[100] = {};
  auto w = f->WriteAt(b, sizeof b, 0);
  ASSERT_FALSE(w.has_value());
  EXPECT_EQ(w.error().code(), Code::kUnavailable);
  EXPECT_EQ(w.error().sys_errno(), EINTR);
  EXPECT_NE(w.error().message().find("write " + dir.File("f") + " at offset 0"), std::string::npos);
  EXPECT_EQ(calls, UringBlockFile::kMaxRetries + 1);

  Engine(*f).SetCompletionFilterForTesting([](int) { return -ECANCELED; });
  auto flush = f->Flush();
  ASSERT_FALSE(flush.has_value());
  EXPECT_EQ(flush.error().code(), Code::kCancelled);

  // The failures left nothing in flight: the file works once the fault is gone.
  Engine(*f).SetCompletionFilterForTesting(nullptr);
  EXPECT_TRUE(f->WriteAt(b, sizeof b, 0).has_value());
  EXPECT_TRUE(f->Flush().has_value());
}

TEST(UringFaultsTest, HardErrorWaitsForTheRestOfTheBatch) {
  TempDir dir;
  auto f = OpenUring(dir.File("f"), 8, 4096);
  ASSERT_NE(f, nullptr);
  int completions = 0;
  Engine(*f).SetCompletionFilterForTesting([&](int res) {
    return ++completions == 2 ? -EIO : res;  // the second completion fails
  });
  auto data = Pattern(64 * 4096, 7);
  auto w = f->WriteAt(data.data(), data.size(), 0);
  ASSERT_FALSE(w.has_value());
  EXPECT_EQ(w.error().code(), Code::kDataLoss);
  EXPECT_EQ(w.error().sys_errno(), EIO);
  // Up to 8 were in flight when the error came (the first completion may have
  // freed a slot that was refilled before the second arrived); all of them
  // were reaped and nothing more was submitted: at most 2 + (8 - 1).
  EXPECT_GE(completions, 2);
  EXPECT_LE(completions, 9);
  Engine(*f).SetCompletionFilterForTesting(nullptr);
  EXPECT_TRUE(f->WriteAt(data.data(), data.size(), 0).has_value());
}

TEST(UringFaultsTest, ZeroByteWriteCompletionIsAnError) {
  TempDir dir;
  auto f = OpenUring(dir.File("f"), 2, 4096);
  ASSERT_NE(f, nullptr);
  Engine(*f).SetCompletionFilterForTesting([](int) { return 0; });
  uint8_t b[10] = {};
  auto w = f->WriteAt(b, sizeof b, 0);
  ASSERT_FALSE(w.has_value());
  EXPECT_EQ(w.error().code(), Code::kDataLoss);
  EXPECT_NE(w.error().message().find("wrote nothing"), std::string::npos);
}

// In a child process, a seccomp filter makes io_uring_setup fail as it does
// with io_uring_disabled=2; OpenBlockFile must say io_uring is unavailable
// and not fall back.
void OpenWithIoUringForbidden(const std::string& path) {
  sock_filter filter[] = {
      BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(seccomp_data, arch)),
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, AUDIT_ARCH_X86_64, 1, 0),
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
      BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(seccomp_data, nr)),
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_io_uring_setup, 0, 1),
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | EPERM),
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
  };
  sock_fprog program{static_cast<unsigned short>(std::size(filter)), filter};
  if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 ||
      prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &program) != 0) {
    fprintf(stderr, "seccomp setup failed\n");
    _exit(2);
  }
  OpenOptions o;
  o.engine = IoEngine::kIoUring;
  auto r = OpenBlockFile(path, o);
  if (r.has_value()) {
    fprintf(stderr, "opened despite io_uring being forbidden\n");
    _exit(3);
  }
  fprintf(stderr, "%s\n", r.error().ToString().c_str());
  o.engine = IoEngine::kSync;
  _exit(r.error().code() == Code::kUnavailable && OpenBlockFile(path, o).has_value() ? 0 : 4);
}

TEST(UringFaultsDeathTest, RefusedRingIsUnavailable) {
#if !defined(__x86_64__)
  GTEST_SKIP() << "the seccomp filter in this test is written for x86-64";
#endif
  TempDir dir;
  ferry_test::WriteFile(dir.File("f"), Pattern(4096, 1));
  EXPECT_EXIT(OpenWithIoUringForbidden(dir.File("f")), ::testing::ExitedWithCode(0),
              "open .*/f: io_uring is unavailable on this host \\(Operation not permitted\\).*"
              "\\(unavailable\\)");
}

}  // namespace
}  // namespace storage
