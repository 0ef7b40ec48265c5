#include "daemon/worker_launcher.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <unistd.h>

#include <optional>
#include <vector>

#include "base/clock.h"
#include "common/error_codes.h"
#include "common/process.h"

extern char** environ;

namespace appliance {
namespace {

// The fd number the worker finds its readiness pipe on.
constexpr int kReadyFd = 3;

class SpawnAttributes {
 public:
  SpawnAttributes() {
    posix_spawnattr_init(&attr_);
    posix_spawn_file_actions_init(&actions_);
  }
  ~SpawnAttributes() {
    posix_spawn_file_actions_destroy(&actions_);
    posix_spawnattr_destroy(&attr_);
  }
  posix_spawnattr_t attr_;
  posix_spawn_file_actions_t actions_;
};

base::Error StartupError(const LaunchSpec& spec, int64_t pid, const ProcessExit& exit) {
  if (auto record = ReadExitRecord(spec.exit_record_path, pid); record && !record->message.empty())
    return base::Error(CodeFromName(record->code), record->message);
  if (auto text = base::ReadFileToString(spec.error_path); text && !text->empty()) {
    std::string message = *text;
    while (!message.empty() && message.back() == '\n') message.pop_back();
    return base::Error(base::Code::kInternal, message);
  }
  return base::Error(base::Code::kInternal, "worker " + exit.Describe() +
                                                " before it was ready (see " + spec.log_path + ")");
}

// "ready" or "ready <port>" (an incoming worker's data port).
base::Result<uint16_t> ParseReadyLine(const std::string& line) {
  if (line == "ready") return uint16_t{0};
  if (line.rfind("ready ", 0) == 0) {
    const std::string digits = line.substr(6);
    unsigned long port = 0;
    if (!digits.empty() && digits.size() <= 5 &&
        digits.find_first_not_of("0123456789") == std::string::npos)
      port = std::stoul(digits);
    if (port >= 1 && port <= 65535) return uint16_t(port);
  }
  return base::Error(base::Code::kInternal, "malformed ready line \"" + line + "\"");
}

}  // namespace

base::Result<WorkerExitRecord> ReadExitRecord(const std::string& path, int64_t pid) {
  ASSIGN_OR_RETURN(std::string text, base::ReadFileToString(path));
  ASSIGN_OR_RETURN(WorkerExitRecord record, DecodeExitRecord(text, path));
  if (record.pid != pid)
    return base::Error(base::Code::kNotFound, path + " was written by pid " +
                                                  std::to_string(record.pid) + ", not " +
                                                  std::to_string(pid));
  return record;
}

namespace {

std::vector<std::string> WorkerArgs(const LaunchSpec& spec) {
  std::vector<std::string> args = {spec.worker_binary,      "--vm-dir",          spec.vm_dir,
                                   "--control-socket",      spec.control_socket, "--ready-fd",
                                   std::to_string(kReadyFd)};
  if (!spec.restore_path.empty()) {
    args.push_back("--restore");
    args.push_back(spec.restore_path);
  }
  if (!spec.incoming_host.empty()) {
    args.insert(args.end(),
                {"--incoming", spec.incoming_host, "--migration-id", spec.migration_id});
  }
  return args;
}

// Spawns the worker with stdin on /dev/null, stdout and stderr on log and
// ready_write as fd 3.
base::Result<pid_t> Spawn(const LaunchSpec& spec, int log, int ready_write) {
  std::vector<std::string> args = WorkerArgs(spec);
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);

