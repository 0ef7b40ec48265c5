#include "daemon/inventory.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <fstream>

#include "support/temp_dir.h"

namespace appliance {
namespace {

config::VmDefinition Definition(const std::string& name) {
  config::VmDefinition d;
  d.name = name;
  d.id = config::NewUuid();
  d.program = "/opt/ferry/guests/memory-guest.bin";
  d.memory_bytes = 64ull << 20;
  d.cmdline = "ws_mib=16";
  return d;
}

class InventoryTest : public ::testing::Test {
 protected:
  ferry_test::TempDir dir_;
  Inventory inv_ = *Inventory::Open(dir_ / "root");
};

TEST_F(InventoryTest, OpenCreatesAPrivateVmsDirectory) {
  struct stat st {};
  ASSERT_EQ(::stat((dir_ / "root/vms").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0700u);
  EXPECT_EQ(Inventory::Open("relative/root").error().code(), base::Code::kInvalidArgument);
}

TEST_F(InventoryTest, CreateWritesDefinitionRuntimeAndConsole) {
  config::VmDefinition d = Definition("web1");
  ASSERT_TRUE(inv_.Create(d).has_value());
  auto loaded = inv_.LoadDefinition("web1");
  ASSERT_TRUE(loaded.has_value()) << loaded.error().ToString();
  EXPECT_EQ(*loaded, d);
  auto runtime = inv_.LoadRuntime("web1");
  ASSERT_TRUE(runtime.has_value());
  EXPECT_EQ(runtime->state, VmState::kStopped);
  struct stat st {};
  EXPECT_EQ(::stat(inv_.ConsolePath("web1").c_str(), &st), 0);
  EXPECT_EQ(inv_.Create(d).error().code(), base::Code::kAlreadyExists);
}

TEST_F(InventoryTest, ListSeesOnlyDirectoriesWithADefinition) {
  ASSERT_TRUE(inv_.Create(Definition("b")).has_value());
  ASSERT_TRUE(inv_.Create(Definition("a")).has_value());
  ::mkdir((dir_ / "root/vms/half-created").c_str(), 0700);
  auto names = inv_.ListNames();
  ASSERT_TRUE(names.has_value());
  EXPECT_EQ(*names, (std::vector<std::string>{"a", "b"}));
}

TEST_F(InventoryTest, RuntimePersists) {
  ASSERT_TRUE(inv_.Create(Definition("a")).has_value());
  RuntimeRecord r;
  r.state = VmState::kSaved;
  r.saved_state = inv_.SavedStatePath("a");
  ASSERT_TRUE(inv_.SaveRuntime("a", r).has_value());
  Inventory reopened = *Inventory::Open(dir_ / "root");
  auto back = reopened.LoadRuntime("a");
  ASSERT_TRUE(back.has_value());
  EXPECT_EQ(back->state, VmState::kSaved);
  EXPECT_EQ(back->saved_state, r.saved_state);
}

TEST_F(InventoryTest, CorruptRuntimeIsReportedNotIgnored) {
  ASSERT_TRUE(inv_.Create(Definition("a")).has_value());
  std::ofstream(inv_.RuntimePath("a")) << "{\"state\": ";
  auto r = inv_.LoadRuntime("a");
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code(), base::Code::kDataLoss);
}

TEST_F(InventoryTest, DeleteKeepsForeignFiles) {
  ASSERT_TRUE(inv_.Create(Definition("a")).has_value());
  ASSERT_TRUE(inv_.Create(Definition("b")).has_value());
  std::ofstream(inv_.VmDir("b") + "/my-disk.img") << "data";
  std::ofstream(inv_.SavedStatePath("b")) << "state";
  ASSERT_TRUE(inv_.Delete("a").has_value());
  ASSERT_TRUE(inv_.Delete("b").has_value());
  struct stat st {};
  EXPECT_NE(::stat(inv_.VmDir("a").c_str(), &st), 0);
  EXPECT_EQ(::stat((inv_.VmDir("b") + "/my-disk.img").c_str(), &st), 0);
  EXPECT_NE(::stat(inv_.SavedStatePath("b").c_str(), &st), 0);
  EXPECT_FALSE(inv_.Exists("b"));
  EXPECT_TRUE(inv_.ListNames()->empty());
  // The name can be used again.
  EXPECT_TRUE(inv_.Create(Definition("b")).has_value());
}

}  // namespace
}  // namespace appliance
