// Private helpers of the Kerberos module: small owners for GSS names and
// buffers, principal import/display, and the mapping of GSS/krb5 status
// codes to base::Error (kerberos_errors.cc).
#pragma once

#include <gssapi/gssapi.h>
#include <gssapi/gssapi_ext.h>
#include <gssapi/gssapi_krb5.h>

#include <optional>
#include <string>
#include <string_view>

#include "base/result.h"

namespace auth::internal {

// Owns a gss_name_t.
class GssName {
 public:
  GssName() = default;
  explicit GssName(gss_name_t name) : name_(name) {}
  GssName(GssName&& other) noexcept : name_(other.name_) { other.name_ = GSS_C_NO_NAME; }
  GssName& operator=(GssName&&) = delete;
  GssName(const GssName&) = delete;
  ~GssName();
  gss_name_t get() const { return name_; }
  gss_name_t* out() { return &name_; }

 private:
  gss_name_t name_ = GSS_C_NO_NAME;
};

// Owns a gss_buffer_desc that GSS allocated.
class GssBuffer {
 public:
  GssBuffer() = default;
  GssBuffer(const GssBuffer&) = delete;
  ~GssBuffer();
  gss_buffer_t out() { return &buf_; }
  const gss_buffer_desc& get() const { return buf_; }
  std::string str() const { return std::string(static_cast<const char*>(buf_.value), buf_.length); }

 private:
  gss_buffer_desc buf_ = GSS_C_EMPTY_BUFFER;
};

// "alice@FERRY.TEST" as a Kerberos principal name.
base::Result<GssName> ImportPrincipal(const std::string& principal);
// The display form of a name ("" if GSS cannot show it).
std::string DisplayName(gss_name_t name);
// The principal a credential names ("" if GSS cannot tell).
std::string CredentialPrincipal(gss_cred_id_t cred);

// What a failed call was about, so the error can name it.
struct Situation {
  std::string operation = {};        // "accept token", "initiate context", ...
  std::string client = {};           // principal whose credential was used or presented
  std::string service = {};          // target or acceptor service principal
  std::string impersonator = {};     // the account acting for `client` (S4U), if any
  std::string keytab = {};           // keytab file, when one is involved
  std::string ccache = {};           // credential cache, when one is involved
  bool protocol_transition = false;  // the credential came from S4U2Self
};

// A base::Error for a GSS failure: the code and advice come from the krb5
// error in `minor` where one is recognised, else from `major`; the message
// always ends with GSS's own text for both codes.
base::Error GssError(const Situation& what, OM_uint32 major, OM_uint32 minor);

}  // namespace auth::internal
