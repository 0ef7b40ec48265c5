// Smoke run of the config fuzz target (fuzz_smoke_main.h): vm.toml seeds
// written by FormatVmDefinition (plain, with disks, with checkpoints) and
// checked to parse, host.toml seeds covering every section and key kind, and
// bare values for the value parsers.
#include "config/vm_definition.h"
#include "fuzz_smoke_main.h"
#include "fuzz_targets.h"

namespace ferry_fuzz {
namespace {

config::VmDefinition Definition(bool disks, bool checkpoints) {
  config::VmDefinition vm;
  vm.name = "web";
  vm.id = "1b4e28ba-2fa1-41d2-883f-0016d3cca427";
  vm.vcpus = 2;
  vm.memory_bytes = 512ull << 20;
  vm.program = "memory-guest.bin";
  vm.cmdline = "rounds=10 verbose";
  if (disks) {
    vm.disks.push_back({"root.qcow2", config::DiskFormat::kQcow2, false});
    vm.disks.push_back({"/srv/vms/web/data.img", config::DiskFormat::kRaw, true});
  }
  if (checkpoints) {
    vm.checkpoints.push_back(
        {"a", 1700000000000, "", {"checkpoints/a/root.qcow2", "/srv/vms/web/data.img"}});
    vm.checkpoints.push_back(
        {"b", 1700000001000, "a", {"checkpoints/b/root.qcow2", "/srv/vms/web/data.img"}});
    vm.current_checkpoint = "b";
  }
  return vm;
}

std::vector<Bytes> MakeSeeds() {
  std::vector<Bytes> seeds;
  for (auto [disks, checkpoints] : {std::pair{false, false}, {true, false}, {true, true}}) {
    const std::string toml = config::FormatVmDefinition(Definition(disks, checkpoints));
    auto parsed = config::ParseVmDefinition(toml, "seed");
    if (!parsed) {
      std::fprintf(stderr, "seed vm.toml does not parse: %s\n%s\n",
                   parsed.error().ToString().c_str(), toml.c_str());
      return {};
    }
    seeds.push_back(ToBytes(toml));
  }
  seeds.push_back(ToBytes(R"(storage_root = "/srv/ferry"
api_socket = "/run/ferry/api.sock"
guest_dir = "/usr/lib/ferry/guests"
listen_addresses = ["127.0.0.1:7070", "[::1]:7070", "localhost:7071"]

[migration]
incoming_enabled = true
outgoing_enabled = true
max_live_moves = 4
max_storage_moves = 64
networks = ["127.0.0.0/8", "::1/128"]
authentication = "credssp"
performance = "smb"
)"));
  seeds.push_back(ToBytes("[migration]\nnetworks = [\"any\"]\nperformance = \"tcp\"\n"));
  seeds.push_back(ToBytes("256MB"));
  seeds.push_back(ToBytes("127.0.0.0/8"));
  seeds.push_back(ToBytes("[::1]:7431"));
  seeds.push_back(ToBytes("qcow2"));
  return seeds;
}

}  // namespace
}  // namespace ferry_fuzz

int main(int argc, char** argv) {
  return ferry_fuzz::SmokeMain("config_fuzz_smoke", ferry_fuzz::MakeSeeds(),
                               ferry_fuzz::ConfigFuzzOne, argc, argv);
}
