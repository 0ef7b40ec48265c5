#include "support/samba_dc.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "support/files.h"
#include "support/text.h"
#include "support/wait_for.h"

namespace ferry_test {
namespace {

constexpr char kNetnsPrefix[] = "ferry-dc-";
constexpr char kDirPrefix[] = "/tmp/ferry-samba-";
constexpr char kAdminPassword[] = "Ferry-Admin-Pass1!";

bool OnPath(const std::string& name) {
  const char* path = getenv("PATH");
  std::stringstream dirs(path ? path : "/usr/bin:/bin");
  std::string dir;
  while (std::getline(dirs, dir, ':')) {
    if (access((dir + "/" + name).c_str(), X_OK) == 0) return true;
  }
  for (const char* extra : {"/usr/sbin/", "/sbin/"}) {
    if (access((std::string(extra) + name).c_str(), X_OK) == 0) return true;
  }
  return false;
}

// Runs argv (searched on PATH, plus the sbin directories) with env added,
// feeding input on stdin; returns the exit status and stdout+stderr.
SambaDc::Output RunProcess(const std::vector<std::string>& argv, const std::string& input,
                           const std::vector<std::string>& env) {
  SambaDc::Output out;
  int in[2], outp[2];
  if (pipe2(in, O_CLOEXEC) != 0) return out;
  if (pipe2(outp, O_CLOEXEC) != 0) {
    close(in[0]);
    close(in[1]);
    return out;
  }
  pid_t pid = fork();
  if (pid == 0) {
    dup2(in[0], 0);
    dup2(outp[1], 1);
    dup2(outp[1], 2);
    for (const std::string& e : env) putenv(const_cast<char*>(e.c_str()));
    std::string path = getenv("PATH") ? getenv("PATH") : "/usr/bin:/bin";
    setenv("PATH", (path + ":/usr/sbin:/sbin").c_str(), 1);
    std::vector<char*> args;
    for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    execvp(args[0], args.data());
    _exit(127);
  }
  close(in[0]);
  close(outp[1]);
  if (pid > 0) {
    // Inputs are a password or nothing: far below the pipe's buffer.
    if (!input.empty() && write(in[1], input.data(), input.size()) < 0) out.text = "(stdin) ";
    close(in[1]);
    char buf[4096];
    ssize_t n;
    while ((n = read(outp[0], buf, sizeof buf)) > 0) out.text.append(buf, n);
    int status = 0;
    waitpid(pid, &status, 0);
    out.status = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  } else {
    close(in[1]);
  }
  close(outp[0]);
  return out;
}

SambaDc::Output Sh(const std::vector<std::string>& argv) { return RunProcess(argv, "", {}); }

bool PidAlive(pid_t pid) { return kill(pid, 0) == 0 || errno == EPERM; }

void DeleteNamespace(const std::string& ns) {
  // Kill what still runs inside (a samba of a crashed run), then the
  // namespace; its veth end goes with it and takes the host end along.
  for (const std::string& line : Lines(Sh({"ip", "netns", "pids", ns}).text)) {
    if (!line.empty() && std::all_of(line.begin(), line.end(), ::isdigit))
      kill(std::stoi(line), SIGKILL);
  }
  Sh({"ip", "netns", "del", ns});
  std::error_code ec;
  std::filesystem::remove_all("/etc/netns/" + ns, ec);
}

// Removes the namespaces and directories of earlier runs whose process is gone.
void RemoveStale() {
  for (const std::string& line : Lines(Sh({"ip", "netns", "list"}).text)) {
    std::string ns = line.substr(0, line.find(' '));
    if (ns.rfind(kNetnsPrefix, 0) != 0) continue;
    pid_t pid = std::atoi(ns.c_str() + strlen(kNetnsPrefix));
    if (pid > 0 && !PidAlive(pid)) DeleteNamespace(ns);
  }
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator("/tmp", ec)) {
    std::string name = entry.path().string();
    if (name.rfind(kDirPrefix, 0) != 0) continue;
    pid_t pid = std::atoi(name.c_str() + strlen(kDirPrefix));
    if (pid > 0 && !PidAlive(pid)) std::filesystem::remove_all(entry.path(), ec);
  }
}

bool KdcAnswers(const std::string& address) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return false;
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_port = htons(88);
  inet_pton(AF_INET, address.c_str(), &sa.sin_addr);
  bool ok = connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) == 0;
  close(fd);
  return ok;
}

