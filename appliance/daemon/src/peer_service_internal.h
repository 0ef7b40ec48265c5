// Helpers shared by the PeerService source files (not part of its API).
#pragma once

#include <string>
#include <vector>

#include "protocol/move_protocol.h"
#include "transport/tcp.h"

namespace appliance {

// In an incoming directory: the clean-up of this aborted move failed and is
// retried (peer_service_cleanup.cc); JSON with the files still to remove.
inline constexpr const char* kCleanupPendingMarker = "cleanup-pending";

// Every file an incoming move writes at the destination: each backing
// layer's copy and each writable top, each also under its ".part" name.
// Pre-flight requires that none exists, so clean-up may remove them all.
std::vector<std::string> IncomingDestinationFiles(const PrepareRequest& plan);

// The address text to give the incoming worker (and the source): the local
// address of the control connection, IPv4-mapped IPv6 shown as IPv4
// (peer_service_preflight.cc).
std::string AddressText(const transport::PeerAddress& a);

}  // namespace appliance
