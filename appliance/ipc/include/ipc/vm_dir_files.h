// The files of a VM directory that ferryd and the worker (incoming or not)
// both read or write (ipc/FILES.md): the plan ferryd writes before it starts
// the worker, the ".part" files the worker fills, and the commit marker whose
// appearance is the commit point of a live move.
#pragma once

#include <string>

namespace appliance {

// The commit marker's name inside the incoming VM directory.
inline constexpr const char* kCommittedMarker = "committed";
// The plan ferryd writes for the incoming worker (PrepareRequest JSON).
inline constexpr const char* kIncomingPlanFile = "incoming.json";
// Whom the incoming worker's data streams must come from, and with which
// identity it answers (PeerTrust JSON, protocol/peer_trust.h).
inline constexpr const char* kIncomingTlsFile = "incoming-tls.json";
// A worker's exit record inside its VM directory (WorkerExitRecord JSON).
inline constexpr const char* kWorkerExitFile = "worker.exit";

// Where the incoming worker writes a destination file until the commit
// renames it into place.
inline std::string IncomingPartPath(const std::string& path) { return path + ".part"; }

}  // namespace appliance
