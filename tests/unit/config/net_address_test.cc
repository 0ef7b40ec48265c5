#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <sys/socket.h>

#include "config/host_settings.h"

namespace config {
namespace {

// An address in network byte order for CidrContains, with its family.
struct Address {
  int family = 0;
  uint8_t bytes[16] = {};
};

Address Addr(const char* text) {
  Address a;
  if (inet_pton(AF_INET, text, a.bytes) == 1) {
    a.family = AF_INET;
  } else if (inet_pton(AF_INET6, text, a.bytes) == 1) {
    a.family = AF_INET6;
  } else {
    ADD_FAILURE() << "test address does not parse: " << text;
  }
  return a;
}

bool Contains(const char* cidr, const char* address) {
  auto net = ParseCidr(cidr);
  EXPECT_TRUE(net.has_value()) << cidr << ": " << net.error().message();
  if (!net.has_value()) return false;
  Address a = Addr(address);
  return CidrContains(*net, a.family, a.bytes);
}

TEST(CidrTest, ParsesV4AndV6) {
  auto v4 = ParseCidr("192.168.1.0/24");
  ASSERT_TRUE(v4.has_value());
  EXPECT_EQ(v4->family, AF_INET);
  EXPECT_EQ(v4->prefix_length, 24);
  EXPECT_EQ(v4->address[0], 192);
  EXPECT_EQ(v4->address[2], 1);
  EXPECT_EQ(v4->text, "192.168.1.0/24");
  auto v6 = ParseCidr("fd00:1::/48");
  ASSERT_TRUE(v6.has_value());
  EXPECT_EQ(v6->family, AF_INET6);
  EXPECT_EQ(v6->prefix_length, 48);
  EXPECT_EQ(v6->address[0], 0xfd);
  EXPECT_EQ(v6->address[3], 0x01);
}

TEST(CidrTest, BareAddressIsSingleHost) {
  auto v4 = ParseCidr("10.1.2.3");
  ASSERT_TRUE(v4.has_value());
  EXPECT_EQ(v4->prefix_length, 32);
  auto v6 = ParseCidr("::1");
  ASSERT_TRUE(v6.has_value());
  EXPECT_EQ(v6->prefix_length, 128);
  EXPECT_TRUE(Contains("10.1.2.3", "10.1.2.3"));
  EXPECT_FALSE(Contains("10.1.2.3", "10.1.2.4"));
}

TEST(CidrTest, RejectsHostBitsNamingTheNetwork) {
  auto r = ParseCidr("10.0.0.1/24");
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code(), base::Code::kInvalidArgument);
  EXPECT_EQ(r.error().message(),
            "network \"10.0.0.1/24\": host bits are set after the prefix; the network is "
            "10.0.0.0/24");
  auto v6 = ParseCidr("fd00::1/64");
  ASSERT_FALSE(v6.has_value());
  EXPECT_NE(v6.error().message().find("the network is fd00::/64"), std::string::npos);
  // Odd prefix lengths mask inside a byte.
  EXPECT_TRUE(ParseCidr("10.0.0.128/25").has_value());
  EXPECT_FALSE(ParseCidr("10.0.0.64/25").has_value());
  EXPECT_TRUE(ParseCidr("0.0.0.0/0").has_value());
  EXPECT_FALSE(ParseCidr("1.0.0.0/0").has_value());
}

TEST(CidrTest, RejectsMalformed) {
  for (const char* bad : {"", "/24", "10.0.0.0/", "10.0.0.0/33", "10.0.0.0/-1", "10.0.0.0/+8",
                          "10.0.0.0/ 8", "10.0.0/24", "10.0.0.0.0/24", "fd00::/129", "fd00:::/64",
                          "10.0.0.0/24/1", "any", " 10.0.0.0/8", "10.0.0.0/08x"}) {
    auto r = ParseCidr(bad);
    EXPECT_FALSE(r.has_value()) << "accepted \"" << bad << "\"";
    if (!r.has_value()) {
      EXPECT_EQ(r.error().code(), base::Code::kInvalidArgument);
      EXPECT_NE(r.error().message().find(bad), std::string::npos) << r.error().message();
    }
  }
}

TEST(CidrTest, ContainsV4) {
  EXPECT_TRUE(Contains("10.0.0.0/8", "10.255.1.2"));
  EXPECT_FALSE(Contains("10.0.0.0/8", "11.0.0.0"));
  EXPECT_TRUE(Contains("192.168.1.0/24", "192.168.1.255"));
  EXPECT_FALSE(Contains("192.168.1.0/24", "192.168.2.0"));
  EXPECT_TRUE(Contains("10.0.0.128/25", "10.0.0.200"));
  EXPECT_FALSE(Contains("10.0.0.128/25", "10.0.0.127"));
}

TEST(CidrTest, PrefixZeroMatchesEverythingOfItsFamily) {
  EXPECT_TRUE(Contains("0.0.0.0/0", "0.0.0.0"));
  EXPECT_TRUE(Contains("0.0.0.0/0", "255.255.255.255"));
  EXPECT_FALSE(Contains("0.0.0.0/0", "fd00::1"));
  EXPECT_TRUE(Contains("::/0", "fd00::1"));
  EXPECT_TRUE(Contains("::/0", "::"));
  EXPECT_FALSE(Contains("::/0", "10.0.0.1"));
}

TEST(CidrTest, FullLengthPrefixes) {
  EXPECT_TRUE(Contains("10.0.0.1/32", "10.0.0.1"));
  EXPECT_FALSE(Contains("10.0.0.1/32", "10.0.0.0"));
  EXPECT_TRUE(Contains("fd00::7/128", "fd00::7"));
  EXPECT_FALSE(Contains("fd00::7/128", "fd00::6"));
  EXPECT_FALSE(Contains("fd00::7/128", "fd00::7:0"));
}

TEST(CidrTest, ContainsV6) {
  EXPECT_TRUE(Contains("fd00:1::/32", "fd00:1:ffff::1"));
  EXPECT_FALSE(Contains("fd00:1::/32", "fd00:2::1"));
  EXPECT_TRUE(Contains("fe80::/10", "febf::1"));
  EXPECT_FALSE(Contains("fe80::/10", "fec0::1"));
}

TEST(CidrTest, FamilyMismatchNeverMatches) {
  // 10.0.0.1 and ::a00:1 share their low 32 bits; families must still differ.
  EXPECT_FALSE(Contains("10.0.0.0/8", "::a00:1"));
  EXPECT_FALSE(Contains("::/96", "10.0.0.1"));
  EXPECT_FALSE(Contains("::ffff:0:0/96", "10.0.0.1"));
}

TEST(CidrTest, V4MappedV6PeersMatchV4Networks) {
  EXPECT_TRUE(Contains("10.0.0.0/8", "::ffff:10.1.2.3"));
  EXPECT_FALSE(Contains("10.0.0.0/8", "::ffff:11.1.2.3"));
  EXPECT_TRUE(Contains("0.0.0.0/0", "::ffff:1.2.3.4"));
}

TEST(ListenAddressTest, Parses) {
  auto v4 = ParseListenAddress("0.0.0.0:7070");
  ASSERT_TRUE(v4.has_value());
  EXPECT_EQ(v4->host, "0.0.0.0");
  EXPECT_EQ(v4->port, 7070);
  EXPECT_EQ(v4->text, "0.0.0.0:7070");
  auto v6 = ParseListenAddress("[::]:1");
  ASSERT_TRUE(v6.has_value());
  EXPECT_EQ(v6->host, "::");
  EXPECT_EQ(v6->port, 1);
  auto name = ParseListenAddress("host-1.example.com:65535");
  ASSERT_TRUE(name.has_value());
  EXPECT_EQ(name->host, "host-1.example.com");
  EXPECT_EQ(name->port, 65535);
}

TEST(ListenAddressTest, RejectsMalformed) {
  struct Case {
    const char* text;
    const char* reason;
  };
  for (auto [text, reason] : {
           Case{"10.0.0.1", "must be host:port"},
           Case{"10.0.0.1:0", "port must be a number from 1 to 65535"},
           Case{"10.0.0.1:65536", "port must be a number from 1 to 65535"},
           Case{"10.0.0.1:", "port must be a number"},
           Case{"10.0.0.1:http", "port must be a number"},
           Case{":7070", "is not an IPv4 address or host name"},
           Case{"10.0.0.300:7070", "is not an IPv4 address or host name"},
           Case{"bad_name:7070", "is not an IPv4 address or host name"},
           Case{"-bad:7070", "is not an IPv4 address or host name"},
           Case{"::1:7070", "must be in brackets"},
           Case{"[::1]7070", "must look like [v6-address]:port"},
           Case{"[::1]", "must look like [v6-address]:port"},
           Case{"[10.0.0.1]:7070", "is not an IPv6 address"},
           Case{"[::1:7070", "must look like [v6-address]:port"},
       }) {
    auto r = ParseListenAddress(text);
    ASSERT_FALSE(r.has_value()) << "accepted " << text;
    EXPECT_EQ(r.error().code(), base::Code::kInvalidArgument);
    EXPECT_NE(r.error().message().find(reason), std::string::npos)
        << text << " -> " << r.error().message();
    EXPECT_NE(r.error().message().find(text), std::string::npos) << r.error().message();
  }
}

}  // namespace
}  // namespace config
