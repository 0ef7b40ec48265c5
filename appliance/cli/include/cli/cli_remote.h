// Which ferryd an invocation talks to: the local socket, or with --host a
// remote ferryd's HTTPS API, asking for the --user's password first (on
// stdin with --password-stdin, else a prompt without echo on the terminal).
#pragma once

#include <string>

#include "auth/secret.h"
#include "base/result.h"
#include "cli/cli_args.h"
#include "cli/http_client.h"

namespace appliance {

// Does I/O only to read a password. Errors are kInvalidArgument (a password
// that cannot be read: no terminal and no --password-stdin, or an empty one).
base::Result<HttpClient> OpenClient(const CliInvocation& inv);

// One line from fd (the trailing newline dropped); with a prompt, echo off
// while it is typed (fd must be a terminal then). "what" names the password
// in errors ("the password of alice at host1:7443").
base::Result<auth::Secret> ReadPasswordLine(int fd, const std::string& prompt,
                                            const std::string& what);

}  // namespace appliance
