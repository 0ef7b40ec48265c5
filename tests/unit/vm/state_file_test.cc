// The state-file container and its corruption handling: every flipped byte
// and every truncation of a real state file is a kDataLoss error from
// Machine::Restore, never a crash or a half-built VM.
#include "state_file.h"

#include <gtest/gtest.h>

#include <fcntl.h>
#include <unistd.h>

#include <random>

#include "base/crc32c.h"
#include "test_guests.h"
#include "vm_fixture.h"

namespace vm {
namespace {

using testing::VmTest;

TEST(Crc32cCombineTest, EqualsTheCrcOfTheConcatenation) {
  std::mt19937 rng(7);
  std::string data(10000, '\0');
  for (auto& c : data) c = static_cast<char>(rng());
  for (size_t split : {0, 1, 7, 64, 4095, 4096, 9999, 10000}) {
    uint32_t a = base::Crc32c(data.data(), split);
    uint32_t b = base::Crc32c(data.data() + split, data.size() - split);
    EXPECT_EQ(Crc32cCombine(a, b, data.size() - split), base::Crc32c(data.data(), data.size()))
        << "split at " << split;
  }
}

class StateFileTest : public VmTest {};

TEST_F(StateFileTest, SectionsRoundTrip) {
  std::string big(300000, '\0');
  for (size_t i = 0; i < big.size(); ++i) big[i] = static_cast<char>(i * 31);
  {
    auto w = StateFileWriter::Create(Path("f"));
    ASSERT_TRUE(w) << w.error().ToString();
    ASSERT_TRUE(w->AddSection(SectionType::kDefinition, "hello"));
    ASSERT_TRUE(w->BeginSection(SectionType::kMemory));
    ASSERT_TRUE(w->Append("ab", 2));
    ASSERT_TRUE(w->Append(big.data(), big.size()));  // direct write path
    ASSERT_TRUE(w->Append("cd", 2));
    ASSERT_TRUE(w->EndSection());
    ASSERT_TRUE(w->AddSection(SectionType::kSerial, ""));
    ASSERT_TRUE(w->Commit());
  }
  EXPECT_FALSE(std::filesystem::exists(Path("f.tmp")));
  auto r = StateFileReader::Open(Path("f"));
  ASSERT_TRUE(r) << r.error().ToString();
  auto len = r->BeginSection(SectionType::kDefinition, 100);
  ASSERT_TRUE(len);
  EXPECT_EQ(*len, 5u);
  EXPECT_EQ(*r->ReadRest(), "hello");
  ASSERT_TRUE(r->EndSection());
  len = r->BeginSection(SectionType::kMemory, 1 << 20);
  ASSERT_TRUE(len);
  EXPECT_EQ(*len, big.size() + 4);
  auto body = r->ReadRest();
  ASSERT_TRUE(body);
  EXPECT_EQ(*body, "ab" + big + "cd");
  ASSERT_TRUE(r->EndSection());
  ASSERT_TRUE(r->BeginSection(SectionType::kSerial, 0));
  ASSERT_TRUE(r->EndSection());
  ASSERT_TRUE(r->Finish());
}

TEST_F(StateFileTest, UncommittedWriterLeavesNothing) {
  {
    auto w = StateFileWriter::Create(Path("f"));
    ASSERT_TRUE(w);
    ASSERT_TRUE(w->AddSection(SectionType::kDefinition, "x"));
  }
  EXPECT_FALSE(std::filesystem::exists(Path("f")));
  EXPECT_FALSE(std::filesystem::exists(Path("f.tmp")));
}

TEST_F(StateFileTest, ReaderChecksTypeOrderAndLimits) {
  {
    auto w = StateFileWriter::Create(Path("f"));
    ASSERT_TRUE(w);
    ASSERT_TRUE(w->AddSection(SectionType::kMachine, std::string(64, 'm')));
    ASSERT_TRUE(w->Commit());
  }
  auto r = StateFileReader::Open(Path("f"));
  ASSERT_TRUE(r);
  auto wrong = r->BeginSection(SectionType::kDefinition, 100);
  ASSERT_FALSE(wrong);
  EXPECT_EQ(wrong.error().code(), base::Code::kDataLoss);
  EXPECT_NE(wrong.error().message().find(Path("f")), std::string::npos);

  r = StateFileReader::Open(Path("f"));
  ASSERT_TRUE(r);
  auto too_big = r->BeginSection(SectionType::kMachine, 10);
  ASSERT_FALSE(too_big);
  EXPECT_EQ(too_big.error().code(), base::Code::kDataLoss);

  r = StateFileReader::Open(Path("f"));
  ASSERT_TRUE(r);
  ASSERT_TRUE(r->BeginSection(SectionType::kMachine, 100));
  char part[10];
  ASSERT_TRUE(r->Read(part, sizeof part));
  auto unfinished = r->EndSection();
  ASSERT_FALSE(unfinished);
  EXPECT_EQ(unfinished.error().code(), base::Code::kDataLoss);
}

// A real state file, small enough to corrupt at every byte.
class CorruptStateTest : public VmTest {
 protected:
  void SetUp() override {
    VmTest::SetUp();
    if (!ferry_test::KvmUnusableReason().empty()) return;
    options_ = Options(test_guests::kCounter, 1, 4ull << 20);
    auto m = Machine::Create(options_);
    ASSERT_TRUE(m) << m.error().ToString();
    ASSERT_TRUE((*m)->Start());
    ASSERT_TRUE(WaitFor("the counter", [&] {
      return testing::VolatileLoad64(**m, test_guests::kCounterBase) > 1000;
    }));
    ASSERT_TRUE((*m)->Pause());
    ASSERT_TRUE((*m)->SaveState(Path("good.state")));
    auto bytes = base::ReadFileToString(Path("good.state"));
    ASSERT_TRUE(bytes);
    good_ = *bytes;
  }

