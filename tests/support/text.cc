#include "support/text.h"

#include <sstream>

namespace ferry_test {

std::vector<std::string> Lines(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) out.push_back(line);
  return out;
}

std::vector<std::string> LinesStartingWith(const std::string& text, const std::string& prefix) {
  std::vector<std::string> out;
  for (std::string& line : Lines(text))
    if (line.rfind(prefix, 0) == 0) out.push_back(std::move(line));
  return out;
}

}  // namespace ferry_test
