// What a worker's exit means for its VM's runtime record. Pure, so every
// combination of exit record and exit status is unit-tested; VmService applies
// it both when the supervisor sees a worker exit and when ferryd, after a
// restart, finds that a worker exited while it was down.
#pragma once

#include "common/process.h"
#include "daemon/runtime_record.h"
#include "ipc/worker_protocol.h"

namespace appliance {

// record: the worker's exit record if it left one (for this pid), else null.
// The result has no worker; its state is powered-off, stopped, saved or
// crashed, with last_error saying why for crashed.
RuntimeRecord RuntimeAfterWorkerExit(const RuntimeRecord& before, const WorkerExitRecord* record,
                                     const ProcessExit& exit, int64_t now_unix_ms);

}  // namespace appliance
