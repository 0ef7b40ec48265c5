// IncomingDisks: the destination files of a live move (private to the
// incoming worker, live_move_destination.cc).
//
// File layout at the destination (every path comes from the plan, and ferryd
// removes every one of them, ".part" included, if the move fails):
//  - Backing layers are written straight to their final paths. They are
//    read-only and nothing refers to them until the VM is adopted, so a
//    temporary name would buy nothing; a partial layer is never used because
//    the commit needs every layer's LayerDone. On LayerDone the file is
//    truncated to its size, fsynced, and re-pointed at its new backing file
//    (SetQcow2Backing) when the plan says so.
//  - Each disk's writable top is written to "<top>.part" and renamed into
//    place by Finish: raw -> a sparse file sink; qcow2 -> a fresh qcow2 whose
//    backing name is the plan's (it names the final layer paths, which exist
//    from the start) opened as a Disk under a disk sink, as move-storage does.
//    A qcow2 top is created only once every backing layer of its disk is done:
//    a partial-cluster write copies the rest of the cluster from the backing
//    chain, so the chain must be complete before the first write. A receiver
//    that gets an extent first waits for the layers (they were all sent
//    before any extent, on other streams).
//
// Threads: any receiver thread may call the Write/Finish* methods; calls for
// one layer come from one stream in order, and calls for one disk region
// never overlap (the stream-by-region rule). Finish runs once, after every
// stream ended. Cancel wakes every wait (the move is failing).
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "base/fd.h"
#include "base/mutex.h"
#include "base/result.h"
#include "ipc/vm_dir_files.h"
#include "protocol/move_protocol.h"
#include "storage/block_sink.h"
#include "storage/disk.h"

namespace appliance {

class IncomingDisks {
 public:
  // Creates (truncating) every backing-layer file of the plan.
  static base::Result<std::unique_ptr<IncomingDisks>> Create(const PrepareRequest& plan);
  ~IncomingDisks();

  // Sizes in the decoders' terms.
  const std::vector<uint64_t>& disk_sizes() const { return disk_sizes_; }
  const std::vector<uint64_t>& layer_sizes() const { return layer_sizes_; }

  base::Status WriteLayerChunk(uint32_t layer, uint64_t offset, std::span<const uint8_t> data);
  base::Status FinishLayer(uint32_t layer, uint64_t file_size);
  // data empty: zeroes.
  base::Status WriteExtent(uint16_t disk, uint64_t offset, uint64_t length,
                           std::span<const uint8_t> data);

  // Every layer done (kDataLoss naming the first that is not), every top
  // created, finished (durable), closed and renamed into place, directories
  // synced.
  base::Status Finish();
  // Wakes waiters; later calls fail with kCancelled. What was written stays
  // (ferryd removes the files).
  void Cancel();

 private:
  struct Layer {
    const PreparedLayer* plan = nullptr;
    std::string path;
    base::Fd fd;  // open until LayerDone
    bool done = false;
  };
  struct Disk {
    const PreparedDisk* plan = nullptr;
    std::vector<size_t> layers;  // indices into layers_
    base::Mutex open_mu;         // serialises the lazy creation of the top
    bool opened GUARDED_BY(open_mu) = false;
    std::unique_ptr<storage::Disk> dest_disk;  // qcow2 top; outlives sink
    std::unique_ptr<storage::BlockSink> sink;
  };
  explicit IncomingDisks(PrepareRequest plan);
  // The disk's sink, creating the top once its layers are done.
  base::Result<storage::BlockSink*> Sink(Disk& d);
  base::Status OpenTop(Disk& d);

  PrepareRequest plan_;
  std::vector<uint64_t> disk_sizes_;
  std::vector<uint64_t> layer_sizes_;
  std::vector<Layer> layers_;
  std::vector<std::unique_ptr<Disk>> disks_;

  base::Mutex mu_;  // layer done flags and cancelled_
  base::CondVar layers_cv_;
  bool cancelled_ GUARDED_BY(mu_) = false;
};

}  // namespace appliance
