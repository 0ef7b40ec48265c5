// Minimal leveled logging to stderr with a timestamp and the thread's name.
// Threads name themselves with SetThreadName so logs say who spoke.
#pragma once

#include <string_view>

namespace base {

enum class LogLevel { kDebug = 0, kInfo = 1, kWarning = 2, kError = 3 };

// The threshold comes from FERRY_LOG (debug|info|warning|error), default info.
void SetLogLevel(LogLevel level);
void Log(LogLevel level, std::string_view message);
void SetThreadName(const char* name);  // at most 15 characters (kernel limit)

inline void LogDebug(std::string_view m) { Log(LogLevel::kDebug, m); }
inline void LogInfo(std::string_view m) { Log(LogLevel::kInfo, m); }
inline void LogWarning(std::string_view m) { Log(LogLevel::kWarning, m); }
inline void LogError(std::string_view m) { Log(LogLevel::kError, m); }

}  // namespace base
