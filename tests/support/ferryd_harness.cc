#include "support/ferryd_harness.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "support/files.h"
#include "support/temp_dir.h"
#include "support/test_tls.h"
#include "support/wait_for.h"

extern char** environ;

namespace ferry_it {
namespace {

using ferry_test::ReadFile;

uint64_t NowMs() {
  return uint64_t(std::chrono::duration_cast<std::chrono::milliseconds>(
                      std::chrono::steady_clock::now().time_since_epoch())
                      .count());
}

std::vector<std::string> Environment(const std::vector<std::string>& extra) {
  std::vector<std::string> env;
  for (char** e = environ; *e != nullptr; ++e) {
    std::string entry = *e;
    std::string key = entry.substr(0, entry.find('='));
    bool overridden = false;
    for (const auto& x : extra) overridden |= x.substr(0, x.find('=')) == key;
    if (!overridden) env.push_back(entry);
  }
  env.insert(env.end(), extra.begin(), extra.end());
  return env;
}

std::vector<char*> Pointers(std::vector<std::string>& strings) {
  std::vector<char*> p;
  for (auto& s : strings) p.push_back(s.data());
  p.push_back(nullptr);
  return p;
}

// Polls every 50 ms (each poll may run the ferry binary) until pred() holds
// or timeout_ms passes; a timeout is a gtest failure saying what was waited for.
bool PollUntil(const std::string& what, int timeout_ms, const std::function<bool()>& pred) {
  ::testing::AssertionResult done = ferry_test::WaitFor(what, std::chrono::milliseconds(timeout_ms),
                                                        pred, std::chrono::milliseconds(50));
  if (!done) ADD_FAILURE() << done.message();
  return bool(done);
}

ProcessResult RunFerry(const std::string& socket, const std::vector<std::string>& args,
                       int timeout_ms) {
  std::vector<std::string> argv = {std::string(FERRY_BIN_DIR) + "/ferry", "--socket", socket};
  argv.insert(argv.end(), args.begin(), args.end());
  return RunProcess(argv, {}, timeout_ms);
}

// Runs `ferry --json args...` against socket, expects exit 0 and JSON out
// (`who` names the ferryd in failures); {} when either is missing.
nlohmann::json RunFerryJson(const std::string& socket, const std::string& who,
                            const std::vector<std::string>& args) {
  std::vector<std::string> with_json = {"--json"};
  with_json.insert(with_json.end(), args.begin(), args.end());
  ProcessResult r = RunFerry(socket, with_json, 120000);
  EXPECT_EQ(r.exit_code, 0) << "ferry " << args[0] << " (" << who << ") failed: " << r.err;
  auto j = nlohmann::json::parse(r.out, nullptr, false);
  EXPECT_FALSE(j.is_discarded()) << "not JSON: " << r.out;
  return j.is_discarded() ? nlohmann::json::object() : j;
}

// Starts ferryd on `config` in a process group of its own (killable as
// one), its output appended to <dir>/ferryd.log, and waits up to 15 s until
// `ferry host show` answers on socket. Returns its pid (also when it never
// answered: the caller still kills it), or -1 if it could not start or
// exited; every failure is a gtest failure naming <dir>.
pid_t StartFerrydIn(const std::string& dir, const std::string& config, const std::string& socket,
                    const std::vector<std::string>& env_extra) {
  // Every test ferryd gets its own certificate from the tests' CA, unless
  // the test wrote a [tls] of its own. Appended: a table runs to the end.
  if (ReadFile(config).find("[tls]") == std::string::npos)
    std::ofstream(config, std::ios::app) << "\n" << ferry_test::TestTlsToml(dir);
  std::vector<std::string> argv = {std::string(FERRY_BIN_DIR) + "/ferryd", "--config", config};
  std::vector<std::string> env = Environment(env_extra);
  auto argp = Pointers(argv), envp = Pointers(env);
  const std::string log = dir + "/ferryd.log";
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&fa, 1, log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0600);
  posix_spawn_file_actions_adddup2(&fa, 1, 2);
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP);
  posix_spawnattr_setpgroup(&attr, 0);
  pid_t pid = -1;
  int rc = ::posix_spawn(&pid, argv[0].c_str(), &fa, &attr, argp.data(), envp.data());
  posix_spawn_file_actions_destroy(&fa);
  posix_spawnattr_destroy(&attr);
  if (rc != 0) {
    ADD_FAILURE() << "cannot start ferryd " << dir << ": " << std::strerror(rc);
    return -1;
  }
  bool exited = false;
  PollUntil("ferryd to answer on " + socket, 15000, [&] {
    int status;
    if (::waitpid(pid, &status, WNOHANG) == pid) {
      exited = true;
      return true;
    }
    return RunFerry(socket, {"host", "show"}, 5000).exit_code == 0;
  });
  if (exited) {
    ADD_FAILURE() << "ferryd " << dir << " exited during start-up:\n" << ReadFile(log);
    return -1;
  }
  return pid;
}

