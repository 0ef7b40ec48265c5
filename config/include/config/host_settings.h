// Host settings: what an admin sets per host in /etc/ferry/host.toml.
// Schema and defaults: docs/config.md. Parsed once into an immutable struct.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "base/result.h"

namespace config {

// Who stands behind a move (daemon/move_authorizer.h): certificate: the
// trusted peer host alone; kerberos: the admin's Kerberos principal,
// delegated by the source (constrained delegation); credssp: the admin's
// local account credentials, delegated after a log-on at the source.
enum class AuthenticationType { kKerberos = 1, kCredSsp = 2, kCertificate = 3 };
// "smb" joins once SMB3 is built; until then host.toml refuses it
// (kSmbNotBuilt).
enum class PerformanceOption { kTcp = 1, kCompression = 2 };

// Settings that are accepted but not built yet, in the words shown next to
// them (`ferry host show`, docs/config.md) so that none reads as working.
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

// <storage_root>/<this>: where incoming moves put disks by default
// (migration.incoming_directories); the one part of the storage root a
// move may write into.
inline constexpr const char* kIncomingDisksDir = "incoming-disks";

// [tls]: this host's identity on every peer connection and whom it trusts
// (transport/tls.h). A peer is trusted when its certificate chains to
// trusted_ca or its fingerprint is listed; with neither, nobody is.
struct TlsFiles {
  std::string certificate;                        // default <storage_root>/tls/host.crt
  std::string key;                                // default <storage_root>/tls/host.key
  std::string trusted_ca;                         // PEM bundle; "" none
  std::vector<std::string> trusted_fingerprints;  // "SHA256:AB:…", checked by ferryd at start
  bool trusts_someone() const { return !trusted_ca.empty() || !trusted_fingerprints.empty(); }
};

// [kerberos]: this host's service identity (migration.authentication =
// "kerberos"; docs/kerberos.md).
struct KerberosSettings {
  std::string keytab;             // holds the keys of service_principal
  std::string service_principal;  // "ferry-migration/host1.example.com@EXAMPLE.COM"
  std::string krb5_config;        // exported as KRB5_CONFIG; "" the system's
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
  AuthenticationType authentication = AuthenticationType::kCertificate;
  // Who may move VMs (kerberos, credssp): "alice@FERRY.TEST" (a principal),
  // "alice" (a local account, or a principal of the default realm), "@group"
  // (a local group). Required for those modes.
  std::vector<std::string> admins;
  PerformanceOption performance = PerformanceOption::kCompression;
  // Directories an incoming move may write its disk files into; a Prepare
  // naming any other destination is refused. Default:
  // <storage_root>/incoming-disks (<storage_root>/incoming is ferryd's own).
  std::vector<std::string> incoming_directories;
  TlsFiles tls;
  KerberosSettings kerberos;
  // Remote management: ferryd's API over HTTPS here (off when unset).
  std::optional<ListenAddress> api_listen;
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
