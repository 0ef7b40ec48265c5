// Integration-test harness: a private ferryd per test (its own temp storage
// root and API socket) driven only through the `ferry` binary, the way an
// admin would. Every process a test starts is killed in TearDown: ferryd by
// its process group, and every ferry-vmm worker whose --vm-dir lies under the
// test's directory (workers run in sessions of their own, so killing ferryd's
// group does not reach them).
#pragma once

#include <sys/types.h>

#include <functional>
#include <map>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

namespace ferry_it {

struct ProcessResult {
  int exit_code = -1;     // -1 if killed by a signal or timed out
  bool timed_out = false;
  std::string out, err;
};

// Runs argv with extra environment entries ("KEY=value"), collecting its
// output; kills it (and its process group) after timeout_ms.
ProcessResult RunProcess(const std::vector<std::string>& argv, const std::vector<std::string>& env, int timeout_ms);

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

  // Polls until pred() holds (every 50 ms) or timeout_ms passes; on timeout
  // fails the test with "timed out after N ms waiting for <what>".
  bool WaitFor(const std::string& what, int timeout_ms, const std::function<bool()>& pred);
  // Waits (up to 60 s) until the VM's console holds at least `count`
  // heartbeat lines with the given prefix ("HB" or "DISK"); returns them all.
  std::vector<Heartbeat> WaitForHeartbeats(const std::string& vm, const std::string& prefix, size_t count);

 private:
  void KillWorkers();
  void DumpLogs();

  std::string dir_;
  pid_t ferryd_pid_ = -1;
};

}  // namespace ferry_it
