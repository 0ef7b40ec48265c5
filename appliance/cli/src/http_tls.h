// How ferry checks a remote ferryd's certificate (libcurl with OpenSSL):
// against the --ca bundle (curl's own check, host name included), or pinned
// by fingerprint (an OpenSSL verify callback installed through
// CURLOPT_SSL_CTX_FUNCTION that accepts exactly the leaf certificate whose
// SHA-256 was given, whoever issued it). Either way the callback records
// the SHA-256 of the certificate the server presented: the channel binding
// of a Kerberos token, and what the refusal of a wrong pin names.
#pragma once

#include <curl/curl.h>

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "base/result.h"

namespace appliance {

using Sha256 = std::array<uint8_t, 32>;

// "SHA256:AB:CD:…" (upper case, as ferryd's `ferry host certificate show`).
std::string FormatCertificateFingerprint(const Sha256& sha256);
// Accepts "SHA256:AB:CD:…", "AB:CD:…" and the same without colons, any case;
// kInvalidArgument naming the text otherwise.
base::Result<Sha256> ParseCertificateFingerprint(std::string_view text);

// One transfer's certificate check. Borrowed by the curl handle for the
// transfer; one per transfer (curl makes a new SSL_CTX for each handle).
struct TlsCheck {
  std::string ca_file;           // verify by CA, or
  std::optional<Sha256> pinned;  // by this fingerprint
  std::optional<Sha256> seen;    // the leaf certificate the server presented
  bool pin_mismatch = false;     // seen, and not the pinned one
};

// Sets the TLS options of an https transfer: TLS 1.2 at least, peer
// verification on, and the CA (with host-name check) or the pin (without).
void ConfigureTls(CURL* curl, TlsCheck& check);

}  // namespace appliance
