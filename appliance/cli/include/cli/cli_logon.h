// Log-ons at this host (migration.authentication = "credssp",
// docs/credentials.md): `ferry logon USER` hands USER's password to this
// host's ferryd, which keeps it in memory so that `ferry --as USER move-vm`
// can delegate it to the destination; `ferry logoff USER` drops it;
// `ferry logons` lists who is logged on.
#pragma once

#include <string>

#include <nlohmann/json.hpp>

#include "base/result.h"

namespace appliance {

// USER's password: from stdin (one line, its newline dropped) when
// from_stdin or stdin is not a terminal; else prompted for on the terminal
// with echo off (termios). kInvalidArgument for an empty password or when
// stdin ends first.
base::Result<std::string> ReadLogonPassword(const std::string& user, bool from_stdin);

// "alice logged on at this host until 2027-01-01 18:00:00 (local time)".
std::string FormatLogon(const nlohmann::json& logon);
// A USER / EXPIRES table, or "no log-ons at this host".
std::string FormatLogonList(const nlohmann::json& list);

}  // namespace appliance
