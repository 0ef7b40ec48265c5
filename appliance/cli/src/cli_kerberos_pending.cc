// TEMPORARY: see cli_kerberos_pending.h. Refuses, saying why.
#include "cli_kerberos_pending.h"

namespace appliance {

base::Result<std::string> NegotiateHeaderValue(const std::string& service_principal,
                                               std::span<const uint8_t> /*channel_binding*/) {
  return base::Error(base::Code::kUnimplemented,
                     "ferryd asks for Kerberos (Negotiate) as " + service_principal +
                         ", which this ferry cannot do yet (cli_kerberos is being built)");
}

}  // namespace appliance
