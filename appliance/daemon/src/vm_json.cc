#include "daemon/vm_json.h"
#include "config/names.h"

#include <cctype>

namespace appliance {

using nlohmann::json;

namespace {

base::Error Invalid(const std::string& message) {
  return base::Error(base::Code::kInvalidArgument, message);
}

base::Result<std::string> StringMember(const json& j, const char* key, std::string_view where) {
  const json& v = j.at(key);
  if (!v.is_string()) return Invalid(std::string(where) + "\"" + key + "\" must be a string");
  return v.get<std::string>();
}

// JSON keeps small numbers signed and large ones unsigned; accept both.
base::Result<uint64_t> PositiveInteger(const json& v, const char* key, uint64_t max) {
  uint64_t value = 0;
  if (v.is_number_unsigned())
    value = v.get<uint64_t>();
  else if (v.is_number_integer() && v.get<int64_t>() > 0)
    value = uint64_t(v.get<int64_t>());
  if (value == 0 || value > max)
    return Invalid(std::string("\"") + key + "\" must be a positive integer");
  return value;
}

base::Result<config::DiskSpec> ParseDisk(const json& j, size_t index) {
  std::string where = "disks[" + std::to_string(index) + "]: ";
  if (!j.is_object()) return Invalid(where + "must be an object");
  config::DiskSpec disk;
  for (auto it = j.begin(); it != j.end(); ++it) {
    const std::string& key = it.key();
    if (key == "path") {
      ASSIGN_OR_RETURN(disk.path, StringMember(j, "path", where));
    } else if (key == "format") {
      ASSIGN_OR_RETURN(std::string format, StringMember(j, "format", where));
      auto parsed = config::ParseDiskFormat(format);
      if (!parsed) return parsed.error().Wrap(where + "format");
      disk.format = *parsed;
    } else if (key == "read_only") {
      if (!it->is_boolean()) return Invalid(where + "\"read_only\" must be true or false");
      disk.read_only = it->get<bool>();
    } else {
      return Invalid(where + "unknown member \"" + key + "\"");
    }
  }
  if (disk.path.empty()) return Invalid(where + "\"path\" is required");
  return disk;
}

}  // namespace

json DefinitionToJson(const config::VmDefinition& vm) {
  json disks = json::array();
  for (const auto& d : vm.disks)
    disks.push_back(
        {{"path", d.path}, {"format", config::ToString(d.format)}, {"read_only", d.read_only}});
  return json{{"name", vm.name},
              {"id", vm.id},
              {"config_version", vm.config_version},
              {"vcpus", vm.vcpus},
              {"memory_bytes", vm.memory_bytes},
              {"processor_compatibility", vm.processor_compatibility},
              {"program", vm.program},
              {"cmdline", vm.cmdline},
              {"disks", disks}};
}

base::Result<CreateRequest> ParseCreateRequest(const json& body) {
  if (!body.is_object()) return Invalid("request body must be a JSON object");
  CreateRequest req;
  config::VmDefinition& def = req.definition;
  for (auto it = body.begin(); it != body.end(); ++it) {
    const std::string& key = it.key();
    if (key == "name") {
      ASSIGN_OR_RETURN(def.name, StringMember(body, "name", ""));
    } else if (key == "guest") {
      ASSIGN_OR_RETURN(req.guest, StringMember(body, "guest", ""));
    } else if (key == "program") {
      ASSIGN_OR_RETURN(def.program, StringMember(body, "program", ""));
    } else if (key == "cmdline") {
      ASSIGN_OR_RETURN(def.cmdline, StringMember(body, "cmdline", ""));
    } else if (key == "memory_bytes") {
      ASSIGN_OR_RETURN(def.memory_bytes, PositiveInteger(*it, "memory_bytes", UINT64_MAX));
    } else if (key == "vcpus") {
      ASSIGN_OR_RETURN(uint64_t vcpus, PositiveInteger(*it, "vcpus", UINT32_MAX));
      def.vcpus = uint32_t(vcpus);
    } else if (key == "processor_compatibility") {
      if (!it->is_boolean()) return Invalid("\"processor_compatibility\" must be true or false");
      def.processor_compatibility = it->get<bool>();
    } else if (key == "disks") {
      if (!it->is_array()) return Invalid("\"disks\" must be an array");
      for (size_t i = 0; i < it->size(); ++i) {
        ASSIGN_OR_RETURN(config::DiskSpec disk, ParseDisk((*it)[i], i));
        def.disks.push_back(std::move(disk));
      }
    } else {
      return Invalid("unknown member \"" + key + "\" in create request");
    }
  }
  if (def.name.empty()) return Invalid("\"name\" is required");
  RETURN_IF_ERROR(config::ValidateVmName(def.name));
  if (req.guest.empty() == def.program.empty())
    return Invalid("give exactly one of \"guest\" (a guest name) and \"program\" (a path)");
  if (!req.guest.empty()) RETURN_IF_ERROR(config::ValidateGuestName(req.guest));
  return req;
}

}  // namespace appliance
