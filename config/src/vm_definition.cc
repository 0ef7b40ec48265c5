// vm.toml: parsing, validation and formatting. Schema: docs/config.md.
// Parsing and ValidateVmDefinition share the Check* rules below, so a
// definition built in code is held to exactly the rules a file is.
#include "config/vm_definition.h"

#include <charconv>
#include <optional>

#include "base/fd.h"
#include "config/size.h"
#include "toml_reader.h"
#include "uuid.h"

namespace config {
namespace {

constexpr uint64_t kMiB = 1ull << 20;
constexpr uint64_t kGiB = 1ull << 30;
static_assert(kMaxVmMemoryBytes % kVmMemoryGranule == 0 &&
              kMinVmMemoryBytes % kVmMemoryGranule == 0);
constexpr int64_t kMaxVcpus = 8;
constexpr size_t kMaxNameLength = 64;
constexpr size_t kMaxCmdlineBytes = 2048;  // exclusive: the guest's parameter page has a NUL
constexpr size_t kMaxDisks = 4;

// TOML text must be UTF-8, so strings that are not cannot round-trip.
bool IsValidUtf8(std::string_view s) {
  size_t i = 0;
  while (i < s.size()) {
    auto c = static_cast<unsigned char>(s[i]);
    size_t extra;
    uint32_t cp;
    if (c < 0x80) {
      ++i;
      continue;
    } else if ((c & 0xe0) == 0xc0) {
      extra = 1, cp = c & 0x1f;
    } else if ((c & 0xf0) == 0xe0) {
      extra = 2, cp = c & 0x0f;
    } else if ((c & 0xf8) == 0xf0) {
      extra = 3, cp = c & 0x07;
    } else {
      return false;
    }
    if (i + extra >= s.size()) return false;
    for (size_t k = 1; k <= extra; ++k) {
      auto cc = static_cast<unsigned char>(s[i + k]);
      if ((cc & 0xc0) != 0x80) return false;
      cp = (cp << 6) | (cc & 0x3f);
    }
    static constexpr uint32_t kMinForLength[] = {0, 0x80, 0x800, 0x10000};
    if (cp < kMinForLength[extra] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return false;
    i += extra + 1;
  }
  return true;
}

// Each Check* returns the rule a value breaks, or "" if it is valid.
std::string CheckMemory(uint64_t bytes) {
  if (bytes > kMaxVmMemoryBytes) {
    // Said separately, with the reason: hosts have far more RAM than this, so
    // "too big" would otherwise look arbitrary.
    return "must be at most " + std::to_string(kMaxVmMemoryBytes / kMiB) +
           " MiB: guest RAM is one block from address 0 and must end below the VMM's device "
           "(MMIO) window at 0xd0000000";
  }
  if (bytes >= kMinVmMemoryBytes && bytes % kVmMemoryGranule == 0) return "";
  return "must be a multiple of 2 MiB from " + std::to_string(kMinVmMemoryBytes / kMiB) +
         " MiB to " + std::to_string(kMaxVmMemoryBytes / kMiB) + " MiB";
}

std::string CheckText(std::string_view s, bool required) {
  if (required && s.empty()) return "must not be empty";
  if (s.find('\0') != std::string_view::npos) return "must not contain NUL characters";
  if (!IsValidUtf8(s)) return "must be valid UTF-8";
  return "";
}

std::string CheckCmdline(std::string_view s) {
  if (s.size() >= kMaxCmdlineBytes) {
    return "must be shorter than " + std::to_string(kMaxCmdlineBytes) + " bytes, got " +
           std::to_string(s.size()) + " bytes";
  }
  return CheckText(s, /*required=*/false);
}

std::string SupportedVersions() {
  if (kMinVmConfigVersion == kVmConfigVersion) {
    return "this host supports config_version " + std::to_string(kVmConfigVersion) + " only";
  }
  return "this host supports config_version " + std::to_string(kMinVmConfigVersion) + " to " +
         std::to_string(kVmConfigVersion);
}

std::string FormatMemory(uint64_t bytes) {
  if (bytes != 0 && bytes % kGiB == 0) return QuoteToml(std::to_string(bytes / kGiB) + "G");
  if (bytes != 0 && bytes % kMiB == 0) return QuoteToml(std::to_string(bytes / kMiB) + "M");
  return std::to_string(bytes);
}

// A required string key that must pass `check`.
base::Result<std::string> ReadRequiredString(TableReader& r, std::string_view key,
                                             std::string (*check)(std::string_view)) {
  ASSIGN_OR_RETURN(auto value, r.String(key));
  if (!value) return r.Invalid(key, "is required");
  if (std::string why = check(*value); !why.empty()) {
    return r.Invalid(key, why + ", got " + QuoteToml(*value));
  }
  return *std::move(value);
}

base::Status ReadVersion(TableReader& r, VmDefinition& vm) {
  const toml::node* node = r.Get("config_version");
  if (node == nullptr) return r.Invalid("config_version", "is required; " + SupportedVersions());
  const auto* version = node->as_integer();
  if (version == nullptr) return r.Invalid("config_version", "must be an integer", *node);
  if (version->get() < kMinVmConfigVersion || version->get() > kVmConfigVersion) {
    return r.Invalid("config_version", "version " + std::to_string(version->get()) +
                                           " is not supported; " + SupportedVersions());
  }
  vm.config_version = static_cast<uint32_t>(version->get());
  return base::Ok();
}

base::Status ReadMemory(TableReader& r, VmDefinition& vm) {
  const toml::node* node = r.Get("memory");
  if (node == nullptr) return base::Ok();
  std::optional<uint64_t> bytes;
  if (const auto* i = node->as_integer(); i != nullptr && i->get() >= 0) {
    bytes = static_cast<uint64_t>(i->get());
  } else if (const auto* s = node->as_string()) {
    if (auto parsed = ParseSize(s->get())) bytes = *parsed;
  }
  if (!bytes) {
    return r.Invalid("memory", "must be a size like \"256M\" or \"1G\", or a number of bytes",
                     *node);
  }
  if (std::string why = CheckMemory(*bytes); !why.empty()) return r.Invalid("memory", why, *node);
  vm.memory_bytes = *bytes;
  return base::Ok();
}

base::Result<DiskSpec> ReadDisk(const toml::table& table, std::string_view source,
                                std::string prefix) {
  TableReader r(table, source, std::move(prefix));
  DiskSpec disk;
  ASSIGN_OR_RETURN(disk.path, ReadRequiredString(r, "path", [](std::string_view s) {
                     return CheckText(s, /*required=*/true);
                   }));
  ASSIGN_OR_RETURN(auto format, r.Choice("format", {"raw", "qcow2"}));
  if (format) disk.format = *format == 0 ? DiskFormat::kRaw : DiskFormat::kQcow2;
  ASSIGN_OR_RETURN(auto read_only, r.Bool("read_only"));
  if (read_only) disk.read_only = *read_only;
  RETURN_IF_ERROR(r.CheckNoUnknownKeys());
  return disk;
}

// Two disks on one file would corrupt each other.
base::Status CheckDistinctDisks(const std::vector<DiskSpec>& disks, std::string_view source) {
  for (size_t i = 0; i < disks.size(); ++i) {
    for (size_t j = 0; j < i; ++j) {
      if (disks[i].path == disks[j].path) {
        return InvalidValue(
            source, "disks[" + std::to_string(i) + "].path",
            "the same file as disks[" + std::to_string(j) + "], got " + QuoteToml(disks[i].path));
      }
    }
  }
  return base::Ok();
}

base::Status ReadDisks(TableReader& r, VmDefinition& vm, std::string_view source) {
  const toml::node* node = r.Get("disks");
  if (node == nullptr) return base::Ok();
  const toml::array* array = node->as_array();
  // toml++ does not count an empty array as an array of tables.
  if (array == nullptr || !(array->empty() || array->is_array_of_tables())) {
    return r.Invalid("disks", "must be an array of tables ([[disks]] sections)", *node);
  }
  if (array->size() > kMaxDisks) {
    return r.Invalid("disks", "at most " + std::to_string(kMaxDisks) + " disks are allowed, got " +
                                  std::to_string(array->size()));
  }
  for (size_t i = 0; i < array->size(); ++i) {
    ASSIGN_OR_RETURN(DiskSpec disk, ReadDisk(*array->get(i)->as_table(), source,
                                             "disks[" + std::to_string(i) + "]"));
    vm.disks.push_back(std::move(disk));
  }
  return CheckDistinctDisks(vm.disks, source);
}

base::Result<CheckpointSpec> ReadCheckpoint(const toml::table& table, std::string_view source,
                                            std::string prefix) {
  TableReader r(table, source, std::move(prefix));
  CheckpointSpec c;
  ASSIGN_OR_RETURN(c.name, ReadRequiredString(r, "name", CheckName));
  ASSIGN_OR_RETURN(auto created, r.Integer("created_unix_ms", 0, INT64_MAX));
  if (!created) return r.Invalid("created_unix_ms", "is required");
  c.created_unix_ms = *created;
  ASSIGN_OR_RETURN(auto parent, r.String("parent"));
  if (parent) c.parent = *parent;
  ASSIGN_OR_RETURN(auto layers, r.StringArray("layers"));
  if (!layers) return r.Invalid("layers", "is required");
  c.layers = *std::move(layers);
  RETURN_IF_ERROR(r.CheckNoUnknownKeys());
  return c;
}

base::Status ReadCheckpoints(TableReader& r, VmDefinition& vm, std::string_view source) {
  ASSIGN_OR_RETURN(auto current, r.String("current_checkpoint"));
  if (current) vm.current_checkpoint = *current;
  const toml::node* node = r.Get("checkpoints");
  if (node == nullptr) return base::Ok();
  const toml::array* array = node->as_array();
  if (array == nullptr || !(array->empty() || array->is_array_of_tables())) {
    return r.Invalid("checkpoints", "must be an array of tables ([[checkpoints]] sections)", *node);
  }
  for (size_t i = 0; i < array->size(); ++i) {
    ASSIGN_OR_RETURN(CheckpointSpec c, ReadCheckpoint(*array->get(i)->as_table(), source,
                                                      "checkpoints[" + std::to_string(i) + "]"));
    vm.checkpoints.push_back(std::move(c));
  }
  return base::Ok();
}

// The rules that tie checkpoints to each other and to the disks (shared by
// the parser, after every field was read, and ValidateVmDefinition).
base::Status CheckCheckpoints(const VmDefinition& vm, std::string_view source) {
  if (vm.checkpoints.size() > kMaxCheckpoints) {
    return InvalidValue(source, "checkpoints",
                        "at most " + std::to_string(kMaxCheckpoints) +
                            " checkpoints are allowed, got " +
                            std::to_string(vm.checkpoints.size()));
  }
  // Every file a writable disk uses, with the key that names it: a file may
  // belong to one disk and, as a layer, to one checkpoint only.
  std::vector<std::pair<std::string, std::string>> files;
  for (size_t d = 0; d < vm.disks.size(); ++d) {
    if (!vm.disks[d].read_only)
      files.emplace_back(vm.disks[d].path, "disks[" + std::to_string(d) + "].path");
  }
  for (size_t i = 0; i < vm.checkpoints.size(); ++i) {
    const CheckpointSpec& c = vm.checkpoints[i];
    const std::string key = "checkpoints[" + std::to_string(i) + "]";
    if (auto why = CheckName(c.name); !why.empty()) {
      return InvalidValue(source, key + ".name", why + ", got " + QuoteToml(c.name));
    }
    if (c.created_unix_ms < 0) {
      return InvalidValue(source, key + ".created_unix_ms",
                          "must not be negative, got " + std::to_string(c.created_unix_ms));
    }
    size_t parent_index = i;
    for (size_t j = 0; j < i; ++j) {
      if (vm.checkpoints[j].name == c.name) {
        return InvalidValue(
            source, key + ".name",
            "the same name as checkpoints[" + std::to_string(j) + "], got " + QuoteToml(c.name));
      }
      if (vm.checkpoints[j].name == c.parent) parent_index = j;
    }
    // Parents come first, so the tree has no cycles by construction.
    if (!c.parent.empty() && parent_index == i) {
      return InvalidValue(
          source, key + ".parent",
          "must name a checkpoint listed before this one, got " + QuoteToml(c.parent));
    }
    if (c.layers.size() != vm.disks.size()) {
      return InvalidValue(source, key + ".layers",
                          "must have one path per disk (" + std::to_string(vm.disks.size()) +
                              "), got " + std::to_string(c.layers.size()));
    }
    for (size_t d = 0; d < c.layers.size(); ++d) {
      const std::string lkey = key + ".layers[" + std::to_string(d) + "]";
      if (auto why = CheckText(c.layers[d], true); !why.empty()) {
        return InvalidValue(source, lkey, why + ", got " + QuoteToml(c.layers[d]));
      }
      if (vm.disks[d].read_only) {
        if (c.layers[d] != vm.disks[d].path) {
          return InvalidValue(source, lkey,
                              "disk " + std::to_string(d) +
                                  " is read-only, so its layer is the disk itself (" +
                                  QuoteToml(vm.disks[d].path) + "), got " + QuoteToml(c.layers[d]));
        }
        continue;
      }
      for (const auto& [path, other] : files) {
        if (path == c.layers[d]) {
          return InvalidValue(source, lkey,
                              "the same file as " + other + ", got " + QuoteToml(c.layers[d]));
        }
      }
      files.emplace_back(c.layers[d], lkey);
    }
  }
  if (!vm.current_checkpoint.empty()) {
    if (FindCheckpoint(vm, vm.current_checkpoint) == nullptr) {
      return InvalidValue(source, "current_checkpoint",
                          "must name a checkpoint, got " + QuoteToml(vm.current_checkpoint));
    }
    // A writable disk on a checkpoint is an overlay of that checkpoint's layer.
    for (size_t d = 0; d < vm.disks.size(); ++d) {
      if (!vm.disks[d].read_only && vm.disks[d].format != DiskFormat::kQcow2) {
        return InvalidValue(source, "disks[" + std::to_string(d) + "].format",
                            "must be qcow2: the disk is an overlay of checkpoint " +
                                QuoteToml(vm.current_checkpoint) + ", got " +
                                QuoteToml(ToString(vm.disks[d].format)));
      }
    }
  }
  return base::Ok();
}

}  // namespace

std::string CheckName(std::string_view name) {
  bool ok = !name.empty() && name.size() <= kMaxNameLength;
  for (char c : name) {
    ok = ok && ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                c == '.' || c == '_' || c == '-');
  }
  // "." and ".." would be directory names, and names starting with '.' are
  // hidden files; the appliance keeps each VM in a directory of its name.
  if (ok && name[0] != '.') return "";
  return "must be 1 to 64 characters from A-Z, a-z, 0-9, '.', '_' and '-', not starting with '.'";
}

const CheckpointSpec* FindCheckpoint(const VmDefinition& vm, std::string_view name) {
  for (const CheckpointSpec& c : vm.checkpoints) {
    if (c.name == name) return &c;
  }
  return nullptr;
}

base::Result<VmDefinition> ParseVmDefinition(std::string_view toml_text, std::string_view source) {
  ASSIGN_OR_RETURN(toml::table root, ParseToml(toml_text, source));
  TableReader r(root, source, "");
  VmDefinition vm;
  // The version comes first: a newer schema may have keys this host does not
  // know, and "unsupported version" is the useful message then.
  RETURN_IF_ERROR(ReadVersion(r, vm));
  ASSIGN_OR_RETURN(vm.name, ReadRequiredString(r, "name", CheckName));
  ASSIGN_OR_RETURN(auto id, r.String("id"));
  if (!id) return r.Invalid("id", "is required");
  auto uuid = NormalizeUuid(*id);
  if (!uuid) {
    return r.Invalid("id", "must be a UUID like \"6f1c0f0e-8d3b-4f5a-9c2e-1b7d4e9a0c35\", got " +
                               QuoteToml(*id));
  }
  vm.id = *uuid;
  ASSIGN_OR_RETURN(auto vcpus, r.Integer("vcpus", 1, kMaxVcpus));
  if (vcpus) vm.vcpus = static_cast<uint32_t>(*vcpus);
  RETURN_IF_ERROR(ReadMemory(r, vm));
  ASSIGN_OR_RETURN(auto compat, r.Bool("processor_compatibility"));
  if (compat) vm.processor_compatibility = *compat;
  ASSIGN_OR_RETURN(vm.program, ReadRequiredString(r, "program", [](std::string_view s) {
                     return CheckText(s, /*required=*/true);
                   }));
  ASSIGN_OR_RETURN(auto cmdline, r.String("cmdline"));
  if (cmdline) {
    if (std::string why = CheckCmdline(*cmdline); !why.empty()) return r.Invalid("cmdline", why);
    vm.cmdline = *cmdline;
  }
  RETURN_IF_ERROR(ReadDisks(r, vm, source));
  RETURN_IF_ERROR(ReadCheckpoints(r, vm, source));
  RETURN_IF_ERROR(r.CheckNoUnknownKeys());
  RETURN_IF_ERROR(CheckCheckpoints(vm, source));
  return vm;
}

base::Result<VmDefinition> LoadVmDefinition(const std::string& path) {
  auto text = base::ReadFileToString(path);
  if (!text) return text.error().Wrap("read VM definition");
  return ParseVmDefinition(*text, path);
}

base::Status ValidateVmDefinition(const VmDefinition& vm, std::string_view source) {
  auto invalid = [&](std::string_view key, const std::string& why, const std::string& got) {
    return InvalidValue(source, key, why + ", got " + got);
  };
  if (vm.config_version < kMinVmConfigVersion || vm.config_version > kVmConfigVersion) {
    return InvalidValue(source, "config_version",
                        "version " + std::to_string(vm.config_version) + " is not supported; " +
                            SupportedVersions());
  }
  if (auto why = CheckName(vm.name); !why.empty()) return invalid("name", why, QuoteToml(vm.name));
  if (NormalizeUuid(vm.id) != vm.id) {
    return invalid("id", "must be a lower-case UUID", QuoteToml(vm.id));
  }
  if (vm.vcpus < 1 || vm.vcpus > kMaxVcpus) {
    return invalid("vcpus", "must be an integer from 1 to " + std::to_string(kMaxVcpus),
                   std::to_string(vm.vcpus));
  }
  if (auto why = CheckMemory(vm.memory_bytes); !why.empty()) {
    return invalid("memory", why, std::to_string(vm.memory_bytes));
  }
  if (auto why = CheckText(vm.program, true); !why.empty()) {
    return invalid("program", why, QuoteToml(vm.program));
  }
  if (auto why = CheckCmdline(vm.cmdline); !why.empty())
    return InvalidValue(source, "cmdline", why);
  if (vm.disks.size() > kMaxDisks) {
    return InvalidValue(source, "disks",
                        "at most " + std::to_string(kMaxDisks) + " disks are allowed, got " +
                            std::to_string(vm.disks.size()));
  }
  for (size_t i = 0; i < vm.disks.size(); ++i) {
    const DiskSpec& d = vm.disks[i];
    std::string key = "disks[" + std::to_string(i) + "]";
    if (auto why = CheckText(d.path, true); !why.empty()) {
      return invalid(key + ".path", why, QuoteToml(d.path));
    }
    if (d.format != DiskFormat::kRaw && d.format != DiskFormat::kQcow2) {
      return InvalidValue(
          source, key + ".format",
          "must be raw or qcow2, got enum value " + std::to_string(static_cast<int>(d.format)));
    }
  }
  RETURN_IF_ERROR(CheckDistinctDisks(vm.disks, source));
  for (size_t i = 0; i < vm.checkpoints.size(); ++i) {
    const CheckpointSpec& c = vm.checkpoints[i];
    const std::string key = "checkpoints[" + std::to_string(i) + "]";
    if (auto why = CheckText(c.parent, false); !why.empty()) {
      return invalid(key + ".parent", why, QuoteToml(c.parent));
    }
  }
  if (auto why = CheckText(vm.current_checkpoint, false); !why.empty()) {
    return invalid("current_checkpoint", why, QuoteToml(vm.current_checkpoint));
  }
  return CheckCheckpoints(vm, source);
}

std::string FormatVmDefinition(const VmDefinition& vm) {
  std::string out;
  auto line = [&out](std::string_view key, const std::string& value) {
    out += key;
    out += " = ";
    out += value;
    out += '\n';
  };
  line("config_version", std::to_string(vm.config_version));
  line("name", QuoteToml(vm.name));
  line("id", QuoteToml(vm.id));
  line("vcpus", std::to_string(vm.vcpus));
  line("memory", FormatMemory(vm.memory_bytes));
  line("processor_compatibility", vm.processor_compatibility ? "true" : "false");
  line("program", QuoteToml(vm.program));
  line("cmdline", QuoteToml(vm.cmdline));
  if (!vm.current_checkpoint.empty()) line("current_checkpoint", QuoteToml(vm.current_checkpoint));
  for (const DiskSpec& d : vm.disks) {
    out += "\n[[disks]]\n";
    line("path", QuoteToml(d.path));
    line("format", QuoteToml(ToString(d.format)));
    line("read_only", d.read_only ? "true" : "false");
  }
  for (const CheckpointSpec& c : vm.checkpoints) {
    out += "\n[[checkpoints]]\n";
    line("name", QuoteToml(c.name));
    line("created_unix_ms", std::to_string(c.created_unix_ms));
    if (!c.parent.empty()) line("parent", QuoteToml(c.parent));
    std::string layers = "[";
    for (size_t i = 0; i < c.layers.size(); ++i) layers += (i ? ", " : "") + QuoteToml(c.layers[i]);
    line("layers", layers + "]");
  }
  return out;
}

std::string_view ToString(DiskFormat f) {
  switch (f) {
    case DiskFormat::kRaw: return "raw";
    case DiskFormat::kQcow2: return "qcow2";
  }
  return "invalid";
}

base::Result<DiskFormat> ParseDiskFormat(std::string_view text) {
  if (text == "raw") return DiskFormat::kRaw;
  if (text == "qcow2") return DiskFormat::kQcow2;
  return base::Error(base::Code::kInvalidArgument,
                     "disk format must be \"raw\" or \"qcow2\", got " + QuoteToml(text));
}

bool operator==(const DiskSpec& a, const DiskSpec& b) {
  return a.path == b.path && a.format == b.format && a.read_only == b.read_only;
}

bool operator==(const CheckpointSpec& a, const CheckpointSpec& b) {
  return a.name == b.name && a.created_unix_ms == b.created_unix_ms && a.parent == b.parent &&
         a.layers == b.layers;
}

bool operator==(const VmDefinition& a, const VmDefinition& b) {
  return a.config_version == b.config_version && a.name == b.name && a.id == b.id &&
         a.vcpus == b.vcpus && a.memory_bytes == b.memory_bytes &&
         a.processor_compatibility == b.processor_compatibility && a.program == b.program &&
         a.cmdline == b.cmdline && a.disks == b.disks && a.checkpoints == b.checkpoints &&
         a.current_checkpoint == b.current_checkpoint;
}

}  // namespace config
