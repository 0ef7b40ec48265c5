// Frame decoding fuzz target (see fuzz_targets.h). Properties checked:
//  - a header DecodeFrameHeader accepts encodes back to a header it accepts
//    with the same fields;
//  - a Hello or HelloReply that decodes re-encodes and decodes to the same;
//  - FrameStream::Receive over the bytes ends (EOF, refusal) with an error
//    value within its timeout: never a crash, never a hang (a deadline error
//    would mean it waited for bytes that were all there).
#include <sys/socket.h>

#include <array>
#include <thread>

#include "fuzz_smoke_main.h"
#include "fuzz_targets.h"
#include "transport/frame.h"
#include "transport/frame_stream.h"
#include "transport/hello.h"

namespace ferry_fuzz {
namespace {

constexpr const char* kTarget = "frame_fuzz";
constexpr size_t kMaxInput = 1 << 20;
constexpr int kMaxFrames = 64;
constexpr int kReceiveTimeoutMs = 5000;

void CheckHeader(const uint8_t* data, size_t size) {
  if (size >= 4) (void)transport::CheckFrameMagic(data);
  if (size < transport::kFrameHeaderBytes) return;
  for (uint32_t max : {transport::kMaxFramePayload, transport::kMaxHelloPayload, 0u}) {
    auto h = transport::DecodeFrameHeader(data, max);
    if (!h) {
      if (h.error().code() != base::Code::kDataLoss)
        Fail(kTarget, "header refusal not kDataLoss: " + h.error().ToString());
      continue;
    }
    uint8_t again[transport::kFrameHeaderBytes];
    transport::EncodeFrameHeader(*h, again);
    auto h2 = transport::DecodeFrameHeader(again, max);
    if (!h2 || h2->version != h->version || h2->type != h->type || h2->flags != h->flags ||
        h2->length != h->length || h2->sequence != h->sequence || h2->crc32c != h->crc32c) {
      Fail(kTarget, "a decoded header does not survive encode + decode");
    }
  }
}

void CheckPayloads(std::span<const uint8_t> payload) {
  if (auto hello = transport::DecodeHello(payload)) {
    (void)transport::NegotiateVersion(*hello);
    auto again = transport::DecodeHello(transport::EncodeHello(*hello));
    if (!again || again->min_version != hello->min_version ||
        again->max_version != hello->max_version || again->role != hello->role ||
        again->migration_id != hello->migration_id || again->stream_index != hello->stream_index ||
        again->stream_count != hello->stream_count) {
      Fail(kTarget, "a decoded hello does not survive encode + decode");
    }
  }
  if (auto reply = transport::DecodeHelloReply(payload)) {
    auto again = transport::DecodeHelloReply(transport::EncodeHelloReply(*reply));
    if (!again || again->version != reply->version) {
      Fail(kTarget, "a decoded hello reply does not survive encode + decode");
    }
  }
  base::Error e = transport::DecodeErrorPayload(payload);
  if (e.message().empty()) Fail(kTarget, "DecodeErrorPayload gave an error without a message");
}

// Writes the bytes into one end of a socket pair from a second thread (the
// stream may declare more than a socket buffer holds) and receives frames
// from the other end until the stream refuses or ends.
void CheckStream(const uint8_t* data, size_t size) {
  int fds[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) != 0) Fail(kTarget, "socketpair");
  base::Fd writer_fd(fds[1]);
  transport::FrameStream stream(base::Fd(fds[0]), "fuzz stream");
  // The last byte steers whether a version was negotiated (Receive then
  // insists on it) so both paths are covered.
  if (size > 0 && (data[size - 1] & 1)) stream.set_version(transport::kProtocolVersion);
  std::thread writer([&] {
    size_t done = 0;
    while (done < size) {
      ssize_t n = send(writer_fd.get(), data + done, size - done, MSG_NOSIGNAL);
      if (n <= 0) break;  // the receiver gave up and shut the stream
      done += size_t(n);
    }
    shutdown(writer_fd.get(), SHUT_WR);
  });
  for (int i = 0; i < kMaxFrames; ++i) {
    auto frame = stream.Receive(transport::kMaxFramePayload, -1, kReceiveTimeoutMs);
    if (!frame) {
      if (frame.error().code() == base::Code::kDeadlineExceeded) {
        Fail(kTarget, "Receive waited for bytes that were all sent: " + frame.error().ToString());
      }
      break;
    }
    CheckPayloads(frame->payload);
  }
  stream.Shutdown();
  writer.join();
}

}  // namespace

void FrameFuzzOne(const uint8_t* data, size_t size) {
  if (size > kMaxInput) return;
  CheckHeader(data, size);
  if (size >= transport::kFrameHeaderBytes) {
    CheckPayloads({data + transport::kFrameHeaderBytes, size - transport::kFrameHeaderBytes});
  }
  CheckPayloads({data, size});
  CheckStream(data, size);
}

}  // namespace ferry_fuzz

#ifdef FERRY_LIBFUZZER
extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  ferry_fuzz::FrameFuzzOne(data, size);
  return 0;
}
#endif
