// OpenBlockFile: option checks, open flags and the choice of engine.
#include "storage/block_file.h"

#include <fcntl.h>
#include <sys/stat.h>

#include "sync_block_file.h"
#include "uring_block_file.h"

namespace storage {
namespace {

constexpr unsigned kMaxQueueDepth = 4096;
// io_uring read/write lengths are 32-bit; stay far below that.
constexpr size_t kMaxChunk = size_t{1} << 30;
// Bounce buffers are for small requests; a large one pins its pages once.
constexpr size_t kMaxFixedBufferSize = size_t{1} << 20;

base::Status CheckOptions(const std::string& path, const OpenOptions& o) {
  auto invalid = [&](const std::string& why) {
    return base::Error(base::Code::kInvalidArgument, "open " + base::Escaped(path) + ": " + why);
  };
  if (o.engine != IoEngine::kIoUring && o.engine != IoEngine::kSync) {
    return invalid("unknown I/O engine " + std::to_string(static_cast<int>(o.engine)));
  }
  if (o.queue_depth < 1 || o.queue_depth > kMaxQueueDepth) {
    return invalid("queue_depth must be from 1 to " + std::to_string(kMaxQueueDepth) + ", got " +
                   std::to_string(o.queue_depth));
  }
  if (o.max_chunk < 1 || o.max_chunk > kMaxChunk) {
    return invalid("max_chunk must be from 1 to " + std::to_string(kMaxChunk) + " bytes, got " +
                   std::to_string(o.max_chunk));
  }
  if (o.direct && o.max_chunk % kDirectAlignment != 0) {
    return invalid("max_chunk must be a multiple of " + std::to_string(kDirectAlignment) +
                   " with O_DIRECT, got " + std::to_string(o.max_chunk));
  }
  if (o.fixed_buffers > kMaxQueueDepth) {
    return invalid("fixed_buffers must be at most " + std::to_string(kMaxQueueDepth) + ", got " +
                   std::to_string(o.fixed_buffers));
  }
  if (o.fixed_buffers > 0 &&
      (o.fixed_buffer_size == 0 || o.fixed_buffer_size % kDirectAlignment != 0 ||
       o.fixed_buffer_size > kMaxFixedBufferSize)) {
    return invalid("fixed_buffer_size must be a multiple of " + std::to_string(kDirectAlignment) +
                   " up to " + std::to_string(kMaxFixedBufferSize) + " bytes, got " +
                   std::to_string(o.fixed_buffer_size));
  }
  if (o.create && !o.writable) return invalid("create needs a writable file");
  return base::Ok();
}

}  // namespace

base::Result<std::unique_ptr<BlockFile>> OpenBlockFile(const std::string& path,
                                                       const OpenOptions& options) {
  RETURN_IF_ERROR(CheckOptions(path, options));
  int flags = options.writable ? O_RDWR : O_RDONLY;
  if (options.create) flags |= O_CREAT;
  if (options.direct) flags |= O_DIRECT;
  auto fd = base::Fd::Open(path, flags, 0644);
  if (!fd) {
    if (options.direct && fd.error().sys_errno() == EINVAL) {
      return fd.error().Wrap("the file system does not support O_DIRECT");
    }
    return fd.error();
  }
  struct stat st;
  if (fstat(fd->get(), &st) != 0) return base::ErrnoError("fstat " + base::Escaped(path));
  if (!S_ISREG(st.st_mode)) {
    // Block devices would need their size from an ioctl; add that with a
    // user for it.
    return base::Error(base::Code::kInvalidArgument,
                       "open " + base::Escaped(path) + ": not a regular file");
  }
  if (options.engine == IoEngine::kSync) {
    return std::unique_ptr<BlockFile>(
        std::make_unique<SyncBlockFile>(*std::move(fd), path, options));
  }
  ASSIGN_OR_RETURN(auto file, UringBlockFile::Create(*std::move(fd), path, options));
  return std::unique_ptr<BlockFile>(std::move(file));
}

std::string_view ToString(IoEngine engine) {
  switch (engine) {
    case IoEngine::kIoUring: return "io_uring";
    case IoEngine::kSync: return "sync";
  }
  return "invalid";
}

}  // namespace storage
