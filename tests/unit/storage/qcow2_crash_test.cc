// Crash consistency of the qcow2 write ordering (docs/storage.md): every file
// write is recorded in epochs that end at each fdatasync. A simulated crash
// keeps all epochs before some point plus a random subset of the writes of
// the next one (the kernel may have written any of them). The result must
// open and read without errors in ferry and pass `qemu-img check` with at
// most leaks; with nothing of the next epoch kept, it must show exactly what
// the guest had when that flush completed.
#include <gtest/gtest.h>

#include <map>
#include <random>

#include "../../fuzz/memory_block_file.h"
#include "qcow2_disk.h"
#include "qcow2_test_util.h"

namespace storage {
namespace {

using ferry_test::ReadBytes;
using ferry_test::WriteFile;
using testing::FirstDiff;
using testing::TempDir;

struct Write {
  uint64_t offset;
  std::vector<uint8_t> data;
};

// Forwards to an in-memory file and records writes per fdatasync epoch.
class RecordingFile final : public BlockFile {
 public:
  RecordingFile(std::string path, std::vector<uint8_t> bytes,
                std::vector<std::vector<Write>>* epochs)
      : inner_(std::move(path), std::move(bytes), 1ull << 32, true), epochs_(epochs) {
    epochs_->emplace_back();
  }
  base::Result<size_t> ReadAt(void* buf, size_t len, uint64_t offset) override {
    return inner_.ReadAt(buf, len, offset);
  }
  base::Status WriteAt(const void* buf, size_t len, uint64_t offset) override {
    auto p = static_cast<const uint8_t*>(buf);
    epochs_->back().push_back(Write{offset, std::vector<uint8_t>(p, p + len)});
    return inner_.WriteAt(buf, len, offset);
  }
  base::Result<std::vector<size_t>> SubmitBatch(std::span<const IoRequest> requests) override {
    for (const auto& r : requests) {
      if (r.op == IoOp::kWrite) {
        auto p = static_cast<const uint8_t*>(r.buf);
        epochs_->back().push_back(Write{r.offset, std::vector<uint8_t>(p, p + r.len)});
      }
    }
    return inner_.SubmitBatch(requests);
  }
  base::Status Flush() override {
    epochs_->emplace_back();
    return base::Ok();
  }
  // Recorded as writes of zeros over what exists (the size never changes).
  base::Status PunchHole(uint64_t offset, uint64_t len) override {
    ASSIGN_OR_RETURN(uint64_t size, inner_.Size());
    if (offset < size) {
      uint64_t n = std::min(len, size - offset);
      epochs_->back().push_back(Write{offset, std::vector<uint8_t>(n, 0)});
    }
    return inner_.PunchHole(offset, len);
  }
  base::Status ZeroRange(uint64_t offset, uint64_t len) override { return PunchHole(offset, len); }
  base::Result<uint64_t> Size() override { return inner_.Size(); }
  base::Status Truncate(uint64_t size) override { return inner_.Truncate(size); }
  const std::string& path() const override { return inner_.path(); }
  IoEngine engine() const override { return IoEngine::kSync; }

 private:
  fuzz::MemoryBlockFile inner_;
  std::vector<std::vector<Write>>* epochs_;
};

void Apply(std::vector<uint8_t>& file, const Write& w) {
  if (file.size() < w.offset + w.data.size()) file.resize(w.offset + w.data.size(), 0);
  std::copy(w.data.begin(), w.data.end(), file.begin() + w.offset);
}

TEST(Qcow2Crash, EveryCrashPointIsConsistent) {
  TempDir dir;
  const uint64_t size = 80 << 20;  // 40 L2 tables: more than the cache holds
  const uint32_t cs = 4096;        // many L2 tables: evictions and new refcount blocks
  Qcow2CreateOptions o;
  o.size = size;
  o.cluster_size = cs;
  ASSERT_TRUE(CreateQcow2(dir.File("a.qcow2"), o).has_value());
  const auto initial = ReadBytes(dir.File("a.qcow2"));

  std::vector<std::vector<Write>> epochs;
  std::map<size_t, std::vector<uint8_t>> model_at;  // epoch index -> guest contents
  std::vector<uint8_t> model(size, 0);
  {
    auto file = std::make_unique<RecordingFile>(dir.File("a.qcow2"), initial, &epochs);
    qcow2::OpenParams p;
    p.read_only = false;
    auto d = qcow2::OpenQcow2File(std::move(file), p);
    ASSERT_TRUE(d.has_value()) << d.error().ToString();
    for (int round = 0; round < 8; ++round) {
      testing::RandomIo(**d, model, 500 + round, 40, cs);
      ASSERT_TRUE((*d)->Flush().has_value());
      model_at[epochs.size() - 1] = model;  // state once everything before this epoch is durable
    }
  }
  std::mt19937_64 rng(42);
  int checked = 0;
  std::vector<uint8_t> durable = initial;
  // qemu-img check takes a while: about a dozen crash points get it.
  const size_t qemu_every = std::max<size_t>(1, epochs.size() / 12);
  for (size_t e = 0; e < epochs.size(); ++e) {
    // Crash inside epoch e: everything before it, some of it.
    for (int trial = 0; trial < 2; ++trial) {
      auto image = durable;
      bool none = trial == 0;
      for (const auto& w : epochs[e]) {
        if (!none && rng() % 2 == 0) Apply(image, w);
      }
      std::string path = dir.File("crash.qcow2");
      WriteFile(path, image);
      auto d = OpenQcow2Disk(path, true, IoEngine::kSync);
      ASSERT_TRUE(d.has_value()) << "epoch " << e << " trial " << trial << ": "
                                 << d.error().ToString();
      auto all = testing::ReadAll(**d);
      if (none && model_at.count(e) != 0) {
        EXPECT_EQ(FirstDiff(all, model_at[e]), -1) << "epoch " << e;
      }
      if (testing::HaveQemuImg() && !none && e % qemu_every == 0) {
        auto r = testing::Run("qemu-img check -f qcow2 '" + path + "'");
        // 0: clean; 3: leaked clusters only.
        EXPECT_TRUE(r.exit_code == 0 || r.exit_code == 3)
            << "epoch " << e << " trial " << trial << ":\n"
            << r.output;
      }
      ++checked;
    }
    for (const auto& w : epochs[e]) Apply(durable, w);
  }
  EXPECT_GT(checked, 20);
  EXPECT_GE(model_at.size(), 8u);
}

}  // namespace
}  // namespace storage
