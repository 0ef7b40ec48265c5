// ferryd: the appliance service. Serves the API on the host's api_socket and
// supervises one ferry-vmm worker per running VM. SIGTERM or SIGINT stop
// ferryd but not the workers: VMs keep running and a new ferryd re-attaches.
#include <limits.h>
#include <signal.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <iostream>

#include "base/log.h"
#include "config/host_settings.h"
#include "daemon/api_caller.h"
#include "daemon/api_handler.h"
#include "daemon/api_server.h"
#include "daemon/move_authorizer.h"
#include "daemon/peer_service.h"
#include "daemon/vm_service.h"
#include "logon_sessions.h"
#include "peer/peer_tls.h"

namespace {

constexpr int kExitUsage = 2;
constexpr int kExitFailed = 1;

std::string Dirname(const std::string& path) {
  auto slash = path.rfind('/');
  return slash == std::string::npos ? "." : path.substr(0, slash);
}

base::Result<std::string> SelfDirectory() {
  char buf[PATH_MAX];
  ssize_t n = ::readlink("/proc/self/exe", buf, sizeof buf - 1);
  if (n < 0) return base::ErrnoError("readlink /proc/self/exe");
  return Dirname(std::string(buf, size_t(n)));
}

std::string Normalize(const std::string& path) {
  char buf[PATH_MAX];
  return ::realpath(path.c_str(), buf) != nullptr ? std::string(buf) : path;
}

// The API serves each connection on a thread and an fd (ApiServer::Options:
// up to 1024 beside ferryd's own), which the usual soft limit of 1024 open
// files would cut short. Nothing in ferryd or its workers uses select(), so
// the soft limit is raised (to the hard limit, at most 65536).
void RaiseOpenFileLimit() {
  rlimit limit{};
  if (::getrlimit(RLIMIT_NOFILE, &limit) != 0) return;
  const rlim_t want =
      limit.rlim_max == RLIM_INFINITY ? 65536 : std::min<rlim_t>(limit.rlim_max, 65536);
  if (limit.rlim_cur >= want) return;
  limit.rlim_cur = want;
  if (::setrlimit(RLIMIT_NOFILE, &limit) != 0)
    base::LogWarning(std::string("ferryd: cannot raise the open-file limit: ") +
                     std::strerror(errno));
}

std::string Hostname() {
  char name[HOST_NAME_MAX + 1] = {};
  if (::gethostname(name, sizeof name - 1) != 0) return "ferry-host";
  return name;
}

// This host's TLS identity (created on the first start if the install did
// not) and whom it trusts. Trusting nobody is an error only where peers are
// expected; otherwise ferryd runs its VMs and refuses peers, saying why.
struct PeerTls {
  std::string fingerprint;
  std::shared_ptr<const transport::TlsContext> context;
};
base::Result<PeerTls> OpenPeerTls(const config::HostSettings& settings) {
  PeerTls tls;
  ASSIGN_OR_RETURN(tls.fingerprint, appliance::EnsureHostIdentity(settings, Hostname()));
  if (settings.tls.trusts_someone()) {
    ASSIGN_OR_RETURN(tls.context, appliance::LoadHostTls(settings));
  } else if (auto trust = appliance::HostTlsSettings(settings); !trust) {
    if (settings.incoming_enabled || settings.outgoing_enabled) return trust.error();
    base::LogWarning("ferryd: " + trust.error().message() + "; until then no move is possible");
  }
  return tls;
}

// Who may act through this ferryd (migration.authentication): the check of
// incoming Prepares, the API's authenticator and, in credssp mode, the
// log-ons kept in memory.
struct Authentication {
  std::shared_ptr<const appliance::MoveAuthorizer> authorizer;
  std::shared_ptr<appliance::LogonSessions> logons;
  std::unique_ptr<appliance::ApiAuthenticator> authenticator;
};
base::Result<Authentication> OpenAuthentication(const config::HostSettings& settings) {
  Authentication a;
  ASSIGN_OR_RETURN(a.authorizer, appliance::MakeMoveAuthorizer(settings));
  if (settings.authentication == config::AuthenticationType::kCredSsp) {
    appliance::LogonSessions::Options logon_options;
    logon_options.admins = settings.admins;
    a.logons = std::make_shared<appliance::LogonSessions>(std::move(logon_options));
  }
  ASSIGN_OR_RETURN(a.authenticator, appliance::MakeApiAuthenticator(settings, a.logons));
  return a;
}

// The local socket always; remote management over HTTPS with this host's
// certificate when api_listen is set (host.toml refuses it in certificate
// mode).
appliance::ApiServer::Options ApiOptions(const config::HostSettings& settings,
                                         const appliance::ApiAuthenticator& authenticator) {
  appliance::ApiServer::Options api_options;
  api_options.authenticator = &authenticator;
  if (settings.api_listen)
    api_options.https = appliance::ApiServer::HttpsOptions{
        .listen = *settings.api_listen,
        .certificate_file = settings.tls.certificate,
        .key_file = settings.tls.key,
        .service_principal = settings.authentication == config::AuthenticationType::kKerberos
                                 ? settings.kerberos.service_principal
                                 : ""};
  return api_options;
}

base::Status Serve(const std::string& config_path, const sigset_t& stop_signals) {
  ASSIGN_OR_RETURN(config::HostSettings settings, config::LoadHostSettings(config_path));
  // Before any thread: MIT krb5 reads it at each library call.
  if (!settings.kerberos.krb5_config.empty())
    ::setenv("KRB5_CONFIG", settings.kerberos.krb5_config.c_str(), 1);
  ASSIGN_OR_RETURN(PeerTls tls, OpenPeerTls(settings));
  ASSIGN_OR_RETURN(Authentication auth, OpenAuthentication(settings));
  RaiseOpenFileLimit();
  ASSIGN_OR_RETURN(std::string self_dir, SelfDirectory());
  appliance::ServiceOptions options;
  options.host = settings;
  options.worker_binary = self_dir + "/ferry-vmm";
  if (::access(options.worker_binary.c_str(), X_OK) != 0)
    return base::ErrnoError("worker binary " + options.worker_binary +
                            " (installed next to ferryd)");
  options.guest_dir =
      settings.guest_dir.empty() ? Normalize(self_dir + "/../guests") : settings.guest_dir;
  const char* kvm = std::getenv("FERRY_KVM_DEVICE");
  if (kvm != nullptr && *kvm != '\0') options.kvm_device = kvm;
  options.peer_tls = tls.context;
  options.tls_fingerprint = tls.fingerprint;

  ASSIGN_OR_RETURN(std::unique_ptr<appliance::VmService> service,
                   appliance::VmService::Open(options));
  appliance::StorageMoveService::Options move_options;
  move_options.max_storage_moves = settings.max_storage_moves;
  move_options.jobs_dir = settings.storage_root + "/jobs";
  ASSIGN_OR_RETURN(std::unique_ptr<appliance::StorageMoveService> moves,
                   appliance::StorageMoveService::Open(*service, move_options));
  ASSIGN_OR_RETURN(auto live, appliance::LiveMoveService::Open(
                                  *service, {.host = settings,
                                             .jobs_dir = settings.storage_root + "/live-moves",
                                             .kvm_device = options.kvm_device,
                                             .tls = tls.context}));
  // Incoming live moves: the peer listener on host.toml's listen_addresses.
  appliance::PeerService::Options peer_options;
  peer_options.host = settings;
  peer_options.worker_binary = options.worker_binary;
  peer_options.kvm_device = options.kvm_device;
  peer_options.tls = tls.context;
  peer_options.authorizer = auth.authorizer;
  ASSIGN_OR_RETURN(std::unique_ptr<appliance::PeerService> peer,
                   appliance::PeerService::Start(*service, peer_options));
  appliance::ApiHandler handler(*service, *moves, *live, auth.logons.get());
  ASSIGN_OR_RETURN(std::unique_ptr<appliance::ApiServer> server,
                   appliance::ApiServer::Start(settings.api_socket, handler,
                                               ApiOptions(settings, *auth.authenticator)));
  base::LogInfo("ferryd serving on " + settings.api_socket + " (storage " + settings.storage_root +
                ", guests " + options.guest_dir + ")");
  int sig = 0;
  while (sigwait(&stop_signals, &sig) != 0) {
  }
  base::LogInfo("ferryd stopping on signal " + std::to_string(sig) + "; vm workers keep running");
  // The server first (no request may reach the service during its teardown).
  server.reset();
  peer.reset();   // no incoming move may be adopted during the service's teardown
  moves.reset();  // before the service its job threads call
  live.reset();
  service.reset();
  return base::Ok();
}

// ferryd --init: an install step. Creates the host's TLS key and
// certificate if they do not exist yet and prints the fingerprint that
// peers pin (`ferry host certificate show` prints it later).
int Init(const std::string& config_path) {
  auto settings = config::LoadHostSettings(config_path);
  auto fingerprint = settings ? appliance::EnsureHostIdentity(*settings, Hostname())
                              : base::Result<std::string>(settings.error());
  if (!fingerprint) {
    std::cerr << "ferryd: " << fingerprint.error().message() << "\n";
    return kExitFailed;
  }
  std::cout << "certificate " << settings->tls.certificate << "\nfingerprint " << *fingerprint
            << "\n";
  return 0;
}

constexpr const char* kUsage = "usage: ferryd [--config /etc/ferry/host.toml] [--init]\n";
}  // namespace

int main(int argc, char** argv) {
  base::SetThreadName("ferryd");
  std::string config_path = "/etc/ferry/host.toml";
  bool init = false;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--init") {
      init = true;
    } else if (a == "--config" && i + 1 < argc) {
      config_path = argv[++i];
    } else if (a.rfind("--config=", 0) == 0) {
      config_path = a.substr(9);
    } else if (a == "--help") {
      std::cout << kUsage;
      return 0;
    } else {
      std::cerr << "ferryd: unknown argument \"" << a << "\"\n" << kUsage;
      return kExitUsage;
    }
  }
  if (init) return Init(config_path);
  // Blocked before any thread starts, so every thread inherits the mask and
  // only sigwait below sees these signals. Workers get a clean mask at spawn.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGTERM);
  sigaddset(&stop_signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);
  ::signal(SIGPIPE, SIG_IGN);  // a client hanging up must not kill the daemon

  auto served = Serve(config_path, stop_signals);
  if (!served) {
    std::cerr << "ferryd: " << served.error().message() << "\n";
    return kExitFailed;
  }
  return 0;
}
