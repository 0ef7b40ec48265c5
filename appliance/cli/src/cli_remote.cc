#include "cli/cli_remote.h"

#include <fcntl.h>
#include <termios.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "base/fd.h"

namespace appliance {
namespace {

// A password longer than this is not a password someone typed.
constexpr size_t kMaxPasswordBytes = 4096;

}  // namespace

base::Result<auth::Secret> ReadPasswordLine(int fd, const std::string& prompt,
                                            const std::string& what) {
  termios saved{};
  const bool echo_off = !prompt.empty() && ::tcgetattr(fd, &saved) == 0;
  if (echo_off) {
    termios quiet = saved;
    quiet.c_lflag &= ~tcflag_t(ECHO);
    (void)::tcsetattr(fd, TCSAFLUSH, &quiet);
    (void)!::write(fd, prompt.data(), prompt.size());
  }
  std::string line;
  line.reserve(kMaxPasswordBytes + 1);  // no reallocation leaves copies behind
  char c = 0;
  ssize_t n = 0;
  while ((n = ::read(fd, &c, 1)) == 1 || (n < 0 && errno == EINTR)) {
    if (n != 1) continue;
    if (c == '\n' || line.size() > kMaxPasswordBytes) break;
    line.push_back(c);
  }
  if (echo_off) {
    (void)::tcsetattr(fd, TCSAFLUSH, &saved);
    (void)!::write(fd, "\n", 1);
  }
  if (!line.empty() && line.back() == '\r') line.pop_back();
  auth::Secret password(std::move(line));
  if (password.size() > kMaxPasswordBytes)
    return base::Error(base::Code::kInvalidArgument,
                       what + " is longer than " + std::to_string(kMaxPasswordBytes) + " bytes");
  if (password.empty())
    return base::Error(base::Code::kInvalidArgument, "no password given for " + what);
  return password;
}

base::Result<HttpClient> OpenClient(const CliInvocation& inv) {
  if (!inv.remote) return HttpClient(inv.socket);
  const RemoteOptions& options = *inv.remote;
  RemoteTarget target;
  target.host = options.host;
  target.port = options.port;
  target.ca_file = options.ca_file;
  target.fingerprint = options.fingerprint;
  target.user = options.user;
  if (!options.user.empty()) {
    const std::string what = "the password of " + options.user + " at " + options.host;
    if (options.password_stdin) {
      ASSIGN_OR_RETURN(target.password, ReadPasswordLine(STDIN_FILENO, "", what));
    } else {
      base::Fd tty(::open("/dev/tty", O_RDWR | O_CLOEXEC | O_NOCTTY));
      if (!tty.valid() || ::isatty(tty.get()) == 0)
        return base::Error(base::Code::kInvalidArgument,
                           "--user " + options.user +
                               ": no terminal to ask for the password on; give it on stdin "
                               "with --password-stdin");
      ASSIGN_OR_RETURN(
          target.password,
          ReadPasswordLine(tty.get(), "Password for " + options.user + " at " + options.host + ": ",
                           what));
    }
  }
  return HttpClient::Remote(std::move(target));
}

}  // namespace appliance
