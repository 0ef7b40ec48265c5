// Option handling shared by the move commands' parsers: `ferry move-storage`
// (cli_move.cc) and `ferry move-vm` (cli_live_move.cc).
#pragma once

#include <map>
#include <optional>
#include <string>
#include <vector>

namespace appliance {

// The value of `option` (its first, if given more than once), removed from
// `options` so that what remains is unknown to the command; nullopt if the
// option was not given.
std::optional<std::string> TakeOption(std::map<std::string, std::vector<std::string>>& options,
                                      const std::string& option);

// A --destination-storage-path as sent to ferryd: absolute (a relative one
// is taken from `cwd`), without trailing slashes. `path` is not empty.
std::string AbsoluteStoragePath(const std::string& cwd, const std::string& path);

}  // namespace appliance