// SIGKILL to ferryd's process group (its workers live in sessions of their
// own and survive), and reaps it.
void KillFerrydGroup(pid_t pid) {
  if (pid <= 0) return;
  ::kill(-pid, SIGKILL);
  ::waitpid(pid, nullptr, 0);
}

// Kills every ferry-vmm whose --vm-dir starts with vm_dir_prefix and waits
// (up to 10 s) until each has exited, so the test's files are no longer in
// use when it removes them.
void KillWorkersUnder(const std::string& vm_dir_prefix) {
  const std::string marker = std::string("--vm-dir") + '\0' + vm_dir_prefix;
  std::vector<pid_t> pids;
  if (DIR* proc = ::opendir("/proc")) {
    while (dirent* e = ::readdir(proc)) {
      pid_t pid = pid_t(std::atoi(e->d_name));
      if (pid <= 0) continue;
      std::string cmdline = ReadFile("/proc/" + std::to_string(pid) + "/cmdline");
      if (cmdline.find("ferry-vmm") != std::string::npos &&
          cmdline.find(marker) != std::string::npos)
        pids.push_back(pid);
    }
    ::closedir(proc);
  }
  for (pid_t pid : pids) ::kill(-pid, SIGKILL);  // each worker leads its own session and group
  PollUntil("workers under " + vm_dir_prefix + " to exit", 10000, [&] {
    for (pid_t pid : pids) {
      std::string stat = ReadFile("/proc/" + std::to_string(pid) + "/stat");
      auto paren = stat.rfind(')');
      if (!stat.empty() && paren != std::string::npos && stat.size() > paren + 2 &&
          stat[paren + 2] != 'Z')
        return false;
    }
    return true;
  });
}

// After a failure: ferryd's log, and each VM's (and incoming move's) worker
// log and console tail.
void DumpFerrydLogs(const std::string& dir, const std::string& storage) {
  std::cerr << "---- " << dir << "/ferryd.log ----\n" << ReadFile(dir + "/ferryd.log");
  std::error_code ec;
  for (const auto& vm : std::filesystem::directory_iterator(storage + "/vms", ec)) {
    std::string console = ReadFile(vm.path().string() + "/console.log");
    if (console.size() > 3000) console = "..." + console.substr(console.size() - 3000);
    std::cerr << "---- " << vm.path().string() << "/worker.log ----\n"
              << ReadFile(vm.path().string() + "/worker.log") << "---- console.log (tail) ----\n"
              << console << "\n";
  }
  for (const auto& in : std::filesystem::directory_iterator(storage + "/incoming", ec))
    std::cerr << "---- " << in.path().string() << "/worker.log ----\n"
              << ReadFile(in.path().string() + "/worker.log");
}

}  // namespace

void MakeSparseFile(const std::string& path, uint64_t size) {
  std::ofstream(path, std::ios::binary | std::ios::trunc).close();
  ASSERT_EQ(::truncate(path.c_str(), off_t(size)), 0) << path;
}

