// Move-protocol fuzz target (see fuzz_targets.h); links ferry_protocol and
// nothing of the daemon. Byte 0 picks the decoder, the rest is its input.
// Properties checked: a refusal is an error value with a message; whatever a
// decoder accepts encodes back to something it accepts with the same content
// (binary: the same fields and data; JSON: the same ToJson).
#include <string>
#include <vector>

#include "fuzz_smoke_main.h"
#include "fuzz_targets.h"
#include "protocol/live_move_types.h"
#include "protocol/move_authorization.h"
#include "protocol/move_protocol.h"
#include "protocol/peer_trust.h"

namespace ferry_fuzz {
namespace {

constexpr const char* kTarget = "protocol_fuzz";
constexpr size_t kMaxInput = 256 << 10;
// The geometry the binary decoders check against: 1 GiB of RAM, two disks,
// three layer files.
constexpr uint64_t kMemoryPages = (1ull << 30) / appliance::kPageBytes;
const uint64_t kDiskSizes[] = {1ull << 30, 64ull << 20};
const uint64_t kLayerSizes[] = {10ull << 20, 3ull << 20, 512};

template <typename T>
void CheckRefusal(const base::Result<T>& r, const char* what) {
  if (!r && r.error().message().empty())
    Fail(kTarget, std::string(what) + ": refusal without a message");
}

Bytes Concat(const Bytes& head, std::span<const uint8_t> data) {
  Bytes out = head;
  out.insert(out.end(), data.begin(), data.end());
  return out;
}

void PageBatch(std::span<const uint8_t> in) {
  auto v = appliance::DecodePageBatch(in, kMemoryPages);
  CheckRefusal(v, "page batch");
  if (!v) return;
  const Bytes encoded = Concat(appliance::EncodePageBatchHeader(v->pages), v->data);
  auto again = appliance::DecodePageBatch(encoded, kMemoryPages);  // views into `encoded`
  if (!again || again->pages.size() != v->pages.size() ||
      !std::equal(again->data.begin(), again->data.end(), v->data.begin(), v->data.end())) {
    Fail(kTarget, "page batch does not survive encode + decode");
  }
  for (size_t i = 0; i < v->pages.size(); ++i) {
    if (again->pages[i].index != v->pages[i].index || again->pages[i].zero != v->pages[i].zero) {
      Fail(kTarget, "page batch entry changed in encode + decode");
    }
  }
}

void DiskExtent(std::span<const uint8_t> in) {
  auto v = appliance::DecodeDiskExtent(in, kDiskSizes);
  CheckRefusal(v, "disk extent");
  if (!v) return;
  const Bytes encoded = Concat(appliance::EncodeDiskExtentHeader(v->header), v->data);
  auto again = appliance::DecodeDiskExtent(encoded, kDiskSizes);
  if (!again || again->header.disk != v->header.disk || again->header.zeroes != v->header.zeroes ||
      again->header.offset != v->header.offset || again->header.length != v->header.length ||
      !std::equal(again->data.begin(), again->data.end(), v->data.begin(), v->data.end())) {
    Fail(kTarget, "disk extent does not survive encode + decode");
  }
}

void LayerChunk(std::span<const uint8_t> in) {
  auto v = appliance::DecodeLayerChunk(in, kLayerSizes);
  CheckRefusal(v, "layer chunk");
  if (!v) return;
  const Bytes encoded = Concat(appliance::EncodeLayerChunkHeader(v->header), v->data);
  auto again = appliance::DecodeLayerChunk(encoded, kLayerSizes);
  if (!again || again->header.layer != v->header.layer ||
      again->header.offset != v->header.offset ||
      !std::equal(again->data.begin(), again->data.end(), v->data.begin(), v->data.end())) {
    Fail(kTarget, "layer chunk does not survive encode + decode");
  }
}

void LayerDone(std::span<const uint8_t> in) {
  auto v = appliance::DecodeLayerDone(in, kLayerSizes);
  CheckRefusal(v, "layer done");
  if (!v) return;
  auto again = appliance::DecodeLayerDone(appliance::EncodeLayerDone(*v), kLayerSizes);
  if (!again || again->layer != v->layer || again->file_size != v->file_size) {
    Fail(kTarget, "layer done does not survive encode + decode");
  }
}

void StreamEnd(std::span<const uint8_t> in) {
  auto v = appliance::DecodeStreamEnd(in);
  CheckRefusal(v, "stream end");
  if (!v) return;
  auto again = appliance::DecodeStreamEnd(appliance::EncodeStreamEnd(*v));
  if (!again || again->data_frames != v->data_frames) {
    Fail(kTarget, "stream end does not survive encode + decode");
  }
}

// FromJson over the payload; what it accepts must come back from its own
// ToJson unchanged.
template <typename T>
void Json(std::span<const uint8_t> in, const char* what,
          base::Result<T> (*from_json)(const nlohmann::json&)) {
  auto j = appliance::ParseJsonPayload(in, what);
  CheckRefusal(j, what);
  if (!j) return;
  auto v = from_json(*j);
  CheckRefusal(v, what);
  if (!v) return;
  const nlohmann::json out = appliance::ToJson(*v);
  auto again = from_json(out);
  if (!again || appliance::ToJson(*again) != out) {
    Fail(kTarget, std::string(what) + " does not survive ToJson + FromJson: " + out.dump());
  }
}

void Text(std::span<const uint8_t> in) {
  const std::string text(in.begin(), in.end());
  if (auto s = appliance::ParseRemoteMoveState(text)) {
    if (appliance::ToString(*s) != text) Fail(kTarget, "remote move state name changed");
  }
  if (auto p = appliance::ParseLiveMovePhase(text)) {
    if (appliance::ToString(*p) != text) Fail(kTarget, "live move phase name changed");
  }
  if (auto id = appliance::ParseMigrationId(text)) {
    auto again = appliance::ParseMigrationId(appliance::FormatMigrationId(*id));
    if (!again || *again != *id) Fail(kTarget, "migration id does not survive format + parse");
  }
  if (in.size() >= 2) (void)appliance::ToString(appliance::MoveFrame(uint16_t(in[0] | in[1] << 8)));
}

}  // namespace

void ProtocolFuzzOne(const uint8_t* data, size_t size) {
  if (size == 0 || size > kMaxInput) return;
  const std::span<const uint8_t> in(data + 1, size - 1);
  switch (data[0] % 12) {
    case 0: PageBatch(in); break;
    case 1: DiskExtent(in); break;
    case 2: LayerChunk(in); break;
    case 3: LayerDone(in); break;
    case 4: StreamEnd(in); break;
    case 5: Json(in, "prepare request", appliance::PrepareRequestFromJson); break;
    case 6: Json(in, "prepare reply", appliance::PrepareReplyFromJson); break;
    case 7: Json(in, "live move request", appliance::LiveMoveRequestFromJson); break;
    case 8: Json(in, "live move status", appliance::LiveMoveStatusFromJson); break;
    case 9: Text(in); break;
    case 10: Json(in, "authorization", appliance::MoveAuthorizationFromJson); break;
    case 11: Json(in, "peer trust", appliance::PeerTrustFromJson); break;
  }
}

}  // namespace ferry_fuzz

#ifdef FERRY_LIBFUZZER
extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  ferry_fuzz::ProtocolFuzzOne(data, size);
  return 0;
}
#endif
