// Smoke run of the frame fuzz target (fuzz_smoke_main.h): seeds are real
// streams, written by a FrameStream into a socket pair and read back: an
// opening (hello, reply), an error frame, application frames of several
// sizes (one compressible), and a header alone.
#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <functional>

#include "fuzz_smoke_main.h"
#include "fuzz_targets.h"
#include "transport/compressor.h"
#include "transport/frame_stream.h"
#include "transport/hello.h"

namespace ferry_fuzz {
namespace {

// What `send` writes through a FrameStream, as bytes.
Bytes Capture(const std::function<void(transport::FrameStream&)>& send) {
  int fds[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) != 0) return {};
  base::Fd reader(fds[1]);
  {
    transport::FrameStream stream(base::Fd(fds[0]), "seed");
    send(stream);
  }  // closes the writing end: the read below ends at EOF
  Bytes out;
  uint8_t buf[65536];
  for (;;) {
    ssize_t n = read(reader.get(), buf, sizeof buf);
    if (n <= 0) break;
    out.insert(out.end(), buf, buf + n);
  }
  return out;
}

void Send(transport::FrameStream& s, uint16_t type, const Bytes& payload,
          transport::Compressor* c = nullptr) {
  if (auto st = s.Send(type, payload, {}, c, -1, 5000); !st) {
    std::fprintf(stderr, "seed: %s\n", st.error().ToString().c_str());
  }
}

std::vector<Bytes> MakeSeeds() {
  std::vector<Bytes> seeds;
  transport::Hello hello;
  hello.role = transport::StreamRole::kData;
  hello.stream_index = 1;
  hello.stream_count = 4;
  for (size_t i = 0; i < hello.migration_id.size(); ++i) hello.migration_id[i] = uint8_t(i * 17);
  const Bytes hello_bytes = transport::EncodeHello(hello);
  const Bytes reply_bytes = transport::EncodeHelloReply(transport::HelloReply{});
  const Bytes error_bytes = transport::EncodeErrorPayload(
      base::Error(base::Code::kFailedPrecondition, "vm web: cannot move: paused"));
  seeds.push_back(Capture([&](transport::FrameStream& s) {
    Send(s, uint16_t(transport::FrameType::kHello), hello_bytes);
  }));
  seeds.push_back(Capture([&](transport::FrameStream& s) {
    Send(s, uint16_t(transport::FrameType::kHelloReply), reply_bytes);
    Send(s, uint16_t(transport::FrameType::kError), error_bytes);
  }));
  seeds.push_back(Capture([&](transport::FrameStream& s) {
    s.set_version(transport::kProtocolVersion);
    Send(s, transport::kFirstApplicationFrameType, {});
    Send(s, transport::kFirstApplicationFrameType + 1, Bytes(100, 0x5a));
    Bytes mixed(5000);
    for (size_t i = 0; i < mixed.size(); ++i) mixed[i] = uint8_t(i * 7 + i / 13);
    Send(s, transport::kFirstApplicationFrameType + 2, mixed);
  }));
  seeds.push_back(Capture([&](transport::FrameStream& s) {
    s.set_version(transport::kProtocolVersion);
    transport::Compressor compressor(true);
    Send(s, transport::kFirstApplicationFrameType, Bytes(64 << 10, 0), &compressor);
    Send(s, transport::kFirstApplicationFrameType, ToBytes(std::string(3000, 'a') + "tail"),
         &compressor);
  }));
  // A header alone (its payload never comes) and the bare payloads.
  Bytes header_only = seeds[2];
  header_only.resize(transport::kFrameHeaderBytes);
  seeds.push_back(header_only);
  seeds.push_back(hello_bytes);
  seeds.push_back(reply_bytes);
  seeds.push_back(error_bytes);
  for (const Bytes& s : seeds) {
    if (s.empty()) return {};  // a seed failed to build: say so via SmokeMain
  }
  return seeds;
}

}  // namespace
}  // namespace ferry_fuzz

int main(int argc, char** argv) {
  return ferry_fuzz::SmokeMain("frame_fuzz_smoke", ferry_fuzz::MakeSeeds(),
                               ferry_fuzz::FrameFuzzOne, argc, argv);
}