  SpawnAttributes sa;
  posix_spawn_file_actions_addopen(&sa.actions_, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_adddup2(&sa.actions_, log, 1);
  posix_spawn_file_actions_adddup2(&sa.actions_, log, 2);
  posix_spawn_file_actions_adddup2(&sa.actions_, ready_write, kReadyFd);
  // A session of its own, an empty signal mask and default dispositions:
  // ferryd's blocked or ignored signals must not leak into the worker.
  sigset_t empty, defaults;
  sigemptyset(&empty);
  sigemptyset(&defaults);
  for (int sig : {SIGPIPE, SIGHUP, SIGINT, SIGTERM, SIGCHLD}) sigaddset(&defaults, sig);
  posix_spawnattr_setsigmask(&sa.attr_, &empty);
  posix_spawnattr_setsigdefault(&sa.attr_, &defaults);
  posix_spawnattr_setflags(&sa.attr_,
                           POSIX_SPAWN_SETSID | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);

  pid_t pid = 0;
  int err = ::posix_spawn(&pid, spec.worker_binary.c_str(), &sa.actions_, &sa.attr_, argv.data(),
                          environ);
  if (err != 0) return base::ErrnoError("start worker " + spec.worker_binary, err);
  return pid;
}

// Reads the ready line from the pipe: the port it names, or nullopt if the
// pipe reads end-of-file first (the worker exited, or closed it, unready).
base::Result<std::optional<uint16_t>> AwaitReady(const LaunchSpec& spec, int ready_read,
                                                 int64_t pid, int timeout_ms) {
  const uint64_t deadline = base::MonotonicNanos() + uint64_t(timeout_ms) * 1000000;
  std::string received;
  for (;;) {
    uint64_t now = base::MonotonicNanos();
    if (now >= deadline)
      return base::Error(base::Code::kDeadlineExceeded, "worker did not report ready within " +
                                                            std::to_string(timeout_ms) +
                                                            " ms (see " + spec.log_path + ")");
    pollfd p{ready_read, POLLIN, 0};
    int r = ::poll(&p, 1, int((deadline - now) / 1000000) + 1);
    if (r < 0 && errno != EINTR) return base::ErrnoError("poll worker ready pipe");
    if (r <= 0) continue;
    char buf[64];
    ssize_t n = ::read(ready_read, buf, sizeof buf);
    if (n < 0) {
      if (errno == EINTR) continue;
      return base::ErrnoError("read worker ready pipe");
    }
    if (n == 0)
      return std::optional<uint16_t>();  // the worker exited (or closed the pipe) without "ready"
    received.append(buf, size_t(n));
    if (size_t eol = received.find('\n'); eol != std::string::npos) {
      auto port = ParseReadyLine(received.substr(0, eol));
      if (!port) return port.error().Wrap("worker " + std::to_string(pid));
      return std::optional<uint16_t>(*port);
    }
  }
}

}  // namespace

base::Result<LaunchedWorker> LaunchWorker(const LaunchSpec& spec, int timeout_ms) {
  // Records of an earlier run must not be mistaken for this one's.
  ::unlink(spec.exit_record_path.c_str());
  ::unlink(spec.error_path.c_str());

  ASSIGN_OR_RETURN(base::Fd log,
                   base::Fd::Open(spec.log_path, O_WRONLY | O_CREAT | O_APPEND, 0600));
  int pipe_fds[2];
  if (::pipe2(pipe_fds, O_CLOEXEC) != 0) return base::ErrnoError("pipe2");
  base::Fd ready_read(pipe_fds[0]);
  base::Fd ready_write(pipe_fds[1]);
  // dup2(fd, 3) only clears close-on-exec when fd != 3; move it above 3 first.
  base::Fd ready_high(::fcntl(ready_write.get(), F_DUPFD_CLOEXEC, 10));
  if (!ready_high.valid()) return base::ErrnoError("fcntl(F_DUPFD_CLOEXEC)");
  ready_write.Reset();

  ASSIGN_OR_RETURN(pid_t pid, Spawn(spec, log.get(), ready_high.get()));
  ready_high.Reset();  // only the worker may hold the write end, so its exit reads as EOF

  // A child that has not been reaped keeps its pid, so pidfd_open cannot race.
  ASSIGN_OR_RETURN(base::Fd pidfd, PidfdOpen(pid));

  auto fail = [&](base::Error error) -> base::Error {
    // The launch has failed already and `error` says why; a worker that is
    // gone by now can be neither killed nor reaped again, which is fine.
    (void)PidfdSignal(pidfd.get(), SIGKILL);
    (void)PidfdReap(pidfd.get(), /*nohang=*/false);
    return error;
  };

  auto ready = AwaitReady(spec, ready_read.get(), pid, timeout_ms);
  if (!ready) return fail(ready.error());
  if (ready->has_value()) return LaunchedWorker{pid, std::move(pidfd), **ready};

  // The worker reports its reason before it exits; give it a moment to finish.
  auto exited = PidfdWaitExit(pidfd.get(), 10000);
  if (!exited || !*exited) {
    return fail(
        base::Error(base::Code::kInternal,
                    "worker closed its ready pipe but did not exit (see " + spec.log_path + ")"));
  }
  ASSIGN_OR_RETURN(ProcessExit exit, PidfdReap(pidfd.get(), /*nohang=*/false));
  return StartupError(spec, pid, exit);
}

}  // namespace appliance
