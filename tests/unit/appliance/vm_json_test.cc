#include "daemon/vm_json.h"
#include "config/names.h"
#include "config/size.h"

#include <gtest/gtest.h>

namespace appliance {
namespace {

using nlohmann::json;

TEST(VmJsonTest, CreateRequestWithGuestName) {
  auto r = ParseCreateRequest(json{{"name", "web1"},
                                   {"guest", "memory"},
                                   {"memory_bytes", 64ull << 20},
                                   {"vcpus", 2},
                                   {"cmdline", "ws_mib=16"}});
  ASSERT_TRUE(r.has_value()) << r.error().ToString();
  EXPECT_EQ(r->guest, "memory");
  EXPECT_EQ(r->definition.name, "web1");
  EXPECT_EQ(r->definition.memory_bytes, 64ull << 20);
  EXPECT_EQ(r->definition.vcpus, 2u);
  EXPECT_EQ(r->definition.cmdline, "ws_mib=16");
  EXPECT_TRUE(r->definition.program.empty());
}

TEST(VmJsonTest, CreateRequestWithProgramAndDisks) {
  auto r = ParseCreateRequest(json::parse(R"({"name":"db","program":"/opt/p.bin","disks":[
      {"path":"/d/a.img"},{"path":"/d/b.qcow2","format":"qcow2","read_only":true}]})"));
  ASSERT_TRUE(r.has_value()) << r.error().ToString();
  EXPECT_EQ(r->definition.program, "/opt/p.bin");
  ASSERT_EQ(r->definition.disks.size(), 2u);
  EXPECT_EQ(r->definition.disks[0].format, config::DiskFormat::kRaw);
  EXPECT_FALSE(r->definition.disks[0].read_only);
  EXPECT_EQ(r->definition.disks[1].format, config::DiskFormat::kQcow2);
  EXPECT_TRUE(r->definition.disks[1].read_only);
}

TEST(VmJsonTest, CreateRequestErrorsNameTheProblem) {
  struct Case {
    const char* body;
    const char* expect;
  } cases[] = {
      {R"([])", "JSON object"},
      {R"({"guest":"memory"})", "\"name\" is required"},
      {R"({"name":"a"})", "exactly one of"},
      {R"({"name":"a","guest":"memory","program":"/p"})", "exactly one of"},
      {R"({"name":"a","guest":"memory","memroy_bytes":1})", "unknown member \"memroy_bytes\""},
      {R"({"name":"a","guest":"memory","memory_bytes":"256M"})", "memory_bytes"},
      {R"({"name":"a","guest":"memory","vcpus":-1})", "vcpus"},
      {R"({"name":"a","guest":"Memory"})", "invalid guest name"},
      {R"({"name":"../etc","guest":"memory"})", "invalid vm name"},
      {R"({"name":"a","guest":"memory","disks":{}})", "must be an array"},
      {R"({"name":"a","guest":"memory","disks":[{"format":"raw"}]})",
       "disks[0]: \"path\" is required"},
      {R"({"name":"a","guest":"memory","disks":[{"path":"/x","format":"vhd"}]})",
       "disks[0]: format"},
      {R"({"name":"a","guest":"memory","disks":[{"path":"/x","ro":true}]})",
       "unknown member \"ro\""},
  };
  for (const Case& c : cases) {
    auto r = ParseCreateRequest(json::parse(c.body));
    ASSERT_FALSE(r.has_value()) << c.body;
    EXPECT_EQ(r.error().code(), base::Code::kInvalidArgument) << c.body;
    EXPECT_NE(r.error().message().find(c.expect), std::string::npos)
        << c.body << " -> " << r.error().message();
  }
}

TEST(VmJsonTest, VmNames) {
  for (const char* good :
       {"a", "web-1", "A.b_c", "x123456789012345678901234567890123456789012345678901234567890123"})
    EXPECT_TRUE(config::ValidateVmName(good).has_value()) << good;
  for (const char* bad : {"", ".", "..", ".hidden", "a/b", "a b", "ü",
                          "x1234567890123456789012345678901234567890123456789012345678901234"})
    EXPECT_FALSE(config::ValidateVmName(bad).has_value()) << bad;
}

TEST(VmJsonTest, DefinitionToJsonHasEveryField) {
  config::VmDefinition d;
  d.name = "web1";
  d.id = "6f1c0f0e-8d3b-4f5a-9c2e-1b7d4e9a0c35";
  d.vcpus = 2;
  d.memory_bytes = 1ull << 30;
  d.program = "/p.bin";
  d.cmdline = "x=1";
  d.disks.push_back({"/d.img", config::DiskFormat::kRaw, true});
  json j = DefinitionToJson(d);
  EXPECT_EQ(j["name"], "web1");
  EXPECT_EQ(j["id"], d.id);
  EXPECT_EQ(j["vcpus"], 2);
  EXPECT_EQ(j["memory_bytes"], 1ull << 30);
  EXPECT_EQ(j["program"], "/p.bin");
  EXPECT_EQ(j["cmdline"], "x=1");
  EXPECT_EQ(j["config_version"], config::kVmConfigVersion);
  EXPECT_EQ(j["disks"][0]["path"], "/d.img");
  EXPECT_EQ(j["disks"][0]["format"], "raw");
  EXPECT_EQ(j["disks"][0]["read_only"], true);
}

TEST(VmJsonTest, Sizes) {
  EXPECT_EQ(*config::ParseSize("4096"), 4096u);
  EXPECT_EQ(*config::ParseSize("256M"), 256ull << 20);
  EXPECT_EQ(*config::ParseSize("256m"), 256ull << 20);
  EXPECT_EQ(*config::ParseSize("1G"), 1ull << 30);
  EXPECT_EQ(*config::ParseSize("512MiB"), 512ull << 20);
  EXPECT_EQ(*config::ParseSize("2T"), 2ull << 40);
  for (const char* bad : {"", "M", "1.5G", "-1", "12X", "99999999999999999999", "17179869184T"})
    EXPECT_FALSE(config::ParseSize(bad).has_value()) << bad;
  EXPECT_EQ(config::FormatSize(256ull << 20), "256 MiB");
  EXPECT_EQ(config::FormatSize(1ull << 30), "1 GiB");
  EXPECT_EQ(config::FormatSize(1536ull << 20), "1536 MiB");
  EXPECT_EQ(config::FormatSize(1000), "1000 B");
}

}  // namespace
}  // namespace appliance