  // Restore from bad.state must fail with kDataLoss naming the file.
  void ExpectDataLoss(const std::string& what) {
    auto m = Machine::Restore(options_, Path("bad.state"));
    ASSERT_FALSE(m) << what << " was accepted";
    EXPECT_EQ(m.error().code(), base::Code::kDataLoss) << what << ": " << m.error().ToString();
    EXPECT_NE(m.error().message().find(Path("bad.state")), std::string::npos)
        << what << ": " << m.error().message();
  }

  base::Fd WriteBad(const std::string& contents) {
    auto fd = base::Fd::Open(Path("bad.state"), O_RDWR | O_CREAT | O_TRUNC, 0600);
    EXPECT_TRUE(fd);
    EXPECT_TRUE(base::WriteAll(fd->get(), contents.data(), contents.size()));
    return std::move(*fd);
  }

  MachineOptions options_;
  std::string good_;
};

TEST_F(CorruptStateTest, GoodFileRestores) {
  FERRY_SKIP_WITHOUT_KVM();
  auto m = Machine::Restore(options_, Path("good.state"));
  ASSERT_TRUE(m) << m.error().ToString();
}

TEST_F(CorruptStateTest, EveryFlippedByteIsDataLoss) {
  FERRY_SKIP_WITHOUT_KVM();
  ASSERT_LT(good_.size(), 256u << 10) << "state file larger than expected";
  // One file, one byte changed in place per step: rewriting the whole file
  // each time would make this test disk-bound.
  base::Fd fd = WriteBad(good_);
  for (size_t i = 0; i < good_.size(); ++i) {
    char flipped = static_cast<char>(good_[i] ^ (1 << (i % 8)));
    ASSERT_TRUE(base::PwriteAll(fd.get(), &flipped, 1, static_cast<off_t>(i)));
    ExpectDataLoss("byte " + std::to_string(i) + " flipped");
    if (HasFailure()) return;  // one report is enough
    ASSERT_TRUE(base::PwriteAll(fd.get(), &good_[i], 1, static_cast<off_t>(i)));
  }
}

TEST_F(CorruptStateTest, EveryTruncationIsDataLoss) {
  FERRY_SKIP_WITHOUT_KVM();
  base::Fd fd = WriteBad(good_);
  // Shortest last, so the file is only ever cut, never rewritten.
  for (size_t len = good_.size(); len-- > 0;) {
    ASSERT_EQ(::ftruncate(fd.get(), static_cast<off_t>(len)), 0);
    ExpectDataLoss("truncated to " + std::to_string(len) + " bytes");
    if (HasFailure()) return;
  }
}

TEST_F(CorruptStateTest, TrailingGarbageIsDataLoss) {
  FERRY_SKIP_WITHOUT_KVM();
  WriteBad(good_ + "x");
  ExpectDataLoss("one appended byte");
  WriteBad(good_ + good_);
  ExpectDataLoss("file appended to itself");
}

}  // namespace
}  // namespace vm
