// The link limit for the live-move benchmark: N parallel TCP streams over
// loopback (the stream count ferry's move uses) carrying `total_bytes` of
// incompressible data, through the same transport::TcpListener/TcpConnect
// (and so the same socket options) as ferry's data streams. Whatever ferry's
// move reaches is compared with this figure measured in the same run.
#pragma once

#include <cstdint>

#include "base/result.h"

namespace bench {

struct LinkResult {
  uint32_t streams = 0;
  uint64_t bytes = 0;
  double seconds = 0;
  double bytes_per_second() const { return seconds > 0 ? double(bytes) / seconds : 0; }
};

base::Result<LinkResult> MeasureLoopbackLink(uint32_t streams, uint64_t total_bytes);

}  // namespace bench
