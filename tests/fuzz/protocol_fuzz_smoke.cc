// Smoke run of the move-protocol fuzz target (fuzz_smoke_main.h): one valid
// encoding of every message kind, each behind its selector byte, built with
// the protocol's own encoders; the JSON seeds must decode (checked here, so a
// seed that drifts from the decoders is noticed).
#include "fuzz_smoke_main.h"
#include "fuzz_targets.h"
#include "protocol/live_move_types.h"
#include "protocol/move_authorization.h"
#include "protocol/move_protocol.h"

namespace ferry_fuzz {
namespace {

Bytes Seed(uint8_t selector, const Bytes& body) {
  Bytes out{selector};
  out.insert(out.end(), body.begin(), body.end());
  return out;
}

Bytes WithData(Bytes head, size_t n, uint8_t fill) {
  head.insert(head.end(), n, fill);
  return head;
}

appliance::PrepareRequest MakePrepare() {
  appliance::PrepareRequest r;
  r.migration_id = "0f1e2d3c-4b5a-4968-8776-a5b4c3d2e1f0";
  r.vm_name = "web";
  r.vm_id = "1b4e28ba-2fa1-41d2-883f-0016d3cca427";
  r.definition_toml = "name = \"web\"\nmemory = \"256MB\"\n";
  r.memory_bytes = 256 << 20;
  r.vcpus = 2;
  r.cpu_vendor = "GenuineIntel";
  r.cpu_features = {"sse4_2", "avx"};
  r.destination = "/var/lib/ferry/incoming";
  appliance::PreparedDisk d;
  d.index = 0;
  d.format = "qcow2";
  d.disk_size = 1 << 30;
  d.top = "/var/lib/ferry/incoming/web/disk0.qcow2";
  d.top_backing_name = "base.qcow2";
  d.top_backing_format = "qcow2";
  appliance::PreparedLayer layer;
  layer.dest = "/var/lib/ferry/incoming/web/base.qcow2";
  layer.format = "qcow2";
  layer.file_size = 3 << 20;
  d.backing.push_back(layer);
  r.disks.push_back(d);
  r.disk_bytes = (1 << 30) + (3 << 20);
  r.performance = "compression";
  r.source_host = "127.0.0.1";
  return r;
}

template <typename T>
bool Decodes(const T& value, base::Result<T> (*from_json)(const nlohmann::json&),
             const char* what) {
  auto r = from_json(appliance::ToJson(value));
  if (!r) std::fprintf(stderr, "seed %s does not decode: %s\n", what, r.error().ToString().c_str());
  return r.has_value();
}

std::vector<Bytes> MakeSeeds() {
  std::vector<Bytes> seeds;
  // Binary frames.
  const appliance::PageEntry pages[] = {{256, false}, {257, true}, {300, false}};
  seeds.push_back(Seed(0, WithData(appliance::EncodePageBatchHeader(pages), 2 * 4096, 0xab)));
  seeds.push_back(Seed(0, appliance::EncodePageBatchHeader({})));
  seeds.push_back(
      Seed(1, WithData(appliance::EncodeDiskExtentHeader({0, false, 4096, 1024}), 1024, 7)));
  seeds.push_back(Seed(1, appliance::EncodeDiskExtentHeader({1, true, 1 << 20, 1 << 20})));
  seeds.push_back(Seed(2, WithData(appliance::EncodeLayerChunkHeader({1, 65536}), 4096, 3)));
  seeds.push_back(Seed(3, appliance::EncodeLayerDone({2, 512})));
  seeds.push_back(Seed(4, appliance::EncodeStreamEnd({12345})));
  // Control JSON.
  const appliance::PrepareRequest prepare = MakePrepare();
  appliance::PrepareReply reply;
  reply.data_host = "127.0.0.2";
  reply.data_port = 7432;
  reply.keeps_paused = true;
  appliance::LiveMoveRequest request;
  request.prepare = prepare;
  request.control_host = "127.0.0.2";
  request.control_port = 7431;
  request.data_host = "127.0.0.2";
  request.data_port = 7432;
  request.bandwidth_limit = 100 << 20;
  request.tls = appliance::PeerTrust{"/var/lib/ferry/tls/host.crt", "/var/lib/ferry/tls/host.key",
                                     "", {"SHA256:AB"}, "SHA256:CD"};
  appliance::LiveMoveStatus status;
  status.migration_id = prepare.migration_id;
  status.phase = appliance::LiveMovePhase::kPrecopy;
  status.round = 3;
  status.memory_bytes = 256 << 20;
  status.memory_sent = 300 << 20;
  status.streams = {{1000, 2000, 3}, {4000, 5000, 6}};
  status.error_code = "UNAVAILABLE";
  status.error = "stream 2: connection reset";
  bool ok = Decodes(prepare, appliance::PrepareRequestFromJson, "prepare") &&
            Decodes(reply, appliance::PrepareReplyFromJson, "prepare reply") &&
            Decodes(request, appliance::LiveMoveRequestFromJson, "live move request") &&
            Decodes(status, appliance::LiveMoveStatusFromJson, "live move status");
  if (!ok) return {};
  seeds.push_back(Seed(5, appliance::JsonPayload(appliance::ToJson(prepare))));
  seeds.push_back(Seed(6, appliance::JsonPayload(appliance::ToJson(reply))));
  seeds.push_back(Seed(7, appliance::JsonPayload(appliance::ToJson(request))));
  seeds.push_back(Seed(8, appliance::JsonPayload(appliance::ToJson(status))));
  appliance::MoveAuthorization kerberos;
  kerberos.kerberos_token = {0x60, 0x82, 0x01, 0x00};
  appliance::MoveAuthorization credentials;
  credentials.mechanism = appliance::AuthorizationMechanism::kCredentials;
  credentials.user = "alice";
  credentials.password = "secret";
  seeds.push_back(Seed(10, appliance::JsonPayload(appliance::ToJson(kerberos))));
  seeds.push_back(Seed(10, appliance::JsonPayload(appliance::ToJson(credentials))));
  seeds.push_back(Seed(11, appliance::JsonPayload(appliance::ToJson(*request.tls))));
  // Names and ids.
  seeds.push_back(Seed(9, ToBytes("committed")));
  seeds.push_back(
      Seed(9, ToBytes(std::string(appliance::ToString(appliance::LiveMovePhase::kSwitchover)))));
  seeds.push_back(Seed(9, ToBytes(prepare.migration_id)));
  return seeds;
}

}  // namespace
}  // namespace ferry_fuzz

int main(int argc, char** argv) {
  return ferry_fuzz::SmokeMain("protocol_fuzz_smoke", ferry_fuzz::MakeSeeds(),
                               ferry_fuzz::ProtocolFuzzOne, argc, argv);
}
