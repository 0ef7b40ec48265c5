#include "daemon/supervisor.h"

#include <poll.h>

#include <algorithm>
#include <cstring>

#include "base/log.h"

namespace appliance {

Supervisor::Supervisor(OnExit on_exit, base::EventFd wake)
    : on_exit_(std::move(on_exit)), wake_(std::move(wake)) {}

base::Result<std::unique_ptr<Supervisor>> Supervisor::Start(OnExit on_exit) {
  ASSIGN_OR_RETURN(base::EventFd wake, base::EventFd::Create());
  std::unique_ptr<Supervisor> s(new Supervisor(std::move(on_exit), std::move(wake)));
  s->thread_ = std::thread([p = s.get()] { p->Run(); });
  return s;
}

Supervisor::~Supervisor() {
  {
    base::MutexLock lock(mu_);
    stopping_ = true;
  }
  // An eventfd write fails only if the counter would overflow, which a
  // handful of wake-ups cannot reach; the thread sees stopping_ and returns.
  (void)wake_.Signal();
  if (thread_.joinable()) thread_.join();
}

base::Status Supervisor::Watch(const std::string& name, int64_t pid, base::Fd pidfd,
                               bool is_child) {
  {
    base::MutexLock lock(mu_);
    watched_.push_back(Watched{name, pid, std::move(pidfd), is_child});
  }
  return wake_.Signal();
}

base::Status Supervisor::Signal(int64_t pid, int sig) {
  base::MutexLock lock(mu_);
  for (const Watched& w : watched_) {
    if (w.pid == pid) return PidfdSignal(w.pidfd.get(), sig);
  }
  return base::Error(base::Code::kNotFound,
                     "worker pid " + std::to_string(pid) + " is not watched");
}

size_t Supervisor::watched_count() {
  base::MutexLock lock(mu_);
  return watched_.size();
}

void Supervisor::Run() {
  base::SetThreadName("supervisor");
  std::vector<pollfd> fds;
  std::vector<int64_t> pids;
  for (;;) {
    fds.clear();
    pids.clear();
    {
      base::MutexLock lock(mu_);
      if (stopping_) return;
      fds.push_back({wake_.fd(), POLLIN, 0});
      for (const Watched& w : watched_) {
        fds.push_back({w.pidfd.get(), POLLIN, 0});
        pids.push_back(w.pid);
      }
    }
    // No timeout: every change of the set and the stop request signal wake_.
    int r = ::poll(fds.data(), fds.size(), -1);
    if (r < 0) {
      if (errno == EINTR) continue;
      base::LogError(std::string("supervisor: poll failed: ") + std::strerror(errno));
      return;
    }
    // Readable, so the read cannot block; a failure leaves it readable and
    // only costs one more turn of the loop, which rebuilds the set anyway.
    if (fds[0].revents & POLLIN) (void)wake_.Consume();
    for (size_t i = 1; i < fds.size(); ++i) {
      if (!(fds[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
      Watched gone;
      {
        base::MutexLock lock(mu_);
        auto it = std::find_if(watched_.begin(), watched_.end(),
                               [&](const Watched& w) { return w.pid == pids[i - 1]; });
        if (it == watched_.end()) continue;
        gone = std::move(*it);
        watched_.erase(it);
      }
      ProcessExit exit;
      if (gone.is_child) {
        auto reaped = PidfdReap(gone.pidfd.get(), /*nohang=*/true);
        if (reaped)
          exit = *reaped;
        else
          base::LogWarning("supervisor: reap worker " + std::to_string(gone.pid) + ": " +
                           reaped.error().ToString());
      }
      base::LogInfo("worker " + std::to_string(gone.pid) + " of vm " + gone.name + " " +
                    exit.Describe());
      on_exit_(gone.name, gone.pid, exit);
    }
  }
}

}  // namespace appliance
