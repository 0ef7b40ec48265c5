// host.toml: parsing, defaults and validation. Schema: docs/config.md.
#include "config/host_settings.h"

#include <arpa/inet.h>
#include <sys/un.h>

#include <algorithm>
#include <optional>

#include "base/fd.h"
#include "toml_reader.h"

namespace config {
namespace {

// Limits on simultaneous moves; beyond 64 the host would run out of bandwidth
// long before it ran out of slots.
constexpr int64_t kMaxMoves = 64;

// An absolute path: required for anything a daemon opens, since its working
// directory is not the admin's.
base::Result<std::optional<std::string>> ReadAbsolutePath(TableReader& r, std::string_view key) {
  ASSIGN_OR_RETURN(auto path, r.String(key));
  if (path && (path->empty() || path->front() != '/')) {
    return r.Invalid(key, "must be an absolute path, got " + QuoteToml(*path));
  }
  return path;
}

// A list of absolute paths; "" and relative entries are refused by index.
base::Result<std::optional<std::vector<std::string>>> ReadAbsolutePaths(TableReader& r,
                                                                        std::string_view key) {
  ASSIGN_OR_RETURN(auto paths, r.StringArray(key));
  if (!paths) return paths;
  for (size_t i = 0; i < paths->size(); ++i) {
    const std::string& path = (*paths)[i];
    if (path.empty() || path.front() != '/')
      return r.Invalid(std::string(key) + "[" + std::to_string(i) + "]",
                       "must be an absolute path, got " + QuoteToml(path));
  }
  return paths;
}

base::Status ReadListenAddresses(TableReader& r, HostSettings& s) {
  ASSIGN_OR_RETURN(auto texts, r.StringArray("listen_addresses"));
  if (!texts) return base::Ok();
  for (size_t i = 0; i < texts->size(); ++i) {
    std::string key = "listen_addresses[" + std::to_string(i) + "]";
    auto address = ParseListenAddress((*texts)[i]);
    if (!address) return r.Invalid(key, address.error().message());
    // The peer listener binds an address; a name would pass here and stop
    // ferryd at start, so it is refused where the file is read.
    in6_addr ip{};
    if (::inet_pton(AF_INET, address->host.c_str(), &ip) != 1 &&
        ::inet_pton(AF_INET6, address->host.c_str(), &ip) != 1) {
      return r.Invalid(
          key,
          "listen address " + QuoteToml((*texts)[i]) +
              ": must be an IPv4 or IPv6 address (ferryd listens on addresses, not host names)");
    }
    for (const auto& earlier : s.listen_addresses) {
      if (earlier.host == address->host && earlier.port == address->port) {
        return r.Invalid(key, "duplicate listen address " + QuoteToml((*texts)[i]));
      }
    }
    s.listen_addresses.push_back(*std::move(address));
  }
  return base::Ok();
}

base::Status ReadNetworks(TableReader& r, HostSettings& s) {
  ASSIGN_OR_RETURN(auto texts, r.StringArray("networks"));
  if (!texts) return base::Ok();
  if (texts->empty()) {
    return r.Invalid("networks", "must list at least one network, or be [\"any\"]");
  }
  bool any = std::find(texts->begin(), texts->end(), "any") != texts->end();
  if (any && texts->size() > 1) {
    return r.Invalid("networks", "\"any\" cannot be combined with other networks");
  }
  s.any_network = any;
  if (any) return base::Ok();
  for (size_t i = 0; i < texts->size(); ++i) {
    auto cidr = ParseCidr((*texts)[i]);
    if (!cidr) return r.Invalid("networks[" + std::to_string(i) + "]", cidr.error().message());
    s.networks.push_back(*std::move(cidr));
  }
  return base::Ok();
}

// "smb" names a transport that is not built: refused by name, so that a
// host.toml never reads as moving over SMB3 while it moves over TCP.
base::Status ReadPerformance(TableReader& r, HostSettings& s) {
  if (const toml::node* node = r.Get("performance");
      node != nullptr && node->value<std::string>() == "smb") {
    return r.Invalid("performance", kSmbNotBuilt);
  }
  ASSIGN_OR_RETURN(auto perf, r.Choice("performance", {"tcp", "compression"}));
  if (perf) {
    static constexpr PerformanceOption kOptions[] = {PerformanceOption::kTcp,
                                                     PerformanceOption::kCompression};
    s.performance = kOptions[*perf];
  }
  return base::Ok();
}

base::Status ReadMigration(TableReader& r, HostSettings& s) {
  ASSIGN_OR_RETURN(auto incoming, r.Bool("incoming_enabled"));
  if (incoming) s.incoming_enabled = *incoming;
  ASSIGN_OR_RETURN(auto outgoing, r.Bool("outgoing_enabled"));
  if (outgoing) s.outgoing_enabled = *outgoing;
  ASSIGN_OR_RETURN(auto live, r.Integer("max_live_moves", 1, kMaxMoves));
  if (live) s.max_live_moves = static_cast<uint32_t>(*live);
  ASSIGN_OR_RETURN(auto storage, r.Integer("max_storage_moves", 1, kMaxMoves));
  if (storage) s.max_storage_moves = static_cast<uint32_t>(*storage);
  RETURN_IF_ERROR(ReadNetworks(r, s));

  ASSIGN_OR_RETURN(auto auth, r.Choice("authentication", {"certificate", "kerberos", "credssp"}));
  if (auth) {
    static constexpr AuthenticationType kTypes[] = {AuthenticationType::kCertificate,
                                                    AuthenticationType::kKerberos,
                                                    AuthenticationType::kCredSsp};
    s.authentication = kTypes[*auth];
  }
  ASSIGN_OR_RETURN(auto admins, r.StringArray("admins"));
  if (admins) {
    for (size_t i = 0; i < admins->size(); ++i) {
      const std::string& a = (*admins)[i];
      if (a.empty() || a == "@")
        return r.Invalid("admins[" + std::to_string(i) + "]",
                         "must be a user, a principal or \"@group\", not " + QuoteToml(a));
    }
    s.admins = *std::move(admins);
  }
  RETURN_IF_ERROR(ReadPerformance(r, s));
  ASSIGN_OR_RETURN(auto incoming_dirs, ReadAbsolutePaths(r, "incoming_directories"));
  if (incoming_dirs) {
    if (incoming_dirs->empty())
      return r.Invalid("incoming_directories",
                       "must list at least one directory (to refuse every incoming move, set "
                       "incoming_enabled = false)");
    s.incoming_directories = *std::move(incoming_dirs);
  }
  return r.CheckNoUnknownKeys();
}

base::Status ReadTls(TableReader& r, HostSettings& s) {
  ASSIGN_OR_RETURN(auto certificate, ReadAbsolutePath(r, "certificate"));
  if (certificate) s.tls.certificate = *certificate;
  ASSIGN_OR_RETURN(auto key, ReadAbsolutePath(r, "key"));
  if (key) s.tls.key = *key;
  ASSIGN_OR_RETURN(auto ca, ReadAbsolutePath(r, "trusted_ca"));
  if (ca) s.tls.trusted_ca = *ca;
  ASSIGN_OR_RETURN(auto pins, r.StringArray("trusted_fingerprints"));
  if (pins) s.tls.trusted_fingerprints = *std::move(pins);
  return r.CheckNoUnknownKeys();
}

base::Status ReadKerberos(TableReader& r, HostSettings& s) {
  ASSIGN_OR_RETURN(auto keytab, ReadAbsolutePath(r, "keytab"));
  if (keytab) s.kerberos.keytab = *keytab;
  ASSIGN_OR_RETURN(auto principal, r.String("service_principal"));
  if (principal) s.kerberos.service_principal = *principal;
  ASSIGN_OR_RETURN(auto krb5_config, ReadAbsolutePath(r, "krb5_config"));
  if (krb5_config) s.kerberos.krb5_config = *krb5_config;
  return r.CheckNoUnknownKeys();
}

// What a mode needs, said where the file is read rather than at the first
// move. `file` names the file in each message.
base::Status CheckAuthentication(const HostSettings& s, std::string_view file) {
  auto invalid = [&](const std::string& key, const std::string& why) {
    return base::Error(base::Code::kInvalidArgument, std::string(file) + ": " + key + ": " + why);
  };
  const std::string mode(ToString(s.authentication));
  if (s.authentication == AuthenticationType::kKerberos) {
    if (s.kerberos.keytab.empty())
      return invalid("kerberos.keytab", "required with migration.authentication = \"kerberos\"");
    if (s.kerberos.service_principal.empty())
      return invalid("kerberos.service_principal",
                     "required with migration.authentication = \"kerberos\" (for example "
                     "\"ferry-migration/host1.example.com@EXAMPLE.COM\")");
  }
  if (s.authentication != AuthenticationType::kCertificate && s.admins.empty())
    return invalid("migration.admins", "required with migration.authentication = \"" + mode +
                                           "\": nobody else could move a VM");
  if (s.api_listen && s.authentication == AuthenticationType::kCertificate)
    return invalid("api_listen",
                   "remote management needs migration.authentication = \"kerberos\" or "
                   "\"credssp\": a remote caller must prove who it is");
  return base::Ok();
}

// Defaults that depend on storage_root, applied once the whole file is read.
void ApplyStorageRootDefaults(HostSettings& s) {
  if (s.incoming_directories.empty())
    s.incoming_directories = {s.storage_root + "/" + kIncomingDisksDir};
  if (s.tls.certificate.empty()) s.tls.certificate = s.storage_root + "/tls/host.crt";
  if (s.tls.key.empty()) s.tls.key = s.storage_root + "/tls/host.key";
}

}  // namespace

base::Result<HostSettings> ParseHostSettings(std::string_view toml_text, std::string_view source) {
  ASSIGN_OR_RETURN(toml::table root, ParseToml(toml_text, source));
  HostSettings s;
  s.source_path = std::string(source);
  TableReader r(root, source, "");

  ASSIGN_OR_RETURN(auto storage_root, ReadAbsolutePath(r, "storage_root"));
  if (storage_root) s.storage_root = *storage_root;
  ASSIGN_OR_RETURN(auto api_socket, ReadAbsolutePath(r, "api_socket"));
  if (api_socket) {
    // bind() cannot take a longer path, so fail here rather than at start-up.
    constexpr size_t kMaxSocketPath = sizeof(sockaddr_un::sun_path) - 1;
    if (api_socket->size() > kMaxSocketPath) {
      return r.Invalid("api_socket", "must be at most " + std::to_string(kMaxSocketPath) +
                                         " bytes long (the limit of a Unix socket path), got " +
                                         std::to_string(api_socket->size()) + " bytes");
    }
    s.api_socket = *api_socket;
  }
  ASSIGN_OR_RETURN(auto guest_dir, ReadAbsolutePath(r, "guest_dir"));
  if (guest_dir) s.guest_dir = *guest_dir;
  RETURN_IF_ERROR(ReadListenAddresses(r, s));

  if (const toml::node* migration = r.Get("migration"); migration != nullptr) {
    const toml::table* table = migration->as_table();
    if (table == nullptr) return r.Invalid("migration", "must be a table", *migration);
    TableReader m(*table, source, "migration");
    RETURN_IF_ERROR(ReadMigration(m, s));
  }
  ASSIGN_OR_RETURN(auto api_listen, r.String("api_listen"));
  if (api_listen) {
    auto address = ParseListenAddress(*api_listen);
    if (!address) return r.Invalid("api_listen", address.error().message());
    s.api_listen = *std::move(address);
  }
  if (const toml::node* kerberos = r.Get("kerberos"); kerberos != nullptr) {
    const toml::table* table = kerberos->as_table();
    if (table == nullptr) return r.Invalid("kerberos", "must be a table", *kerberos);
    TableReader k(*table, source, "kerberos");
    RETURN_IF_ERROR(ReadKerberos(k, s));
  }
  if (const toml::node* tls = r.Get("tls"); tls != nullptr) {
    const toml::table* table = tls->as_table();
    if (table == nullptr) return r.Invalid("tls", "must be a table", *tls);
    TableReader t(*table, source, "tls");
    RETURN_IF_ERROR(ReadTls(t, s));
  }
  RETURN_IF_ERROR(r.CheckNoUnknownKeys());
  RETURN_IF_ERROR(CheckAuthentication(s, source));
  ApplyStorageRootDefaults(s);
  return s;
}

base::Result<HostSettings> LoadHostSettings(const std::string& path) {
  auto text = base::ReadFileToString(path);
  if (!text) return text.error().Wrap("read host settings");
  return ParseHostSettings(*text, path);
}

std::string_view ToString(AuthenticationType t) {
  switch (t) {
    case AuthenticationType::kKerberos: return "kerberos";
    case AuthenticationType::kCredSsp: return "credssp";
    case AuthenticationType::kCertificate: return "certificate";
  }
  return "invalid";
}

std::string_view ToString(PerformanceOption p) {
  switch (p) {
    case PerformanceOption::kTcp: return "tcp";
    case PerformanceOption::kCompression: return "compression";
  }
  return "invalid";
}

}  // namespace config
