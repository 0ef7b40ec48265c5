// The files image/ ships must stay valid as the config schema evolves.
#include <gtest/gtest.h>

#include "config/host_settings.h"

namespace appliance {
namespace {

TEST(ImageConfigTest, ShippedHostTomlParsesToTheDocumentedDefaults) {
  auto settings = config::LoadHostSettings(std::string(FERRY_SOURCE_DIR) + "/image/host.toml");
  ASSERT_TRUE(settings.has_value()) << settings.error().ToString();
  EXPECT_EQ(settings->storage_root, "/var/lib/ferry");
  EXPECT_EQ(settings->api_socket, "/run/ferry/ferryd.sock");
  EXPECT_TRUE(settings->guest_dir.empty()) << "the default: ../guests next to ferryd";
  EXPECT_FALSE(settings->incoming_enabled);
  EXPECT_FALSE(settings->outgoing_enabled);
}

}  // namespace
}  // namespace appliance
