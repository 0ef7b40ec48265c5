// virtio 1.1 constants for the virtio-mmio transport (§4.2.2), split
// virtqueues (§2.6) and the block device (§5.2). Shared by the device and
// its tests, which act as a driver.
#pragma once

#include <cstdint>

namespace vm::virtio {

// virtio-mmio register offsets (§4.2.2, version 2).
inline constexpr uint64_t kRegMagic = 0x000;
inline constexpr uint64_t kRegVersion = 0x004;
inline constexpr uint64_t kRegDeviceId = 0x008;
inline constexpr uint64_t kRegVendorId = 0x00c;
inline constexpr uint64_t kRegDeviceFeatures = 0x010;
inline constexpr uint64_t kRegDeviceFeaturesSel = 0x014;
inline constexpr uint64_t kRegDriverFeatures = 0x020;
inline constexpr uint64_t kRegDriverFeaturesSel = 0x024;
inline constexpr uint64_t kRegQueueSel = 0x030;
inline constexpr uint64_t kRegQueueNumMax = 0x034;
inline constexpr uint64_t kRegQueueNum = 0x038;
inline constexpr uint64_t kRegQueueReady = 0x044;
inline constexpr uint64_t kRegQueueNotify = 0x050;
inline constexpr uint64_t kRegInterruptStatus = 0x060;
inline constexpr uint64_t kRegInterruptAck = 0x064;
inline constexpr uint64_t kRegStatus = 0x070;
inline constexpr uint64_t kRegQueueDescLow = 0x080;
inline constexpr uint64_t kRegQueueDescHigh = 0x084;
inline constexpr uint64_t kRegQueueDriverLow = 0x090;
inline constexpr uint64_t kRegQueueDriverHigh = 0x094;
inline constexpr uint64_t kRegQueueDeviceLow = 0x0a0;
inline constexpr uint64_t kRegQueueDeviceHigh = 0x0a4;
inline constexpr uint64_t kRegConfigGeneration = 0x0fc;
inline constexpr uint64_t kRegConfig = 0x100;

inline constexpr uint32_t kMagic = 0x74726976;  // "virt"
inline constexpr uint32_t kVersion = 2;
inline constexpr uint32_t kDeviceIdBlock = 2;
inline constexpr uint32_t kVendorId = 0x59525246;  // "FRRY"

// Device status bits (§2.1).
inline constexpr uint32_t kStatusAcknowledge = 1;
inline constexpr uint32_t kStatusDriver = 2;
inline constexpr uint32_t kStatusDriverOk = 4;
inline constexpr uint32_t kStatusFeaturesOk = 8;
inline constexpr uint32_t kStatusNeedsReset = 64;
inline constexpr uint32_t kStatusFailed = 128;
inline constexpr uint32_t kStatusKnownBits = 1 | 2 | 4 | 8 | 64 | 128;

inline constexpr uint32_t kInterruptUsedBuffer = 1;

// Feature bits.
inline constexpr uint64_t kBlkFSegMax = 1ull << 2;
inline constexpr uint64_t kBlkFRo = 1ull << 5;
inline constexpr uint64_t kBlkFBlkSize = 1ull << 6;
inline constexpr uint64_t kBlkFFlush = 1ull << 9;
inline constexpr uint64_t kBlkFDiscard = 1ull << 13;
inline constexpr uint64_t kBlkFWriteZeroes = 1ull << 14;
inline constexpr uint64_t kFVersion1 = 1ull << 32;

// Split virtqueue descriptor flags (§2.6.5).
inline constexpr uint16_t kDescFNext = 1;
inline constexpr uint16_t kDescFWrite = 2;
inline constexpr uint16_t kDescFIndirect = 4;

// The one queue's largest size; also bounds a descriptor chain.
inline constexpr uint32_t kQueueSizeMax = 256;

// Block request types and status values (§5.2.6).
inline constexpr uint32_t kBlkTIn = 0;
inline constexpr uint32_t kBlkTOut = 1;
inline constexpr uint32_t kBlkTFlush = 4;
inline constexpr uint32_t kBlkTGetId = 8;
inline constexpr uint32_t kBlkTDiscard = 11;
inline constexpr uint32_t kBlkTWriteZeroes = 13;
inline constexpr uint8_t kBlkSOk = 0;
inline constexpr uint8_t kBlkSIoErr = 1;
inline constexpr uint8_t kBlkSUnsupp = 2;
inline constexpr uint32_t kBlkRequestHeaderBytes = 16;  // le32 type, le32 reserved, le64 sector
inline constexpr uint32_t kBlkIdBytes = 20;
inline constexpr char kBlkIdString[] = "ferry-virtio-blk";

// Discard / write-zeroes payload (§5.2.6): an array of segments, each le64
// sector, le32 num_sectors, le32 flags. Flag bit 0 is "unmap" (write zeroes
// may deallocate); discard must not carry it, and other bits are reserved.
inline constexpr uint32_t kBlkDiscardSegmentBytes = 16;
inline constexpr uint32_t kBlkWriteZeroesFlagUnmap = 1;
// What the device offers (config space). Requests run synchronously on the
// vCPU thread, so one segment is capped at 64 MiB: a file system without
// fallocate support makes them writes of zeros.
inline constexpr uint32_t kBlkMaxDiscardSectors = 1u << 17;
inline constexpr uint32_t kBlkMaxDiscardSegments = 16;
inline constexpr uint32_t kBlkDiscardSectorAlignment = 8;  // 4 KiB: a hint to the driver

// Block config space layout (§5.2.4): offsets within the config window.
inline constexpr uint64_t kConfigCapacity = 0;                 // le64, 512-byte sectors
inline constexpr uint64_t kConfigSegMax = 12;                  // le32
inline constexpr uint64_t kConfigBlkSize = 20;                 // le32
inline constexpr uint64_t kConfigMaxDiscardSectors = 36;       // le32
inline constexpr uint64_t kConfigMaxDiscardSeg = 40;           // le32
inline constexpr uint64_t kConfigDiscardSectorAlignment = 44;  // le32
inline constexpr uint64_t kConfigMaxWriteZeroesSectors = 48;   // le32
inline constexpr uint64_t kConfigMaxWriteZeroesSeg = 52;       // le32
inline constexpr uint64_t kConfigWriteZeroesMayUnmap = 56;     // u8
inline constexpr uint64_t kConfigBytes = 60;

}  // namespace vm::virtio
