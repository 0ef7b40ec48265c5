// The examples in docs/config.md must stay valid: the first ```toml block is
// a host.toml, the second a vm.toml.
#include <gtest/gtest.h>

#include <fstream>
#include <sstream>

#include "config/host_settings.h"
#include "config/vm_definition.h"

namespace config {
namespace {

std::vector<std::string> TomlBlocks(const std::string& markdown) {
  std::vector<std::string> blocks;
  const std::string open = "```toml\n";
  size_t at = 0;
  while ((at = markdown.find(open, at)) != std::string::npos) {
    at += open.size();
    size_t end = markdown.find("```", at);
    if (end == std::string::npos) break;
    blocks.push_back(markdown.substr(at, end - at));
    at = end + 3;
  }
  return blocks;
}

TEST(DocsExamplesTest, ExamplesParse) {
  std::ifstream in(std::string(FERRY_SOURCE_DIR) + "/docs/config.md");
  ASSERT_TRUE(in.good()) << "cannot read docs/config.md";
  std::stringstream text;
  text << in.rdbuf();
  auto blocks = TomlBlocks(text.str());
  ASSERT_EQ(blocks.size(), 2u);
  auto host = ParseHostSettings(blocks[0], "docs host example");
  ASSERT_TRUE(host.has_value()) << host.error().ToString();
  EXPECT_TRUE(host->incoming_enabled);
  auto vm = ParseVmDefinition(blocks[1], "docs vm example");
  ASSERT_TRUE(vm.has_value()) << vm.error().ToString();
  EXPECT_EQ(vm->disks.size(), 2u);
}

}  // namespace
}  // namespace config
