#include "base/log.h"

#include <pthread.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <string>

#include "base/mutex.h"

namespace base {
namespace {

LogLevel InitialLevel() {
  const char* env = std::getenv("FERRY_LOG");
  if (!env) return LogLevel::kInfo;
  if (!std::strcmp(env, "debug")) return LogLevel::kDebug;
  if (!std::strcmp(env, "warning")) return LogLevel::kWarning;
  if (!std::strcmp(env, "error")) return LogLevel::kError;
  return LogLevel::kInfo;
}

LogLevel& Threshold() {
  static LogLevel level = InitialLevel();
  return level;
}

}  // namespace

void SetLogLevel(LogLevel level) { Threshold() = level; }

void Log(LogLevel level, std::string_view message) {
  if (level < Threshold()) return;
  static const char* kNames[] = {"D", "I", "W", "E"};
  timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  tm t;
  gmtime_r(&ts.tv_sec, &t);
  char thread[16] = "?";
  pthread_getname_np(pthread_self(), thread, sizeof thread);
  char prefix[96];
  std::snprintf(prefix, sizeof prefix, "%s %02d:%02d:%02d.%03ld %s] ", kNames[int(level)],
                t.tm_hour, t.tm_min, t.tm_sec, ts.tv_nsec / 1000000, thread);
  std::string line = prefix;
  line += message;
  line += '\n';
  static Mutex mu;  // one line at a time on stderr
  MutexLock lock(mu);
  std::fwrite(line.data(), 1, line.size(), stderr);
}

void SetThreadName(const char* name) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "%s", name);
  pthread_setname_np(pthread_self(), buf);
}

}  // namespace base
