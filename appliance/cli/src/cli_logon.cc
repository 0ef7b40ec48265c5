#include "cli/cli_logon.h"

#include <termios.h>
#include <unistd.h>

#include <cstdio>
#include <ctime>
#include <iostream>
#include <optional>

#include "cli_verbs.h"

namespace appliance {
namespace {

std::string LocalTime(int64_t unix_ms) {
  const time_t t = time_t(unix_ms / 1000);
  tm local{};
  char buf[64] = "?";
  if (::localtime_r(&t, &local) != nullptr)
    std::strftime(buf, sizeof buf, "%Y-%m-%d %H:%M:%S", &local);
  return buf;
}

// One line of stdin without its line end; nullopt at end of input.
std::optional<std::string> ReadLine() {
  std::string line;
  if (!std::getline(std::cin, line)) return std::nullopt;
  if (!line.empty() && line.back() == '\r') line.pop_back();
  return line;
}

}  // namespace

base::Status ValidateUserName(const std::string& user, std::string_view what) {
  if (user.empty()) return UsageError(std::string(what) + " needs a user name");
  for (unsigned char c : user) {
    if (c == '/' || c <= ' ' || c == 0x7f)
      return UsageError(std::string(what) + ": \"" + user +
                        "\" is not a user name (no '/', spaces or control characters)");
  }
  return base::Ok();
}

base::Status BuildLogon(const VerbArgs& args, CliInvocation& inv) {
  inv.user = args.operands.at(0);
  RETURN_IF_ERROR(ValidateUserName(inv.user, std::string(args.verb.words[0])));
  inv.password_stdin = args.Has("--password-stdin");
  if (inv.command == CliCommand::kLogoff) inv.path += "/" + inv.user;
  return base::Ok();
}

base::Result<std::string> ReadLogonPassword(const std::string& user, bool from_stdin) {
  std::optional<std::string> password;
  termios saved{};
  if (!from_stdin && ::isatty(STDIN_FILENO) && ::tcgetattr(STDIN_FILENO, &saved) == 0) {
    std::cerr << "password for " << user << ": " << std::flush;
    termios quiet = saved;
    quiet.c_lflag &= ~tcflag_t(ECHO);
    quiet.c_lflag |= ECHONL;  // the newline still shows, so the next output starts a line
    ::tcsetattr(STDIN_FILENO, TCSAFLUSH, &quiet);
    password = ReadLine();
    ::tcsetattr(STDIN_FILENO, TCSAFLUSH, &saved);
  } else {
    password = ReadLine();
  }
  if (!password)
    return base::Error(base::Code::kInvalidArgument,
                       "no password for " + user + ": stdin ended before a line was read");
  if (password->empty())
    return base::Error(base::Code::kInvalidArgument, "the password for " + user + " is empty");
  return std::move(*password);
}

std::string FormatLogon(const nlohmann::json& logon) {
  return logon.value("user", "?") + " logged on at this host until " +
         LocalTime(logon.value("expires_unix_ms", int64_t(0))) + " (local time)\n";
}

std::string FormatLogonList(const nlohmann::json& list) {
  const nlohmann::json logons = list.value("logons", nlohmann::json::array());
  if (logons.empty()) return "no log-ons at this host\n";
  std::string out = "USER                 EXPIRES (local time)\n";
  for (const auto& logon : logons) {
    std::string user = logon.value("user", "?");
    if (user.size() < 20) user.resize(20, ' ');
    out += user + " " + LocalTime(logon.value("expires_unix_ms", int64_t(0))) + "\n";
  }
  return out;
}

}  // namespace appliance
