// The live-move messages (move_protocol.h, appliance/protocol/PROTOCOL.md):
// golden bytes for every binary message, every malformed variant a decoder
// must refuse, and the JSON codecs' round trips and refusals.
#include <gtest/gtest.h>

#include <set>

#include "protocol/live_move_types.h"
#include "protocol/move_protocol.h"

namespace appliance {
namespace {

std::string Hex(std::span<const uint8_t> b) {
  static const char* kDigits = "0123456789abcdef";
  std::string out;
  for (uint8_t c : b) {
    out += kDigits[c >> 4];
    out += kDigits[c & 15];
  }
  return out;
}

std::vector<uint8_t> Unhex(std::string_view s) {
  std::vector<uint8_t> out;
  for (size_t i = 0; i + 1 < s.size(); i += 2)
    out.push_back(uint8_t(std::stoi(std::string(s.substr(i, 2)), nullptr, 16)));
  return out;
}

std::vector<uint8_t> Cat(std::vector<uint8_t> a, const std::vector<uint8_t>& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

// Expects a kDataLoss whose message contains every fragment.
template <typename T>
void ExpectDataLoss(const base::Result<T>& r, std::initializer_list<std::string_view> fragments) {
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code(), base::Code::kDataLoss) << r.error().ToString();
  for (auto f : fragments)
    EXPECT_NE(r.error().message().find(f), std::string::npos) << r.error().message();
}

// ---- Page batch -----------------------------------------------------------

TEST(PageBatch, GoldenBytes) {
  std::vector<PageEntry> pages = {{0x100, false}, {0x101, true}, {0x1ff, false}};
  std::vector<uint8_t> header = EncodePageBatchHeader(pages);
  EXPECT_EQ(Hex(header),
            "03000000"
            "00000000"
            "0001000000000000"
            "0101000000000080"
            "ff01000000000000");
}

TEST(PageBatch, DecodesEntriesAndData) {
  std::vector<PageEntry> pages = {{512, false}, {513, true}, {767, false}};
  std::vector<uint8_t> data(2 * kPageBytes);
  data[0] = 0xaa;
  data[kPageBytes] = 0xbb;
  auto payload = Cat(EncodePageBatchHeader(pages), data);
  auto v = DecodePageBatch(payload, 1024);
  ASSERT_TRUE(v.has_value()) << v.error().ToString();
  ASSERT_EQ(v->pages.size(), 3u);
  EXPECT_EQ(v->pages[1].index, 513u);
  EXPECT_TRUE(v->pages[1].zero);
  EXPECT_FALSE(v->pages[2].zero);
  ASSERT_EQ(v->data.size(), 2 * kPageBytes);
  EXPECT_EQ(v->data[0], 0xaa);
  EXPECT_EQ(v->data[kPageBytes], 0xbb);
}

TEST(PageBatch, AllZeroBatchHasNoData) {
  std::vector<PageEntry> pages = {{3, true}, {4, true}};
  auto v = DecodePageBatch(EncodePageBatchHeader(pages), 16);
  ASSERT_TRUE(v.has_value()) << v.error().ToString();
  EXPECT_TRUE(v->data.empty());
}

TEST(PageBatch, Malformed) {
  const std::vector<uint8_t> page(kPageBytes, 1);
  auto one = [&](uint64_t index) {
    return Cat(EncodePageBatchHeader(std::vector<PageEntry>{{index, false}}), page);
  };
  ExpectDataLoss(DecodePageBatch(Unhex("0100"), 16),
                 {"page batch", "shorter than its 8-byte header"});
  ExpectDataLoss(DecodePageBatch(Unhex("0000000000000000"), 16), {"count 0"});
  ExpectDataLoss(DecodePageBatch(Unhex("0101000000000000"), 16), {"count 257"});
  ExpectDataLoss(DecodePageBatch(Unhex("0200000000000000"
                                       "0000000000000080"),
                                 16),
                 {"2-entry table"});
  // Reserved nonzero.
  auto reserved = EncodePageBatchHeader(std::vector<PageEntry>{{1, true}});
  reserved[4] = 1;
  ExpectDataLoss(DecodePageBatch(reserved, 16), {"reserved field is 1"});
  // Index out of range (the last page is 15).
  EXPECT_TRUE(DecodePageBatch(one(15), 16).has_value());
  ExpectDataLoss(DecodePageBatch(one(16), 16), {"page 16 is beyond guest memory (16 pages)"});
  // An index with the zero bit masked off still must be in range.
  ExpectDataLoss(
      DecodePageBatch(EncodePageBatchHeader(std::vector<PageEntry>{{(1ull << 62), true}}), 16),
      {"beyond guest memory"});
  // Non-increasing indices.
  ExpectDataLoss(
      DecodePageBatch(EncodePageBatchHeader(std::vector<PageEntry>{{5, true}, {5, true}}), 16),
      {"entry 1: page 5 does not follow page 5"});
  ExpectDataLoss(
      DecodePageBatch(EncodePageBatchHeader(std::vector<PageEntry>{{6, true}, {5, true}}), 16),
      {"indices must increase"});
  // Pages from two 1 MiB groups (255 and 256).
  ExpectDataLoss(DecodePageBatch(
                     EncodePageBatchHeader(std::vector<PageEntry>{{255, true}, {256, true}}), 1024),
                 {"outside the 1 MiB group"});
  // Data length: one page short, one byte long, data for a zero page.
  auto shorter = one(1);
  shorter.resize(shorter.size() - 1);
  ExpectDataLoss(DecodePageBatch(shorter, 16),
                 {"4095 data bytes for 1 non-zero pages (expected 4096)"});
  auto longer = one(1);
  longer.push_back(0);
  ExpectDataLoss(DecodePageBatch(longer, 16), {"expected 4096"});
  ExpectDataLoss(
      DecodePageBatch(Cat(EncodePageBatchHeader(std::vector<PageEntry>{{1, true}}), page), 16),
      {"for 0 non-zero pages"});
}

// ---- Disk extent ------------------------------------------------------------

TEST(DiskExtent, GoldenBytes) {
  EXPECT_EQ(Hex(EncodeDiskExtentHeader({2, false, 0x100200, 0x1000})),
            "0200"
            "0000"
            "00000000"
            "0002100000000000"
            "0010000000000000");
  EXPECT_EQ(Hex(EncodeDiskExtentHeader({1, true, 0x200000, 0x100000})),
            "0100"
            "0100"
            "00000000"
            "0000200000000000"
            "0000100000000000");
}

TEST(DiskExtent, DecodesDataAndZeroes) {
  const std::vector<uint64_t> sizes = {8 << 20, 4 << 20};
  std::vector<uint8_t> data(4096, 7);
  auto v = DecodeDiskExtent(Cat(EncodeDiskExtentHeader({1, false, 1 << 20, 4096}), data), sizes);
  ASSERT_TRUE(v.has_value()) << v.error().ToString();
  EXPECT_EQ(v->header.disk, 1);
  EXPECT_EQ(v->header.offset, 1u << 20);
  EXPECT_EQ(v->data.size(), 4096u);
  auto z = DecodeDiskExtent(EncodeDiskExtentHeader({0, true, 0, 1 << 20}), sizes);
  ASSERT_TRUE(z.has_value()) << z.error().ToString();
  EXPECT_TRUE(z->header.zeroes);
  EXPECT_TRUE(z->data.empty());
  // The last sector of the disk.
  EXPECT_TRUE(DecodeDiskExtent(Cat(EncodeDiskExtentHeader({1, false, (4 << 20) - 512, 512}),
                                   std::vector<uint8_t>(512)),
                               sizes)
                  .has_value());
}

TEST(DiskExtent, Malformed) {
  const std::vector<uint64_t> sizes = {8 << 20, 3 << 20};
  auto with_data = [](DiskExtentHeader h) {
    return Cat(EncodeDiskExtentHeader(h), std::vector<uint8_t>(h.length));
  };
  ExpectDataLoss(DecodeDiskExtent(Unhex("0000000000000000"), sizes),
                 {"disk extent", "24-byte header"});
  ExpectDataLoss(DecodeDiskExtent(with_data({2, false, 0, 512}), sizes),
                 {"disk 2 out of range (the move has 2)"});
  auto flags = EncodeDiskExtentHeader({0, true, 0, 512});
  flags[2] = 3;
  ExpectDataLoss(DecodeDiskExtent(flags, sizes), {"unknown flags 3"});
  auto reserved = EncodeDiskExtentHeader({0, true, 0, 512});
  reserved[7] = 0x80;
  ExpectDataLoss(DecodeDiskExtent(reserved, sizes), {"reserved field is 2147483648"});
  ExpectDataLoss(DecodeDiskExtent(EncodeDiskExtentHeader({0, true, 0, 0}), sizes),
                 {"length 0 outside"});
  ExpectDataLoss(DecodeDiskExtent(EncodeDiskExtentHeader({0, true, 0, (1 << 20) + 512}), sizes),
                 {"length 1049088 outside"});
  ExpectDataLoss(DecodeDiskExtent(with_data({0, false, 100, 512}), sizes),
                 {"not 512-byte aligned"});
  ExpectDataLoss(DecodeDiskExtent(with_data({0, false, 0, 700}), sizes), {"not 512-byte aligned"});
  // Crossing a region: [1 MiB - 512, +1024).
  ExpectDataLoss(DecodeDiskExtent(with_data({0, false, (1 << 20) - 512, 1024}), sizes),
                 {"crosses a 1 MiB region boundary"});
  // Beyond the disk, including an offset that would overflow.
  ExpectDataLoss(DecodeDiskExtent(with_data({1, false, 3 << 20, 512}), sizes),
                 {"beyond the disk's 3145728 bytes"});
  ExpectDataLoss(DecodeDiskExtent(EncodeDiskExtentHeader({1, true, ~uint64_t(511), 512}), sizes),
                 {"beyond the disk"});
  // Data length must match.
  auto shorter = with_data({0, false, 0, 1024});
  shorter.pop_back();
  ExpectDataLoss(DecodeDiskExtent(shorter, sizes), {"1023 data bytes for length 1024"});
  ExpectDataLoss(DecodeDiskExtent(Cat(EncodeDiskExtentHeader({0, true, 0, 512}), {1}), sizes),
                 {"1 data bytes for a zeroes extent"});
}

// ---- Layer chunk / layer done -------------------------------------------------

TEST(LayerChunk, GoldenBytes) {
  EXPECT_EQ(Hex(EncodeLayerChunkHeader({3, 0x10000})),
            "03000000"
            "00000000"
            "0000010000000000");
  EXPECT_EQ(Hex(EncodeLayerDone({1, 0x30000})),
            "01000000"
            "00000000"
            "0000030000000000");
}

TEST(LayerChunk, DecodesAndRefuses) {
  const std::vector<uint64_t> sizes = {1000, 65536};
  auto ok =
      DecodeLayerChunk(Cat(EncodeLayerChunkHeader({0, 990}), std::vector<uint8_t>(10, 4)), sizes);
  ASSERT_TRUE(ok.has_value()) << ok.error().ToString();
  EXPECT_EQ(ok->header.offset, 990u);
  EXPECT_EQ(ok->data.size(), 10u);
  ExpectDataLoss(DecodeLayerChunk(Unhex("00000000"), sizes), {"layer chunk", "16-byte header"});
  ExpectDataLoss(DecodeLayerChunk(EncodeLayerChunkHeader({0, 0}), sizes), {"data of 0 bytes"});
  ExpectDataLoss(DecodeLayerChunk(Cat(EncodeLayerChunkHeader({2, 0}), {1}), sizes),
                 {"layer 2 out of range (the move has 2)"});
  ExpectDataLoss(
      DecodeLayerChunk(Cat(EncodeLayerChunkHeader({0, 991}), std::vector<uint8_t>(10)), sizes),
      {"beyond the file's 1000 bytes"});
  ExpectDataLoss(DecodeLayerChunk(Cat(EncodeLayerChunkHeader({0, ~uint64_t(0)}), {1}), sizes),
                 {"beyond the file"});
  auto reserved = Cat(EncodeLayerChunkHeader({0, 0}), {1});
  reserved[5] = 1;
  ExpectDataLoss(DecodeLayerChunk(reserved, sizes), {"reserved field is 256"});
  const std::vector<uint64_t> big = {uint64_t(kMaxLayerChunkBytes) * 2};
  ExpectDataLoss(
      DecodeLayerChunk(
          Cat(EncodeLayerChunkHeader({0, 0}), std::vector<uint8_t>(kMaxLayerChunkBytes + 1)), big),
      {"outside 1..4194304"});
}

TEST(LayerDone, DecodesAndRefuses) {
  const std::vector<uint64_t> sizes = {1000};
  auto ok = DecodeLayerDone(EncodeLayerDone({0, 1000}), sizes);
  ASSERT_TRUE(ok.has_value()) << ok.error().ToString();
  EXPECT_EQ(ok->file_size, 1000u);
  ExpectDataLoss(DecodeLayerDone(Cat(EncodeLayerDone({0, 1000}), {0}), sizes),
                 {"17 bytes, must be 16"});
  ExpectDataLoss(DecodeLayerDone(EncodeLayerDone({1, 1000}), sizes), {"layer 1 out of range"});
  ExpectDataLoss(DecodeLayerDone(EncodeLayerDone({0, 999}), sizes),
                 {"file size 999, the plan says 1000"});
  auto reserved = EncodeLayerDone({0, 1000});
  reserved[4] = 9;
  ExpectDataLoss(DecodeLayerDone(reserved, sizes), {"reserved field is 9"});
}

// ---- Stream end -----------------------------------------------------------------

TEST(StreamEnd, GoldenBytesAndRefusals) {
  EXPECT_EQ(Hex(EncodeStreamEnd({0x0102})),
            "0201000000000000"
            "0000000000000000");
  auto ok = DecodeStreamEnd(EncodeStreamEnd({77}));
  ASSERT_TRUE(ok.has_value());
  EXPECT_EQ(ok->data_frames, 77u);
  ExpectDataLoss(DecodeStreamEnd(Unhex("0100000000000000")), {"stream end", "8 bytes, must be 16"});
  auto reserved = EncodeStreamEnd({1});
  reserved[15] = 1;
  ExpectDataLoss(DecodeStreamEnd(reserved), {"reserved field is 72057594037927936"});
}

TEST(MoveFrameNames, AreDistinct) {
  std::set<std::string_view> names;
  for (uint16_t t : {16, 17, 18, 19, 20, 21, 32, 33, 34, 35, 36, 37, 38})
    names.insert(ToString(MoveFrame(t)));
  EXPECT_EQ(names.size(), 13u);
  EXPECT_EQ(ToString(MoveFrame::kPageBatch), "page-batch");
  EXPECT_EQ(ToString(MoveFrame(99)), "unknown");
}

// ---- Prepare JSON -----------------------------------------------------------------

PrepareRequest SamplePrepare() {
  PrepareRequest r;
  r.migration_id = "0f1e2d3c-4b5a-4968-8776-a5b4c3d2e1f0";
  r.vm_name = "web1";
  r.vm_id = "id-1";
  r.definition_toml = "name = \"web1\"\n";
  r.memory_bytes = 64 << 20;
  r.vcpus = 2;
  r.cpu_vendor = "GenuineIntel";
  r.cpu_features = {"sse4_2", "avx2"};
  r.destination = "/srv/dest";
  PreparedDisk d;
  d.index = 0;
  d.format = "qcow2";
  d.disk_size = 16 << 20;
  d.top = "/srv/dest/web1.qcow2";
  d.top_backing_name = "base.qcow2";
  d.top_backing_format = "qcow2";
  d.backing.push_back({"/srv/dest/base.raw", "raw", 4096, "", ""});
  d.backing.push_back({"/srv/dest/base.qcow2", "qcow2", 196608, "base.raw", "raw"});
  r.disks.push_back(d);
  PreparedDisk e;
  e.index = 1;
  e.format = "raw";
  e.disk_size = 1 << 20;
  e.top = "/srv/dest/data.raw";
  r.disks.push_back(e);
  r.disk_bytes = (16 << 20) + (1 << 20) + 4096 + 196608;
  r.streams = 4;
  r.performance = "compression";
  r.source_host = "127.0.0.1";
  return r;
}

TEST(PrepareJson, RoundTrips) {
  PrepareRequest r = SamplePrepare();
  auto back = PrepareRequestFromJson(ToJson(r));
  ASSERT_TRUE(back.has_value()) << back.error().ToString();
  EXPECT_EQ(ToJson(*back), ToJson(r));
  // A request built without a performance mode means the default.
  PrepareRequest plain = r;
  plain.performance = "";
  auto defaulted = PrepareRequestFromJson(ToJson(plain));
  ASSERT_TRUE(defaulted.has_value()) << defaulted.error().ToString();
  EXPECT_EQ(defaulted->performance, "compression");
  auto layers = FlattenLayers(*back);
  ASSERT_EQ(layers.size(), 2u);
  EXPECT_EQ(layers[0]->dest, "/srv/dest/base.raw");
  EXPECT_EQ(layers[1]->rewrite_backing, "base.raw");
}

// "paused" tells the destination not to resume the VM after the commit: it
// must survive the round trip both ways, and a source that predates it
// (no field) means a running VM.
TEST(PrepareJson, PausedRoundTripsAndDefaultsToRunning) {
  for (bool paused : {true, false}) {
    PrepareRequest r = SamplePrepare();
    r.paused = paused;
    const nlohmann::json j = ToJson(r);
    ASSERT_TRUE(j.contains("paused"));
    EXPECT_EQ(j["paused"], paused);
    auto back = PrepareRequestFromJson(j);
    ASSERT_TRUE(back.has_value()) << back.error().ToString();
    EXPECT_EQ(back->paused, paused);
  }
  PrepareRequest r = SamplePrepare();
  r.paused = true;
  nlohmann::json absent = ToJson(r);
  absent.erase("paused");
  auto back = PrepareRequestFromJson(absent);
  ASSERT_TRUE(back.has_value()) << back.error().ToString();
  EXPECT_FALSE(back->paused);
}

void ExpectInvalid(const nlohmann::json& j, std::string_view field) {
  auto r = PrepareRequestFromJson(j);
  ASSERT_FALSE(r.has_value()) << j.dump();
  EXPECT_EQ(r.error().code(), base::Code::kInvalidArgument);
  EXPECT_NE(r.error().message().find(field), std::string::npos) << r.error().message();
}

TEST(PrepareJson, MissingAndBadFieldsAreNamed) {
  const nlohmann::json good = ToJson(SamplePrepare());
  for (const char* field : {"migration_id", "vm_name", "definition_toml", "memory_bytes", "vcpus",
                            "destination", "disks", "streams"}) {
    nlohmann::json j = good;
    j.erase(field);
    ExpectInvalid(j, std::string("prepare: ") + field + ": missing");
  }
  for (const char* field : {"index", "format", "disk_size", "top"}) {
    nlohmann::json j = good;
    j["disks"][1].erase(field);
    ExpectInvalid(j, std::string("disks[1].") + field + ": missing");
  }
  for (const char* field : {"dest", "format", "file_size"}) {
    nlohmann::json j = good;
    j["disks"][0]["backing"][1].erase(field);
    ExpectInvalid(j, std::string("disks[0].backing[1].") + field + ": missing");
  }
  nlohmann::json j = good;
  j["migration_id"] = "not-a-uuid";
  ExpectInvalid(j, "migration_id: not a UUID");
  j = good;
  j["memory_bytes"] = 4097;
  ExpectInvalid(j, "memory_bytes: must be a positive multiple of 4096");
  j = good;
  j["memory_bytes"] = "lots";
  ExpectInvalid(j, "memory_bytes: must be a non-negative integer");
  j = good;
  j["disks"][1]["index"] = 0;
  ExpectInvalid(j, "disks[1].index: is 0, must be 1");
  j = good;
  j["disks"][0]["format"] = "vmdk";
  ExpectInvalid(j, "disks[0].format");
  j = good;
  j["disks"][0]["top"] = "relative.qcow2";
  ExpectInvalid(j, "disks[0].top: must be an absolute path");
  j = good;
  j["disks"][0]["backing"][1]["backing_format"] = "";
  ExpectInvalid(j, "disks[0].backing[1].backing_format");
  j = good;
  j["streams"] = 0;
  ExpectInvalid(j, "streams: must be at least 1");
  j = good;
  j["performance"] = "fast";
  ExpectInvalid(j, "performance");
  for (const nlohmann::json& not_bool : {nlohmann::json("yes"), nlohmann::json(1)}) {
    j = good;
    j["paused"] = not_bool;
    ExpectInvalid(j, "prepare: paused: must be true or false");
  }
  ExpectInvalid(nlohmann::json::array(), "prepare: not a JSON object");
}

TEST(PrepareReplyJson, RoundTripsAndRefuses) {
  PrepareReply r{"127.0.0.2", 40123, 1};
  auto back = PrepareReplyFromJson(ToJson(r));
  ASSERT_TRUE(back.has_value()) << back.error().ToString();
  EXPECT_EQ(back->data_host, "127.0.0.2");
  EXPECT_EQ(back->data_port, 40123);
  nlohmann::json j = ToJson(r);
  j.erase("data_port");
  auto bad = PrepareReplyFromJson(j);
  ASSERT_FALSE(bad.has_value());
  EXPECT_EQ(bad.error().code(), base::Code::kInvalidArgument);
  EXPECT_NE(bad.error().message().find("data_port: missing"), std::string::npos);
  j = ToJson(r);
  j["data_port"] = 70000;
  EXPECT_FALSE(PrepareReplyFromJson(j).has_value());
}

// An older destination's reply has no keeps_paused: it reads as false, so a
// source moving a paused VM refuses to go on (it would be resumed there).
TEST(PrepareReplyJson, KeepsPausedRoundTripsAndDefaultsToFalse) {
  PrepareReply r{"127.0.0.2", 40123, 1};
  r.keeps_paused = true;
  auto back = PrepareReplyFromJson(ToJson(r));
  ASSERT_TRUE(back.has_value()) << back.error().ToString();
  EXPECT_TRUE(back->keeps_paused);
  nlohmann::json old_reply = ToJson(r);
  old_reply.erase("keeps_paused");
  back = PrepareReplyFromJson(old_reply);
  ASSERT_TRUE(back.has_value()) << back.error().ToString();
  EXPECT_FALSE(back->keeps_paused);
}

TEST(RemoteState, Names) {
  for (auto s : {RemoteMoveState::kRunning, RemoteMoveState::kCommitted, RemoteMoveState::kAborted,
                 RemoteMoveState::kUnknown}) {
    auto back = ParseRemoteMoveState(ToString(s));
    ASSERT_TRUE(back.has_value());
    EXPECT_EQ(*back, s);
  }
  EXPECT_FALSE(ParseRemoteMoveState("done").has_value());
}

TEST(JsonPayload, RoundTripsAndRefusesNonObjects) {
  auto p = JsonPayload({{"reason", "operator"}});
  EXPECT_EQ(std::string(p.begin(), p.end()), R"({"reason":"operator"})");
  auto j = ParseJsonPayload(p, "abort");
  ASSERT_TRUE(j.has_value());
  EXPECT_EQ((*j)["reason"], "operator");
  std::vector<uint8_t> garbage = {'{', 'x'};
  ExpectDataLoss(ParseJsonPayload(garbage, "abort"), {"malformed abort: payload is not JSON"});
  std::vector<uint8_t> array = {'[', ']'};
  ExpectDataLoss(ParseJsonPayload(array, "committed"), {"not a JSON object"});
  // Invalid UTF-8 still encodes.
  auto odd = JsonPayload({{"reason", std::string("\xff\xfe")}});
  EXPECT_FALSE(odd.empty());
}

TEST(MigrationId, ParsesFormatsAndGenerates) {
  auto id = ParseMigrationId("0F1E2D3C-4B5A-4968-8776-A5B4C3D2E1F0");
  ASSERT_TRUE(id.has_value());
  EXPECT_EQ((*id)[0], 0x0f);
  EXPECT_EQ((*id)[15], 0xf0);
  EXPECT_EQ(FormatMigrationId(*id), "0f1e2d3c-4b5a-4968-8776-a5b4c3d2e1f0");
  for (std::string_view bad :
       {"", "0f1e2d3c4b5a49688776a5b4c3d2e1f0", "0f1e2d3c-4b5a-4968-8776-a5b4c3d2e1fg",
        "0f1e2d3c-4b5a-4968-8776a-5b4c3d2e1f0", "0f1e2d3c-4b5a-4968-8776-a5b4c3d2e1f00"}) {
    auto r = ParseMigrationId(bad);
    ASSERT_FALSE(r.has_value()) << bad;
    EXPECT_EQ(r.error().code(), base::Code::kInvalidArgument);
  }
  std::string a = NewMigrationId(), b = NewMigrationId();
  EXPECT_NE(a, b);
  auto pa = ParseMigrationId(a);
  ASSERT_TRUE(pa.has_value()) << a;
  EXPECT_EQ(a[14], '4');  // version 4
  EXPECT_EQ(FormatMigrationId(*pa), a);
}

// ---- live_move_types -------------------------------------------------------------

TEST(LiveMoveTypes, PhaseNames) {
  const char* names[] = {"preparing", "copying-layers", "precopy", "switchover",
                         "resolving", "completed",      "failed",  "in-doubt"};
  for (int i = 1; i <= 8; ++i) {
    auto p = LiveMovePhase(i);
    EXPECT_EQ(ToString(p), names[i - 1]);
    auto back = ParseLiveMovePhase(names[i - 1]);
    ASSERT_TRUE(back.has_value());
    EXPECT_EQ(*back, p);
  }
  EXPECT_FALSE(ParseLiveMovePhase("done").has_value());
  EXPECT_TRUE(IsTerminal(LiveMovePhase::kInDoubt));
  EXPECT_FALSE(IsTerminal(LiveMovePhase::kResolving));
}

TEST(LiveMoveTypes, RequestRoundTrips) {
  LiveMoveRequest r;
  r.prepare = SamplePrepare();
  r.control_host = "127.0.0.2";
  r.control_port = 7000;
  r.data_host = "127.0.0.2";
  r.data_port = 40000;
  r.source_host = "127.0.0.1";
  r.streams = 3;
  r.compression = false;
  r.bandwidth_limit = 1 << 30;
  r.downtime_ms = 250;
  r.time_limit_s = 30;
  r.tls = PeerTrust{
      "/etc/ferry/tls/host.crt", "/etc/ferry/tls/host.key", "", {"SHA256:AA"}, "SHA256:BB"};
  auto back = LiveMoveRequestFromJson(ToJson(r));
  ASSERT_TRUE(back.has_value()) << back.error().ToString();
  EXPECT_EQ(ToJson(*back), ToJson(r));
  nlohmann::json j = ToJson(r);
  j["prepare"].erase("vm_name");
  auto bad = LiveMoveRequestFromJson(j);
  ASSERT_FALSE(bad.has_value());
  EXPECT_EQ(bad.error().code(), base::Code::kInvalidArgument);
  EXPECT_NE(bad.error().message().find("vm_name: missing"), std::string::npos)
      << bad.error().message();
  j = ToJson(r);
  j.erase("data_host");
  bad = LiveMoveRequestFromJson(j);
  ASSERT_FALSE(bad.has_value());
  EXPECT_NE(bad.error().message().find("live move request: data_host: missing"), std::string::npos);
  // Every live move's streams are TLS: a request without its trust is refused,
  // and so is trust that names no peer or trusts nobody.
  j = ToJson(r);
  j.erase("tls");
  bad = LiveMoveRequestFromJson(j);
  ASSERT_FALSE(bad.has_value());
  EXPECT_NE(bad.error().message().find("tls: missing"), std::string::npos) << bad.error().message();
  for (const char* field : {"peer_fingerprint", "certificate", "key"}) {
    j = ToJson(r);
    j["tls"][field] = "";
    bad = LiveMoveRequestFromJson(j);
    ASSERT_FALSE(bad.has_value()) << field;
    EXPECT_NE(
        bad.error().message().find(std::string("peer trust: ") + field + ": must not be empty"),
        std::string::npos)
        << bad.error().message();
  }
  j = ToJson(r);
  j["tls"]["trusted_fingerprints"] = nlohmann::json::array();
  bad = LiveMoveRequestFromJson(j);
  ASSERT_FALSE(bad.has_value());
  EXPECT_NE(bad.error().message().find("nobody would be trusted"), std::string::npos);
}

TEST(LiveMoveTypes, StatusRoundTrips) {
  LiveMoveStatus s;
  s.migration_id = "0f1e2d3c-4b5a-4968-8776-a5b4c3d2e1f0";
  s.phase = LiveMovePhase::kPrecopy;
  s.round = 3;
  s.memory_bytes = 1 << 30;
  s.memory_sent = 123456;
  s.memory_remaining = 4096;
  s.disk_bytes = 1 << 20;
  s.disk_sent = 512;
  s.disk_remaining = 1024;
  s.bytes_per_second = 1.5e9;
  s.dirty_bytes_per_second = 2.5e6;
  s.predicted_downtime_ms = 12.5;
  s.eta_seconds = 3;
  s.throttle_percent = 30;
  s.zero_pages = 99;
  s.streams = {{100, 200, 3}, {400, 500, 6}};
  s.downtime_ms = 40;
  s.total_ms = 5000;
  s.wire_bytes = 500;
  s.error_code = "data-loss";
  s.error = "bad";
  auto back = LiveMoveStatusFromJson(ToJson(s));
  ASSERT_TRUE(back.has_value()) << back.error().ToString();
  EXPECT_EQ(ToJson(*back), ToJson(s));
  ASSERT_EQ(back->streams.size(), 2u);
  EXPECT_EQ(back->streams[1].payload_bytes, 500u);
  nlohmann::json j = ToJson(s);
  j.erase("phase");
  auto bad = LiveMoveStatusFromJson(j);
  ASSERT_FALSE(bad.has_value());
  EXPECT_NE(bad.error().message().find("phase: missing"), std::string::npos);
  j = ToJson(s);
  j["streams"][1]["frames"] = -1;
  bad = LiveMoveStatusFromJson(j);
  ASSERT_FALSE(bad.has_value());
  EXPECT_NE(bad.error().message().find("streams[1].frames"), std::string::npos)
      << bad.error().message();
}

}  // namespace
}  // namespace appliance
