// Watches worker processes (ferry-vmm) on one thread named "supervisor": one
// pidfd per worker in a poll set, plus an EventFd that wakes the thread when
// the set changes or the supervisor stops. When a worker exits, its own
// children are reaped here and the exit is reported through the callback.
//
// Thread-safety: Watch and Signal may be called from any thread. The callback
// runs on the supervisor thread with no supervisor lock held.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "base/event_fd.h"
#include "base/fd.h"
#include "base/mutex.h"
#include "common/process.h"

namespace appliance {

class Supervisor {
 public:
  using OnExit = std::function<void(const std::string& name, int64_t pid, const ProcessExit& exit)>;

  // on_exit must stay callable until the Supervisor is destroyed.
  static base::Result<std::unique_ptr<Supervisor>> Start(OnExit on_exit);
  // Stops the thread. Watched workers keep running: they outlive ferryd.
  ~Supervisor();

  // is_child: we started it, so waitid can reap it and report its status.
  base::Status Watch(const std::string& name, int64_t pid, base::Fd pidfd, bool is_child);
  // Signals a watched worker through its pidfd. kNotFound if not watched.
  base::Status Signal(int64_t pid, int sig);
  size_t watched_count();

 private:
  struct Watched {
    std::string name;
    int64_t pid;
    base::Fd pidfd;
    bool is_child;
  };
  Supervisor(OnExit on_exit, base::EventFd wake);
  void Run();

  OnExit on_exit_;
  base::EventFd wake_;
  base::Mutex mu_;
  std::vector<Watched> watched_ GUARDED_BY(mu_);
  bool stopping_ GUARDED_BY(mu_) = false;
  std::thread thread_;  // last: started after everything it uses exists
};

}  // namespace appliance
