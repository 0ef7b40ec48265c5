#include "ipc/worker_args.h"

#include <cstdlib>

namespace appliance {

base::Result<WorkerArgs> ParseWorkerArgs(const std::vector<std::string>& args) {
  WorkerArgs out;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    auto value = [&]() -> base::Result<std::string> {
      if (i + 1 >= args.size())
        return base::Error(base::Code::kInvalidArgument, a + " needs a value");
      return args[++i];
    };
    if (a == "--vm-dir") {
      ASSIGN_OR_RETURN(out.vm_dir, value());
    } else if (a == "--control-socket") {
      ASSIGN_OR_RETURN(out.control_socket, value());
    } else if (a == "--restore") {
      ASSIGN_OR_RETURN(out.restore_path, value());
    } else if (a == "--incoming") {
      ASSIGN_OR_RETURN(out.incoming_host, value());
    } else if (a == "--migration-id") {
      ASSIGN_OR_RETURN(out.migration_id, value());
    } else if (a == "--ready-fd") {
      ASSIGN_OR_RETURN(std::string v, value());
      char* end = nullptr;
      long fd = std::strtol(v.c_str(), &end, 10);
      if (v.empty() || *end != '\0' || fd < 0 || fd > 1 << 20)
        return base::Error(base::Code::kInvalidArgument,
                           "--ready-fd needs a file descriptor number, not \"" + v + "\"");
      out.ready_fd = int(fd);
    } else {
      return base::Error(base::Code::kInvalidArgument, "unknown argument \"" + a + "\"");
    }
  }
  if (out.vm_dir.empty()) return base::Error(base::Code::kInvalidArgument, "--vm-dir is required");
  if (out.control_socket.empty())
    return base::Error(base::Code::kInvalidArgument, "--control-socket is required");
  if (!out.incoming_host.empty() && !out.restore_path.empty())
    return base::Error(base::Code::kInvalidArgument, "--incoming and --restore exclude each other");
  if (out.incoming_host.empty() != out.migration_id.empty())
    return base::Error(base::Code::kInvalidArgument, "--incoming and --migration-id go together");
  return out;
}

}  // namespace appliance
