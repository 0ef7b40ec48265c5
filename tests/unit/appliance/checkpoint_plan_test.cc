// The checkpoint chain logic (checkpoint_plan.h) and the CLI's checkpoint
// commands: pure, no files.
#include "plan/checkpoint_plan.h"

#include <gtest/gtest.h>

#include <set>

#include "cli/cli_args.h"
#include "cli/cli_checkpoints.h"
#include "daemon/router.h"

namespace appliance {
namespace {

using config::DiskFormat;

config::VmDefinition TwoDisks() {
  config::VmDefinition vm;
  vm.name = "web1";
  vm.id = "6f1c0f0e-8d3b-4f5a-9c2e-1b7d4e9a0c35";
  vm.program = "/p.bin";
  vm.disks.push_back({"root.img", DiskFormat::kRaw, false});
  vm.disks.push_back({"/srv/tools.qcow2", DiskFormat::kQcow2, true});
  return vm;
}

FileExists None() {
  return [](const std::string&) { return false; };
}

// Applies a create plan, as ferryd would once the files exist.
config::VmDefinition Create(const config::VmDefinition& vm, const std::string& name,
                            int64_t t = 1) {
  auto plan = PlanCreateCheckpoint(vm, name, t, None());
  EXPECT_TRUE(plan.has_value()) << plan.error().ToString();
  return plan ? plan->after : vm;
}

TEST(CheckpointPlanTest, CreateFreezesTheTopUnderANewOverlay) {
  auto plan = PlanCreateCheckpoint(TwoDisks(), "base", 1000, None());
  ASSERT_TRUE(plan.has_value()) << plan.error().ToString();
  ASSERT_EQ(plan->overlays.size(), 1u) << "the read-only disk takes no part";
  EXPECT_EQ(plan->overlays[0].disk, 0u);
  EXPECT_EQ(plan->overlays[0].path, "root.base.qcow2");
  EXPECT_EQ(plan->overlays[0].backing, "root.img");
  EXPECT_EQ(plan->overlays[0].backing_name, "root.img");
  const config::VmDefinition& after = plan->after;
  EXPECT_EQ(after.disks[0].path, "root.base.qcow2");
  EXPECT_EQ(after.disks[0].format, DiskFormat::kQcow2);
  EXPECT_EQ(after.disks[1].path, "/srv/tools.qcow2");
  ASSERT_EQ(after.checkpoints.size(), 1u);
  EXPECT_EQ(after.checkpoints[0].name, "base");
  EXPECT_EQ(after.checkpoints[0].created_unix_ms, 1000);
  EXPECT_EQ(after.checkpoints[0].parent, "");
  EXPECT_EQ(after.checkpoints[0].layers,
            (std::vector<std::string>{"root.img", "/srv/tools.qcow2"}));
  EXPECT_EQ(after.current_checkpoint, "base");

  // The next one builds on it; names stay short (the stem of the original).
  auto second = PlanCreateCheckpoint(after, "update", 2000, None());
  ASSERT_TRUE(second.has_value());
  EXPECT_EQ(second->overlays[0].path, "root.update.qcow2");
  EXPECT_EQ(second->overlays[0].backing_name, "root.base.qcow2");
  EXPECT_EQ(second->after.checkpoints[1].parent, "base");
  EXPECT_EQ(second->after.checkpoints[1].layers[0], "root.base.qcow2");
}

TEST(CheckpointPlanTest, OverlaysStayNextToTheirBackingAndPickFreeNames) {
  config::VmDefinition vm = TwoDisks();
  vm.disks[0].path = "/data/vms/db.raw";
  std::set<std::string> on_disk = {"/data/vms/db.a.qcow2", "/data/vms/db.a-2.qcow2"};
  auto plan =
      PlanCreateCheckpoint(vm, "a", 1, [&](const std::string& p) { return on_disk.count(p) != 0; });
  ASSERT_TRUE(plan.has_value());
  EXPECT_EQ(plan->overlays[0].path, "/data/vms/db.a-3.qcow2");
  EXPECT_EQ(plan->overlays[0].backing_name, "db.raw");
}

TEST(CheckpointPlanTest, CreateErrors) {
  config::VmDefinition vm = Create(TwoDisks(), "a");
  auto dup = PlanCreateCheckpoint(vm, "a", 1, None());
  ASSERT_FALSE(dup.has_value());
  EXPECT_EQ(dup.error().code(), base::Code::kAlreadyExists);
  EXPECT_EQ(dup.error().message(), "vm web1 already has a checkpoint named a");
  for (const char* bad : {"", ".", "..", ".x", "a/b", "a b"}) {
    auto r = PlanCreateCheckpoint(vm, bad, 1, None());
    ASSERT_FALSE(r.has_value()) << bad;
    EXPECT_EQ(r.error().code(), base::Code::kInvalidArgument) << bad;
  }
  config::VmDefinition ro = TwoDisks();
  ro.disks.erase(ro.disks.begin());
  auto none = PlanCreateCheckpoint(ro, "a", 1, None());
  ASSERT_FALSE(none.has_value());
  EXPECT_EQ(none.error().code(), base::Code::kFailedPrecondition);
  // The chain depth is bounded (qcow2 chains are at most 32 files).
  config::VmDefinition deep = TwoDisks();
  for (size_t i = 0; i < config::kMaxCheckpointDepth; ++i)
    deep = Create(deep, "c" + std::to_string(i));
  auto too_deep = PlanCreateCheckpoint(deep, "one-more", 1, None());
  ASSERT_FALSE(too_deep.has_value());
  EXPECT_EQ(too_deep.error().code(), base::Code::kFailedPrecondition);
}

TEST(CheckpointPlanTest, ApplyPutsAFreshOverlayOnTheLayerAndDropsTheOldTop) {
  config::VmDefinition vm =
      Create(Create(TwoDisks(), "a"), "b");  // root.img <- root.a <- root.b (top)
  auto plan = PlanApplyCheckpoint(vm, "a", None());
  ASSERT_TRUE(plan.has_value()) << plan.error().ToString();
  ASSERT_EQ(plan->overlays.size(), 1u);
  EXPECT_EQ(plan->overlays[0].backing, "root.img");
  // root.a.qcow2 is b's layer, so the new overlay takes the next free name.
  EXPECT_EQ(plan->overlays[0].path, "root.a-2.qcow2");
  EXPECT_EQ(plan->remove, std::vector<std::string>{"root.b.qcow2"});
  EXPECT_EQ(plan->after.current_checkpoint, "a");
  EXPECT_EQ(plan->after.disks[0].path, "root.a-2.qcow2");
  EXPECT_EQ(plan->after.checkpoints.size(), 2u) << "applying keeps every checkpoint";

  auto unknown = PlanApplyCheckpoint(vm, "zz", None());
  ASSERT_FALSE(unknown.has_value());
  EXPECT_EQ(unknown.error().code(), base::Code::kNotFound);
  EXPECT_EQ(unknown.error().message(), "vm web1 has no checkpoint named zz");
}

TEST(CheckpointPlanTest, DeleteMiddleMergesIntoItsChild) {
  config::VmDefinition vm = Create(Create(Create(TwoDisks(), "a"), "b"), "c");
  // root.img (a) <- root.a (b) <- root.b (c) <- root.c (top)
  auto plan = PlanDeleteCheckpoint(vm, "b");
  ASSERT_TRUE(plan.has_value()) << plan.error().ToString();
  ASSERT_EQ(plan->merges.size(), 1u);
  const LayerMerge& m = plan->merges[0];
  EXPECT_EQ(m.layer, "root.a.qcow2");
  ASSERT_EQ(m.children.size(), 1u);
  EXPECT_EQ(m.children[0].path, "root.b.qcow2");
  EXPECT_FALSE(m.children[0].is_top);
  EXPECT_TRUE(m.children[0].in_running_chain);
  ASSERT_EQ(plan->after.checkpoints.size(), 2u);
  EXPECT_EQ(plan->after.checkpoints[1].name, "c");
  EXPECT_EQ(plan->after.checkpoints[1].parent, "a");
  EXPECT_EQ(plan->after.current_checkpoint, "c");
  EXPECT_EQ(plan->after.disks[0].path, "root.c.qcow2") << "the files keep their names";
}

TEST(CheckpointPlanTest, DeleteCurrentMergesIntoTheTop) {
  config::VmDefinition vm = Create(Create(TwoDisks(), "a"), "b");
  auto plan = PlanDeleteCheckpoint(vm, "b");
  ASSERT_TRUE(plan.has_value());
  const LayerMerge& m = plan->merges[0];
  EXPECT_EQ(m.layer, "root.a.qcow2");
  ASSERT_EQ(m.children.size(), 1u);
  EXPECT_EQ(m.children[0].path, "root.b.qcow2");
  EXPECT_TRUE(m.children[0].is_top);
  EXPECT_EQ(plan->after.current_checkpoint, "a");
  // The root: nothing below it, the checkpoint list ends empty.
  config::VmDefinition one = Create(TwoDisks(), "a");
  auto root = PlanDeleteCheckpoint(one, "a");
  ASSERT_TRUE(root.has_value()) << root.error().ToString();
  EXPECT_EQ(root->merges[0].layer, "root.img");
  EXPECT_TRUE(root->after.checkpoints.empty());
  EXPECT_EQ(root->after.current_checkpoint, "");
  EXPECT_EQ(root->after.disks[0].path, "root.a.qcow2");
}

TEST(CheckpointPlanTest, DeleteInATreeStreamsIntoEveryChild) {
  // a <- b <- top, then apply a: a has children b and the new top.
  config::VmDefinition vm = Create(Create(TwoDisks(), "a"), "b");
  auto applied = PlanApplyCheckpoint(vm, "a", None());
  ASSERT_TRUE(applied.has_value());
  vm = applied->after;
  auto plan = PlanDeleteCheckpoint(vm, "a");
  ASSERT_TRUE(plan.has_value()) << plan.error().ToString();
  const LayerMerge& m = plan->merges[0];
  ASSERT_EQ(m.children.size(), 2u);
  EXPECT_EQ(m.children[0].path, "root.a.qcow2");  // b's layer: a side branch now
  EXPECT_FALSE(m.children[0].in_running_chain);
  EXPECT_TRUE(m.children[1].is_top);
  EXPECT_EQ(plan->after.checkpoints[0].parent, "");
  // A leaf that is not current: nothing builds on it.
  auto leaf = PlanDeleteCheckpoint(vm, "b");
  ASSERT_TRUE(leaf.has_value());
  EXPECT_TRUE(leaf->merges[0].children.empty());
  EXPECT_EQ(leaf->after.current_checkpoint, "a");
}

TEST(CheckpointPlanTest, LineageFollowsParents) {
  config::VmDefinition vm = Create(Create(Create(TwoDisks(), "a"), "b"), "c");
  EXPECT_EQ(CheckpointLineage(vm, "c"), (std::vector<std::string>{"c", "b", "a"}));
  EXPECT_TRUE(CheckpointLineage(vm, "").empty());
}

std::string Cwd() { return "/home/admin"; }

TEST(CheckpointCliTest, ParsesEveryCommand) {
  auto create =
      ParseCommandLine({"vm", "checkpoint", "create", "web1", "before-update"}, nullptr, Cwd());
  ASSERT_TRUE(create.has_value()) << create.error().ToString();
  EXPECT_EQ(create->command, CliCommand::kCheckpointCreate);
  EXPECT_EQ(create->method, "POST");
  EXPECT_EQ(create->path, "/v1/vms/web1/checkpoints");
  EXPECT_EQ(create->body, (nlohmann::json{{"name", "before-update"}}));

  auto list = ParseCommandLine({"--json", "vm", "checkpoint", "list", "web1"}, nullptr, Cwd());
  ASSERT_TRUE(list.has_value());
  EXPECT_EQ(list->command, CliCommand::kCheckpointList);
  EXPECT_EQ(list->method, "GET");
  EXPECT_TRUE(list->json_output);

  auto apply =
      ParseCommandLine({"vm", "checkpoint", "apply", "web1", "a", "--force"}, nullptr, Cwd());
  ASSERT_TRUE(apply.has_value());
  EXPECT_EQ(apply->path, "/v1/vms/web1/checkpoints/a/apply");
  EXPECT_EQ(apply->body, (nlohmann::json{{"force", true}}));
  auto apply2 = ParseCommandLine({"vm", "checkpoint", "apply", "web1", "a"}, nullptr, Cwd());
  ASSERT_TRUE(apply2.has_value());
  EXPECT_EQ(apply2->body, (nlohmann::json{{"force", false}}));

  auto del = ParseCommandLine({"vm", "checkpoint", "delete", "web1", "a"}, nullptr, Cwd());
  ASSERT_TRUE(del.has_value());
  EXPECT_EQ(del->method, "DELETE");
  EXPECT_EQ(del->path, "/v1/vms/web1/checkpoints/a");
}

TEST(CheckpointCliTest, UsageErrors) {
  for (const auto& args :
       std::vector<std::vector<std::string>>{{"vm", "checkpoint"},
                                             {"vm", "checkpoint", "frob", "web1"},
                                             {"vm", "checkpoint", "create", "web1"},
                                             {"vm", "checkpoint", "list", "web1", "extra"},
                                             {"vm", "checkpoint", "create", "web1", ".."},
                                             {"vm", "checkpoint", "create", "web1", "a", "--force"},
                                             {"vm", "checkpoint", "list", ".hidden"}}) {
    auto r = ParseCommandLine(args, nullptr, Cwd());
    EXPECT_FALSE(r.has_value()) << args.back();
  }
}

TEST(CheckpointCliTest, Routes) {
  Route r = MatchRoute("GET", "/v1/vms/web1/checkpoints");
  EXPECT_EQ(r.id, RouteId::kListCheckpoints);
  EXPECT_EQ(r.name, "web1");
  EXPECT_EQ(MatchRoute("POST", "/v1/vms/web1/checkpoints").id, RouteId::kCreateCheckpoint);
  r = MatchRoute("DELETE", "/v1/vms/web1/checkpoints/a");
  EXPECT_EQ(r.id, RouteId::kDeleteCheckpoint);
  EXPECT_EQ(r.checkpoint, "a");
  EXPECT_EQ(MatchRoute("GET", "/v1/vms/web1/checkpoints/a").id, RouteId::kGetCheckpoint);
  r = MatchRoute("POST", "/v1/vms/web1/checkpoints/a/apply");
  EXPECT_EQ(r.id, RouteId::kApplyCheckpoint);
  EXPECT_EQ(r.checkpoint, "a");
  r = MatchRoute("GET", "/v1/vms/web1/checkpoints/a/apply");
  EXPECT_EQ(r.id, RouteId::kMethodNotAllowed);
  EXPECT_EQ(r.allow, "POST");
  EXPECT_EQ(MatchRoute("PUT", "/v1/vms/web1/checkpoints").allow, "GET, POST");
  EXPECT_EQ(MatchRoute("GET", "/v1/vms/web1/checkpoints/a/b").id, RouteId::kNotFound);
}

TEST(CheckpointCliTest, HumanOutput) {
  nlohmann::json list = {
      {"vm", "web1"},
      {"current_checkpoint", "b"},
      {"checkpoints",
       {{{"name", "a"}, {"created_unix_ms", 0}, {"parent", ""}, {"current", false}},
        {{"name", "b"}, {"created_unix_ms", 1763770000000}, {"parent", "a"}, {"current", true}}}}};
  EXPECT_EQ(FormatCheckpointList(list),
            "   NAME  CREATED                  PARENT\n"
            "   a     1970-01-01 00:00:00 UTC  -\n"
            "*  b     2025-11-22 00:06:40 UTC  a\n"
            "* the disks build on b (changes since then are in the writable tops)\n");
  EXPECT_EQ(FormatCheckpointList({{"vm", "x"}, {"checkpoints", nlohmann::json::array()}}),
            "vm x has no checkpoints\n");
  CliInvocation inv;
  inv.vm_name = "web1";
  inv.checkpoint = "a";
  inv.command = CliCommand::kCheckpointApply;
  EXPECT_EQ(FormatCheckpointResult(inv, {{"vm", {{"state", "stopped"}}}}),
            "vm web1: checkpoint a applied; the vm is stopped\n");
  inv.command = CliCommand::kCheckpointDelete;
  EXPECT_EQ(FormatCheckpointResult(inv, {{"kept_files", {"/srv/root.img"}}}),
            "vm web1: checkpoint a deleted\n  kept /srv/root.img (no longer used by the vm)\n");
}

}  // namespace
}  // namespace appliance
