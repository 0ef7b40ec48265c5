#include "qemu_reference.h"

#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <condition_variable>
#include <cstring>
#include <mutex>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "base/clock.h"
#include "base/fd.h"

namespace bench {
namespace {

using nlohmann::json;

double Now() { return base::MonotonicSeconds(); }
void SleepS(double s) { std::this_thread::sleep_for(std::chrono::microseconds(int64_t(s * 1e6))); }

// One QEMU child: stdin is a pipe (the guest's serial input), stdout+stderr a
// pipe read by a thread into `output_` (the serial console and QEMU's own
// messages), so the benchmark can wait for guest lines.
class QemuProcess {
 public:
  ~QemuProcess() { Kill(); }

  base::Status Start(const std::vector<std::string>& args) {
    int in[2], out[2];
    if (::pipe2(in, O_CLOEXEC) != 0) return base::ErrnoError("pipe");
    if (::pipe2(out, O_CLOEXEC) != 0) return base::ErrnoError("pipe");
    std::vector<char*> argv;
    for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    pid_t pid = ::fork();
    if (pid < 0) return base::ErrnoError("fork");
    if (pid == 0) {
      // Never outlive the benchmark, even when it is killed.
      ::prctl(PR_SET_PDEATHSIG, SIGKILL);
      // Signal dispositions reset on exec, the mask does not: QEMU must not
      // inherit whatever the VMM's threads block.
      sigset_t none;
      ::sigemptyset(&none);
      ::sigprocmask(SIG_SETMASK, &none, nullptr);
      ::dup2(in[0], 0);
      ::dup2(out[1], 1);
      ::dup2(out[1], 2);
      ::execvp(argv[0], argv.data());
      ::_exit(127);
    }
    pid_ = pid;
    ::close(in[0]);
    ::close(out[1]);
    stdin_ = base::Fd(in[1]);
    stdout_ = base::Fd(out[0]);
    reader_ = std::thread([this] { ReadLoop(); });
    return base::Ok();
  }

  std::string Output() {
    std::lock_guard<std::mutex> lock(mu_);
    return output_;
  }
  bool exited() {
    std::lock_guard<std::mutex> lock(mu_);
    return eof_;
  }

  // Position of the first of `needles` found at or after `from`, waiting up
  // to timeout_s; npos on timeout or when QEMU closed its output. `which`
  // gets the index of the needle found.
  size_t WaitFor(const std::vector<std::string>& needles, size_t from, double timeout_s,
                 size_t* which = nullptr) {
    std::unique_lock<std::mutex> lock(mu_);
    auto deadline =
        std::chrono::steady_clock::now() + std::chrono::microseconds(int64_t(timeout_s * 1e6));
    for (;;) {
      size_t best = std::string::npos;
      for (size_t i = 0; i < needles.size(); ++i) {
        size_t p = output_.find(needles[i], from);
        if (p < best) {
          best = p;
          if (which) *which = i;
        }
      }
      if (best != std::string::npos || eof_) return best;
      if (cv_.wait_until(lock, deadline) == std::cv_status::timeout) return std::string::npos;
    }
  }

  base::Status SendLine(const std::string& line) {
    std::string l = line + "\n";
    return base::WriteAll(stdin_.get(), l.data(), l.size());
  }

  void Kill() {
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      int st = 0;
      ::waitpid(pid_, &st, 0);
      pid_ = -1;
    }
    stdin_.Reset();
    if (reader_.joinable()) reader_.join();
  }

  // Lets QEMU exit on its own (after QMP quit), then makes sure.
  void Reap(double timeout_s) {
    double end = Now() + timeout_s;
    while (pid_ > 0 && Now() < end) {
      int st = 0;
      if (::waitpid(pid_, &st, WNOHANG) == pid_) {
        pid_ = -1;
        break;
      }
      SleepS(0.02);
    }
    Kill();
  }

 private:
  void ReadLoop() {
    char buf[4096];
    for (;;) {
      ssize_t n = ::read(stdout_.get(), buf, sizeof buf);
      if (n < 0 && errno == EINTR) continue;
      std::lock_guard<std::mutex> lock(mu_);
      if (n <= 0) {
        eof_ = true;
        cv_.notify_all();
        return;
      }
      output_.append(buf, size_t(n));
      cv_.notify_all();
    }
  }

  pid_t pid_ = -1;
  base::Fd stdin_, stdout_;
  std::thread reader_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::string output_;
  bool eof_ = false;
};

// A minimal QMP client: one command at a time, events skipped.
class Qmp {
 public:
  base::Status Connect(const std::string& path, double timeout_s) {
    double end = Now() + timeout_s;
    for (;;) {
      base::Fd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
      if (!fd.valid()) return base::ErrnoError("socket");
      sockaddr_un addr{};
      addr.sun_family = AF_UNIX;
      std::snprintf(addr.sun_path, sizeof addr.sun_path, "%s", path.c_str());
      if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0) {
        fd_ = std::move(fd);
        break;
      }
      if (Now() > end) return base::ErrnoError("connect to QMP " + path);
      SleepS(0.05);
    }
    ASSIGN_OR_RETURN(json greeting, ReadMessage(10));
    if (!greeting.contains("QMP")) return base::Error(base::Code::kInternal, "QMP: no greeting");
    return Execute("qmp_capabilities").has_value()
               ? base::Ok()
               : base::Error(base::Code::kInternal, "QMP: capabilities refused");
  }

