// The API's logic: one HttpRequest in, one HttpResponse out. Routing comes
// from router.h, the work from VmService; this file only translates between
// HTTP/JSON and those calls. docs/api.md documents every endpoint.
//
// Thread-safety: Handle is called from many connection threads at once; it
// keeps no state of its own.
#pragma once

#include "daemon/http_types.h"
#include "daemon/live_move_service.h"
#include "daemon/storage_move_service.h"
#include "daemon/vm_service.h"

namespace appliance {

struct Route;         // router.h
class LogonSessions;  // logon_sessions.h (credssp mode)

class ApiHandler {
 public:
  // service must outlive the handler.
  explicit ApiHandler(VmService& service) : service_(service) {}
  // With storage moves (POST .../move-storage, /v1/jobs); moves must outlive
  // the handler. Without, those endpoints answer 503.
  ApiHandler(VmService& service, StorageMoveService& moves) : service_(service), moves_(&moves) {}
  // And live moves (POST .../move-vm; their jobs join /v1/jobs).
  ApiHandler(VmService& service, StorageMoveService& moves, LiveMoveService& live)
      : service_(service), moves_(&moves), live_(&live) {}
  // And log-ons (POST /v1/logon, ...; credssp mode): logons null answers
  // those endpoints with a failed-precondition naming the mode; it must
  // outlive the handler.
  ApiHandler(VmService& service, StorageMoveService& moves, LiveMoveService& live,
             LogonSessions* logons)
      : service_(service), moves_(&moves), live_(&live), logons_(logons) {}
  HttpResponse Handle(const HttpRequest& request);

  // Request bodies larger than this are refused (the API's bodies are tiny).
  static constexpr size_t kMaxBodyBytes = 1 << 20;
  // GET .../console returns at most this much of the end of the log.
  static constexpr size_t kMaxConsoleBytes = 4 << 20;

 private:
  // POST /v1/vms/{name}/move-storage, GET /v1/jobs[/{id}] (api_handler_move.cc).
  HttpResponse HandleStorageMove(const Route& route, const HttpRequest& request);
  // /v1/vms/{name}/checkpoints[...] (api_handler_checkpoints.cc).
  HttpResponse HandleCheckpoints(const Route& route, const HttpRequest& request);
  // POST /v1/vms/{name}/move-vm, GET /v1/jobs[/{id}] (api_handler_live_move.cc).
  HttpResponse HandleLiveMove(const Route& route, const HttpRequest& request);
  // POST /v1/logon, DELETE /v1/logon/{user}, GET /v1/logons (api_handler_logon.cc).
  HttpResponse HandleLogon(const Route& route, const HttpRequest& request);

  VmService& service_;
  StorageMoveService* moves_ = nullptr;
  LiveMoveService* live_ = nullptr;
  LogonSessions* logons_ = nullptr;
};

}  // namespace appliance
