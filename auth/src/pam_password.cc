// VerifyPassword: one PAM transaction per call (pam_start_confdir,
// pam_authenticate, pam_acct_mgmt, pam_end), with a conversation that knows
// only one answer — the secret.
#include <security/pam_appl.h>
#include <string.h>  // explicit_bzero
#include <sys/stat.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <string>

#include "auth/local_accounts.h"
#include "base/log.h"

namespace auth {
namespace {

constexpr char kSystemConfigDir[] = "/etc/pam.d";

// What the conversation needs and what it saw; one per call, so concurrent
// calls share nothing.
struct Conversation {
  const Secret* password = nullptr;
  std::string refused_prompt;  // the first prompt refused, for the error
};

void FreeResponses(pam_response* responses, int count) {
  for (int i = 0; i < count; ++i) {
    if (responses[i].resp == nullptr) continue;
    explicit_bzero(responses[i].resp, std::strlen(responses[i].resp));
    std::free(responses[i].resp);
  }
  std::free(responses);
}

// A malloc'ed, NUL-terminated copy of the secret: PAM frees it (and the
// modules that keep it as the auth token wipe it on pam_end).
char* CopySecret(const Secret& secret) {
  char* copy = static_cast<char*>(std::malloc(secret.size() + 1));
  if (copy == nullptr) return nullptr;
  std::memcpy(copy, secret.view().data(), secret.size());
  copy[secret.size()] = '\0';
  return copy;
}

// Answers every echo-off prompt (a password prompt) with the secret, lets
// error and info messages pass with no answer, and refuses the rest: a
// prompt whose answer is echoed is a user name or a code, which a delegated
// log-on does not have.
int Converse(int count, const pam_message** messages, pam_response** out, void* data) {
  auto* conversation = static_cast<Conversation*>(data);
  if (count <= 0 || count > PAM_MAX_NUM_MSG) return PAM_CONV_ERR;
  auto* responses = static_cast<pam_response*>(std::calloc(count, sizeof(pam_response)));
  if (responses == nullptr) return PAM_BUF_ERR;
  for (int i = 0; i < count; ++i) {
    const pam_message& message = *messages[i];
    switch (message.msg_style) {
      case PAM_PROMPT_ECHO_OFF:
        responses[i].resp = CopySecret(*conversation->password);
        if (responses[i].resp == nullptr) {
          FreeResponses(responses, count);
          return PAM_BUF_ERR;
        }
        break;
      case PAM_ERROR_MSG:
      case PAM_TEXT_INFO: break;
      default:
        if (conversation->refused_prompt.empty()) {
          conversation->refused_prompt = message.msg != nullptr ? message.msg : "(no text)";
        }
        FreeResponses(responses, count);
        return PAM_CONV_ERR;
    }
  }
  *out = responses;
  return PAM_SUCCESS;
}

// Ends the transaction with the last status, as pam_end wants it.
class Transaction {
 public:
  explicit Transaction(pam_handle_t* handle) : handle_(handle) {}
  ~Transaction() { pam_end(handle_, last_); }
  Transaction(const Transaction&) = delete;
  Transaction& operator=(const Transaction&) = delete;

  pam_handle_t* handle() const { return handle_; }
  int Record(int status) { return last_ = status; }

