// VmRegistry: the shared core of VmService's pieces (vm_service.h). It holds
// the VMs ferryd manages, each with its locks and record, the inventory on
// disk, the service's options and the Supervisor that watches the workers.
// The pieces borrow it; VmService owns it. Not for callers outside VmService.
//
// Locks, and the order they are taken in:
//   1. VmEntry::op_mu  serializes control actions on one VM; held for the
//                      whole action, including worker calls of seconds.
//   2. VmEntry::mu     guards the VM's record; held briefly, never across a
//                      worker call, so show and list answer during a save.
//   3. MoveGate's moved_mu_ (after mu when both are held).
// map_mu_ guards the map of VMs and the incoming names; it is never held
// while taking op_mu or mu (a VM being created or adopted is not in the map
// yet, so nobody else can lock it).
#pragma once

#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "base/fd.h"
#include "base/mutex.h"
#include "base/result.h"
#include "config/host_settings.h"
#include "config/vm_definition.h"
#include "daemon/departure_record.h"
#include "daemon/inventory.h"
#include "daemon/runtime_record.h"
#include "daemon/supervisor.h"
#include "daemon/vm_views.h"
#include "transport/tls.h"

namespace appliance {

struct ServiceOptions {
  config::HostSettings host;
  std::string worker_binary;  // ferry-vmm
  std::string guest_dir;      // where guest names resolve
  std::string kvm_device =
      "/dev/kvm";  // reported by HostInfo; the worker reads FERRY_KVM_DEVICE itself
  int worker_ready_timeout_ms = 60000;
  int worker_call_timeout_ms = 15000;
  int save_timeout_ms = 600000;  // a save writes all of guest memory
  int exit_timeout_ms = 15000;
  // ferryd's TLS identity for peer calls (departures asking a destination);
  // null when [tls] trusts nobody (then no move can start).
  std::shared_ptr<const transport::TlsContext> peer_tls;
  std::string tls_fingerprint;  // this host's certificate, for HostInfo
};

// One VM of the inventory. Shared (shared_ptr) so that a request keeps its
// VM alive while a delete takes it out of the map.
struct VmEntry {
  explicit VmEntry(std::string n) : name(std::move(n)) {}
  const std::string name;
  base::Mutex op_mu;  // see the lock order above
  base::Mutex mu;
  base::CondVar exited_cv;  // with mu: the worker exited

  // Guarded by mu:
  config::VmDefinition definition GUARDED_BY(mu);
  RuntimeRecord runtime GUARDED_BY(mu);
  bool exit_expected GUARDED_BY(mu) = false;  // a stop or save asked the worker to exit
  bool exited GUARDED_BY(mu) = false;         // the worker runtime.worker_pid has exited
  ProcessExit exit GUARDED_BY(mu);
  bool deleted GUARDED_BY(mu) = false;
  // A move (storage or live) holds the VM: BeginStorageMove .. EndStorageMove,
  // BeginLiveMove/ReattachLiveMove .. EndLiveMove/MarkInDoubt/FinishMovedVm.
  bool moving GUARDED_BY(mu) = false;
  // <vm dir>/departure.json as last read or written (departure_record.h).
  std::optional<DepartureRecord> departure GUARDED_BY(mu);
};

class VmRegistry {
 public:
  // lock: the flock on <storage_root>/ferryd.lock, held for the registry's life.
  VmRegistry(ServiceOptions options, Inventory inventory, base::Fd lock);

  const ServiceOptions& options() const { return options_; }
  Inventory& inventory() { return inventory_; }
  const Inventory& inventory() const { return inventory_; }
  // Set once by VmService::Open before any VM is recovered.
  void set_supervisor(std::unique_ptr<Supervisor> supervisor) {
    supervisor_ = std::move(supervisor);
  }
  Supervisor& supervisor() { return *supervisor_; }
  // Stops the supervisor's thread (VmService's destructor, before the pieces
  // its callback reaches go away).
  void StopSupervisor() { supervisor_.reset(); }

  // The VM of that name; kNotFound if none, kInvalidArgument for a bad name.
  base::Result<std::shared_ptr<VmEntry>> Find(const std::string& name);
  // Every VM in the map (except `except`), to be locked one by one.
  std::vector<std::shared_ptr<VmEntry>> All(const std::string& except = "");

  // The map and the names reserved by incoming moves, for the steps that must
  // check and change them at once (create, adopt, delete). f runs with
  // map_mu_ held: it must not take op_mu or mu of a VM in the map.
  struct Names {
    std::map<std::string, std::shared_ptr<VmEntry>> vms;
    std::set<std::string> incoming;  // ReserveIncomingName .. adopted or released
  };
  template <typename F>
  auto WithNames(F&& f) {
    base::MutexLock lock(map_mu_);
    return f(names_);
  }

  // Sets and persists runtime.json; vm.mu held.
  base::Status Persist(VmEntry& vm, const RuntimeRecord& runtime) REQUIRES(vm.mu);
  // Writes vm.toml (atomically) and then the recorded definition; vm.mu not held.
  base::Status RecordDefinition(VmEntry& vm, const config::VmDefinition& definition);
  // vm.mu held.
  MoveTarget TargetOf(const VmEntry& vm) const REQUIRES(vm.mu);
  VmView View(const VmEntry& vm) const REQUIRES(vm.mu);

 private:
  const ServiceOptions options_;
  Inventory inventory_;
  // flock on <storage_root>/ferryd.lock: two ferryds supervising one
  // inventory would fight over every VM.
  base::Fd lock_;
  base::Mutex map_mu_;
  // Guarded by map_mu_:
  Names names_ GUARDED_BY(map_mu_);
  // Last member: destroyed first (if StopSupervisor was not called), so its
  // thread stops before anything it touches goes away.
  std::unique_ptr<Supervisor> supervisor_;
};

}  // namespace appliance
