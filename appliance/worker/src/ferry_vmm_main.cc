// ferry-vmm: the worker process that runs one VM (see vm_worker.h).
#include "worker/vm_worker.h"

int main(int argc, char** argv) { return appliance::WorkerMain(argc, argv); }