 private:
  pam_handle_t* handle_;
  int last_ = PAM_SUCCESS;
};

base::Status CheckArguments(const std::string& user, const Secret& password,
                            const PamOptions& options) {
  if (user.empty()) return base::Error(base::Code::kInvalidArgument, "user name is empty");
  // PAM takes C strings: a NUL would cut the name or password short and
  // check a different one than the caller sent.
  if (user.find('\0') != std::string::npos) {
    return base::Error(base::Code::kInvalidArgument, "user name contains a NUL byte");
  }
  if (password.view().find('\0') != std::string_view::npos) {
    return base::Error(base::Code::kInvalidArgument,
                       "password for user " + user + " contains a NUL byte");
  }
  if (options.service.empty() || options.service.find('/') != std::string::npos ||
      options.service.find('\0') != std::string::npos) {
    return base::Error(base::Code::kInvalidArgument,
                       "PAM service name '" + options.service + "' is not a plain file name");
  }
  return base::Ok();
}

// Linux-PAM falls back to the "other" service when the named file is
// missing; that would check ferry's admins with whatever "other" says, so a
// missing file is refused here instead.
base::Status CheckServiceFile(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) {
    int err = errno;
    return base::Error(base::Code::kFailedPrecondition,
                       "PAM service file " + path + " is missing (" + std::strerror(err) +
                           "): install scripts/pam.d/ferry there",
                       err);
  }
  if (!S_ISREG(st.st_mode)) {
    return base::Error(base::Code::kFailedPrecondition,
                       "PAM service file " + path + " is not a regular file");
  }
  return base::Ok();
}

base::Error Misconfigured(const std::string& path, const Conversation& conversation,
                          pam_handle_t* handle, int status) {
  if (!conversation.refused_prompt.empty()) {
    return base::Error(base::Code::kFailedPrecondition,
                       "PAM service file " + path + " asks for more than a password (prompt: '" +
                           conversation.refused_prompt + "')");
  }
  return base::Error(base::Code::kFailedPrecondition,
                     "PAM service file " + path + " is misconfigured: " +
                         pam_strerror(handle, status) + " (see the system log)");
}

// Whether a status says "the service itself is broken" rather than "this
// user may not log on".
bool IsConfigurationError(int status, const Conversation& conversation) {
  if (!conversation.refused_prompt.empty()) return true;
  switch (status) {
    case PAM_ABORT:
    case PAM_SYSTEM_ERR:
    case PAM_SERVICE_ERR:
    case PAM_MODULE_UNKNOWN:
    case PAM_SYMBOL_ERR:
    case PAM_CONV_ERR:
    case PAM_BUF_ERR: return true;
    default: return false;
  }
}

// After a successful authentication, the user PAM authenticated must be the
// one asked about: a module may rewrite PAM_USER (name mapping), and the
// admin list is checked against the name the caller holds.
bool SameUser(pam_handle_t* handle, const std::string& user) {
  const void* item = nullptr;
  if (pam_get_item(handle, PAM_USER, &item) != PAM_SUCCESS || item == nullptr) return false;
  return user == static_cast<const char*>(item);
}

}  // namespace

base::Status VerifyPassword(const std::string& user, const Secret& password,
                            const PamOptions& options) {
  RETURN_IF_ERROR(CheckArguments(user, password, options));
  const std::string dir = options.config_dir.empty() ? kSystemConfigDir : options.config_dir;
  const std::string path = dir + "/" + options.service;
  RETURN_IF_ERROR(CheckServiceFile(path));
  const base::Error denied(base::Code::kPermissionDenied, "authentication failed for user " + user);
  // nullok in a service would let an account without a password in with an
  // empty one; a delegated log-on always carries a password.
  if (password.empty()) return denied;

  Conversation conversation{&password, {}};
  const pam_conv conv{&Converse, &conversation};
  pam_handle_t* handle = nullptr;
  const char* confdir = options.config_dir.empty() ? nullptr : options.config_dir.c_str();
  int status = pam_start_confdir(options.service.c_str(), user.c_str(), &conv, confdir, &handle);
  if (status != PAM_SUCCESS) {
    // No transaction to end: pam_start frees what it made when it fails.
    return base::Error(base::Code::kFailedPrecondition,
                       "PAM service file " + path + " could not be loaded: " +
                           pam_strerror(handle, status) + " (see the system log)");
  }
  Transaction transaction(handle);

  const int flags = PAM_SILENT | PAM_DISALLOW_NULL_AUTHTOK;
  status = transaction.Record(pam_authenticate(handle, flags));
  if (status == PAM_SUCCESS && !SameUser(handle, user)) status = transaction.Record(PAM_AUTH_ERR);
  if (status != PAM_SUCCESS) {
    if (IsConfigurationError(status, conversation)) {
      return Misconfigured(path, conversation, handle, status);
    }
    base::LogInfo("PAM service " + options.service + ": authentication of user " + user +
                  " refused: " + pam_strerror(handle, status));
    return denied;
  }

  status = transaction.Record(pam_acct_mgmt(handle, flags));
  if (status != PAM_SUCCESS) {
    if (IsConfigurationError(status, conversation)) {
      return Misconfigured(path, conversation, handle, status);
    }
    base::LogInfo("PAM service " + options.service + ": account " + user +
                  " refused: " + pam_strerror(handle, status));
    return base::Error(base::Code::kPermissionDenied, "account " + user + " is locked or expired");
  }
  return base::Ok();
}

}  // namespace auth
