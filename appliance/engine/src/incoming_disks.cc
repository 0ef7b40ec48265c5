// The destination files of a live move (incoming_disks.h).
#include "incoming_disks.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <set>

#include "base/log.h"
#include "storage/qcow2.h"

namespace appliance {
namespace {

config::DiskFormat FormatOf(const std::string& name) {
  return name == "qcow2" ? config::DiskFormat::kQcow2 : config::DiskFormat::kRaw;
}

std::string Dirname(const std::string& path) {
  size_t slash = path.rfind('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return path.substr(0, slash);
}

// Errors of a destination file name the file (ENOSPC stays
// kResourceExhausted through Wrap).
base::Error InFile(const base::Error& e, const std::string& path) {
  if (e.message().find(path) != std::string::npos) return e;
  return e.Wrap(path);
}

}  // namespace

IncomingDisks::IncomingDisks(PrepareRequest plan) : plan_(std::move(plan)) {}

IncomingDisks::~IncomingDisks() {
  // Sinks before the disks they borrow.
  for (auto& d : disks_) {
    if (d->sink) d->sink->Abort();
    d->sink.reset();
    d->dest_disk.reset();
  }
}

base::Result<std::unique_ptr<IncomingDisks>> IncomingDisks::Create(const PrepareRequest& plan) {
  std::unique_ptr<IncomingDisks> self(new IncomingDisks(plan));
  for (const PreparedDisk& pd : self->plan_.disks) {
    auto d = std::make_unique<Disk>();
    d->plan = &pd;
    self->disk_sizes_.push_back(pd.disk_size);
    for (const PreparedLayer& pl : pd.backing) {
      d->layers.push_back(self->layers_.size());
      Layer l;
      l.plan = &pl;
      l.path = pl.dest;
      self->layer_sizes_.push_back(pl.file_size);
      self->layers_.push_back(std::move(l));
    }
    self->disks_.push_back(std::move(d));
  }
  for (Layer& l : self->layers_) {
    auto fd = base::Fd::Open(l.path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (!fd) return fd.error().Wrap("create backing layer copy");
    l.fd = std::move(*fd);
  }
  return self;
}

base::Status IncomingDisks::WriteLayerChunk(uint32_t layer, uint64_t offset,
                                            std::span<const uint8_t> data) {
  Layer& l = layers_.at(layer);
  {
    base::MutexLock lock(mu_);
    if (cancelled_) return base::Error(base::Code::kCancelled, "the move is ending");
    if (l.done)
      return base::Error(base::Code::kDataLoss, "malformed layer chunk: layer " +
                                                    std::to_string(layer) +
                                                    " arrived after its layer-done");
  }
  if (auto st = base::PwriteAll(l.fd.get(), data.data(), data.size(), off_t(offset)); !st)
    return InFile(st.error(), l.path);
  return base::Ok();
}

base::Status IncomingDisks::FinishLayer(uint32_t layer, uint64_t file_size) {
  Layer& l = layers_.at(layer);
  {
    base::MutexLock lock(mu_);
    if (cancelled_) return base::Error(base::Code::kCancelled, "the move is ending");
    if (l.done)
      return base::Error(base::Code::kDataLoss,
                         "malformed layer done: layer " + std::to_string(layer) + " twice");
  }
  if (::ftruncate(l.fd.get(), off_t(file_size)) != 0) return base::ErrnoError("truncate " + l.path);
  if (::fsync(l.fd.get()) != 0) return base::ErrnoError("fsync " + l.path);
  l.fd.Reset();
  if (!l.plan->rewrite_backing.empty()) {
    if (auto st = storage::SetQcow2Backing(l.path, l.plan->rewrite_backing,
                                           FormatOf(l.plan->backing_format));
        !st)
      return InFile(st.error(), l.path);
  }
  base::MutexLock lock(mu_);
  l.done = true;
  layers_cv_.NotifyAll();
  return base::Ok();
}

base::Status IncomingDisks::OpenTop(Disk& d) {
  const PreparedDisk& pd = *d.plan;
  // The chain under a qcow2 top must be complete first (see the header).
  {
    base::MutexLock lock(mu_);
    for (;;) {
      bool layers_done = true;
      for (size_t i : d.layers)
        if (!layers_[i].done) layers_done = false;
      if (cancelled_ || layers_done) break;
      layers_cv_.Wait(mu_);
    }
    if (cancelled_) return base::Error(base::Code::kCancelled, "the move is ending");
  }
  const std::string part = IncomingPartPath(pd.top);
  ::unlink(part.c_str());  // a leftover of an earlier attempt is never trusted
  if (pd.format == "qcow2") {
    storage::Qcow2CreateOptions co;
    co.size = pd.disk_size;
    co.backing_file = pd.top_backing_name;
    if (!pd.top_backing_name.empty()) co.backing_format = FormatOf(pd.top_backing_format);
    if (auto st = storage::CreateQcow2(part, co); !st) return InFile(st.error(), part);
    auto opened = storage::OpenDisk(part, config::DiskFormat::kQcow2, /*read_only=*/false);
    if (!opened) return InFile(opened.error(), part);
    d.dest_disk = std::move(*opened);
    d.sink = storage::MakeDiskSink(*d.dest_disk, part, pd.top_backing_name.empty());
  } else {
    storage::FileSinkOptions fo;
    fo.create = true;
    fo.fresh = true;
    auto sink = storage::OpenFileSink(part, pd.disk_size, fo);
    if (!sink) return InFile(sink.error(), part);
    d.sink = std::move(*sink);
  }
  return base::Ok();
}

base::Result<storage::BlockSink*> IncomingDisks::Sink(Disk& d) {
  base::MutexLock lock(d.open_mu);
  if (!d.opened) {
    RETURN_IF_ERROR(OpenTop(d));
    d.opened = true;
  }
  return d.sink.get();
}

base::Status IncomingDisks::WriteExtent(uint16_t disk, uint64_t offset, uint64_t length,
                                        std::span<const uint8_t> data) {
  Disk& d = *disks_.at(disk);
  ASSIGN_OR_RETURN(storage::BlockSink * sink, Sink(d));
  {
    base::MutexLock lock(mu_);
    if (cancelled_) return base::Error(base::Code::kCancelled, "the move is ending");
  }
  base::Status st =
      data.empty() ? sink->WriteZeroes(offset, length) : sink->WriteExtent(offset, data);
  if (!st) return InFile(st.error(), IncomingPartPath(d.plan->top));
  return base::Ok();
}

base::Status IncomingDisks::Finish() {
  {
    base::MutexLock lock(mu_);
    for (size_t i = 0; i < layers_.size(); ++i) {
      if (!layers_[i].done)
        return base::Error(base::Code::kDataLoss, "backing layer " + std::to_string(i) + " (" +
                                                      layers_[i].path +
                                                      ") never completed: no layer-done arrived");
    }
  }
  std::set<std::string> dirs;
  for (auto& dp : disks_) {
    Disk& d = *dp;
    ASSIGN_OR_RETURN(storage::BlockSink * sink, Sink(d));
    const std::string part = IncomingPartPath(d.plan->top);
    if (auto st = sink->Finish(); !st) return InFile(st.error(), part);
    d.sink.reset();
    if (d.dest_disk) {
      if (auto st = d.dest_disk->Flush(); !st) return InFile(st.error(), part);
      d.dest_disk.reset();
    }
    if (::rename(part.c_str(), d.plan->top.c_str()) != 0)
      return base::ErrnoError("rename " + part + " to " + d.plan->top);
    dirs.insert(Dirname(d.plan->top));
  }
  for (const Layer& l : layers_) dirs.insert(Dirname(l.path));
  for (const std::string& dir : dirs) RETURN_IF_ERROR(base::SyncParentDirectory(dir + "/x"));
  return base::Ok();
}

void IncomingDisks::Cancel() {
  base::MutexLock lock(mu_);
  cancelled_ = true;
  layers_cv_.NotifyAll();
}

}  // namespace appliance
