#include "config/vm_definition.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <regex>
#include <set>

#include "support/temp_dir.h"

namespace config {
namespace {

using base::Code;

constexpr char kId[] = "6f1c0f0e-8d3b-4f5a-9c2e-1b7d4e9a0c35";

// The smallest valid file, plus `extra` lines.
std::string Minimal(std::string_view extra = "") {
  return std::string("config_version = 1\nname = \"web1\"\nid = \"") + kId +
         "\"\nprogram = \"counter.bin\"\n" + std::string(extra);
}

void ExpectError(const std::string& text, std::string_view message) {
  auto r = ParseVmDefinition(text, "vm.toml");
  ASSERT_FALSE(r.has_value()) << "accepted:\n" << text;
  EXPECT_EQ(r.error().code(), Code::kInvalidArgument);
  EXPECT_EQ(r.error().message(), message) << "for:\n" << text;
}

TEST(VmDefinitionTest, MinimalGetsDefaults) {
  auto r = ParseVmDefinition(Minimal(), "vm.toml");
  ASSERT_TRUE(r.has_value()) << r.error().ToString();
  EXPECT_EQ(r->config_version, kVmConfigVersion);
  EXPECT_EQ(r->name, "web1");
  EXPECT_EQ(r->id, kId);
  EXPECT_EQ(r->vcpus, 1u);
  EXPECT_EQ(r->memory_bytes, 256ull << 20);
  EXPECT_FALSE(r->processor_compatibility);
  EXPECT_EQ(r->program, "counter.bin");
  EXPECT_EQ(r->cmdline, "");
  EXPECT_TRUE(r->disks.empty());
  EXPECT_TRUE(ValidateVmDefinition(*r, "vm.toml").has_value());
}

TEST(VmDefinitionTest, FullFile) {
  auto r = ParseVmDefinition(Minimal(R"(vcpus = 8
memory = "1G"
processor_compatibility = true
cmdline = "rounds=10 verbose"

[[disks]]
path = "/srv/vms/web1/root.img"
format = "qcow2"
read_only = true

[[disks]]
path = "data.img"
)"),
                             "vm.toml");
  ASSERT_TRUE(r.has_value()) << r.error().ToString();
  EXPECT_EQ(r->vcpus, 8u);
  EXPECT_EQ(r->memory_bytes, 1ull << 30);
  EXPECT_TRUE(r->processor_compatibility);
  EXPECT_EQ(r->cmdline, "rounds=10 verbose");
  ASSERT_EQ(r->disks.size(), 2u);
  EXPECT_EQ(r->disks[0].path, "/srv/vms/web1/root.img");
  EXPECT_EQ(r->disks[0].format, DiskFormat::kQcow2);
  EXPECT_TRUE(r->disks[0].read_only);
  EXPECT_EQ(r->disks[1].path, "data.img");
  EXPECT_EQ(r->disks[1].format, DiskFormat::kRaw);
  EXPECT_FALSE(r->disks[1].read_only);
}

TEST(VmDefinitionTest, SyntaxErrorNamesFileLineAndColumn) {
  auto r = ParseVmDefinition("config_version = 1\nname = \"unterminated\n", "vm.toml");
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code(), Code::kInvalidArgument);
  EXPECT_EQ(r.error().message().rfind("vm.toml: line 2, column ", 0), 0u) << r.error().message();
}

TEST(VmDefinitionTest, ConfigVersion) {
  ExpectError("name = \"a\"\n",
              "vm.toml: config_version: is required; this host supports config_version 1 only");
  ExpectError("config_version = 2\n",
              "vm.toml: config_version: version 2 is not supported; this host supports "
              "config_version 1 only");
  ExpectError("config_version = 0\n",
              "vm.toml: config_version: version 0 is not supported; this host supports "
              "config_version 1 only");
  ExpectError("config_version = \"1\"\n", "vm.toml: config_version: must be an integer, got \"1\"");
  // A future version is reported as such even if it has keys we do not know.
  ExpectError("config_version = 7\nnew_feature = true\n",
              "vm.toml: config_version: version 7 is not supported; this host supports "
              "config_version 1 only");
}

TEST(VmDefinitionTest, Name) {
  const std::string rule =
      "must be 1 to 64 characters from A-Z, a-z, 0-9, '.', '_' and '-', not starting with '.'";
  ExpectError("config_version = 1\n", "vm.toml: name: is required");
  // "." and ".." would become directory names; other dot names hidden files.
  for (std::string bad :
       {std::string(""), std::string("web 1"), std::string("web/1"), std::string("wéb"),
        std::string(65, 'a'), std::string("."), std::string(".."), std::string(".web1")}) {
    ExpectError("config_version = 1\nname = \"" + bad + "\"\n",
                "vm.toml: name: " + rule + ", got \"" + bad + "\"");
  }
  ExpectError("config_version = 1\nname = 5\n", "vm.toml: name: must be a string, got 5");
  std::string longest(64, 'z');
  auto r = ParseVmDefinition(std::regex_replace(Minimal(), std::regex("web1"), longest), "vm");
  ASSERT_TRUE(r.has_value()) << r.error().ToString();
  EXPECT_EQ(r->name, longest);
  auto dotted =
      ParseVmDefinition(std::regex_replace(Minimal(), std::regex("web1"), "A.b_c-9"), "v");
  EXPECT_TRUE(dotted.has_value());
}

TEST(VmDefinitionTest, Id) {
  std::string head = "config_version = 1\nname = \"a\"\n";
  ExpectError(head, "vm.toml: id: is required");
  for (std::string bad :
       {"", "6f1c0f0e8d3b4f5a9c2e1b7d4e9a0c35", "6f1c0f0e-8d3b-4f5a-9c2e-1b7d4e9a0c3",
        "6f1c0f0e-8d3b-4f5a-9c2e-1b7d4e9a0c3g", "{6f1c0f0e-8d3b-4f5a-9c2e-1b7d4e9a0c3}"}) {
    ExpectError(
        head + "id = \"" + bad + "\"\n",
        "vm.toml: id: must be a UUID like \"6f1c0f0e-8d3b-4f5a-9c2e-1b7d4e9a0c35\", got \"" + bad +
            "\"");
  }
  // Upper case is accepted and stored in canonical lower case.
  auto r = ParseVmDefinition(
      head + "id = \"6F1C0F0E-8D3B-4F5A-9C2E-1B7D4E9A0C35\"\nprogram = \"p\"\n", "vm.toml");
  ASSERT_TRUE(r.has_value()) << r.error().ToString();
  EXPECT_EQ(r->id, kId);
}

TEST(VmDefinitionTest, Vcpus) {
  for (std::string bad : {"0", "9", "-1", "\"2\"", "1.0", "true"}) {
    ExpectError(Minimal("vcpus = " + bad + "\n"),
                "vm.toml: vcpus: must be an integer from 1 to 8, got " + bad);
  }
}

TEST(VmDefinitionTest, MemoryForms) {
  struct Case {
    const char* value;
    uint64_t bytes;
  };
  for (auto [value, bytes] :
       {Case{"\"256M\"", 256ull << 20}, Case{"\"1G\"", 1ull << 30}, Case{"\"4M\"", 4ull << 20},
        Case{"\"3328M\"", 3328ull << 20}, Case{"\"512MiB\"", 512ull << 20},
        Case{"\"3g\"", 3ull << 30}, Case{"\"4096K\"", 4ull << 20}, Case{"268435456", 256ull << 20},
        Case{"\"268435456\"", 256ull << 20}, Case{"\"256MB\"", 256ull << 20},
        Case{"\"1gb\"", 1ull << 30}, Case{"\"268435456B\"", 256ull << 20}}) {
    auto r = ParseVmDefinition(Minimal(std::string("memory = ") + value + "\n"), "vm.toml");
    ASSERT_TRUE(r.has_value()) << value << ": " << r.error().ToString();
    EXPECT_EQ(r->memory_bytes, bytes) << value;
  }
}

TEST(VmDefinitionTest, MemoryInvalid) {
  const std::string form = "must be a size like \"256M\" or \"1G\", or a number of bytes";
  const std::string range = "must be a multiple of 2 MiB from 4 MiB to 3328 MiB";
  for (std::string bad : {"\"1.5G\"", "\"G\"", "\"1X\"", "\"1 G\"", "\"-1G\"", "\"1GiBs\"",
                          "-2097152", "true", "\"99999999999999999999G\"", "\"17179869184G\""}) {
    ExpectError(Minimal("memory = " + bad + "\n"), "vm.toml: memory: " + form + ", got " + bad);
  }
  for (std::string bad : {"\"1M\"", "\"2M\"", "\"3M\"", "0", "2097153", "\"0\"", "\"3327M\""}) {
    ExpectError(Minimal("memory = " + bad + "\n"), "vm.toml: memory: " + range + ", got " + bad);
  }
}

// The VMM maps guest RAM from address 0 up to its device window at 0xd0000000,
// so config refuses more than that, saying why (a host has far more RAM).
TEST(VmDefinitionTest, MemoryAboveTheVmmLimitSaysWhy) {
  EXPECT_EQ(kMaxVmMemoryBytes, 3328ull << 20);
  EXPECT_EQ(kMaxVmMemoryBytes, kVmMmioWindowGpa);
  const std::string why =
      "must be at most 3328 MiB: guest RAM is one block from address 0 and must end below the "
      "VMM's device (MMIO) window at 0xd0000000";
  for (std::string bad : {"\"3330M\"", "\"4G\"", "\"64G\"", "\"65G\"", "3491758080", "\"1T\""}) {
    ExpectError(Minimal("memory = " + bad + "\n"), "vm.toml: memory: " + why + ", got " + bad);
  }
  auto r = ParseVmDefinition(Minimal("memory = 3489660928\n"), "vm.toml");  // exactly 3328 MiB
  ASSERT_TRUE(r.has_value()) << r.error().ToString();
  EXPECT_EQ(r->memory_bytes, kMaxVmMemoryBytes);
  VmDefinition vm = *r;
  vm.memory_bytes = kMaxVmMemoryBytes + (2ull << 20);
  auto st = ValidateVmDefinition(vm, "src");
  ASSERT_FALSE(st.has_value());
  EXPECT_EQ(st.error().code(), Code::kInvalidArgument);
  EXPECT_EQ(st.error().message(), "src: memory: " + why + ", got 3491758080");
}

TEST(VmDefinitionTest, ProcessorCompatibility) {
  ExpectError(Minimal("processor_compatibility = \"no\"\n"),
              "vm.toml: processor_compatibility: must be true or false, got \"no\"");
}

TEST(VmDefinitionTest, Program) {
  ExpectError("config_version = 1\nname = \"a\"\nid = \"" + std::string(kId) + "\"\n",
              "vm.toml: program: is required");
  ExpectError(
      "config_version = 1\nname = \"a\"\nid = \"" + std::string(kId) + "\"\nprogram = \"\"\n",
      "vm.toml: program: must not be empty, got \"\"");
  ExpectError("config_version = 1\nname = \"a\"\nid = \"" + std::string(kId) + "\"\nprogram = 1\n",
              "vm.toml: program: must be a string, got 1");
}

TEST(VmDefinitionTest, Cmdline) {
  auto ok = ParseVmDefinition(Minimal("cmdline = \"" + std::string(2047, 'c') + "\"\n"), "vm.toml");
  ASSERT_TRUE(ok.has_value()) << ok.error().ToString();
  EXPECT_EQ(ok->cmdline.size(), 2047u);
  ExpectError(Minimal("cmdline = \"" + std::string(2048, 'c') + "\"\n"),
              "vm.toml: cmdline: must be shorter than 2048 bytes, got 2048 bytes");
  ExpectError(Minimal("cmdline = \"a\\u0000b\"\n"),
              "vm.toml: cmdline: must not contain NUL characters");
  ExpectError(Minimal("cmdline = [\"a\"]\n"), "vm.toml: cmdline: must be a string, got [\"a\"]");
}

TEST(VmDefinitionTest, Disks) {
  ExpectError(Minimal("disks = \"a.img\"\n"),
              "vm.toml: disks: must be an array of tables ([[disks]] sections), got \"a.img\"");
  ExpectError(Minimal("disks = [1]\n"),
              "vm.toml: disks: must be an array of tables ([[disks]] sections), got [1]");
  ExpectError(Minimal("disks = [{ path = \"a\" }, 2]\n"),
              "vm.toml: disks: must be an array of tables ([[disks]] sections), got [a table, 2]");
  auto none = ParseVmDefinition(Minimal("disks = []\n"), "vm.toml");
  ASSERT_TRUE(none.has_value()) << none.error().ToString();
  EXPECT_TRUE(none->disks.empty());
  ExpectError(Minimal("[[disks]]\nformat = \"raw\"\n"), "vm.toml: disks[0].path: is required");
  ExpectError(Minimal("[[disks]]\npath = \"\"\n"),
              "vm.toml: disks[0].path: must not be empty, got \"\"");
  ExpectError(Minimal("[[disks]]\npath = \"a\"\n[[disks]]\npath = \"b\"\nformat = \"vhdx\"\n"),
              "vm.toml: disks[1].format: must be one of \"raw\", \"qcow2\", got \"vhdx\"");
  ExpectError(Minimal("[[disks]]\npath = \"a\"\nread_only = \"yes\"\n"),
              "vm.toml: disks[0].read_only: must be true or false, got \"yes\"");
  ExpectError(Minimal("[[disks]]\npath = \"a\"\nreadonly = true\n"),
              "vm.toml: disks[0].readonly: unknown key (did you mean \"read_only\"?)");
  ExpectError(Minimal("[[disks]]\npath = \"a\"\n[[disks]]\npath = \"a\"\n"),
              "vm.toml: disks[1].path: the same file as disks[0], got \"a\"");
  std::string five;
  for (int i = 0; i < 5; ++i) five += "[[disks]]\npath = \"d" + std::to_string(i) + "\"\n";
  ExpectError(Minimal(five), "vm.toml: disks: at most 4 disks are allowed, got 5");
  std::string four;
  for (int i = 0; i < 4; ++i) four += "[[disks]]\npath = \"d" + std::to_string(i) + "\"\n";
  auto r = ParseVmDefinition(Minimal(four), "vm.toml");
  ASSERT_TRUE(r.has_value()) << r.error().ToString();
  EXPECT_EQ(r->disks.size(), 4u);
}

TEST(VmDefinitionTest, UnknownKeys) {
  ExpectError(Minimal("vcpu = 2\n"), "vm.toml: vcpu: unknown key (did you mean \"vcpus\"?)");
  ExpectError(Minimal("[network]\nmac = \"x\"\n"), "vm.toml: network: unknown key");
}

VmDefinition Sample() {
  VmDefinition vm;
  vm.name = "db-2.prod_x";
  vm.id = NewUuid();
  vm.vcpus = 3;
  vm.memory_bytes = 1536ull << 20;
  vm.processor_compatibility = true;
  vm.program = "/usr/lib/ferry/guests/counter \"v2\".bin";
  vm.cmdline = "quote=\" backslash=\\ tab=\t newline=\n ctl=\x01 del=\x7f unicode=é";
  vm.disks.push_back({"/srv/a.img", DiskFormat::kRaw, false});
  vm.disks.push_back({"rel/b.qcow2", DiskFormat::kQcow2, true});
  return vm;
}

// Sample() with two checkpoints: "base" (disk 0 was the raw image), then
// "after-update" on top of it; the VM builds on "after-update".
VmDefinition WithCheckpoints() {
  VmDefinition vm = Sample();
  vm.disks[0] = {"/srv/a.after-update.qcow2", DiskFormat::kQcow2, false};
  vm.checkpoints.push_back({"base", 1763770000000, "", {"/srv/a.img", "rel/b.qcow2"}});
  vm.checkpoints.push_back(
      {"after-update", 1763770060000, "base", {"/srv/a.base.qcow2", "rel/b.qcow2"}});
  vm.current_checkpoint = "after-update";
  return vm;
}

TEST(VmDefinitionTest, FormatRoundTrips) {
  for (uint64_t memory :
       std::initializer_list<uint64_t>{4ull << 20, 1536ull << 20, 1ull << 30, kMaxVmMemoryBytes}) {
    VmDefinition vm = Sample();
    vm.memory_bytes = memory;
    ASSERT_TRUE(ValidateVmDefinition(vm, "sample").has_value());
    std::string text = FormatVmDefinition(vm);
    auto back = ParseVmDefinition(text, "formatted");
    ASSERT_TRUE(back.has_value()) << back.error().ToString() << "\n" << text;
    EXPECT_TRUE(*back == vm) << text;
  }
  VmDefinition bare;
  bare.name = "x";
  bare.id = kId;
  bare.program = "p";
  auto back = ParseVmDefinition(FormatVmDefinition(bare), "formatted");
  ASSERT_TRUE(back.has_value()) << back.error().ToString();
  EXPECT_TRUE(*back == bare);
}

TEST(VmDefinitionTest, CheckpointsRoundTrip) {
  VmDefinition vm = WithCheckpoints();
  ASSERT_TRUE(ValidateVmDefinition(vm, "sample").has_value());
  std::string text = FormatVmDefinition(vm);
  EXPECT_NE(text.find("current_checkpoint = \"after-update\"\n"), std::string::npos) << text;
  EXPECT_NE(text.find("[[checkpoints]]\nname = \"base\"\ncreated_unix_ms = 1763770000000\nlayers = "
                      "[\"/srv/a.img\", \"rel/b.qcow2\"]\n"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("parent = \"base\"\n"), std::string::npos) << text;
  auto back = ParseVmDefinition(text, "formatted");
  ASSERT_TRUE(back.has_value()) << back.error().ToString() << "\n" << text;
  EXPECT_TRUE(*back == vm) << text;
  // No checkpoints: nothing about them is written (files stay as before).
  EXPECT_EQ(FormatVmDefinition(Sample()).find("checkpoint"), std::string::npos);
  EXPECT_EQ(FindCheckpoint(vm, "base"), &vm.checkpoints[0]);
  EXPECT_EQ(FindCheckpoint(vm, "nope"), nullptr);
}

TEST(VmDefinitionTest, CheckpointsParse) {
  auto r = ParseVmDefinition(Minimal(R"(current_checkpoint = "b"

[[disks]]
path = "top.qcow2"
format = "qcow2"

[[checkpoints]]
name = "a"
created_unix_ms = 1
layers = ["base.img"]

[[checkpoints]]
name = "b"
created_unix_ms = 2
parent = "a"
layers = ["a.qcow2"]
)"),
                             "vm.toml");
  ASSERT_TRUE(r.has_value()) << r.error().ToString();
  ASSERT_EQ(r->checkpoints.size(), 2u);
  EXPECT_EQ(r->checkpoints[0].name, "a");
  EXPECT_EQ(r->checkpoints[0].parent, "");
  EXPECT_EQ(r->checkpoints[1].parent, "a");
  EXPECT_EQ(r->checkpoints[1].layers, std::vector<std::string>{"a.qcow2"});
  EXPECT_EQ(r->current_checkpoint, "b");
}

TEST(VmDefinitionTest, CheckpointErrors) {
  const std::string disk = "\n[[disks]]\npath = \"top.qcow2\"\nformat = \"qcow2\"\n";
  auto cp = [](std::string body) { return "\n[[checkpoints]]\n" + body; };
  ExpectError(Minimal(disk + cp("created_unix_ms = 1\nlayers = [\"a\"]\n")),
              "vm.toml: checkpoints[0].name: is required");
  ExpectError(
      Minimal(disk + cp("name = \"..\"\ncreated_unix_ms = 1\nlayers = [\"a\"]\n")),
      "vm.toml: checkpoints[0].name: must be 1 to 64 characters from A-Z, a-z, 0-9, '.', '_' and "
      "'-', not starting with '.', got \"..\"");
  ExpectError(Minimal(disk + cp("name = \"a\"\nlayers = [\"a\"]\n")),
              "vm.toml: checkpoints[0].created_unix_ms: is required");
  ExpectError(Minimal(disk + cp("name = \"a\"\ncreated_unix_ms = -1\nlayers = [\"a\"]\n")),
              "vm.toml: checkpoints[0].created_unix_ms: must be an integer from 0 to "
              "9223372036854775807, got -1");
  ExpectError(Minimal(disk + cp("name = \"a\"\ncreated_unix_ms = 1\n")),
              "vm.toml: checkpoints[0].layers: is required");
  ExpectError(Minimal(disk + cp("name = \"a\"\ncreated_unix_ms = 1\nlayers = [\"a\"]\nwhen = 3\n")),
              "vm.toml: checkpoints[0].when: unknown key");
  ExpectError(Minimal(disk + cp("name = \"a\"\ncreated_unix_ms = 1\nlayers = [\"a\", \"b\"]\n")),
              "vm.toml: checkpoints[0].layers: must have one path per disk (1), got 2");
  ExpectError(Minimal(disk + cp("name = \"a\"\ncreated_unix_ms = 1\nlayers = [\"\"]\n")),
              "vm.toml: checkpoints[0].layers[0]: must not be empty, got \"\"");
  ExpectError(
      Minimal(disk + cp("name = \"a\"\ncreated_unix_ms = 1\nlayers = [\"top.qcow2\"]\n")),
      "vm.toml: checkpoints[0].layers[0]: the same file as disks[0].path, got \"top.qcow2\"");
  ExpectError(
      Minimal(disk + cp("name = \"a\"\ncreated_unix_ms = 1\nlayers = [\"x\"]\n") +
              cp("name = \"b\"\ncreated_unix_ms = 1\nlayers = [\"x\"]\n")),
      "vm.toml: checkpoints[1].layers[0]: the same file as checkpoints[0].layers[0], got \"x\"");
  ExpectError(Minimal(disk + cp("name = \"a\"\ncreated_unix_ms = 1\nlayers = [\"x\"]\n") +
                      cp("name = \"a\"\ncreated_unix_ms = 1\nlayers = [\"y\"]\n")),
              "vm.toml: checkpoints[1].name: the same name as checkpoints[0], got \"a\"");
  // Parents come first: no cycles, no forward references.
  ExpectError(
      Minimal(disk + cp("name = \"a\"\ncreated_unix_ms = 1\nparent = \"b\"\nlayers = [\"x\"]\n") +
              cp("name = \"b\"\ncreated_unix_ms = 1\nlayers = [\"y\"]\n")),
      "vm.toml: checkpoints[0].parent: must name a checkpoint listed before this one, got \"b\"");
  ExpectError(
      Minimal(disk + cp("name = \"a\"\ncreated_unix_ms = 1\nparent = \"a\"\nlayers = [\"x\"]\n")),
      "vm.toml: checkpoints[0].parent: must name a checkpoint listed before this one, got \"a\"");
  ExpectError(Minimal("current_checkpoint = \"zz\"\n" + disk +
                      cp("name = \"a\"\ncreated_unix_ms = 1\nlayers = [\"x\"]\n")),
              "vm.toml: current_checkpoint: must name a checkpoint, got \"zz\"");
  ExpectError(Minimal("current_checkpoint = \"a\"\n\n[[disks]]\npath = \"top.img\"\n" +
                      cp("name = \"a\"\ncreated_unix_ms = 1\nlayers = [\"x\"]\n")),
              "vm.toml: disks[0].format: must be qcow2: the disk is an overlay of checkpoint "
              "\"a\", got \"raw\"");
  ExpectError(
      Minimal("\n[[disks]]\npath = \"ro.img\"\nread_only = true\n" +
              cp("name = \"a\"\ncreated_unix_ms = 1\nlayers = [\"x\"]\n")),
      "vm.toml: checkpoints[0].layers[0]: disk 0 is read-only, so its layer is the disk itself "
      "(\"ro.img\"), got \"x\"");
  ExpectError(Minimal("checkpoints = 3\n"),
              "vm.toml: checkpoints: must be an array of tables ([[checkpoints]] sections), got 3");
}

TEST(VmDefinitionTest, ValidateChecksCheckpoints) {
  VmDefinition vm = WithCheckpoints();
  vm.checkpoints[1].parent = "missing";
  auto s = ValidateVmDefinition(vm, "src");
  ASSERT_FALSE(s.has_value());
  EXPECT_EQ(
      s.error().message(),
      "src: checkpoints[1].parent: must name a checkpoint listed before this one, got \"missing\"");
  vm = WithCheckpoints();
  vm.checkpoints[1].name = ".x";
  s = ValidateVmDefinition(vm, "src");
  ASSERT_FALSE(s.has_value());
  EXPECT_NE(s.error().message().find("src: checkpoints[1].name: "), std::string::npos);
  vm = WithCheckpoints();
  vm.checkpoints[0].layers.pop_back();
  EXPECT_FALSE(ValidateVmDefinition(vm, "src").has_value());
  vm = WithCheckpoints();
  vm.current_checkpoint = "";
  EXPECT_TRUE(ValidateVmDefinition(vm, "src").has_value())
      << "a deleted current checkpoint leaves none";
  vm.checkpoints.resize(kMaxCheckpoints + 1, vm.checkpoints[0]);
  s = ValidateVmDefinition(vm, "src");
  ASSERT_FALSE(s.has_value());
  EXPECT_EQ(s.error().message(), "src: checkpoints: at most 64 checkpoints are allowed, got 65");
}

TEST(VmDefinitionTest, FormatUsesReadableUnits) {
  VmDefinition vm = Sample();
  vm.memory_bytes = 2ull << 30;
  EXPECT_NE(FormatVmDefinition(vm).find("memory = \"2G\"\n"), std::string::npos);
  vm.memory_bytes = 1536ull << 20;
  EXPECT_NE(FormatVmDefinition(vm).find("memory = \"1536M\"\n"), std::string::npos);
}

TEST(VmDefinitionTest, EqualityComparesEveryField) {
  const VmDefinition a = Sample();
  std::vector<VmDefinition> changed(13, a);
  changed[0].config_version = 2;
  changed[1].name = "other";
  changed[2].id = kId;
  changed[3].vcpus = 4;
  changed[4].memory_bytes = 4ull << 20;
  changed[5].processor_compatibility = false;
  changed[6].program = "q";
  changed[7].cmdline = "";
  changed[8].disks[1].read_only = false;
  changed[9].disks.pop_back();
  changed[10].current_checkpoint = "c";
  changed[11].checkpoints.push_back({"c", 1, "", {"/srv/a0.img", "rel/b.qcow2"}});
  changed[12] = WithCheckpoints();
  VmDefinition with = WithCheckpoints();
  changed.push_back(with);
  changed.back().checkpoints[1].created_unix_ms = 5;
  changed.push_back(with);
  changed.back().checkpoints[1].parent = "";
  changed.push_back(with);
  changed.back().checkpoints[1].layers[0] = "x.qcow2";
  VmDefinition copy = a;
  EXPECT_TRUE(copy == a);
  for (size_t i = 0; i < changed.size(); ++i) EXPECT_FALSE(changed[i] == a) << "field " << i;
}

TEST(VmDefinitionTest, ValidateChecksCodeBuiltDefinitions) {
  struct Case {
    void (*mutate)(VmDefinition&);
    const char* message;
  };
  const Case cases[] = {
      {[](VmDefinition& v) { v.config_version = 9; },
       "src: config_version: version 9 is not supported; this host supports config_version 1 only"},
      {[](VmDefinition& v) { v.name = ""; },
       "src: name: must be 1 to 64 characters from A-Z, a-z, 0-9, '.', '_' and '-', not starting "
       "with '.', got \"\""},
      {[](VmDefinition& v) { v.name = ".."; },
       "src: name: must be 1 to 64 characters from A-Z, a-z, 0-9, '.', '_' and '-', not starting "
       "with '.', got \"..\""},
      {[](VmDefinition& v) { v.name = ".hidden"; },
       "src: name: must be 1 to 64 characters from A-Z, a-z, 0-9, '.', '_' and '-', not starting "
       "with '.', got \".hidden\""},
      {[](VmDefinition& v) { v.id = "6F1C0F0E-8D3B-4F5A-9C2E-1B7D4E9A0C35"; },
       "src: id: must be a lower-case UUID, got \"6F1C0F0E-8D3B-4F5A-9C2E-1B7D4E9A0C35\""},
      {[](VmDefinition& v) { v.vcpus = 0; }, "src: vcpus: must be an integer from 1 to 8, got 0"},
      {[](VmDefinition& v) { v.memory_bytes = 3 << 20; },
       "src: memory: must be a multiple of 2 MiB from 4 MiB to 3328 MiB, got 3145728"},
      {[](VmDefinition& v) { v.memory_bytes = 4ull << 30; },
       "src: memory: must be at most 3328 MiB: guest RAM is one block from address 0 and must "
       "end below the VMM's device (MMIO) window at 0xd0000000, got 4294967296"},
      {[](VmDefinition& v) { v.program = "bad\xff"; },
       "src: program: must be valid UTF-8, got \"bad\xff\""},
      {[](VmDefinition& v) { v.cmdline = std::string(3000, 'x'); },
       "src: cmdline: must be shorter than 2048 bytes, got 3000 bytes"},
      {[](VmDefinition& v) { v.disks.resize(5); },
       "src: disks: at most 4 disks are allowed, got 5"},
      {[](VmDefinition& v) { v.disks[0].path = ""; },
       "src: disks[0].path: must not be empty, got \"\""},
      {[](VmDefinition& v) { v.disks[1].format = static_cast<DiskFormat>(0); },
       "src: disks[1].format: must be raw or qcow2, got enum value 0"},
      {[](VmDefinition& v) { v.disks[1].path = v.disks[0].path; },
       "src: disks[1].path: the same file as disks[0], got \"/srv/a.img\""},
  };
  for (const Case& c : cases) {
    VmDefinition vm = Sample();
    c.mutate(vm);
    auto s = ValidateVmDefinition(vm, "src");
    ASSERT_FALSE(s.has_value()) << c.message;
    EXPECT_EQ(s.error().code(), Code::kInvalidArgument);
    EXPECT_EQ(s.error().message(), c.message);
  }
}

TEST(VmDefinitionTest, DiskFormatNames) {
  EXPECT_EQ(ToString(DiskFormat::kRaw), "raw");
  EXPECT_EQ(ToString(DiskFormat::kQcow2), "qcow2");
  EXPECT_EQ(*ParseDiskFormat("qcow2"), DiskFormat::kQcow2);
  auto bad = ParseDiskFormat("vmdk");
  ASSERT_FALSE(bad.has_value());
  EXPECT_EQ(bad.error().message(), "disk format must be \"raw\" or \"qcow2\", got \"vmdk\"");
}

TEST(NewUuidTest, Version4AndUnique) {
  std::regex v4("^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$");
  std::set<std::string> seen;
  for (int i = 0; i < 1000; ++i) {
    std::string id = NewUuid();
    EXPECT_TRUE(std::regex_match(id, v4)) << id;
    seen.insert(id);
  }
  EXPECT_EQ(seen.size(), 1000u);
}

TEST(VmDefinitionTest, LoadFromFile) {
  ferry_test::TempDir temp;
  std::filesystem::path dir(temp.path());
  std::string path = (dir / "vm.toml").string();
  VmDefinition vm = Sample();
  std::ofstream(path) << FormatVmDefinition(vm);
  auto loaded = LoadVmDefinition(path);
  auto missing = LoadVmDefinition((dir / "absent.toml").string());

  ASSERT_TRUE(loaded.has_value()) << loaded.error().ToString();
  EXPECT_TRUE(*loaded == vm);
  ASSERT_FALSE(missing.has_value());
  EXPECT_EQ(missing.error().code(), Code::kNotFound);
  EXPECT_NE(missing.error().message().find("absent.toml"), std::string::npos);
}

}  // namespace
}  // namespace config
