// The libmicrohttpd glue both of ApiServer's listeners share (the local
// socket in api_server.cc, HTTPS in api_https.cc): the request callback that
// collects a request, asks the authenticator who sent it and hands it to
// ApiHandler, and the console-follow stream. Private to the daemon room.
#pragma once

#include <microhttpd.h>

#include <cstdarg>
#include <string>

#include "daemon/api_caller.h"
#include "daemon/api_handler.h"

namespace appliance {

// What one MHD daemon serves with; the cls of its callbacks. Owned by the
// ApiServer, and outlives the MHD daemon it was given to.
struct ApiListener {
  ApiHandler* handler = nullptr;
  // Null on the local socket: every caller is root without credentials. A
  // remote listener always has one.
  const ApiAuthenticator* authenticator = nullptr;
  ApiTransport transport;  // remote or local, and the channel binding
  int stop_fd = -1;        // ApiServer's stop EventFd: console follows end
  // Kerberos mode over HTTPS: named in a 401's body ("kerberos":
  // {"service_principal": ...}) so a client knows which ticket to get
  // before it has authenticated. "" none.
  std::string service_principal;
};

// MHD_AccessHandlerCallback; cls is an ApiListener.
MHD_Result HandleApiRequest(void* cls, MHD_Connection* connection, const char* url,
                            const char* method, const char* version, const char* upload_data,
                            size_t* upload_data_size, void** con_cls);
// MHD_OPTION_NOTIFY_COMPLETED: frees the per-request state.
void ApiRequestCompleted(void* cls, MHD_Connection* connection, void** con_cls,
                         MHD_RequestTerminationCode code);
// MHD_OPTION_EXTERNAL_LOGGER: into ferryd's log, prefixed with cls (a const
// char* naming the listener).
void LogFromMhd(void* cls, const char* format, va_list args);

}  // namespace appliance
