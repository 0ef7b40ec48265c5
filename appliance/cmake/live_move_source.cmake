# Live move, source side: the worker op, the engine and its data plane.
target_sources(ferry_appliance PRIVATE
  src/vm_worker_live_move.cc
  src/live_move_source.cc
  src/stream_pool.cc
  src/peer_sink.cc
  src/memory_precopy.cc
  src/tracking_disks.cc
)
