// `ferry --host`'s options, taken off the command line before the verb sees
// it (cli_args.cc). Private to the cli room.
#pragma once

#include <optional>

#include "base/result.h"
#include "cli/cli_args.h"
#include "cli_verbs.h"

namespace appliance {

// Removes --host, --ca, --fingerprint, --user and --password-stdin from
// options. nullopt when neither --host nor env_host ($FERRY_HOST) names a
// host, or --socket is given without --host (the socket wins over the
// environment). Usage errors: --host with --socket; --host without exactly
// one of --ca / --fingerprint (ferry never accepts an unchecked
// certificate); a malformed host, port or fingerprint; --ca, --fingerprint,
// --user or --password-stdin without a host; --password-stdin without --user.
base::Result<std::optional<RemoteOptions>> TakeRemoteOptions(OptionValues& options,
                                                             const char* env_host);

// "host", "host:7443", "[fd00::2]:7443", "fd00::2" -> host (no brackets) and
// port (kDefaultRemoteApiPort when none is given).
base::Result<RemoteOptions> ParseRemoteHost(const std::string& text);

}  // namespace appliance
