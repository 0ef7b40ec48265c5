// Whole-file reads and writes for test set-up and checks.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace ferry_test {

// The file's bytes; "" (or empty) when it cannot be read: tests poll files
// that do not exist yet.
std::string ReadFile(const std::string& path);
std::vector<uint8_t> ReadBytes(const std::string& path);

// Creates or truncates path with these bytes; a gtest failure if that fails.
void WriteFile(const std::string& path, std::string_view data);
void WriteFile(const std::string& path, const std::vector<uint8_t>& data);

}  // namespace ferry_test
