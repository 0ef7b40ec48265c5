# Source ferryd's side of live moves (docs/live_move.md "Source ferryd"):
# jobs, VmService's part, API and CLI.
target_sources(ferry_appliance PRIVATE
  src/live_move_service.cc
  src/live_move_job.cc
  src/vm_service_moved.cc
  src/vm_service_departure.cc
  src/departure_record.cc
  src/api_handler_live_move.cc
  src/cli_live_move.cc
)
