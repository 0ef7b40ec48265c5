#include "password_credentials.h"

namespace appliance {

base::Result<MoveAuthorization> PasswordCredentials::Authorize(
    const transport::TlsPeer& /*peer*/) const {
  MoveAuthorization authorization;
  authorization.mechanism = AuthorizationMechanism::kCredentials;
  authorization.user = user_;
  authorization.password = std::string(password_.view());
  return authorization;
}

namespace {

std::string AdminList(const std::vector<std::string>& admins) {
  std::string out;
  for (const std::string& a : admins) out += (out.empty() ? "" : ", ") + a;
  return out.empty() ? "empty" : out;
}

}  // namespace

base::Status CheckLocalAdmin(const std::string& user, const auth::Secret& password,
                             const std::vector<std::string>& admins, const std::string& where,
                             std::string_view may, const auth::PamOptions& pam) {
  if (auto verified = auth::VerifyPassword(user, password, pam); !verified) {
    const base::Error& e = verified.error();
    // VerifyPassword's wording, plus where: the admin reads it at the source.
    if (e.code() == base::Code::kPermissionDenied && !where.empty())
      return base::Error(e.code(), e.message() + " " + where);
    return e;
  }
  if (!auth::IsAuthorized(user, admins))
    return base::Error(
        base::Code::kPermissionDenied,
        user + " may not " + std::string(may) + " (migration.admins: " + AdminList(admins) + ")");
  return base::Ok();
}

}  // namespace appliance