::testing::AssertionResult Check(const SambaDc::Output& out, const std::string& what) {
  if (out.status == 0) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << what << " failed (exit " << out.status << "):\n"
                                       << out.text;
}

}  // namespace

std::string SambaDc::UnavailableReason() {
  if (geteuid() != 0) return "a Samba AD DC needs root (network namespace, /run/samba)";
  for (const char* tool : {"samba-tool", "samba", "ip", "kinit"}) {
    if (!OnPath(tool))
      return std::string(tool) +
             " is not installed (Debian: samba, samba-ad-dc, "
             "samba-ad-provision, krb5-user, iproute2)";
  }
  if (!std::filesystem::exists("/usr/share/samba/setup/ad-schema"))
    return "samba-ad-provision is not installed (samba-tool cannot provision a domain)";
  return "";
}

std::unique_ptr<SambaDc> SambaDc::Start(const std::string& realm) {
  std::unique_ptr<SambaDc> dc(new SambaDc());
  dc->realm_ = realm;
  dc->dns_domain_ = realm;
  std::transform(realm.begin(), realm.end(), dc->dns_domain_.begin(), ::tolower);
  RemoveStale();
  pid_t self = getpid();
  dc->dir_ = kDirPrefix + std::to_string(self);
  std::error_code ec;
  std::filesystem::remove_all(dc->dir_, ec);
  std::filesystem::create_directories(dc->dir_ + "/dc", ec);
  std::filesystem::create_directories("/run/samba", ec);
  for (auto step : {&SambaDc::SetUpNetwork, &SambaDc::Provision, &SambaDc::StartSamba}) {
    if (::testing::AssertionResult r = ((*dc).*step)(); !r) {
      ADD_FAILURE() << "Samba DC: " << r.message();
      return nullptr;
    }
  }
  return dc;
}

::testing::AssertionResult SambaDc::SetUpNetwork() {
  // A /30 per pid, so a leftover of another run cannot hold our addresses.
  pid_t self = getpid();
  int index = self % 16384;
  std::string prefix = "10.251." + std::to_string(index / 64) + ".";
  int base = (index % 64) * 4;
  host_address_ = prefix + std::to_string(base + 1);
  ns_address_ = prefix + std::to_string(base + 2);
  netns_ = kNetnsPrefix + std::to_string(self);
  host_veth_ = "fdc" + std::to_string(self) + "h";
  std::string ns_veth = "fdc" + std::to_string(self) + "n";
  DeleteNamespace(netns_);
  std::vector<std::vector<std::string>> steps = {
      {"ip", "netns", "add", netns_},
      {"ip", "link", "add", host_veth_, "type", "veth", "peer", "name", ns_veth},
      {"ip", "link", "set", ns_veth, "netns", netns_},
      {"ip", "addr", "add", host_address_ + "/30", "dev", host_veth_},
      {"ip", "link", "set", host_veth_, "up"},
      {"ip", "-n", netns_, "addr", "add", ns_address_ + "/30", "dev", ns_veth},
      {"ip", "-n", netns_, "link", "set", ns_veth, "up"},
      {"ip", "-n", netns_, "link", "set", "lo", "up"},
  };
  for (const auto& argv : steps) {
    if (auto r = Check(Sh(argv), argv[0] + " " + argv[1] + " " + argv[2]); !r) return r;
  }
  // ip netns exec mounts these over /etc/hosts inside the namespace.
  std::error_code ec;
  std::filesystem::create_directories("/etc/netns/" + netns_, ec);
  std::string short_name = "dc1";
  WriteFile("/etc/netns/" + netns_ + "/hosts", "127.0.0.1 localhost\n" + ns_address_ + " " +
                                                   short_name + "." + dns_domain_ + " " +
                                                   short_name + "\n");
  return ::testing::AssertionSuccess();
}

