#include "config/names.h"

#include <cctype>
#include <string>

#include "config/vm_definition.h"

namespace config {
namespace {

base::Error Invalid(std::string message) {
  return base::Error(base::Code::kInvalidArgument, std::move(message));
}

}  // namespace

base::Status ValidateVmName(std::string_view name) {
  bool ok = !name.empty() && name.size() <= 64 && name[0] != '.';
  for (char c : name) {
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '_' || c == '-'))
      ok = false;
  }
  if (ok) return base::Ok();
  return Invalid("invalid vm name \"" + std::string(name) +
                 "\": use 1 to 64 of A-Z a-z 0-9 . _ -, not starting with '.'");
}

base::Status ValidateCheckpointName(std::string_view name) {
  if (std::string why = CheckName(name); !why.empty())
    return Invalid("invalid checkpoint name \"" + std::string(name) + "\": " + why);
  return base::Ok();
}

base::Status ValidateGuestName(std::string_view name) {
  bool ok = !name.empty() && name.size() <= 32;
  for (char c : name) {
    if (!(std::islower(static_cast<unsigned char>(c)) ||
          std::isdigit(static_cast<unsigned char>(c)) || c == '-'))
      ok = false;
  }
  if (ok) return base::Ok();
  return Invalid("invalid guest name \"" + std::string(name) +
                 "\": use 1 to 32 of a-z 0-9 - (for example \"memory\" or \"disk\")");
}

}  // namespace config
