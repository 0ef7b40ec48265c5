// Host settings: what an admin sets per host in /etc/ferry/host.toml.
// Schema and defaults: docs/config.md. Parsed once into an immutable struct.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "base/result.h"

namespace config {

enum class AuthenticationType { kKerberos = 1, kCredSsp = 2 };
// "smb" joins once SMB3 is built; until then host.toml refuses it
// (kSmbNotBuilt).
enum class PerformanceOption { kTcp = 1, kCompression = 2 };

// Settings that are accepted but not built yet, in the words shown next to
// them (`ferry host show`, docs/config.md) so that none reads as working.
// migration.authentication: read and reported, but peers are not
// authenticated: any peer inside migration.networks may move VMs.
inline constexpr const char* kAuthenticationNotEnforced =
    "not enforced yet: peers are not authenticated (issue \"authenticated moves\")";
// migration.performance = "smb": refused (the reason after the key).
inline constexpr const char* kSmbNotBuilt =
    "\"smb\" (SMB3 transfer) is not built yet; use \"tcp\" or \"compression\"";

// An IPv4 or IPv6 network in CIDR form ("10.0.0.0/24", "fd00::/64").
struct Cidr {
  int family = 0;            // AF_INET or AF_INET6
  uint8_t address[16] = {};  // network byte order; first 4 used for IPv4
  int prefix_length = 0;
  std::string text;  // as written, for messages
};

// "host:port" or "[v6]:port".
struct ListenAddress {
  std::string host;
  uint16_t port = 0;
  std::string text;
};

struct HostSettings {
  std::string source_path;                      // file it was read from, for messages
  std::string storage_root = "/var/lib/ferry";  // VM inventory and disks
  std::string api_socket = "/run/ferry/ferryd.sock";
  std::string guest_dir;                        // guest programs; empty: next to the binaries
  std::vector<ListenAddress> listen_addresses;  // peer (migration) listeners

  bool incoming_enabled = false;  // moves into this host refused unless true
  bool outgoing_enabled = false;
  uint32_t max_live_moves = 2;
  uint32_t max_storage_moves = 2;
  bool any_network = true;     // networks = ["any"]
  std::vector<Cidr> networks;  // used when any_network is false
  AuthenticationType authentication = AuthenticationType::kKerberos;
  PerformanceOption performance = PerformanceOption::kCompression;
};

// Parses TOML text; `source` names the file in every error message
// ("host.toml: migration.max_live_moves: must be an integer from 1 to 64,
// got 0"). Unknown keys are errors. kInvalidArgument for bad content;
// LoadHostSettings gives kNotFound for a missing file.
base::Result<HostSettings> ParseHostSettings(std::string_view toml_text, std::string_view source);
base::Result<HostSettings> LoadHostSettings(const std::string& path);

// "10.0.0.0/24", "fd00::/64", or a bare address meaning one host. Host bits
// set under the prefix ("10.0.0.1/24") are an error, not masked.
base::Result<Cidr> ParseCidr(std::string_view text);
// address: 4 (AF_INET) or 16 (AF_INET6) bytes in network order. Families must
// match, except that an IPv4-mapped IPv6 address matches IPv4 networks.
bool CidrContains(const Cidr& net, int family, const uint8_t* address);
base::Result<ListenAddress> ParseListenAddress(std::string_view text);

std::string_view ToString(AuthenticationType t);
std::string_view ToString(PerformanceOption p);

}  // namespace config