::testing::AssertionResult SambaDc::Provision() {
  std::string empty_conf = dir_ + "/empty.conf";
  WriteFile(empty_conf, "");
  std::string netbios = realm_.substr(0, realm_.find('.'));
  auto r = Check(
      Sh({"samba-tool", "domain", "provision", "-s", empty_conf, "--targetdir=" + dir_ + "/dc",
          "--realm=" + realm_, "--domain=" + netbios, "--server-role=dc",
          "--dns-backend=SAMBA_INTERNAL", "--use-rfc2307", "--host-name=dc1",
          "--host-ip=" + ns_address_, std::string("--adminpass=") + kAdminPassword}),
      "samba-tool domain provision");
  if (!r) return r;
  smb_conf_ = dir_ + "/dc/etc/smb.conf";
  // Only the KDC is needed; no DNS server (it would forward to the host's
  // resolver), no NetBIOS. The rest of the directory is reached through
  // samba-tool on the database files.
  std::string conf = ReadFile(smb_conf_);
  std::string::size_type fwd = conf.find("\tdns forwarder");
  if (fwd != std::string::npos) conf.erase(fwd, conf.find('\n', fwd) - fwd + 1);
  conf.insert(conf.find("[global]\n") + 9, "\tserver services = kdc\n\tinterfaces = lo " +
                                               ns_address_ + "/30\n\tlog level = 1\n");
  WriteFile(smb_conf_, conf);
  krb5_conf_ = dir_ + "/krb5.conf";
  WriteFile(krb5_conf_, "[libdefaults]\n  default_realm = " + realm_ +
                            "\n  dns_lookup_kdc = false\n  dns_lookup_realm = false\n"
                            "  rdns = false\n  dns_canonicalize_hostname = false\n"
                            "  forwardable = true\n  udp_preference_limit = 1\n"
                            "[realms]\n  " +
                            realm_ + " = {\n    kdc = " + ns_address_ +
                            "\n  }\n[domain_realm]\n  ." + dns_domain_ + " = " + realm_ + "\n");
  return ::testing::AssertionSuccess();
}

::testing::AssertionResult SambaDc::StartSamba() {
  int in[2];
  if (pipe2(in, O_CLOEXEC) != 0) return ::testing::AssertionFailure() << "pipe: " << errno;
  std::string log = dir_ + "/samba.log";
  pid_t pid = fork();
  if (pid == 0) {
    setpgid(0, 0);
    dup2(in[0], 0);
    int fd = open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    dup2(fd, 1);
    dup2(fd, 2);
    execlp("ip", "ip", "netns", "exec", netns_.c_str(), "samba", "-i", "-s", smb_conf_.c_str(),
           static_cast<char*>(nullptr));
    _exit(127);
  }
  close(in[0]);
  if (pid < 0) {
    close(in[1]);
    return ::testing::AssertionFailure() << "fork: " << errno;
  }
  samba_pid_ = pid;
  samba_stdin_ = in[1];
  auto ready = WaitFor(
      "the Samba KDC to answer on " + ns_address_ + ":88", std::chrono::seconds(30),
      [&] {
        if (waitpid(samba_pid_, nullptr, WNOHANG) == samba_pid_) {
          samba_pid_ = -1;
          return true;  // died: reported below
        }
        return KdcAnswers(ns_address_);
      },
      std::chrono::milliseconds(100));
  if (samba_pid_ < 0 || !ready)
    return ::testing::AssertionFailure() << "samba did not start; its log:\n" << ReadFile(log);
  return ::testing::AssertionSuccess();
}

