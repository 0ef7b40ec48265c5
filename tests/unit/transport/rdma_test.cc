// The RDMA availability probe. Device tests skip, saying why, on hosts
// without RDMA (like the development machines: no RDMA in their kernel).
#include "transport/rdma.h"

#include <stdlib.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <filesystem>

#include "support/temp_dir.h"

namespace transport {
namespace {

TEST(RdmaTest, ProbeTellsWhy) {
  RdmaProbe p = ProbeRdma();
  if (!p.available) {
    EXPECT_NE(p.reason.find("no RDMA devices"), std::string::npos) << p.reason;
    GTEST_SKIP() << p.reason;
  }
  EXPECT_TRUE(p.reason.empty());
}

TEST(RdmaTest, SysfsProbeCases) {
  ferry_test::TempDir temp;
  std::filesystem::path dir(temp.path());
  RdmaProbe missing = ProbeRdmaSysfs((dir / "infiniband").string());
  EXPECT_FALSE(missing.available);
  EXPECT_EQ(missing.reason, "no RDMA devices: " + (dir / "infiniband").string() +
                                " is missing (this kernel has no RDMA support)");
  std::filesystem::create_directory(dir / "infiniband");
  RdmaProbe empty = ProbeRdmaSysfs((dir / "infiniband").string());
  EXPECT_FALSE(empty.available);
  EXPECT_NE(empty.reason.find("is empty"), std::string::npos);
  std::filesystem::create_directory(dir / "infiniband" / "rxe0");
  EXPECT_TRUE(ProbeRdmaSysfs((dir / "infiniband").string()).available);
}

}  // namespace
}  // namespace transport
