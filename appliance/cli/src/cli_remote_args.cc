#include "cli_remote_args.h"

#include <algorithm>

#include "cli/http_client.h"
#include "http_tls.h"

namespace appliance {
namespace {

std::optional<std::string> Take(OptionValues& options, const char* name) {
  auto node = options.extract(name);
  if (node.empty()) return std::nullopt;
  return node.mapped().front();
}

}  // namespace

base::Result<RemoteOptions> ParseRemoteHost(const std::string& text) {
  RemoteOptions remote;
  std::string port;
  if (!text.empty() && text[0] == '[') {
    const size_t close = text.find(']');
    if (close == std::string::npos)
      return UsageError("--host \"" + text + "\": missing ] after the IPv6 address");
    remote.host = text.substr(1, close - 1);
    const std::string rest = text.substr(close + 1);
    if (!rest.empty() && rest[0] != ':')
      return UsageError("--host \"" + text + "\": expected :PORT after ]");
    if (!rest.empty()) port = rest.substr(1);
  } else if (std::count(text.begin(), text.end(), ':') == 1) {
    remote.host = text.substr(0, text.find(':'));
    port = text.substr(text.find(':') + 1);
  } else {
    remote.host = text;  // a name, IPv4, or IPv6 without a port
  }
  if (remote.host.empty()) return UsageError("--host \"" + text + "\": no host name or address");
  if (!port.empty() || text.back() == ':') {
    const bool digits =
        !port.empty() && port.size() <= 5 &&
        std::all_of(port.begin(), port.end(), [](char c) { return c >= '0' && c <= '9'; });
    const unsigned long value = digits ? std::stoul(port) : 0;
    if (value == 0 || value > 65535)
      return UsageError("--host \"" + text + "\": the port must be a number from 1 to 65535");
    remote.port = uint16_t(value);
  }
  return remote;
}

base::Result<std::optional<RemoteOptions>> TakeRemoteOptions(OptionValues& options,
                                                             const char* env_host) {
  std::optional<std::string> host = Take(options, "--host");
  const bool socket_given = options.count("--socket") != 0;
  if (host && socket_given) return UsageError("--host and --socket exclude each other");
  if (!host && !socket_given && env_host != nullptr && *env_host != '\0') host = env_host;
  std::optional<std::string> ca = Take(options, "--ca");
  std::optional<std::string> fingerprint = Take(options, "--fingerprint");
  std::optional<std::string> user = Take(options, "--user");
  // With --user it is that log-on's; otherwise a command's own (ferry logon).
  const bool password_stdin = user.has_value() && options.erase("--password-stdin") != 0;
  if (!host) {
    const std::pair<const char*, bool> given[] = {{"--ca", ca.has_value()},
                                                  {"--fingerprint", fingerprint.has_value()},
                                                  {"--user", user.has_value()}};
    for (const auto& [name, is_given] : given) {
      if (is_given) return UsageError(std::string(name) + " applies only with --host HOST");
    }
    return std::optional<RemoteOptions>();
  }
  ASSIGN_OR_RETURN(RemoteOptions remote, ParseRemoteHost(*host));
  if (ca.has_value() == fingerprint.has_value())
    return UsageError(
        "--host needs exactly one of --ca FILE (the CA that issued ferryd's certificate) or "
        "--fingerprint SHA256:… (as `ferry host certificate show` prints it on that host)");
  if (ca) {
    if (ca->empty()) return UsageError("--ca needs a file");
    remote.ca_file = *ca;
  }
  if (fingerprint) {
    if (auto parsed = ParseCertificateFingerprint(*fingerprint); !parsed)
      return UsageError("--fingerprint: " + parsed.error().message());
    remote.fingerprint = *fingerprint;
  }
  if (user) {
    if (user->empty()) return UsageError("--user needs a user name");
    remote.user = *user;
  }
  remote.password_stdin = password_stdin;
  return std::optional<RemoteOptions>(std::move(remote));
}

}  // namespace appliance
