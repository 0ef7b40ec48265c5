// The move commands' shared option handling (cli_move_options.h).
#include "cli_move_options.h"

namespace appliance {

std::optional<std::string> TakeOption(std::map<std::string, std::vector<std::string>>& options,
                                      const std::string& option) {
  auto it = options.find(option);
  if (it == options.end()) return std::nullopt;
  std::string value = it->second.front();
  options.erase(it);
  return value;
}

std::string AbsoluteStoragePath(const std::string& cwd, const std::string& path) {
  std::string absolute = path[0] == '/' ? path : cwd + "/" + path;
  while (absolute.size() > 1 && absolute.back() == '/') absolute.pop_back();
  return absolute;
}

}  // namespace appliance
