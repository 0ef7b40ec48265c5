#include "api_https.h"

#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include <string>

#include "api_mhd.h"
#include "base/fd.h"
#include "base/log.h"
#include "transport/tcp.h"
#include "transport/tls.h"

namespace appliance {
namespace {

// TLS 1.3 and 1.2 (curl and browsers that management hosts run speak one of
// them); SSL 3.0, TLS 1.0 and 1.1 are refused in the handshake.
constexpr const char* kTlsPriorities = "NORMAL:-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2";
// One management host opens a few connections (a move's follow polls); far
// more from one address is a client gone wrong or an attack on the limit.
constexpr unsigned kConnectionsPerAddress = 64;
// The MHD logger's prefix for this listener.
constexpr const char* kLogPrefix = "https api";

}  // namespace

base::Result<std::vector<uint8_t>> ServerEndPointBinding(const std::string& certificate_file) {
  ASSIGN_OR_RETURN(std::string fingerprint, transport::CertificateFingerprint(certificate_file));
  ASSIGN_OR_RETURN(auto sha256, transport::ParseFingerprint(fingerprint));
  return std::vector<uint8_t>(sha256.begin(), sha256.end());
}

base::Result<HttpsDaemon> StartHttpsDaemon(const ApiServer::HttpsOptions& https,
                                           ApiListener& listener, unsigned max_connections,
                                           unsigned idle_timeout_s) {
  const std::string where = "api_listen " + https.listen.text;
  if (MHD_is_feature_supported(MHD_FEATURE_TLS) != MHD_YES)
    return base::Error(base::Code::kFailedPrecondition,
                       where + ": this libmicrohttpd was built without TLS");
  // Read whole: MHD takes PEM text, not file names. The key never leaves
  // this function's strings and MHD's (GnuTLS) copy.
  auto certificate = base::ReadFileToString(https.certificate_file);
  if (!certificate) return certificate.error().Wrap(where + ": [tls] certificate");
  auto key = base::ReadFileToString(https.key_file);
  if (!key) return key.error().Wrap(where + ": [tls] key");
  ASSIGN_OR_RETURN(transport::TcpListener bound,
                   transport::TcpListener::Bind(https.listen.host, https.listen.port));
  // MHD closes the socket it was given; the TcpListener closes its own.
  int fd = ::fcntl(bound.fd(), F_DUPFD_CLOEXEC, 0);
  if (fd < 0) return base::ErrnoError(where + ": dup of the listening socket");
  HttpsDaemon started;
  started.port = bound.port();
  started.daemon = MHD_start_daemon(
      MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_POLL |
          MHD_USE_ERROR_LOG | MHD_USE_TLS,
      0, nullptr, nullptr, &HandleApiRequest, &listener, MHD_OPTION_EXTERNAL_LOGGER, &LogFromMhd,
      const_cast<char*>(kLogPrefix), MHD_OPTION_LISTEN_SOCKET, fd, MHD_OPTION_NOTIFY_COMPLETED,
      &ApiRequestCompleted, nullptr, MHD_OPTION_CONNECTION_TIMEOUT, idle_timeout_s,
      MHD_OPTION_CONNECTION_LIMIT, max_connections, MHD_OPTION_PER_IP_CONNECTION_LIMIT,
      kConnectionsPerAddress, MHD_OPTION_HTTPS_MEM_CERT, certificate->c_str(),
      MHD_OPTION_HTTPS_MEM_KEY, key->c_str(), MHD_OPTION_HTTPS_PRIORITIES, kTlsPriorities,
      MHD_OPTION_END);
  // Wipe our copy of the private key; GnuTLS holds its own now.
  ::explicit_bzero(key->data(), key->size());
  if (started.daemon == nullptr) {
    ::close(fd);
    return base::Error(base::Code::kInvalidArgument,
                       where + ": cannot start HTTPS with [tls] certificate " +
                           https.certificate_file + " and key " + https.key_file +
                           " (see the log for libmicrohttpd's reason)");
  }
  base::LogInfo("ferryd serving its API over HTTPS on " + https.listen.host + ":" +
                std::to_string(started.port));
  return started;
}

}  // namespace appliance
