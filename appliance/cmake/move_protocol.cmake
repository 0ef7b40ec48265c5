# Live-move wire messages (move_protocol.h, live_move_types.h) and the
# incoming worker (live_move_destination.h, vm_worker_incoming.cc).
target_sources(ferry_appliance PRIVATE
  src/move_protocol.cc
  src/live_move_types.cc
  src/live_move_destination.cc
  src/incoming_disks.cc
  src/vm_worker_incoming.cc
)
