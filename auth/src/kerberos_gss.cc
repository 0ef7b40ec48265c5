// GSS names and buffers: owners and conversions shared by the credential and
// context code.
#include <string>

#include "kerberos_gss.h"

namespace auth::internal {

GssName::~GssName() {
  OM_uint32 minor = 0;
  if (name_ != GSS_C_NO_NAME) gss_release_name(&minor, &name_);
}

GssBuffer::~GssBuffer() {
  OM_uint32 minor = 0;
  if (buf_.value != nullptr) gss_release_buffer(&minor, &buf_);
}

base::Result<GssName> ImportPrincipal(const std::string& principal) {
  if (principal.empty())
    return base::Error(base::Code::kInvalidArgument, "empty Kerberos principal name");
  gss_buffer_desc text{principal.size(), const_cast<char*>(principal.data())};
  GssName name;
  OM_uint32 minor = 0;
  // A Kerberos principal name, not a host-based one: the caller names the
  // realm and the exact SPN, nothing is canonicalised through DNS.
  OM_uint32 major = gss_import_name(&minor, &text, GSS_KRB5_NT_PRINCIPAL_NAME, name.out());
  if (GSS_ERROR(major)) {
    return base::Error(base::Code::kInvalidArgument,
                       "invalid Kerberos principal name '" + principal + "'");
  }
  return name;
}

std::string DisplayName(gss_name_t name) {
  OM_uint32 minor = 0;
  GssBuffer buf;
  if (GSS_ERROR(gss_display_name(&minor, name, buf.out(), nullptr))) return "";
  return buf.str();
}

std::string CredentialPrincipal(gss_cred_id_t cred) {
  OM_uint32 minor = 0;
  GssName name;
  if (GSS_ERROR(gss_inquire_cred(&minor, cred, name.out(), nullptr, nullptr, nullptr))) return "";
  return DisplayName(name.get());
}

}  // namespace auth::internal