ProcessResult RunProcess(const std::vector<std::string>& argv_in,
                         const std::vector<std::string>& env_in, int timeout_ms) {
  ProcessResult result;
  int out[2], err[2];
  if (::pipe2(out, O_CLOEXEC) != 0 || ::pipe2(err, O_CLOEXEC) != 0) {
    result.err = "pipe2 failed";
    return result;
  }
  std::vector<std::string> argv = argv_in, env = Environment(env_in);
  auto argp = Pointers(argv), envp = Pointers(env);
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_adddup2(&fa, out[1], 1);
  posix_spawn_file_actions_adddup2(&fa, err[1], 2);
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP);  // its own group, killable as one
  posix_spawnattr_setpgroup(&attr, 0);
  pid_t pid = 0;
  int rc = ::posix_spawn(&pid, argv[0].c_str(), &fa, &attr, argp.data(), envp.data());
  posix_spawn_file_actions_destroy(&fa);
  posix_spawnattr_destroy(&attr);
  ::close(out[1]);
  ::close(err[1]);
  if (rc != 0) {
    ::close(out[0]);
    ::close(err[0]);
    result.err = "cannot run " + argv[0] + ": " + std::strerror(rc);
    return result;
  }
  const uint64_t deadline = NowMs() + uint64_t(timeout_ms);
  pollfd fds[2] = {{out[0], POLLIN, 0}, {err[0], POLLIN, 0}};
  int open_fds = 2;
  while (open_fds > 0) {
    uint64_t now = NowMs();
    if (now >= deadline) {
      result.timed_out = true;
      ::kill(-pid, SIGKILL);
      break;
    }
    if (::poll(fds, 2, int(deadline - now)) < 0 && errno != EINTR) break;
    for (int i = 0; i < 2; ++i) {
      if (fds[i].fd < 0 || !(fds[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
      char buf[4096];
      ssize_t n = ::read(fds[i].fd, buf, sizeof buf);
      if (n > 0) {
        (i == 0 ? result.out : result.err).append(buf, size_t(n));
      } else if (n == 0 || errno != EINTR) {
        ::close(fds[i].fd);
        fds[i].fd = -1;
        --open_fds;
      }
    }
  }
  for (auto& f : fds)
    if (f.fd >= 0) ::close(f.fd);
  int status = 0;
  ::waitpid(pid, &status, 0);
  if (!result.timed_out && WIFEXITED(status)) result.exit_code = WEXITSTATUS(status);
  return result;
}

namespace {

// The console may be read while the guest is half-way through a line
// ("HB 5 t="): a token without digits is not a number yet, not an error.
bool ParseDecimal(const std::string& text, uint64_t* out) {
  if (text.empty() || text.find_first_not_of("0123456789") != std::string::npos) return false;
  *out = std::stoull(text);
  return true;
}

}  // namespace

std::vector<Heartbeat> ParseHeartbeats(const std::string& console, const std::string& prefix) {
  std::vector<Heartbeat> beats;
  // Only complete lines count: the text after the last newline is still
  // being written.
  std::istringstream in(console.substr(0, console.rfind('\n') + 1));
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind(prefix + " ", 0) != 0) continue;
    Heartbeat hb;
    std::istringstream words(line.substr(prefix.size() + 1));
    std::string word;
    bool have_n = false, have_errors = false;
    while (words >> word) {
      if (!have_n) {
        have_n = ParseDecimal(word, &hb.n);
        if (!have_n) break;
      } else if (word.rfind("t=", 0) == 0) {
        (void)ParseDecimal(word.substr(2), &hb.t_ms);
      } else if (word.rfind("errors=", 0) == 0) {
        have_errors = ParseDecimal(word.substr(7), &hb.errors);
      }
    }
    if (have_n && have_errors) beats.push_back(hb);
  }
  return beats;
}

void FerryTest::SetUp() {
  temp_ = std::make_unique<ferry_test::TempDir>("ferry-it");
  dir_ = temp_->path();
  ASSERT_FALSE(dir_.empty());
  std::ofstream(config()) << "storage_root = \"" << storage() << "\"\n"
                          << "api_socket = \"" << socket() << "\"\n"
                          << "guest_dir = \"" << FERRY_GUEST_DIR << "\"\n";
}

void FerryTest::TearDown() {
  if (HasFailure()) DumpFerrydLogs(dir_, storage());
  // vms/ and incoming/ alike: a move into this host leaves a worker under
  // incoming/ until it commits (or for good, if the test ends before).
  KillWorkersUnder(storage() + "/");
  KillFerryd();
  temp_.reset();  // removes the directory, now that nothing uses it
}

void FerryTest::StartFerryd(const std::vector<std::string>& env_extra) {
  ASSERT_LT(ferryd_pid_, 0) << "ferryd already running";
  ferryd_pid_ = StartFerrydIn(dir_, config(), socket(), env_extra);
}

void FerryTest::KillFerryd() {
  KillFerrydGroup(ferryd_pid_);
  ferryd_pid_ = -1;
}

ProcessResult FerryTest::Ferry(const std::vector<std::string>& args, int timeout_ms) {
  return RunFerry(socket(), args, timeout_ms);
}

nlohmann::json FerryTest::FerryJson(const std::vector<std::string>& args) {
  return RunFerryJson(socket(), dir_, args);
}

std::string FerryTest::State(const std::string& vm) {
  nlohmann::json j = FerryJson({"vm", "show", vm});
  return j.contains("state") ? j["state"].get<std::string>() : "";
}

std::string FerryTest::Console(const std::string& vm) {
  ProcessResult r = Ferry({"console", vm});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  return r.out;
}

