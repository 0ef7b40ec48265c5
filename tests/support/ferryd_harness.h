// Integration-test harness: a private ferryd per test (its own temp storage
// root and API socket) driven only through the `ferry` binary, the way an
// admin would. Every process a test starts is killed in TearDown: ferryd by
// its process group, and every ferry-vmm worker whose --vm-dir lies under the
// test's directory (workers run in sessions of their own, so killing ferryd's
// group does not reach them).
#pragma once

#include <sys/types.h>

#include <cstdint>

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "support/temp_dir.h"

namespace ferry_it {

struct ProcessResult {
  int exit_code = -1;  // -1 if killed by a signal or timed out
  bool timed_out = false;
  std::string out, err;
};

// Runs argv with extra environment entries ("KEY=value"), collecting its
// output; kills it (and its process group) after timeout_ms.
ProcessResult RunProcess(const std::vector<std::string>& argv, const std::vector<std::string>& env,
                         int timeout_ms);

// Creates (or truncates) path as a sparse file of size bytes: a blank raw disk.
void MakeSparseFile(const std::string& path, uint64_t size);

// Heartbeat lines parsed from a console log.
struct Heartbeat {
  uint64_t n = 0;
  uint64_t t_ms = 0;
  uint64_t errors = 0;
};
std::vector<Heartbeat> ParseHeartbeats(const std::string& console, const std::string& prefix);

class FerryTest : public ::testing::Test {
 protected:
  void SetUp() override;
  void TearDown() override;

  const std::string& dir() const { return dir_; }
  std::string socket() const { return dir_ + "/run/ferryd.sock"; }
  std::string storage() const { return dir_ + "/root"; }
  std::string config() const { return dir_ + "/host.toml"; }

  // Starts ferryd on this test's config with extra environment, and waits
  // until `ferry host show` answers.
  void StartFerryd(const std::vector<std::string>& env = {});
  // SIGKILL to ferryd's process group (the workers are not in it).
  void KillFerryd();
  pid_t ferryd_pid() const { return ferryd_pid_; }

  // Runs `ferry --socket <ours> args...`.
  ProcessResult Ferry(const std::vector<std::string>& args, int timeout_ms = 120000);
  // Runs `ferry --json ...`, expects exit 0, and parses the output.
  nlohmann::json FerryJson(const std::vector<std::string>& args);
  std::string State(const std::string& vm);
  std::string Console(const std::string& vm);

  // `ferry vm create <vm> create_args...`, then `ferry vm start <vm>`; the
  // failure names the step and ferry's error. ASSERT_TRUE(CreateAndStart(...)).
  ::testing::AssertionResult CreateAndStart(const std::string& vm,
                                            const std::vector<std::string>& create_args);
  // Waits until the VM has powered off (or crashed: no point waiting longer)
  // and returns its last state; a timeout fails the test.
  std::string WaitForPowerOff(const std::string& vm, int timeout_ms = 60000);

  // Polls until pred() holds (every 50 ms) or timeout_ms passes; on timeout
  // fails the test with "timed out after N ms waiting for <what>"
  // (ferry_test::WaitFor, failing the test here because callers poll ferry
  // and ignore the result when a later check says more).
  bool WaitFor(const std::string& what, int timeout_ms, const std::function<bool()>& pred);
  // Waits (up to 60 s) until the VM's console holds at least `count`
  // heartbeat lines with the given prefix ("HB" or "DISK"); returns them all.
  std::vector<Heartbeat> WaitForHeartbeats(const std::string& vm, const std::string& prefix,
                                           size_t count);

 private:
  std::unique_ptr<ferry_test::TempDir> temp_;  // made in SetUp, removed in TearDown
  std::string dir_;
  pid_t ferryd_pid_ = -1;
};

// A free TCP port on host (bound to port 0, then released): for listen
// addresses in host.toml. Another process may take it in between; tests
// that start a listener on it fail loudly if it did.
uint16_t FreePort(const std::string& host);

// Another ferryd in the same test: a second "host" for live moves, with its
// own storage root, API socket and host.toml under <test dir>/<name>/. Its
// destructor kills its workers (waiting until they are gone) and its ferryd,
// so declare it inside the test (or as a fixture member) and it is gone
// before the test directory is.
class ExtraFerryd {
 public:
  ExtraFerryd(const std::string& test_dir, const std::string& name);
  ~ExtraFerryd();
  ExtraFerryd(const ExtraFerryd&) = delete;
  ExtraFerryd& operator=(const ExtraFerryd&) = delete;

  std::string dir() const { return dir_; }
  std::string socket() const { return dir_ + "/run/ferryd.sock"; }
  std::string storage() const { return dir_ + "/root"; }
  std::string config() const { return dir_ + "/host.toml"; }

  // Writes host.toml: storage_root, api_socket and guest_dir, then `extra`
  // (more top-level keys and tables, TOML text).
  void WriteConfig(const std::string& extra);
  // Starts ferryd and waits until `ferry host show` answers (gtest failure
  // with its log otherwise).
  void Start();
  void Kill();  // SIGKILL to ferryd's process group (workers live on)
  ProcessResult Ferry(const std::vector<std::string>& args, int timeout_ms = 120000);
  nlohmann::json FerryJson(const std::vector<std::string>& args);
  std::string State(const std::string& vm);  // "" if there is no such vm
  std::string Log() const;                   // ferryd.log
  void DumpLogs() const;

 private:
  std::string dir_;
  pid_t pid_ = -1;
};

// The host.toml text of a host that takes part in live moves: it listens on
// listen ("127.0.0.1:7430"), allows moves both ways (unless told otherwise)
// and peers from `networks` (TOML array text, "[\"any\"]" by default), and
// accepts disks anywhere under the temp base directory (where tests put
// their destinations). Its [tls] is added when ferryd starts (test_tls.h).
std::string LiveMoveHostToml(const std::string& listen, bool incoming = true, bool outgoing = true,
                             const std::string& networks = "[\"any\"]");

}  // namespace ferry_it
