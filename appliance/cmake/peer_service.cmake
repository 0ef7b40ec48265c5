# peer service sources
target_sources(ferry_appliance PRIVATE
  src/host_cpu.cc
  src/peer_client.cc
  src/peer_service.cc
  src/peer_service_prepare.cc
  src/peer_service_moves.cc
  src/peer_service_cleanup.cc
  src/plan_confinement.cc
  src/vm_service_incoming.cc
)