SambaDc::~SambaDc() { Stop(); }

void SambaDc::Stop() {
  if (samba_stdin_ >= 0) close(samba_stdin_);
  samba_stdin_ = -1;
  if (samba_pid_ > 0) {
    kill(-samba_pid_, SIGTERM);
    bool gone = static_cast<bool>(WaitFor("samba to exit", std::chrono::seconds(10), [&] {
      return waitpid(samba_pid_, nullptr, WNOHANG) == samba_pid_;
    }));
    if (!gone) {
      kill(-samba_pid_, SIGKILL);
      waitpid(samba_pid_, nullptr, 0);
    }
    samba_pid_ = -1;
  }
  if (!netns_.empty()) DeleteNamespace(netns_);
  netns_.clear();
  if (!dir_.empty()) {
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }
  dir_.clear();
}

SambaDc::Output SambaDc::Run(const std::vector<std::string>& argv, const std::string& input) const {
  return RunProcess(argv, input, {"KRB5_CONFIG=" + krb5_conf_});
}

::testing::AssertionResult SambaDc::Tool(std::vector<std::string> args) {
  std::string what = "samba-tool";
  for (const std::string& a : args) what += " " + a;
  args.insert(args.begin(), "samba-tool");
  args.push_back("-s");
  args.push_back(smb_conf_);
  return Check(Run(args), what);
}

::testing::AssertionResult SambaDc::CreateUser(const std::string& name,
                                               const std::string& password) {
  return Tool({"user", "create", name, password});
}

::testing::AssertionResult SambaDc::CreateComputer(const std::string& host) {
  std::string fqdn = host + "." + dns_domain_;
  auto r = Tool({"computer", "create", host, "--service-principal-name=ferry-migration/" + fqdn,
                 "--service-principal-name=host/" + fqdn});
  if (!r) return r;
  return SetRandomPassword(host + "$");
}

::testing::AssertionResult SambaDc::SetRandomPassword(const std::string& account) {
  return Tool({"user", "setpassword", account, "--random-password"});
}

std::string SambaDc::ExportKeytab(const std::string& account) {
  std::string path = dir_ + "/keytab-" + std::to_string(next_file_++);
  auto r = Tool({"domain", "exportkeytab", path, "--principal=" + account});
  if (!r) {
    ADD_FAILURE() << r.message();
    return "";
  }
  return path;
}

::testing::AssertionResult SambaDc::AllowDelegation(const std::string& from_account,
                                                    const std::string& to_service) {
  return Tool({"delegation", "add-service", from_account, to_service});
}

::testing::AssertionResult SambaDc::RemoveDelegation(const std::string& from_account,
                                                     const std::string& to_service) {
  return Tool({"delegation", "del-service", from_account, to_service});
}

::testing::AssertionResult SambaDc::AllowProtocolTransition(const std::string& account, bool on) {
  return Tool({"delegation", "for-any-protocol", account, on ? "on" : "off"});
}

std::string SambaDc::Kinit(const std::string& user, const std::string& password,
                           const std::vector<std::string>& extra_args) {
  std::string ccache = "FILE:" + dir_ + "/ccache-" + std::to_string(next_file_++);
  std::vector<std::string> argv = {"kinit", "-c", ccache};
  argv.insert(argv.end(), extra_args.begin(), extra_args.end());
  argv.push_back(Principal(user));
  Output out = Run(argv, password + "\n");
  if (out.status != 0) {
    ADD_FAILURE() << "kinit " << Principal(user) << " failed (exit " << out.status << "):\n"
                  << out.text;
    return "";
  }
  return ccache;
}

void SambaDc::UseInThisProcess() const {
  ::setenv("KRB5_CONFIG", krb5_conf_.c_str(), 1);
  const std::string rcache = dir_ + "/rcache";
  ::mkdir(rcache.c_str(), 0700);
  ::setenv("KRB5RCACHEDIR", rcache.c_str(), 1);
}

}  // namespace ferry_test
