// Config parser fuzz target (see fuzz_targets.h): the bytes as vm.toml and as
// host.toml, and the value parsers the two use on their own. Properties
// checked: a refusal is an error value with a message; a definition that
// parses formats (FormatVmDefinition) to TOML that parses back equal.
#include <string>
#include <string_view>

#include "config/host_settings.h"
#include "config/size.h"
#include "config/vm_definition.h"
#include "fuzz_smoke_main.h"
#include "fuzz_targets.h"

namespace ferry_fuzz {
namespace {

constexpr const char* kTarget = "config_fuzz";
// Far above any real file; keeps toml++'s recursion on nested input shallow
// enough for the fuzzer's stack.
constexpr size_t kMaxInput = 64 << 10;

template <typename T>
void CheckRefusal(const base::Result<T>& r, const char* what) {
  if (!r && r.error().message().empty())
    Fail(kTarget, std::string(what) + ": refusal without a message");
}

}  // namespace

void ConfigFuzzOne(const uint8_t* data, size_t size) {
  if (size > kMaxInput) return;
  const std::string_view text(reinterpret_cast<const char*>(data), size);

  auto vm = config::ParseVmDefinition(text, "fuzz/vm.toml");
  CheckRefusal(vm, "vm.toml");
  if (vm) {
    const std::string formatted = config::FormatVmDefinition(*vm);
    auto again = config::ParseVmDefinition(formatted, "fuzz/formatted.toml");
    if (!again) Fail(kTarget, "a formatted definition does not parse: " + again.error().ToString());
    if (!(*again == *vm)) Fail(kTarget, "a definition changed in format + parse:\n" + formatted);
  }

  CheckRefusal(config::ParseHostSettings(text, "fuzz/host.toml"), "host.toml");

  // Value parsers, on the first line (what a single key's value would be).
  const std::string_view line = text.substr(0, text.find('\n'));
  // FormatSize writes for people ("256 MiB"), not for ParseSize: no round trip.
  if (auto bytes = config::ParseSize(line))
    (void)config::FormatSize(*bytes);
  else
    CheckRefusal(bytes, "size");
  CheckRefusal(config::ParseCidr(line), "cidr");
  CheckRefusal(config::ParseListenAddress(line), "listen address");
  CheckRefusal(config::ParseDiskFormat(line), "disk format");
}

}  // namespace ferry_fuzz

#ifdef FERRY_LIBFUZZER
extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  ferry_fuzz::ConfigFuzzOne(data, size);
  return 0;
}
#endif
