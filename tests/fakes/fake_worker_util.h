// What the two stand-in workers (fake_worker.cc for VmService,
// fake_incoming_worker.cc for PeerService) share: their exit record, their
// mode from the environment, and taking one request off the control socket.
#pragma once

#include <sys/socket.h>
#include <unistd.h>

#include <cstdlib>
#include <optional>
#include <string>

#include "base/fd.h"
#include "common/unix_socket.h"
#include "ipc/worker_args.h"
#include "ipc/worker_protocol.h"

namespace appliance::fake {

// worker.exit, as a real worker leaves it for ferryd.
inline void WriteExitRecord(const WorkerArgs& args, const std::string& state,
                            const std::string& code = "", const std::string& message = "") {
  WorkerExitRecord r;
  r.pid = ::getpid();
  r.state = state;
  r.code = code;
  r.message = message;
  (void)base::WriteFileAtomically(args.vm_dir + "/worker.exit", EncodeExitRecord(r));
}

// The value of an environment variable, "" when unset.
inline std::string EnvOrEmpty(const char* name) {
  const char* value = std::getenv(name);
  return value != nullptr ? value : "";
}

struct ControlRequest {
  base::Fd conn;  // answer on it
  WorkerRequest request;
};

// Accepts one control connection and reads its request. nullopt when there
// is nothing to answer: the accept or the read failed, or the request was
// malformed (that one is answered here with the decode error).
inline std::optional<ControlRequest> AcceptRequest(int listen_fd) {
  int client = ::accept4(listen_fd, nullptr, nullptr, SOCK_CLOEXEC);
  if (client < 0) return std::nullopt;
  base::Fd conn(client);
  auto line = ReadLine(conn.get(), kMaxWorkerLine, 5000, "request");
  if (!line) return std::nullopt;
  auto request = DecodeRequest(*line);
  if (!request) {
    (void)WriteLine(conn.get(), EncodeReply(request.error()));
    return std::nullopt;
  }
  return ControlRequest{std::move(conn), std::move(*request)};
}

}  // namespace appliance::fake