  base::Result<json> Execute(const std::string& command, const json& arguments = json::object()) {
    json req = {{"execute", command}};
    if (!arguments.empty()) req["arguments"] = arguments;
    std::string text = req.dump() + "\n";
    RETURN_IF_ERROR(base::WriteAll(fd_.get(), text.data(), text.size()));
    for (;;) {
      ASSIGN_OR_RETURN(json reply, ReadMessage(30));
      if (reply.contains("event")) continue;
      if (reply.contains("error"))
        return base::Error(
            base::Code::kInternal,
            "QMP " + command + ": " + reply["error"].value("desc", reply["error"].dump()));
      if (reply.contains("return")) return reply["return"];
    }
  }

 private:
  base::Result<json> ReadMessage(double timeout_s) {
    double end = Now() + timeout_s;
    for (;;) {
      size_t nl = buffer_.find('\n');
      if (nl != std::string::npos) {
        std::string line = buffer_.substr(0, nl);
        buffer_.erase(0, nl + 1);
        json j = json::parse(line, nullptr, false);
        if (j.is_discarded()) return base::Error(base::Code::kDataLoss, "QMP: bad JSON: " + line);
        return j;
      }
      pollfd p{fd_.get(), POLLIN, 0};
      int left = int((end - Now()) * 1000);
      if (left <= 0 || ::poll(&p, 1, left) <= 0)
        return base::Error(base::Code::kDeadlineExceeded, "QMP: no reply");
      char buf[4096];
      ssize_t n = ::read(fd_.get(), buf, sizeof buf);
      if (n <= 0) return base::Error(base::Code::kUnavailable, "QMP: connection closed");
      buffer_.append(buf, size_t(n));
    }
  }

  base::Fd fd_;
  std::string buffer_;
};

base::Result<uint16_t> FreePort() {
  base::Fd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof a;
  if (::bind(fd.get(), reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 ||
      ::getsockname(fd.get(), reinterpret_cast<sockaddr*>(&a), &len) != 0)
    return base::ErrnoError("free port");
  return ntohs(a.sin_port);
}

// The guest's own dirty rate: its last "DIRTY t=<ms> dirtied=<n>" line
// (counted from the moment it finished filling its working set).
double GuestDirtyRate(const std::string& console) {
  size_t p = console.rfind("DIRTY t=");
  if (p == std::string::npos) return 0;
  unsigned long long t = 0, n = 0;
  if (std::sscanf(console.c_str() + p, "DIRTY t=%llu dirtied=%llu", &t, &n) != 2 || t == 0)
    return 0;
  return double(n) * 1000.0 / double(t);
}

std::string LineAt(const std::string& text, size_t pos) {
  size_t end = text.find('\n', pos);
  std::string line = text.substr(pos, end == std::string::npos ? std::string::npos : end - pos);
  while (!line.empty() && (line.back() == '\r' || line.back() == '\n')) line.pop_back();
  return line;
}

// Markers of a destination guest that died instead of answering.
const std::vector<std::string> kCrashMarkers = {"Kernel panic",       "BUG: ",    "Oops",
                                                "general protection", "segfault", "invalid opcode"};

}  // namespace

const char* ToString(GuestVerdict v) {
  switch (v) {
    case GuestVerdict::kNotChecked: return "not checked";
    case GuestVerdict::kOk: return "VERIFY OK";
    case GuestVerdict::kFail: return "VERIFY FAIL";
    case GuestVerdict::kCrashed: return "CRASHED";
    case GuestVerdict::kNoAnswer: return "NO ANSWER";
  }
  return "?";
}

