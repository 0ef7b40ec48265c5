// Lines of console and log text, as tests pick them apart.
#pragma once

#include <string>
#include <vector>

namespace ferry_test {

// The lines of text, without their newlines.
std::vector<std::string> Lines(const std::string& text);
// The lines that start with prefix.
std::vector<std::string> LinesStartingWith(const std::string& text, const std::string& prefix);

}  // namespace ferry_test
