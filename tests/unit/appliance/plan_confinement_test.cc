// A peer's Prepare may only place files inside the destination it names.
#include "plan/plan_confinement.h"

#include <unistd.h>

#include <functional>

#include <gtest/gtest.h>

#include "support/temp_dir.h"

namespace appliance {
namespace {

struct Fixture {
  PrepareRequest plan;
  config::VmDefinition definition;
};

Fixture Good(const std::string& dest) {
  Fixture f;
  f.plan.destination = dest;
  PreparedDisk disk;
  disk.top = dest + "/top.qcow2";
  disk.top_backing_name = "base.qcow2";
  PreparedLayer layer;
  layer.dest = dest + "/base.qcow2";
  disk.backing.push_back(layer);
  f.plan.disks.push_back(disk);
  config::DiskSpec spec;
  spec.path = disk.top;
  f.definition.disks.push_back(spec);
  return f;
}

std::string Joined(const std::vector<std::string>& v) {
  std::string out;
  for (const auto& s : v) out += s + "\n";
  return out;
}

TEST(PlanConfinementTest, APlanInsideTheDestinationPasses) {
  ferry_test::TempDir dir;
  Fixture f = Good(dir.path() + "/dest");
  EXPECT_TRUE(PlanConfinementFailures(f.plan, f.definition, dir.path() + "/root").empty());
}

TEST(PlanConfinementTest, EveryEscapeIsNamed) {
  ferry_test::TempDir dir;
  const std::string dest = dir.path() + "/dest";
  struct Case {
    std::string what;
    std::function<void(Fixture&)> spoil;
    std::string expect;
  } cases[] = {
      {"dotdot destination", [&](Fixture& f) { f.plan.destination = dest + "/../etc"; }, "without"},
      {"relative destination", [](Fixture& f) { f.plan.destination = "srv/vms"; }, "absolute"},
      {"top outside", [](Fixture& f) { f.plan.disks[0].top = "/etc/cron.d/x"; },
       "not inside the destination"},
      {"top via dotdot", [&](Fixture& f) { f.plan.disks[0].top = dest + "/../x"; },
       "not inside the destination"},
      {"layer outside", [](Fixture& f) { f.plan.disks[0].backing[0].dest = "/tmp/x"; },
       "checkpoint layer"},
      {"backing climbs out",
       [](Fixture& f) { f.plan.disks[0].top_backing_name = "../../etc/shadow"; }, "leaves"},
      {"backing absolute outside",
       [](Fixture& f) { f.plan.disks[0].top_backing_name = "/dev/sda"; }, "leaves"},
      {"rewrite outside",
       [](Fixture& f) { f.plan.disks[0].backing[0].rewrite_backing = "/dev/sda"; }, "leaves"},
      {"definition disk differs", [](Fixture& f) { f.definition.disks[0].path = "/dev/sda"; },
       "not the planned"},
      {"storage root", [&](Fixture& f) { f.plan.destination = dir.path() + "/root/vms"; },
       "storage_root"},
  };
  for (const Case& c : cases) {
    Fixture f = Good(dest);
    c.spoil(f);
    auto failures = PlanConfinementFailures(f.plan, f.definition, dir.path() + "/root");
    EXPECT_NE(Joined(failures).find(c.expect), std::string::npos) << c.what << ":\n"
                                                                  << Joined(failures);
  }
}

TEST(PlanConfinementTest, ASymlinkedDestinationIsRefused) {
  ferry_test::TempDir dir;
  ASSERT_EQ(::symlink("/etc", (dir.path() + "/link").c_str()), 0);
  Fixture f = Good(dir.path() + "/link/sub");
  EXPECT_NE(Joined(PlanConfinementFailures(f.plan, f.definition, dir.path() + "/root"))
                .find("symbolic link"),
            std::string::npos);
}

}  // namespace
}  // namespace appliance
