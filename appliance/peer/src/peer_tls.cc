// TLS identities for peer connections (peer_tls.h).
#include "peer/peer_tls.h"

#include <sys/stat.h>

#include <filesystem>

namespace appliance {
namespace {

bool Exists(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0;
}

}  // namespace

base::Result<transport::TlsSettings> HostTlsSettings(const config::HostSettings& host) {
  if (!host.tls.trusts_someone())
    return base::Error(base::Code::kInvalidArgument,
                       host.source_path +
                           ": [tls] trusts no peer: set tls.trusted_fingerprints to the "
                           "fingerprints `ferry host certificate show` prints on each peer, or "
                           "tls.trusted_ca to the CA that signed their certificates");
  transport::TlsSettings s;
  s.certificate_file = host.tls.certificate;
  s.key_file = host.tls.key;
  s.trusted_ca_file = host.tls.trusted_ca;
  s.trusted_fingerprints = host.tls.trusted_fingerprints;
  return s;
}

base::Result<std::shared_ptr<const transport::TlsContext>> LoadHostTls(
    const config::HostSettings& host) {
  ASSIGN_OR_RETURN(transport::TlsSettings settings, HostTlsSettings(host));
  auto context = transport::TlsContext::Create(settings);
  if (!context) return context.error().Wrap(host.source_path + ": [tls]");
  return context;
}

base::Result<std::string> EnsureHostIdentity(const config::HostSettings& host,
                                             const std::string& common_name) {
  const std::string& cert = host.tls.certificate;
  const std::string& key = host.tls.key;
  const bool have_cert = Exists(cert), have_key = Exists(key);
  if (have_cert != have_key)
    return base::Error(base::Code::kFailedPrecondition,
                       "host identity: " + (have_cert ? cert : key) + " exists but " +
                           (have_cert ? key : cert) +
                           " does not: restore the missing file, or remove both to make a new "
                           "identity (peers that pinned the old fingerprint must then be told "
                           "the new one)");
  if (!have_cert) {
    for (const std::string& file : {cert, key}) {
      std::error_code ec;
      std::filesystem::create_directories(std::filesystem::path(file).parent_path(), ec);
      if (ec)
        return base::Error(base::Code::kInternal,
                           "create the directory of " + file + ": " + ec.message());
    }
    RETURN_IF_ERROR(transport::GenerateHostIdentity(cert, key, common_name));
  }
  return transport::CertificateFingerprint(cert);
}

base::Result<PeerEndpoint> MigrationPeer(std::string_view host_port,
                                         const config::HostSettings& host,
                                         std::shared_ptr<const transport::TlsContext> tls) {
  if (tls == nullptr) {
    // Trusting nobody is the usual reason, and its error says what to set.
    if (auto settings = HostTlsSettings(host); !settings) return settings.error();
    return base::Error(base::Code::kFailedPrecondition,
                       "this host has no TLS identity for peer connections (see ferryd's log at "
                       "start)");
  }
  ASSIGN_OR_RETURN(PeerEndpoint peer, ParsePeerEndpoint(host_port, kDefaultPeerPort));
  peer.source_host = MigrationSourceHost(host);
  peer.tls = std::move(tls);
  return peer;
}

PeerTrust HostPeerTrust(const config::HostSettings& host, const std::string& peer_fingerprint) {
  PeerTrust t;
  t.certificate = host.tls.certificate;
  t.key = host.tls.key;
  t.trusted_ca = host.tls.trusted_ca;
  t.trusted_fingerprints = host.tls.trusted_fingerprints;
  t.peer_fingerprint = peer_fingerprint;
  return t;
}

base::Result<std::shared_ptr<const transport::TlsContext>> WorkerTls(const PeerTrust& trust) {
  transport::TlsSettings s;
  s.certificate_file = trust.certificate;
  s.key_file = trust.key;
  s.trusted_ca_file = trust.trusted_ca;
  s.trusted_fingerprints = trust.trusted_fingerprints;
  return transport::TlsContext::Create(s);
}

}  // namespace appliance
