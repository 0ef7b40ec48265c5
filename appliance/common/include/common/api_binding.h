// What a Kerberos token sent to ferryd's local API socket is bound to (the
// GSS channel bindings' application data). The socket itself is root-only;
// the binding keeps a token made for the local API from being accepted
// anywhere else (a remote API binds to ferryd's certificate instead).
// Shared by ferry (which makes the token) and ferryd (which accepts it).
#pragma once

#include <string_view>

namespace appliance {

inline constexpr std::string_view kLocalApiChannelBinding = "ferry local API socket v1";

}  // namespace appliance
