// Network addresses in host settings: CIDR networks (who may migrate to us)
// and listen addresses (where peers reach us).
#include <arpa/inet.h>
#include <sys/socket.h>

#include <algorithm>
#include <charconv>
#include <cstring>

#include "config/host_settings.h"
#include "toml_reader.h"

namespace config {
namespace {

base::Error Bad(std::string_view what, std::string_view text, std::string_view reason) {
  return base::Error(base::Code::kInvalidArgument,
                     std::string(what) + " " + QuoteToml(text) + ": " + std::string(reason));
}

// Decimal digits only (no sign, no spaces), value in [min, max].
std::optional<uint32_t> ParseDecimal(std::string_view s, uint32_t min, uint32_t max) {
  if (s.empty() || s.size() > 5) return std::nullopt;
  uint32_t v = 0;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || end != s.data() + s.size() || v < min || v > max) return std::nullopt;
  return v;
}

// Fills `out` (16 bytes) and returns the family, or 0 if text is no address.
int ParseAddress(std::string_view text, uint8_t* out) {
  std::string s(text);  // inet_pton needs a terminated string
  if (s.find(':') != std::string::npos)
    return inet_pton(AF_INET6, s.c_str(), out) == 1 ? AF_INET6 : 0;
  return inet_pton(AF_INET, s.c_str(), out) == 1 ? AF_INET : 0;
}

std::string FormatAddress(int family, const uint8_t* address) {
  char buf[INET6_ADDRSTRLEN] = {};
  inet_ntop(family, address, buf, sizeof buf);
  return buf;
}

// True if the first `bits` bits of a and b are equal.
bool PrefixEqual(const uint8_t* a, const uint8_t* b, int bits) {
  int whole = bits / 8;
  if (std::memcmp(a, b, static_cast<size_t>(whole)) != 0) return false;
  int rest = bits % 8;
  if (rest == 0) return true;
  uint8_t mask = static_cast<uint8_t>(0xff << (8 - rest));
  return (a[whole] & mask) == (b[whole] & mask);
}

bool IsHostnameLabel(std::string_view label) {
  if (label.empty() || label.size() > 63 || label.front() == '-' || label.back() == '-')
    return false;
  for (char c : label) {
    bool ok =
        (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-';
    if (!ok) return false;
  }
  return true;
}

bool IsHostname(std::string_view name) {
  if (name.empty() || name.size() > 253) return false;
  size_t start = 0;
  while (true) {
    size_t dot = name.find('.', start);
    if (!IsHostnameLabel(name.substr(start, dot == std::string_view::npos ? dot : dot - start)))
      return false;
    if (dot == std::string_view::npos) return true;
    start = dot + 1;
  }
}

}  // namespace

// A bare address is accepted as a single-host network (/32 or /128). An
// address with host bits set under its prefix ("10.0.0.1/24") is rejected, not
// masked: it usually means a mistyped prefix, and masking would silently allow
// a whole subnet the admin may not have meant.
base::Result<Cidr> ParseCidr(std::string_view text) {
  Cidr cidr;
  cidr.text = std::string(text);
  size_t slash = text.find('/');
  std::string_view address_text = text.substr(0, slash);
  cidr.family = ParseAddress(address_text, cidr.address);
  if (cidr.family == 0) {
    return Bad("network", text, "not an IPv4 or IPv6 address in CIDR form (like 10.0.0.0/24)");
  }
  int max_prefix = cidr.family == AF_INET ? 32 : 128;
  if (slash == std::string_view::npos) {
    cidr.prefix_length = max_prefix;
    return cidr;
  }
  auto prefix = ParseDecimal(text.substr(slash + 1), 0, static_cast<uint32_t>(max_prefix));
  if (!prefix) {
    return Bad("network", text,
               "prefix length must be a number from 0 to " + std::to_string(max_prefix));
  }
  cidr.prefix_length = static_cast<int>(*prefix);
  uint8_t masked[16] = {};
  int bytes = cidr.family == AF_INET ? 4 : 16;
  for (int i = 0; i < bytes; ++i) {
    int bits = std::clamp(cidr.prefix_length - 8 * i, 0, 8);
    masked[i] = cidr.address[i] & static_cast<uint8_t>(0xff00 >> bits);
  }
  if (std::memcmp(masked, cidr.address, static_cast<size_t>(bytes)) != 0) {
    return Bad("network", text,
               "host bits are set after the prefix; the network is " +
                   FormatAddress(cidr.family, masked) + "/" + std::to_string(cidr.prefix_length));
  }
  return cidr;
}

bool CidrContains(const Cidr& net, int family, const uint8_t* address) {
  if (family == net.family) return PrefixEqual(net.address, address, net.prefix_length);
  // A dual-stack socket reports IPv4 peers as ::ffff:a.b.c.d; those are IPv4
  // peers and an IPv4 network must match them.
  static constexpr uint8_t kV4MappedPrefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
  if (net.family == AF_INET && family == AF_INET6 &&
      std::memcmp(address, kV4MappedPrefix, sizeof kV4MappedPrefix) == 0) {
    return PrefixEqual(net.address, address + 12, net.prefix_length);
  }
  return false;
}

base::Result<ListenAddress> ParseListenAddress(std::string_view text) {
  ListenAddress out;
  out.text = std::string(text);
  std::string_view port_text;
  uint8_t scratch[16];
  if (!text.empty() && text.front() == '[') {
    size_t close = text.find(']');
    if (close == std::string_view::npos || close + 1 >= text.size() || text[close + 1] != ':') {
      return Bad("listen address", text, "must look like [v6-address]:port");
    }
    out.host = std::string(text.substr(1, close - 1));
    if (ParseAddress(out.host, scratch) != AF_INET6) {
      return Bad("listen address", text, "\"" + out.host + "\" is not an IPv6 address");
    }
    port_text = text.substr(close + 2);
  } else {
    size_t colon = text.rfind(':');
    if (colon == std::string_view::npos) {
      return Bad("listen address", text, "must be host:port or [v6-address]:port");
    }
    out.host = std::string(text.substr(0, colon));
    port_text = text.substr(colon + 1);
    if (out.host.find(':') != std::string::npos) {
      return Bad("listen address", text, "an IPv6 address must be in brackets, like [::1]:7070");
    }
    bool numeric = out.host.find_first_not_of("0123456789.") == std::string::npos;
    if (out.host.empty() || (numeric && ParseAddress(out.host, scratch) != AF_INET) ||
        (!numeric && !IsHostname(out.host))) {
      return Bad("listen address", text,
                 "\"" + out.host + "\" is not an IPv4 address or host name");
    }
  }
  auto port = ParseDecimal(port_text, 1, 65535);
  if (!port) return Bad("listen address", text, "port must be a number from 1 to 65535");
  out.port = static_cast<uint16_t>(*port);
  return out;
}

}  // namespace config
