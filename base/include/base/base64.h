// Base64 (RFC 4648, standard alphabet, padded): Kerberos tokens in JSON
// messages and HTTP Negotiate headers.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.h"

namespace base {

std::string Base64Encode(std::span<const uint8_t> bytes);
// kInvalidArgument for a length that is not a multiple of 4, a character
// outside the alphabet, or padding anywhere but at the end. what names the
// text in the message ("kerberos token: not base64: ...").
Result<std::vector<uint8_t>> Base64Decode(std::string_view text, std::string_view what);

}  // namespace base