bool FerryTest::WaitFor(const std::string& what, int timeout_ms,
                        const std::function<bool()>& pred) {
  return PollUntil(what, timeout_ms, pred);
}

::testing::AssertionResult FerryTest::CreateAndStart(const std::string& vm,
                                                     const std::vector<std::string>& create_args) {
  std::vector<std::string> create = {"vm", "create", vm};
  create.insert(create.end(), create_args.begin(), create_args.end());
  ProcessResult r = Ferry(create);
  if (r.exit_code != 0)
    return ::testing::AssertionFailure() << "ferry vm create " << vm << " failed: " << r.err;
  r = Ferry({"vm", "start", vm});
  if (r.exit_code != 0)
    return ::testing::AssertionFailure() << "ferry vm start " << vm << " failed: " << r.err;
  return ::testing::AssertionSuccess();
}

std::string FerryTest::WaitForPowerOff(const std::string& vm, int timeout_ms) {
  std::string state;
  WaitFor("vm " + vm + " to power off", timeout_ms, [&] {
    state = State(vm);
    return state == "powered-off" || state == "crashed";
  });
  return state;
}

std::vector<Heartbeat> FerryTest::WaitForHeartbeats(const std::string& vm,
                                                    const std::string& prefix, size_t count) {
  std::vector<Heartbeat> beats;
  WaitFor(std::to_string(count) + " " + prefix + " lines on the console of " + vm, 60000, [&] {
    beats = ParseHeartbeats(Console(vm), prefix);
    return beats.size() >= count;
  });
  return beats;
}

// ---- A second ferryd (live moves) ------------------------------------------

uint16_t FreePort(const std::string& host) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  EXPECT_GE(fd, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = 0;
  ::inet_pton(AF_INET, host.c_str(), &addr.sin_addr);
  socklen_t len = sizeof addr;
  uint16_t port = 0;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0 &&
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0)
    port = ntohs(addr.sin_port);
  ::close(fd);
  EXPECT_NE(port, 0) << "no free port on " << host;
  return port;
}

std::string LiveMoveHostToml(const std::string& listen, bool incoming, bool outgoing,
                             const std::string& networks) {
  return "listen_addresses = [\"" + listen +
         "\"]\n[migration]\nincoming_enabled = " + (incoming ? "true" : "false") +
         "\noutgoing_enabled = " + (outgoing ? "true" : "false") + "\nnetworks = " + networks +
         "\nincoming_directories = [\"" + ferry_test::TempBaseDir() + "\"]\n";
}

ExtraFerryd::ExtraFerryd(const std::string& test_dir, const std::string& name)
    : dir_(test_dir + "/" + name) {
  std::filesystem::create_directories(dir_);
  WriteConfig("");
}

ExtraFerryd::~ExtraFerryd() {
  if (::testing::Test::HasFailure()) DumpLogs();
  KillWorkersUnder(storage() + "/");
  Kill();
}

void ExtraFerryd::WriteConfig(const std::string& extra) {
  std::ofstream(config(), std::ios::trunc) << "storage_root = \"" << storage() << "\"\n"
                                           << "api_socket = \"" << socket() << "\"\n"
                                           << "guest_dir = \"" << FERRY_GUEST_DIR << "\"\n"
                                           << extra;
}

std::string ExtraFerryd::Log() const { return ReadFile(dir_ + "/ferryd.log"); }

void ExtraFerryd::Start() {
  ASSERT_LT(pid_, 0) << "ferryd " << dir_ << " already running";
  pid_ = StartFerrydIn(dir_, config(), socket(), {});
}

void ExtraFerryd::Kill() {
  KillFerrydGroup(pid_);
  pid_ = -1;
}

ProcessResult ExtraFerryd::Ferry(const std::vector<std::string>& args, int timeout_ms) {
  return RunFerry(socket(), args, timeout_ms);
}

nlohmann::json ExtraFerryd::FerryJson(const std::vector<std::string>& args) {
  return RunFerryJson(socket(), dir_, args);
}

std::string ExtraFerryd::State(const std::string& vm) {
  ProcessResult r = Ferry({"--json", "vm", "show", vm});
  if (r.exit_code != 0) return "";
  auto j = nlohmann::json::parse(r.out, nullptr, false);
  return !j.is_discarded() && j.contains("state") ? j["state"].get<std::string>() : "";
}

void ExtraFerryd::DumpLogs() const { DumpFerrydLogs(dir_, storage()); }

}  // namespace ferry_it
