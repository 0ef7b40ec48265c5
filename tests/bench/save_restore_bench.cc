// Saves and restores a running 1 GiB guest and compares with the disk limit.
//
// Prints save time, restore time (until the guest runs again), the state
// file's size, and beside them the time `dd` needs to write (fsync'd) and read
// (O_DIRECT) the same number of bytes on the same filesystem, with ratios.
// The memory guest dirties a working set smaller than RAM, so the untouched
// rest exercises the zero-page path: it should cost almost nothing.
//
// usage: save_restore_bench [--dir DIR] [--memory-mib N] [--ws-mib N]
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>

#include "base/clock.h"
#include "base/fd.h"
#include "config/vm_definition.h"
#include "vm/machine.h"

namespace {

struct Args {
  std::string dir = "/var/tmp";
  uint64_t memory_mib = 1024;
  uint64_t ws_mib = 256;
};

Args ParseArgs(int argc, char** argv) {
  Args a;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string k = argv[i];
    if (k == "--dir")
      a.dir = argv[i + 1];
    else if (k == "--memory-mib")
      a.memory_mib = std::strtoull(argv[i + 1], nullptr, 10);
    else if (k == "--ws-mib")
      a.ws_mib = std::strtoull(argv[i + 1], nullptr, 10);
    else {
      std::fprintf(stderr, "usage: %s [--dir DIR] [--memory-mib N] [--ws-mib N]\n", argv[0]);
      std::exit(2);
    }
  }
  return a;
}

[[noreturn]] void Die(const std::string& what, const base::Error& e) {
  std::fprintf(stderr, "save_restore_bench: %s: %s\n", what.c_str(), e.ToString().c_str());
  std::exit(1);
}

// Runs a shell command and returns its wall time in seconds.
double TimeCommand(const std::string& cmd) {
  uint64_t t0 = base::MonotonicNanos();
  int rc = std::system(cmd.c_str());
  double s = (base::MonotonicNanos() - t0) / 1e9;
  if (rc != 0) {
    std::fprintf(stderr, "save_restore_bench: command failed (%d): %s\n", rc, cmd.c_str());
    std::exit(1);
  }
  return s;
}

// Counts heartbeat lines in the console log, and fails on any guest error.
int CountHeartbeats(const std::string& console) {
  auto text = base::ReadFileToString(console);
  if (!text) return 0;
  int n = 0;
  size_t pos = 0;
  while ((pos = text->find("HB ", pos)) != std::string::npos) {
    ++n;
    pos += 3;
  }
  if (text->find("MISMATCH") != std::string::npos) {
    std::fprintf(stderr, "save_restore_bench: the guest reported a memory mismatch\n");
    std::exit(1);
  }
  return n;
}

}  // namespace

int main(int argc, char** argv) {
  Args args = ParseArgs(argc, argv);
  char tmpl[4096];
  std::snprintf(tmpl, sizeof tmpl, "%s/ferry-bench-XXXXXX", args.dir.c_str());
  if (!mkdtemp(tmpl)) {
    std::perror("mkdtemp");
    return 1;
  }
  const std::string dir = tmpl;
  const std::string state = dir + "/vm.fvs";
  const std::string console = dir + "/console.log";

  vm::MachineOptions options;
  options.vm_dir = dir;
  options.console_path = console;
  options.definition.name = "bench";
  options.definition.id = config::NewUuid();
  options.definition.vcpus = 1;
  options.definition.memory_bytes = args.memory_mib << 20;
  options.definition.program = std::string(FERRY_GUEST_DIR) + "/memory-guest.bin";
  options.definition.cmdline = "ws_mib=" + std::to_string(args.ws_mib) + " hb_ms=50";

  auto machine = vm::Machine::Create(options);
  if (!machine) Die("create", machine.error());
  if (auto st = (*machine)->Start(); !st) Die("start", st.error());
  // Let the guest fill its working set and beat a few times.
  uint64_t deadline = base::MonotonicNanos() + 30'000'000'000ull;
  while (CountHeartbeats(console) < 20) {
    if (base::MonotonicNanos() > deadline) {
      std::fprintf(stderr, "save_restore_bench: guest gave fewer than 20 heartbeats in 30 s\n");
      return 1;
    }
    usleep(20000);
  }

  uint64_t t0 = base::MonotonicNanos();
  if (auto st = (*machine)->Pause(); !st) Die("pause", st.error());
  if (auto st = (*machine)->SaveState(state); !st) Die("save", st.error());
  double save_s = (base::MonotonicNanos() - t0) / 1e9;
  (*machine)->Shutdown();
  machine->reset();
  const int beats_before = CountHeartbeats(console);
  const uint64_t bytes = std::filesystem::file_size(state);

  // Restore measures from an empty process-side state to vCPUs running.
  std::system("sync");
  t0 = base::MonotonicNanos();
  auto restored = vm::Machine::Restore(options, state);
  if (!restored) Die("restore", restored.error());
  if (auto st = (*restored)->Resume(); !st) Die("resume", st.error());
  double restore_s = (base::MonotonicNanos() - t0) / 1e9;
  // The guest must really continue: more heartbeats, no mismatch.
  deadline = base::MonotonicNanos() + 10'000'000'000ull;
  while (CountHeartbeats(console) < beats_before + 5) {
    if (base::MonotonicNanos() > deadline) {
      std::fprintf(stderr, "save_restore_bench: restored guest did not continue\n");
      return 1;
    }
    usleep(20000);
  }
  (*restored)->Shutdown();

  // The disk limit for the same byte count on the same filesystem.
  const uint64_t mib = (bytes + (1 << 20) - 1) >> 20;
  const std::string ddfile = dir + "/dd.bin";
  double dd_write_s =
      TimeCommand("dd if=/dev/zero of=" + ddfile + " bs=1M count=" + std::to_string(mib) +
                  " conv=fsync status=none");
  double dd_read_s =
      TimeCommand("dd if=" + ddfile + " of=/dev/null bs=1M iflag=direct status=none");

  const double mem_mib = double(args.memory_mib);
  std::printf("guest: %llu MiB RAM, %llu MiB working set; state file %.1f MiB (%.1f%% of RAM)\n",
              (unsigned long long)args.memory_mib, (unsigned long long)args.ws_mib,
              bytes / 1048576.0, 100.0 * bytes / (mem_mib * 1048576.0));
  std::printf("%-28s %10s %14s %8s\n", "", "ferry", "dd same bytes", "ratio");
  std::printf("%-28s %9.3fs %13.3fs %7.2fx\n", "save (pause->durable file)", save_s, dd_write_s,
              save_s / dd_write_s);
  std::printf("%-28s %9.3fs %13.3fs %7.2fx\n", "restore (file->running)", restore_s, dd_read_s,
              restore_s / dd_read_s);
  std::printf("%-28s %9.2f %14s\n", "save GB/s of guest RAM", mem_mib / 1024.0 / save_s, "");
  std::filesystem::remove_all(dir);
  return 0;
}
