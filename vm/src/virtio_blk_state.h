// The guest-visible state of a VirtioBlk (transport and its one queue) and
// its saved form: a versioned blob of explicit little-endian fields.
//
// Blob v1: le32 magic "VBLK", le16 version, le64 disk capacity (bytes), u8
// read_only, le32 status, le32 device_features_sel, le32 driver_features_sel,
// le64 driver_features, le32 queue_sel, le32 queue_num, u8 queue_ready, le64
// queue_desc, le64 queue_driver, le64 queue_device, le16 last_avail_idx, le16
// used_idx, le32 interrupt_status, le32 config_generation. Nothing follows.
// The capacity and read_only are checked on restore: a guest that saw one
// disk must not wake up on a different one.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "base/result.h"

namespace vm {

struct VirtioBlkState {
  uint32_t status = 0;
  uint32_t device_features_sel = 0;
  uint32_t driver_features_sel = 0;
  uint64_t driver_features = 0;
  uint32_t queue_sel = 0;
  uint32_t queue_num = 0;
  uint8_t queue_ready = 0;
  uint64_t queue_desc = 0;
  uint64_t queue_driver = 0;
  uint64_t queue_device = 0;
  uint16_t last_avail_idx = 0;  // next avail ring slot the device will consume
  uint16_t used_idx = 0;        // the used->idx the device last published
  uint32_t interrupt_status = 0;
  uint32_t config_generation = 0;
};

std::string EncodeVirtioBlkState(const VirtioBlkState& s, uint64_t capacity, bool read_only);
// kDataLoss for a malformed blob; kFailedPrecondition if it was saved for a
// disk of another size or access mode.
base::Result<VirtioBlkState> DecodeVirtioBlkState(std::string_view blob, uint64_t capacity,
                                                  bool read_only);

}  // namespace vm