base::Result<QemuReferenceResult> RunQemuReference(const QemuReferenceOptions& o) {
  QemuReferenceResult r;
  ASSIGN_OR_RETURN(uint16_t port, FreePort());
  const std::string uri = "tcp:127.0.0.1:" + std::to_string(port);
  const std::string src_qmp = o.work_dir + "/src.qmp", dst_qmp = o.work_dir + "/dst.qmp";
  ::unlink(src_qmp.c_str());
  ::unlink(dst_qmp.c_str());
  auto args = [&](const std::string& qmp) {
    // -nodefaults: no NIC/VGA to boot or migrate; the serial console is the
    // pipe we read (the same as -nographic's, without the monitor mux).
    return std::vector<std::string>{
        o.qemu,
        "-accel",
        "tcg",
        "-m",
        std::to_string(o.memory_mib),
        "-smp",
        "1",
        "-kernel",
        o.kernel,
        "-initrd",
        o.initramfs,
        "-append",
        "console=ttyS0 quiet rdinit=/init dirty_mb=" + std::to_string(o.ws_mib) +
            " dirty_rate=" + std::to_string(o.dirty_pages_per_s),
        "-display",
        "none",
        "-nodefaults",
        "-serial",
        "stdio",
        "-monitor",
        "none",
        "-no-reboot",
        "-qmp",
        "unix:" + qmp + ",server=on,wait=off"};
  };
  QemuProcess src, dst;
  auto dst_args = args(dst_qmp);
  dst_args.insert(dst_args.end(), {"-incoming", "defer"});
  RETURN_IF_ERROR(dst.Start(dst_args));
  RETURN_IF_ERROR(src.Start(args(src_qmp)));

  Qmp src_q, dst_q;
  RETURN_IF_ERROR(dst_q.Connect(dst_qmp, 10));
  RETURN_IF_ERROR(src_q.Connect(src_qmp, 10));
  if (src.WaitFor({"DIRTIER READY"}, 0, o.boot_timeout_s) == std::string::npos)
    return base::Error(base::Code::kDeadlineExceeded,
                       "QEMU reference guest did not start its dirtier; console:\n" + src.Output());
  SleepS(o.settle_s);

  // The same knobs on both ends where QEMU needs them there.
  json caps = json::array();
  if (o.auto_converge) caps.push_back({{"capability", "auto-converge"}, {"state", true}});
  json dst_caps = json::array();
  if (o.multifd_channels > 0) {
    caps.push_back({{"capability", "multifd"}, {"state", true}});
    dst_caps.push_back({{"capability", "multifd"}, {"state", true}});
  }
  if (!caps.empty())
    RETURN_IF_ERROR(src_q.Execute("migrate-set-capabilities", {{"capabilities", caps}}));
  if (!dst_caps.empty())
    RETURN_IF_ERROR(dst_q.Execute("migrate-set-capabilities", {{"capabilities", dst_caps}}));
  json params = {{"max-bandwidth", o.max_bandwidth}, {"downtime-limit", o.downtime_ms}};
  if (o.multifd_channels > 0) {
    params["multifd-channels"] = o.multifd_channels;
    RETURN_IF_ERROR(
        dst_q.Execute("migrate-set-parameters", {{"multifd-channels", o.multifd_channels}}));
  }
  RETURN_IF_ERROR(src_q.Execute("migrate-set-parameters", params));
  RETURN_IF_ERROR(dst_q.Execute("migrate-incoming", {{"uri", uri}}));

  r.guest_dirty_pages_per_s = GuestDirtyRate(src.Output());
  RETURN_IF_ERROR(src_q.Execute("migrate", {{"uri", uri}}));
  double end = Now() + o.migrate_timeout_s;
  json info;
  for (;;) {
    ASSIGN_OR_RETURN(info, src_q.Execute("query-migrate"));
    r.status = info.value("status", "");
    r.throttle_percent =
        std::max<uint64_t>(r.throttle_percent, info.value("cpu-throttle-percentage", 0ull));
    if (r.status == "completed" || r.status == "failed" || r.status == "cancelled") break;
    if (Now() > end) {
      (void)src_q.Execute("migrate_cancel");
      for (int i = 0; i < 250 && info.value("status", "") != "cancelled"; ++i) {
        SleepS(0.02);
        auto again = src_q.Execute("query-migrate");
        if (!again) break;
        info = *again;
      }
      r.status = "timeout";
      break;
    }
    SleepS(0.02);
  }
  r.total_ms = info.value("total-time", -1.0);
  r.downtime_ms = info.value("downtime", -1.0);
  r.setup_ms = info.value("setup-time", -1.0);
  if (info.contains("ram")) {
    const json& ram = info["ram"];
    r.ram_transferred = ram.value("transferred", 0ull);
    r.dirty_sync_count = ram.value("dirty-sync-count", 0ull);
    r.mbps = ram.value("mbps", 0.0);
  }

  if (r.completed()) {
    // The destination resumes on its own; ask its guest to check every page.
    size_t from = dst.Output().size();
    SleepS(0.2);
    RETURN_IF_ERROR(dst.SendLine("verify"));
    std::vector<std::string> needles = {"VERIFY OK", "VERIFY FAIL"};
    needles.insert(needles.end(), kCrashMarkers.begin(), kCrashMarkers.end());
    size_t which = 0;
    size_t at = dst.WaitFor(needles, from, o.verify_timeout_s, &which);
    std::string console = dst.Output();
    if (at != std::string::npos) {
      r.verdict = which == 0   ? GuestVerdict::kOk
                  : which == 1 ? GuestVerdict::kFail
                               : GuestVerdict::kCrashed;
      r.verdict_detail = LineAt(console, at);
    } else {
      auto st = dst.exited() ? base::Result<json>(json::object()) : dst_q.Execute("query-status");
      std::string run_state = st ? st->value("status", "exited") : "no QMP answer";
      r.verdict = run_state == "running" ? GuestVerdict::kNoAnswer : GuestVerdict::kCrashed;
      r.verdict_detail =
          "no reply in " + std::to_string(int(o.verify_timeout_s)) + " s; QEMU state " + run_state;
    }
  }
  (void)src_q.Execute("quit");
  (void)dst_q.Execute("quit");
  src.Reap(2);
  dst.Reap(2);
  ::unlink(src_qmp.c_str());
  ::unlink(dst_qmp.c_str());
  return r;
}

}  // namespace bench
